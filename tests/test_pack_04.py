"""Notebook 04 and the workshop pack: its families (one generator per fraction and seed, one classifier per scored
run), and the issue's acceptance test: one pack built from fast runs of 03 and 04, verified, reused by both."""
import json
from pathlib import Path

import pytest
import torch

from medgan_utils import NoPack, open_pack, record_results, save_run_networks
from medgan_utils.course.pretrained import MANIFEST, PACK_MATCH, sha256_file
from medgan_utils.tools.pack import build_pack, verify_pack
from tests.helpers import fast_run, notebook_text, tampered_copy
from tests.helpers import tiny_net as tiny

ROOT = Path(__file__).resolve().parents[1]
NB03, NB04 = ROOT / "notebooks" / "03_dcgan.ipynb", ROOT / "notebooks" / "04_augmentation.ipynb"
PARAMS_04 = {"DATASET": "breastmnist", "SPLIT": "published", "SEED": 0, "IMAGE_SIZE": 28, "GAN_BASE": 32,
             "LATENT_DIM": 100, "CLASSIFIER": "cnn"}


@pytest.fixture
def pack_04(tmp_path, monkeypatch):
    """A pack of a fake finished run of '04': two generators, a discriminator, three classifiers, a feature net."""
    folder = tmp_path / "run" / "04_augmentation"
    monkeypatch.setenv("MEDGAN_RESULTS_DIR", str(folder))
    monkeypatch.delenv("MEDGAN_PRETRAINED", raising=False)
    feature_file = tmp_path / "breastmnist_28px_abc.pt"
    torch.save({"state_dict": tiny(9).state_dict()}, feature_file)
    runs = [{"fraction": 0.25, "arm": arm, "ratio": ratio, "seed": 0, "val_auc": 0.8, "network": f"classifier_{i}"}
            for i, (arm, ratio) in enumerate([("real", 0.0), ("gan", 1.0), ("count_matched", 1.0)])]
    gans = [{"fraction": 0.25, "seed": s, "network": f"generator_0_{s}", "discriminator": "discriminator" if not s
             else None} for s in (0, 1)]
    metrics = {"runs": runs, "gans": gans, "updates": 900}
    nets = {**{r["network"]: tiny(i) for i, r in enumerate(runs)}, "generator_0_0": tiny(5), "generator_0_1": tiny(6),
            "discriminator": tiny(7)}
    save_run_networks("04_augmentation", nets, metrics=metrics, params=PARAMS_04, files={"feature_net": feature_file})
    record_results("04_augmentation", metrics, params={**PARAMS_04, "N_SEEDS": 2}, show=False)
    build_pack(tmp_path / "run", tmp_path / "pack", echo=lambda *a, **k: None)
    return tmp_path / "pack"


def _names(p) -> list[str]:
    return [r["network"] for r in p.metrics["runs"]] + [g["network"] for g in p.metrics["gans"]]


def test_04_match_names_the_parameters_that_fix_its_networks():
    assert set(PACK_MATCH["04"]) == set(PARAMS_04)  # the notebook's PACK_PARAMS (a mismatch raises in open_pack)


def test_04_families_are_listed_checked_and_required(pack_04):
    lines = []
    p = open_pack(pack_04, "04_augmentation", params=PARAMS_04, echo=lines.append)
    assert p and "generator_*" in lines[0] and "classifier_*" in lines[0]
    assert p.require(_names(p)) is p
    shown = []
    verify_pack(pack_04, echo=shown.append)
    assert any(line.startswith("04 04_augmentation: will reuse generator_0_0, generator_0_1, discriminator, "
                               "classifier_0, classifier_1, classifier_2, feature_net") for line in shown), shown
    lines.clear()
    q = p.require(_names(p) + ["classifier_9"], echo=lines.append)  # a classifier its run recorded, missing
    assert isinstance(q, NoPack) and len(lines) == 1 and "lacks classifier_9" in lines[0]


@pytest.mark.parametrize("name, other", [("CLASSIFIER", "resnet18"), ("GAN_BASE", 64), ("SEED", 1),
                                         ("SPLIT", "grouped"), ("LATENT_DIM", 64)])
def test_04_a_mismatching_parameter_falls_back_with_one_line(pack_04, name, other):
    lines = []
    assert not open_pack(pack_04, "04", params={**PARAMS_04, name: other}, echo=lines.append)
    assert len(lines) == 1 and f"{name}={PARAMS_04[name]!r}" in lines[0] and "Training as usual" in lines[0]


def test_04_another_course_version_a_missing_family_or_a_tampered_generator_falls_back(pack_04):
    manifest = json.loads((pack_04 / MANIFEST).read_text())
    (pack_04 / MANIFEST).write_text(json.dumps({**manifest, "course_version": "0.0.1"}))
    lines = []
    assert not open_pack(pack_04, "04", params=PARAMS_04, echo=lines.append)
    assert len(lines) == 1 and "course version 0.0.1" in lines[0] and "Fix:" in lines[0]
    files = manifest["notebooks"]["04"]["files"]
    for k in [k for k in files if k.startswith("generator_")]:
        del files[k]
    (pack_04 / MANIFEST).write_text(json.dumps(manifest))
    lines.clear()
    assert not open_pack(pack_04, "04", params=PARAMS_04, echo=lines.append)
    assert len(lines) == 1 and "lacks generator_*" in lines[0]


# --- the acceptance test of issue #26: fast runs of 03 and 04, one pack, both reuse it (about 5 minutes) ------------

def _run(nb: Path, folder: Path, params: dict, cache: Path | None = None) -> dict:
    from medgan_utils.tools.runner import run_notebook, temporary_environ

    env = {"MEDGAN_CACHE_DIR": str(cache)} if cache else {}
    with temporary_environ(unset=["MEDGAN_PRETRAINED"], **env):
        row = run_notebook(nb, folder, params, fast=True)
    assert row["status"] == "ok", row["error"]
    return {"results": json.loads(Path(row["results"]).read_text()), "text": notebook_text(Path(row["output"])),
            "folder": Path(row["results"]).parent}


@pytest.fixture(scope="module")
def pack_03_04(tmp_path_factory):
    """Fast runs of 03 and 04 into one --out folder (nbval's when CI ran them), and the one pack built from it."""
    root = tmp_path_factory.mktemp("pack0304")
    runs = {"03": fast_run("03_dcgan", root / "run"), "04": fast_run("04_augmentation", root / "run")}  # nbval's, in CI
    build_pack(root / "run", root / "pack", echo=lambda *a, **k: None)
    return {"root": root, "pack": root / "pack", "runs": runs}


@pytest.mark.slow
def test_one_pack_of_03_and_04_is_verified_and_reused_by_both(pack_03_04):
    pack, root, trained = pack_03_04["pack"], pack_03_04["root"], pack_03_04["runs"]
    shown = []
    verify_pack(pack, echo=shown.append)
    assert any(line.startswith("03 03_dcgan: will reuse") for line in shown)
    assert any(line.startswith("04 04_augmentation: will reuse") for line in shown)
    sha = sha256_file(pack / MANIFEST)
    t03, t04 = trained["03"]["results"], trained["04"]["results"]
    assert t03["pretrained"] is None and t04["pretrained"] is None and t04["metrics"]["updates"] > 100
    # 03 with the pack: its G, D and feature net, only its demonstration trains
    out03 = _run(NB03, root / "with_pack", {"PRETRAINED": str(pack)}, cache=root / "cache03")
    assert out03["results"]["pretrained"]["pack"] == sha
    assert out03["results"]["pretrained"]["networks"] == ["generator", "discriminator", "feature_net"]
    assert out03["results"]["metrics"]["updates"] == 8
    assert "[from workshop pack, trained" in out03["text"] and "cached" in out03["text"]  # the pack's feature net
    assert not (out03["folder"] / "networks.json").exists()  # a pack's networks are not saved again as a run's
    # the pack's G draws the same images from the same noise: the FD shown is that of the run that trained it
    assert out03["results"]["params"]["N_EVAL"] == t03["params"]["N_EVAL"]
    assert out03["results"]["metrics"]["fd"] == pytest.approx(t03["metrics"]["fd"], rel=1e-4)
    # 04 with the pack, on a fresh cache: every generator, the demonstration's discriminator, every classifier the
    # trained run scored and its feature net are loaded; only the two demonstrations (4 updates each) train
    out04 = _run(NB04, root / "with_pack", {"PRETRAINED": str(pack)}, cache=root / "cache04")
    rec, m = out04["results"], out04["results"]["metrics"]
    assert rec["pretrained"]["pack"] == sha
    want = ({r["network"] for r in t04["metrics"]["runs"]} | {g["network"] for g in t04["metrics"]["gans"]}
            | {"discriminator", "feature_net"})
    assert set(rec["pretrained"]["networks"]) == want and len(rec["pretrained"]["networks"]) == len(want)
    assert m["updates"] == 8
    assert not (out04["folder"] / "networks.json").exists() and not (out04["folder"] / "gans").exists()
    assert "[from workshop pack, trained" in out04["text"] and "demonstration on a copy of the pack's GAN" in out04["text"]
    assert list((root / "cache04").rglob(f"*{t04['metrics']['feature_net_hash']}*"))  # the pack's feature net
    assert m["feature_net_hash"] == t04["metrics"]["feature_net_hash"]
    # the tables are the trained run's: every classifier re-scored on test gives its numbers, the gate its verdicts
    assert len(m["runs"]) == len(t04["metrics"]["runs"])
    for mine, theirs in zip(m["runs"], t04["metrics"]["runs"]):
        assert (mine["arm"], mine["ratio"], mine["seed"], mine["val_auc"]) == (
            theirs["arm"], theirs["ratio"], theirs["seed"], theirs["val_auc"])
        assert mine["threshold"] == pytest.approx(theirs["threshold"], abs=1e-6)
        for key in ("auc", "acc", "sensitivity", "specificity"):
            assert mine[key] == pytest.approx(theirs[key], abs=1e-6), key
    assert m["primary"]["estimate"] == pytest.approx(t04["metrics"]["primary"]["estimate"], abs=1e-6)
    # the generators are stored in fp16 (PACK_FP16): their FD moves a little; the classifiers are as trained
    files = json.loads((pack / MANIFEST).read_text())["notebooks"]["04"]["files"]
    assert {f["dtype"] for n, f in files.items() if n.startswith("generator_")} == {"float16 (halved by pack build)"}
    assert {f["dtype"] for n, f in files.items() if n.startswith("classifier_")} == {"as trained"}
    for mine, theirs in zip(m["gan_quality"], t04["metrics"]["gan_quality"]):
        assert mine["fd"] == pytest.approx(theirs["fd"], rel=0.01) and mine["fidelity"] == theirs["fidelity"]
    assert {k: v["passed"] for k, v in m["gate"].items()} == {k: v["passed"] for k, v in t04["metrics"]["gate"].items()}
    assert m["classical_strength"]["chosen"] == t04["metrics"]["classical_strength"]["chosen"]


@pytest.mark.slow
def test_04_falls_back_to_training_on_a_tampered_pack(pack_03_04):
    bad = tampered_copy(pack_03_04["pack"], pack_03_04["root"] / "tampered", "04/classifier_0.pt")
    out = _run(NB04, pack_03_04["root"] / "fallback", {"PRETRAINED": str(bad)})
    rec = out["results"]
    assert rec["pretrained"] is None and rec["metrics"]["updates"] > 100  # trained as usual
    lines = [line for line in out["text"].splitlines() if "Workshop pack not used" in line]
    assert len(lines) == 1 and "classifier_0" in lines[0] and "SHA-256" in lines[0] and "Fix:" in lines[0]
    assert "[from workshop pack" not in out["text"]
    assert (out["folder"] / "networks.json").exists()  # a run that trained saves its networks, as any run does


def test_verify_shows_the_primary_contrast_when_a_run_has_no_fd_auc_or_dice():
    from medgan_utils.tools.pack import _primary_line

    assert _primary_line({"estimate": -0.0028, "ci": [-0.0509, 0.0429]}) == "primary contrast -0.0028 [-0.0509, 0.0429]"
    assert _primary_line({"estimate": 0.01}) == "primary contrast 0.01"
    assert _primary_line(None) == "" and _primary_line({"estimate": None}) == ""
