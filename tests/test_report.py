"""medgan report: one CSV row per run with parameters and metrics flattened, a Markdown report, PNG plots, and
per-seed rows pooled only within one setting (runs whose parameters differ are never averaged together).

The folders mimic `medgan sweep` / `medgan run` outputs of notebooks 03 (scalar metrics with CI lists) and 04
(`metrics.runs` per-seed rows and `metrics.summary`), in the layout and schema those notebooks write.
"""
import csv
import json
from pathlib import Path

import pytest

from medgan_utils.tools import cli
from medgan_utils.tools.report import collect, write_report


def _write(folder: Path, rec: dict, sweep_params: dict | None = None) -> None:
    folder.mkdir(parents=True)
    (folder / "results.json").write_text(json.dumps(rec))
    if sweep_params is not None:
        (folder / "run.json").write_text(json.dumps({"status": "ok", "params": sweep_params}))


def _nb04(seed: int, classifier: str, fraction: float, aucs: dict) -> dict:
    runs = [{"dataset": "breastmnist", "fraction": fraction, "arm": arm, "ratio": 0.0 if arm == "real" else 1.0,
             "seed": seed, "auc": auc, "acc": 0.7} for arm, auc in aucs.items()]
    summary = [{"dataset": "breastmnist", "fraction": fraction, "arm": arm, "n_seeds": 1, "auc": auc,
                "auc_ci_low": None, "auc_ci_high": None} for arm, auc in aucs.items()]
    return {"notebook": "04_augmentation", "mode": "fast", "seed": seed,
            "params": {"FRACTIONS": [fraction], "N_SEEDS": 1, "CLASSIFIER": classifier, "BATCH_SIZE": 64},
            "metrics": {"dataset_used": "breastmnist", "n_seeds": 1, "runs": runs, "summary": summary}}


@pytest.fixture
def sweep04(tmp_path) -> Path:
    out = tmp_path / "sweep"
    values = {("cnn", 0.1): [(0.70, 0.72), (0.74, 0.78)], ("cnn", 0.25): [(0.80, 0.81), (0.82, 0.85)],
              ("resnet18", 0.1): [(0.60, 0.61), (0.62, 0.69)]}
    for (clf, frac), pairs in values.items():
        for seed, (real, gan) in enumerate(pairs):
            _write(out / f"run_{clf}_{frac}_{seed}", _nb04(seed, clf, frac, {"real": real, "gan": gan}),
                   {"SEED": seed, "FRACTIONS": [frac], "CLASSIFIER": clf, "FAST": True})
    return out


def test_csv_one_row_per_run_flattened(sweep04):
    written = write_report(sweep04)
    with open(sweep04 / "report.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 6 and {r["param.CLASSIFIER"] for r in rows} == {"cnn", "resnet18"}
    assert {r["param.FRACTIONS.0"] for r in rows} == {"0.1", "0.25"} and {r["param.SEED"] for r in rows} == {"0", "1"}
    assert all(r["metric.dataset_used"] == "breastmnist" for r in rows)
    assert "metric.runs" not in rows[0] and "param.FAST" not in rows[0]
    with open(sweep04 / "report_seeds.csv") as fh:
        assert len(list(csv.DictReader(fh))) == 12
    names = {p.name for p in written}
    assert {"report.csv", "report_seeds.csv", "report.md", "auc_vs_fraction.png"} <= names
    png = (sweep04 / "auc_vs_fraction.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000


def test_settings_are_never_pooled_together(sweep04):
    runs, seeds = collect(sweep04)
    assert len({r["setting"] for r in runs}) == 2  # cnn vs resnet18; seeds and fractions do not split a setting
    write_report(sweep04)
    md = (sweep04 / "report.md").read_text()
    assert "6 run(s) in 2 setting(s)" in md
    sections = md.split("\n## ")
    auc_cnn = next(s for s in sections if s.startswith("auc") and 'CLASSIFIER="cnn"' in s.splitlines()[2])
    auc_res = next(s for s in sections if s.startswith("auc") and 'CLASSIFIER="resnet18"' in s.splitlines()[2])
    assert "setting 1 of 2" in md and "setting 2 of 2" in md
    # gan at fraction 0.1, cnn: seeds 0.72 and 0.78 -> 0.75 over n=2; never mixed with resnet18's 0.61/0.69
    assert "| gan | 0.1 | 2 | 0.7500 |" in auc_cnn and "| gan | 0.1 | 2 | 0.6500 |" in auc_res
    assert "0.7500" not in auc_res and "| real | 0.25 | 2 | 0.8100 |" in auc_cnn


def test_notebook03_outputs_and_a_plot_per_run(tmp_path):
    out = tmp_path / "runs"
    for seed, fd in ((0, 12.5), (1, 14.0)):
        _write(out / f"s{seed}" / "03_dcgan", {"notebook": "03_dcgan", "mode": "fast", "seed": seed,
                                                "params": {"EPOCHS": 2, "BETAS": [0.5, 0.999]},
                                                "metrics": {"fd": fd, "fd_ci": [fd - 1, fd + 1], "kid": 1.2,
                                                            "precision_mode": "bf16"}})
    assert cli.main(["report", str(out)]) == 0
    with open(out / "report.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert [float(r["metric.fd_ci.1"]) for r in rows] == [13.5, 15.0] and rows[0]["param.BETAS.1"] == "0.999"
    assert (out / "metrics_per_run.png").read_bytes()[:4] == b"\x89PNG"
    assert "| s0/03_dcgan | 03_dcgan | fast | 0 |" in (out / "report.md").read_text()


def test_empty_or_missing_folder_is_a_clear_error(tmp_path, capsys):
    assert cli.main(["report", str(tmp_path)]) == 2
    assert "No results.json under" in capsys.readouterr().err
    assert cli.main(["report", str(tmp_path / "nope")]) == 2
    assert "is not a folder" in capsys.readouterr().err


def test_notebooks_with_different_row_columns_get_their_own_axes(tmp_path):
    """A `medgan run` folder holds 04 (x = fraction) and 06 (x = degradation level, one series per task)."""
    _write(tmp_path / "04_augmentation", _nb04(0, "cnn", 0.25, {"real": 0.8, "gan": 0.82}))
    rows = [{"task": task, "level": level, "arm": arm, "ratio": 0.0, "seed": 0, "auc": auc}
            for task, level, arm, auc in (("denoise", 20.0, "nlm", 0.84), ("denoise", 50.0, "nlm", 0.86),
                                          ("superres", 2.0, "nlm", 0.7))]
    _write(tmp_path / "06_enhancement", {"notebook": "06_enhancement", "mode": "fast", "seed": 0,
                                         "params": {"TASKS": ["denoise", "superres"]}, "metrics": {"runs": rows}})
    names = {p.name for p in write_report(tmp_path)}
    assert {"04_augmentation_auc_vs_fraction.png", "06_enhancement_auc_vs_level.png"} <= names
    md = (tmp_path / "report.md").read_text()
    assert "| denoise: nlm | 50.0 | 1 | 0.8600 |" in md and "| superres: nlm | 2.0 | 1 | 0.7000 |" in md


def test_a_metric_no_row_can_plot_is_skipped_not_an_error(tmp_path):
    """Rows of several kinds (as notebook 08 writes: attack rows with ε, privacy rows with a fraction) may leave
    a chosen metric without any (x, y) pair; the report skips that plot instead of failing the site build."""
    from medgan_utils.tools.report import plot

    rows = [{"lab": "attack", "arm": "real", "seed": s, "epsilon": e, "auc": 0.8 - e / 10} for s in (0, 1)
            for e in (0.0, 2.0)]
    rows += [{"lab": "privacy", "arm": "mia", "seed": s, "fraction": f, "mia_auc": 0.55} for s in (0, 1)
             for f in (0.1, 1.0)]
    _write(tmp_path / "08_trust", {"notebook": "08_trust", "mode": "fast", "seed": 0, "params": {},
                                   "metrics": {"runs": rows}})
    written = write_report(tmp_path)
    assert all(p.is_file() for p in written)
    assert plot(rows, "dice", "epsilon", "arm", tmp_path / "none.png") is None
    assert not (tmp_path / "none.png").exists()
