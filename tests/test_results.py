import json

import pytest

from medgan_utils.course.results import mean_ci, record_results, results_path
from medgan_utils.course.settings import setup


def test_mean_ci_matches_student_t():
    r = mean_ci([1.0, 2.0, 3.0])
    assert r["mean"] == pytest.approx(2.0) and r["n"] == 3 and r["std"] == pytest.approx(1.0)
    # t(0.975, 2) = 4.3027; half-width = 4.3027 * 1 / sqrt(3)
    assert r["ci95"] == pytest.approx(4.302653 / 3 ** 0.5, rel=1e-4)
    single = mean_ci([0.7])
    assert single["ci95"] is None and single["mean"] == 0.7
    with pytest.raises(ValueError):
        mean_ci([])


def test_record_results_writes_json_beside_the_run(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MEDGAN_RESULTS_DIR", str(tmp_path / "03_dcgan"))
    cfg = setup(FAST=True, DEVICE="cpu", SEED=11, quiet=True)
    rec = record_results("03_dcgan", {"fd": 1.5, "auc": mean_ci([0.9, 0.92])}, cfg=cfg, params={"EPOCHS": 2})
    path = results_path("03_dcgan")
    assert path == tmp_path / "03_dcgan" / "results.json"
    on_disk = json.loads(path.read_text())
    assert on_disk["metrics"]["fd"] == 1.5 and on_disk["metrics"]["auc"]["n"] == 2
    assert on_disk["seed"] == 11 and on_disk["mode"] == "fast" and on_disk["params"] == {"EPOCHS": 2}
    assert rec["device"] == "cpu"
    out = capsys.readouterr().out
    assert "fd" in out and "0.91" in out
