"""Notebook 06 and the workshop pack: its enhancers, critics, diagnosis models and feature nets (issue #26)."""
import json
import re
from pathlib import Path

import pytest
import torch
from torch import nn

from medgan_utils import NoPack, open_pack, record_results, save_run_networks
from medgan_utils.course.pretrained import MANIFEST, PACK_MATCH, PACK_NETWORKS, sha256_file
from medgan_utils.tools.pack import build_pack, verify_pack
from tests.helpers import fast_run, fast_run_and_pack

ROOT = Path(__file__).resolve().parents[1]
NB06 = ROOT / "notebooks" / "06_enhancement.ipynb"
PARAMS_06 = {"DATASET": "pneumoniamnist", "SEG_DATASET": "busi", "SPLIT": "published", "SEG_SPLIT": "grouped",
             "SEED": 0, "IMAGE_SIZE": 28, "SEG_SIZE": 64, "UNET_BASE": 16, "READ_NOISE": 2.0, "SCALE": 2,
             "SPECKLE_LOOKS": [1, 4]}
NETS_06 = ["enhancer_0", "enhancer_1", "wrong_population_0", "critic_denoise", "downstream_xray", "downstream_us"]


def _tiny(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 8), nn.Linear(8, 2))


def _cells(notebook: Path = NB06) -> list[str]:
    return ["".join(c["source"]) for c in json.loads(notebook.read_text())["cells"] if c["cell_type"] == "code"]


@pytest.fixture
def pack_06(tmp_path, monkeypatch):
    """A pack of a fake finished run of '06': two enhancers, a translator, a critic, two diagnosis models and two
    feature-net files, named as the notebook names them."""
    folder = tmp_path / "run" / "06_enhancement"
    monkeypatch.setenv("MEDGAN_RESULTS_DIR", str(folder))
    monkeypatch.delenv("MEDGAN_PRETRAINED", raising=False)
    files = {}
    for fam in ("xray", "us"):
        files[f"feature_net_{fam}"] = tmp_path / f"{fam}_abc.pt"
        torch.save({"state_dict": _tiny(9).state_dict()}, files[f"feature_net_{fam}"])
    training = [{"task": "denoise", "lambda": 0.0, "seed": 0, "val_psnr": 20.0, "network": "enhancer_0"},
                {"task": "denoise", "lambda": 0.1, "seed": 0, "val_psnr": 19.0, "network": "enhancer_1"}]
    metrics = {"training": training, "networks": NETS_06 + list(files), "chosen_lambdas": {"denoise": 0.1},
               "hallucination_experiment": {"networks": [{"arm": "mixed", "seed": 0, "network": "wrong_population_0"}]},
               "updates": 500}
    save_run_networks("06_enhancement", {n: _tiny(i) for i, n in enumerate(NETS_06)}, metrics=metrics,
                      params=PARAMS_06, fp16=["critic_denoise"], files=files)
    record_results("06_enhancement", metrics, params=PARAMS_06, show=False)
    build_pack(tmp_path / "run", tmp_path / "pack", echo=lambda *a, **k: None)
    return tmp_path / "pack"


def test_notebook_06_passes_exactly_the_parameters_pack_match_names():
    cell = next(c for c in _cells() if "PACK_PARAMS = {" in c)
    block = cell[cell.index("PACK_PARAMS = {"):cell.index("}", cell.index("PACK_PARAMS = {"))]
    assert set(re.findall(r'"([A-Z_]+)":', block)) == set(PACK_MATCH["06"])
    saved = next(c for c in _cells() if "save_run_networks(" in c)
    for family in PACK_NETWORKS["06"]:  # every family the pack must hold is one the notebook saves
        assert family.rstrip("*") in saved
    params = next(c for c in _cells() if c.startswith("FAST = None"))
    assert params.rstrip().splitlines()[-1].startswith("PRETRAINED = None  # type: str")
    assert "=" not in params.rstrip().splitlines()[-1].split("#", 1)[1]  # papermill drops such a parameter


def test_06_families_are_checked_and_the_runs_networks_required(pack_06):
    lines = []
    p = open_pack(pack_06, "06_enhancement", params=PARAMS_06, echo=lines.append)
    assert p and len(lines) == 1 and "enhancer_*" in lines[0] and "[from workshop pack" in lines[0]
    assert p.require(p.metrics["networks"]) is p
    shown = []
    verify_pack(pack_06, echo=shown.append)
    assert any(line.startswith("06 06_enhancement: will reuse enhancer_0, enhancer_1, critic_denoise, "
                               "downstream_us, downstream_xray, feature_net_us, feature_net_xray") for line in shown)
    state = torch.load(pack_06 / "06" / "critic_denoise.pt", weights_only=True)
    assert state["0.weight"].dtype == torch.float16  # the critics only train the demonstration: half size
    assert torch.load(pack_06 / "06" / "enhancer_0.pt", weights_only=True)["0.weight"].dtype == torch.float32
    # the feature nets go into the cache under their own names
    cache = pack_06.parent / "cache"
    assert sorted(p.install_all_cached(cache)) == ["feature_net_us", "feature_net_xray"]
    assert sorted(f.name for f in cache.iterdir()) == ["us_abc.pt", "xray_abc.pt"]
    # a translator its run recorded but the pack lacks: one line, and the notebook trains
    lines.clear()
    q = p.require(p.metrics["networks"] + ["wrong_population_1"], echo=lines.append)
    assert isinstance(q, NoPack) and len(lines) == 1 and "lacks wrong_population_1" in lines[0]


def test_06_a_mismatching_parameter_or_a_missing_family_falls_back(pack_06):
    for name, other in (("SEG_SIZE", 128), ("SPECKLE_LOOKS", [1]), ("READ_NOISE", 5.0), ("SEG_SPLIT", "published")):
        lines = []
        assert not open_pack(pack_06, "06", params={**PARAMS_06, name: other}, echo=lines.append)
        assert len(lines) == 1 and f"{name}={PARAMS_06[name]!r}" in lines[0] and "Training as usual" in lines[0]
    m = json.loads((pack_06 / MANIFEST).read_text())
    del m["notebooks"]["06"]["files"]["critic_denoise"]
    (pack_06 / MANIFEST).write_text(json.dumps(m))
    lines = []
    assert not open_pack(pack_06, "06", params=PARAMS_06, echo=lines.append)
    assert len(lines) == 1 and "lacks critic_*" in lines[0]


# --- notebook 06 with a pack: one trained fast run, one run with its pack, one fallback (about 4 minutes) ---------

def _run_06(folder: Path, params: dict) -> dict:
    return fast_run("06_enhancement", folder, params)  # a default run is nbval's, in CI


@pytest.fixture(scope="module")
def trained_06(tmp_path_factory):
    """One fast run of 06 (no pack) and the pack built from it."""
    return fast_run_and_pack("06_enhancement", tmp_path_factory.mktemp("pack06"))


@pytest.mark.slow
def test_notebook_06_reuses_every_enhancer_and_rescores_them(trained_06):
    pack = trained_06["pack"]
    verify_pack(pack, echo=lambda *a: None)
    trained = trained_06["run"]["results"]["metrics"]
    assert trained_06["run"]["results"]["pretrained"] is None and trained["updates"] > 100
    out = _run_06(trained_06["root"] / "with_pack", {"PRETRAINED": str(pack)})
    rec, m = out["results"], out["results"]["metrics"]
    assert rec["pretrained"]["pack"] == sha256_file(pack / MANIFEST)
    tasks = trained["tasks"]
    other_critics = {f"critic_{t}" for t in tasks[1:]}  # only the first task's critic trains the demonstration
    assert set(rec["pretrained"]["networks"]) == set(trained["networks"]) - other_critics
    assert m["updates"] == 4  # the demonstration: 4 pix2pix updates on copies of the pack's networks
    assert "[from workshop pack, trained" in out["text"] and "demonstration on copies" in out["text"]
    assert not (out["folder"] / "networks.json").exists()  # a pack's networks are not saved again as a run's
    # every method re-scored on the test split gives the trained run's numbers: the tables are the pack run's
    assert len(m["runs"]) == len(trained["runs"])
    for mine, theirs in zip(m["runs"], trained["runs"]):
        assert (mine["task"], mine["level"], mine["arm"], mine["ratio"], mine["seed"]) == (
            theirs["task"], theirs["level"], theirs["arm"], theirs["ratio"], theirs["seed"])
        for key in ("psnr", "ssim", "structured_error", "fd_ratio", "kid", "auc", "dice"):
            if key in theirs:
                assert mine[key] == pytest.approx(theirs[key], abs=1e-5), (mine["arm"], key)
    assert m["chosen_lambdas"] == trained["chosen_lambdas"]
    assert m["classical_settings"] == trained["classical_settings"] and m["noise_sigma"] == trained["noise_sigma"]
    h_mine, h_theirs = m["hallucination_experiment"], trained["hallucination_experiment"]
    assert h_mine["networks"] == h_theirs["networks"]
    assert h_mine["arms"]["benign-only"]["removed"]["estimate"] == pytest.approx(
        h_theirs["arms"]["benign-only"]["removed"]["estimate"], abs=1e-6)


@pytest.mark.slow
def test_notebook_06_falls_back_to_training_on_a_mismatching_parameter(trained_06):
    out = _run_06(trained_06["root"] / "fallback", {"PRETRAINED": str(trained_06["pack"]), "READ_NOISE": 3.0,
                                                    "TASKS": ["superres"]})
    rec = out["results"]
    assert rec["pretrained"] is None and rec["metrics"]["updates"] > 4  # trained as usual
    assert rec["metrics"]["tasks"] == ["superres"]  # this run's settings, not the pack's
    lines = [line for line in out["text"].splitlines() if "Workshop pack not used" in line]
    assert len(lines) == 1 and "READ_NOISE=2.0" in lines[0] and "READ_NOISE=3.0" in lines[0] and "Fix:" in lines[0]
    assert "[from workshop pack" not in out["text"]
