"""Notebook 08 and the workshop pack: what it saves, what it checks, and a fast run that reuses a pack."""
import json
from pathlib import Path

import pytest
import torch
from torch import nn

from medgan_utils import NoPack, Pack, open_pack, record_results, save_run_networks
from medgan_utils.course.pretrained import MANIFEST, PACK_MATCH, PACK_NETWORKS, expand_names, sha256_file
from medgan_utils.tools.pack import build_pack, verify_pack
from tests.helpers import fast_run, fast_run_and_pack

ROOT = Path(__file__).resolve().parents[1]
NB08 = ROOT / "notebooks" / "08_trust.ipynb"
PARAMS_08 = {"SEED": 0, "DCGAN_BASE": 32, "DP_TRAIN_N": 128}
# one member of every family 08 saves (fast mode: one seed, one fraction, ε = 10), as the notebook names them
NAMES_08 = ["classifier_real_0", "classifier_gan_0", "classifier_adv_0", "cgan_generator_0", "cgan_discriminator_0",
            "inpainter", "inpainter_critic", "segmenter", "member_generator_0", "member_discriminator_0",
            "dp_generator_inf_0", "dp_generator_10_0", "dp_discriminator_inf_0", "dp_discriminator_10_0"]


def _cells() -> list[str]:
    return ["".join(c["source"]) for c in json.loads(NB08.read_text())["cells"] if c["cell_type"] == "code"]


def test_parameters_cell_ends_with_pretrained_and_papermill_keeps_it():
    params = _cells()[0].strip().splitlines()
    assert params[-1].startswith("PRETRAINED = None  # type: str ")
    assert "=" not in params[-1].split("#", 1)[1]  # papermill drops a parameter whose comment holds "="


def test_pack_params_of_the_notebook_are_exactly_pack_match():
    cell = next(c for c in _cells() if "PACK_PARAMS = {" in c)
    line = next(l for l in cell.splitlines() if l.startswith("PACK_PARAMS = {"))
    keys = {k.strip().strip('"') for k in line.split("{", 1)[1].split(":")[:-1] for k in [k.split(",")[-1]]}
    assert keys == set(PACK_MATCH["08"])


def test_every_saved_name_belongs_to_a_family_of_pack_networks():
    files = {n: {} for n in NAMES_08 + ["feature_net_breast", "feature_net_pneumonia"]}
    assert set(expand_names(PACK_NETWORKS["08"], files)) == set(files)  # every name is asked for, none left over
    assert all(expand_names([n], files) for n in PACK_NETWORKS["08"])   # every family has a member


def _tiny(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))


@pytest.fixture
def pack_08(tmp_path, monkeypatch):
    """A pack of 08 built from a run folder holding tiny stand-ins under 08's names (both feature-net files too)."""
    monkeypatch.setenv("MEDGAN_RESULTS_DIR", str(tmp_path / "run" / "08_trust"))
    monkeypatch.delenv("MEDGAN_PRETRAINED", raising=False)
    feature_files = {}
    for name in ("feature_net_breast", "feature_net_pneumonia"):
        feature_files[name] = tmp_path / f"{name}_cache.pt"
        torch.save({"state_dict": _tiny(7).state_dict()}, feature_files[name])
    index = {"networks": {"classifiers": [{"arm": a, "seed": 0, "network": f"classifier_{a}_0"}
                                          for a in ("real", "gan", "adv")]}}
    save_run_networks("08_trust", {n: _tiny(i) for i, n in enumerate(NAMES_08)}, metrics=index, params=PARAMS_08,
                      files=feature_files)
    record_results("08_trust", index, params=PARAMS_08, show=False)
    build_pack(tmp_path / "run", tmp_path / "pack", echo=lambda *a, **k: None)
    return tmp_path / "pack"


def test_open_pack_08_accepts_a_complete_pack_and_loads_a_family_member(pack_08):
    lines = []
    pack = open_pack(pack_08, "08_trust", params=PARAMS_08, echo=lines.append)
    assert isinstance(pack, Pack) and "notebook 08 reuses" in lines[-1]
    net = _tiny(99)
    assert pack.load("dp_discriminator_10_0", net)
    assert torch.equal(net[0].weight, _tiny(NAMES_08.index("dp_discriminator_10_0"))[0].weight)
    assert pack.require(["classifier_adv_0"]) is pack


@pytest.mark.parametrize("name, value", [("DP_TRAIN_N", 96), ("DCGAN_BASE", 16), ("SEED", 1)])
def test_open_pack_08_refuses_another_data_or_shape_in_one_line(pack_08, name, value):
    lines = []
    pack = open_pack(pack_08, "08_trust", params={**PARAMS_08, name: value}, echo=lines.append)
    assert isinstance(pack, NoPack) and not pack and len(lines) == 1
    assert f"{name}={value!r}" in lines[0] and "Fix:" in lines[0] and "Training as usual" in lines[0]


def test_open_pack_08_refuses_a_pack_without_a_dp_discriminator(pack_08):
    (pack_08 / "08" / "dp_discriminator_10_0.pt").unlink()
    lines = []
    assert not open_pack(pack_08, "08_trust", params=PARAMS_08, echo=lines.append)
    assert len(lines) == 1 and "dp_discriminator_10_0" in lines[0] and "missing" in lines[0]


# --- the notebook itself: one fast run, its pack, a run with the pack, a run with a mismatching pack ------------

def _run_08(folder: Path, params: dict) -> dict:
    return fast_run("08_trust", folder, params)  # a default run is nbval's, in CI


@pytest.fixture(scope="module")
def trained_08(tmp_path_factory):
    """One fast run of 08 (no pack) and the pack built from it."""
    return fast_run_and_pack("08_trust", tmp_path_factory.mktemp("pack08"))


def _by(rows, *keys):
    return {tuple(json.dumps(r.get(k)) for k in keys): r for r in rows}


@pytest.mark.slow
def test_notebook_08_reuses_the_pack_rescores_it_and_trains_only_the_demonstrations(trained_08):
    pack = trained_08["pack"]
    verify_pack(pack, echo=lambda *a, **k: None)
    trained = trained_08["run"]["results"]
    saved = json.loads((trained_08["run"]["folder"] / "networks.json").read_text())["files"]
    assert trained["pretrained"] is None and trained["metrics"]["updates"] > 200
    out = _run_08(trained_08["root"] / "with_pack", {"PRETRAINED": str(pack)})
    rec, m, t = out["results"], out["results"]["metrics"], trained["metrics"]
    assert rec["pretrained"]["pack"] == sha256_file(pack / MANIFEST)
    assert set(rec["pretrained"]["networks"]) == set(saved)  # every saved network, feature nets included
    assert m["updates"] == 16  # four demonstrations of 4 updates: plain, adversarial, pix2pix, DP-SGD
    assert "[from workshop pack, trained" in out["text"] and out["text"].count("demonstration:") == 4
    assert not (out["folder"] / "networks.json").exists()  # a pack's networks are not saved again as a run's
    # the attacked classifiers, re-scored on the test split: the pack run's numbers
    mine, theirs = (_by([r for r in x["runs"] if r["experiment"] == "attack"], "arm", "attack", "eps", "seed")
                    for x in (m, t))
    assert mine.keys() == theirs.keys()
    for k in mine:
        assert mine[k]["auc"] == pytest.approx(theirs[k]["auc"], abs=1e-6), k
    # the DP lab: accounting from the pack's metrics, the attack re-run on the pack's D, FD from its G
    for a, b in zip(m["privacy"]["runs"], t["privacy"]["runs"]):
        assert (a["epsilon"], a["delta"], a["sampling_rate"], a["noise_multiplier"]) == (
            b["epsilon"], b["delta"], b["sampling_rate"], b["noise_multiplier"])
        assert a["attack_auc"]["estimate"] == pytest.approx(b["attack_auc"]["estimate"], abs=1e-9)
        assert a["fd"] == pytest.approx(b["fd"], rel=0.01)  # its G is stored in fp16 (PACK_FP16)
    mia = [(r["mia_auc"], r["fd"]) for x in (m, t) for r in x["runs"] if r["experiment"] == "membership"]
    assert mia[0][0] == pytest.approx(mia[1][0], abs=1e-9) and mia[0][1] == pytest.approx(mia[1][1], rel=0.01)
    assert m["segmenter_val_dice"] == pytest.approx(t["segmenter_val_dice"], abs=1e-5)
    assert [r["rate"] for r in m["summary"]["tampering"]] == [r["rate"] for r in t["summary"]["tampering"]]


# A mismatching pack falls back with one line (DP_TRAIN_N, SEED, DCGAN_BASE, a missing discriminator): the open_pack
# tests above. The notebook-level fallback (the pack refused, the run trains as usual) is run for 03, 04 and 06; for
# 08 it would add a whole fast training run (about 85 s) to CI.
