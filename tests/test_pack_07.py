"""Notebook 07 and the workshop pack: its names and families, the ring generator it saves, and 07 with a pack."""
import math
from pathlib import Path

import pytest
import torch

from medgan_utils import NoPack, make_generator, open_pack, record_results, save_run_networks, train_ring_gan
from medgan_utils.course.pretrained import MANIFEST, PACK_MATCH, PACK_NETWORKS, expand_names, sha256_file
from medgan_utils.tools.pack import build_pack, verify_pack
from tests.helpers import fast_run, fast_run_and_pack, tampered_copy

ROOT = Path(__file__).resolve().parents[1]
NB07 = ROOT / "notebooks" / "07_challenges.ipynb"
PARAMS_07 = {"DATASET": "breastmnist", "SEED": 0, "BASE": 32}


def test_07_match_and_families_name_what_the_notebook_saves():
    assert PACK_MATCH["07"] == ("DATASET", "SEED", "BASE")
    saved = ["stability_G_wgan-gp_0", "stability_D_wgan-gp_0", "ring_G_wgan-gp_0", "scarcity_G_0.25_plain_0",
             "scarcity_D_0.25_plain_0", "scarcity_long_G_0.1_ada_1", "diffusion_DDPM_flops_0", "feature_net"]
    found = expand_names(PACK_NETWORKS["07"], {n: {} for n in saved})
    # the long runs are optional (SCARCITY_LONG_UPDATES = 0): no family asks for them, the run's records do
    assert set(found) == set(saved) - {"scarcity_long_G_0.1_ada_1"}


def test_ring_gan_returns_the_generator_that_drew_its_samples_and_it_survives_a_state_dict():
    for variant in ("non-saturating", "ema"):
        a = train_ring_gan(variant, seed=3, steps=6, batch_size=32, n_eval=64, n_checks=2)
        b = train_ring_gan(variant, seed=3, steps=6, batch_size=32, n_eval=64, n_checks=2)
        G = a["generator"]
        z = torch.randn(64, 2, generator=torch.Generator().manual_seed(0))
        with torch.no_grad():
            assert torch.equal(G(z), b["generator"](z))  # same seed, same generator
            copy = make_generator(2, 2)
            copy.load_state_dict(G.state_dict())  # what the pack stores and the notebook loads
            assert torch.equal(copy(z), G(z)) and G(z).shape == (64, 2)
    # with an EMA the generator is the averaged copy, which moves slower than the raw G it averages
    ema = train_ring_gan("ema", seed=3, steps=6, batch_size=32, n_eval=64, n_checks=2)["generator"]
    raw = train_ring_gan("non-saturating", seed=3, steps=6, batch_size=32, n_eval=64, n_checks=2)["generator"]
    assert any(not torch.equal(p, q) for p, q in zip(ema.state_dict().values(), raw.state_dict().values()))


@pytest.fixture
def pack_07(tmp_path, monkeypatch):
    """A pack of a fake finished run of '07': one network of each family, named as the notebook names them."""
    folder = tmp_path / "run" / "07_challenges"
    monkeypatch.setenv("MEDGAN_RESULTS_DIR", str(folder))
    monkeypatch.delenv("MEDGAN_PRETRAINED", raising=False)
    feature_file = tmp_path / "breastmnist_28px_abc.pt"
    torch.save({"state_dict": make_generator(2, 2).state_dict()}, feature_file)
    runs = [{"lab": "stability", "arm": "non-saturating", "seed": 0, "network": "stability_G_non-saturating_0",
             "critic": "stability_D_non-saturating_0"},
            {"lab": "scarcity", "arm": "plain", "fraction": 0.25, "seed": 0, "network": "scarcity_G_0.25_plain_0",
             "critic": "scarcity_D_0.25_plain_0"},
            {"lab": "diffusion", "arm": "DCGAN", "seed": 0, "network": "diffusion_DCGAN_0"}]
    ring = [{"variant": "non-saturating", "seed": 0, "network": "ring_G_non-saturating_0"}]
    names = [r[k] for r in runs + ring for k in ("network", "critic") if k in r]
    metrics = {"runs": runs, "ring_runs": ring, "updates": 100}
    save_run_networks("07_challenges", {n: make_generator(2, 2) for n in names}, metrics=metrics, params=PARAMS_07,
                      fp16=[n for n in names if not n.startswith("ring")], files={"feature_net": feature_file})
    record_results("07_challenges", metrics, params=PARAMS_07, show=False)
    build_pack(tmp_path / "run", tmp_path / "pack", echo=lambda *a, **k: None)
    return {"dir": tmp_path / "pack", "names": names}


def test_07_pack_opens_requires_its_recorded_runs_and_falls_back_on_a_mismatch(pack_07):
    lines = []
    p = open_pack(pack_07["dir"], "07_challenges", params=PARAMS_07, echo=lines.append)
    assert p and "stability_G_*" in lines[0] and "[from workshop pack, trained" in lines[0]
    recorded = [r[k] for r in p.metrics["runs"] + p.metrics["ring_runs"] for k in ("network", "critic") if r.get(k)]
    assert sorted(recorded) == sorted(pack_07["names"]) and p.require(recorded) is p
    G = make_generator(2, 2)
    assert p.load("stability_G_non-saturating_0", G) and G[0].weight.dtype == torch.float32  # fp16 file, fp32 net
    lines.clear()
    assert isinstance(p.require(recorded + ["scarcity_long_G_0.1_plain_0"], echo=lines.append), NoPack)
    assert len(lines) == 1 and "lacks scarcity_long_G_0.1_plain_0" in lines[0]
    for name, other in (("BASE", 16), ("SEED", 1), ("DATASET", "pneumoniamnist")):
        lines.clear()
        assert not open_pack(pack_07["dir"], "07", params={**PARAMS_07, name: other}, echo=lines.append)
        assert len(lines) == 1 and f"{name}={PARAMS_07[name]!r}" in lines[0] and "Training as usual" in lines[0]


# --- notebook 07 with a pack: one trained fast run, its pack, a run with it, and a cheap fallback run -------------

def _run_07(folder: Path, params: dict) -> dict:
    return fast_run("07_challenges", folder, params)  # a default run is nbval's, in CI


@pytest.fixture(scope="module")
def trained_07(tmp_path_factory):
    """One fast run of 07 (no pack) and the pack built from it."""
    return fast_run_and_pack("07_challenges", tmp_path_factory.mktemp("pack07"))


@pytest.mark.slow
def test_notebook_07_reuses_every_generator_rescores_them_and_trains_only_the_demonstrations(trained_07):
    pack = trained_07["pack"]
    verify_pack(pack, echo=lambda *a: None)
    trained = trained_07["run"]["results"]
    m0 = trained["metrics"]
    assert trained["pretrained"] is None and m0["updates"] > 100
    out = _run_07(trained_07["root"] / "with_pack", {"PRETRAINED": str(pack)})
    rec, m = out["results"], out["results"]["metrics"]
    assert rec["pretrained"]["pack"] == sha256_file(pack / MANIFEST)
    saved = {r[k] for r in m0["runs"] + m0["ring_runs"] for k in ("network", "critic") if r.get(k)}
    # fast mode with a pack: the diffusion table is the pack run's (drawing every seed's DDPM images takes minutes),
    # and only the first seed's models are loaded, to draw the figure and time the draw here
    first = m0["diffusion"]["seeds"][0]
    not_drawn = {r["network"] for r in m0["runs"] if r["lab"] == "diffusion" and r["seed"] != first}
    assert set(rec["pretrained"]["networks"]) == (saved - not_drawn) | {"feature_net"}
    for name, t in m["diffusion"]["summary"].items():
        theirs_d = m0["diffusion"]["summary"][name]
        assert (t["fd_ratio_geo"], t["kid"], t["updates"]) == (theirs_d["fd_ratio_geo"], theirs_d["kid"],
                                                              theirs_d["updates"])
        assert t["ms_per_image"] > 0
    assert "FD ratio and KID (as the pack's run recorded them)" in out["text"]
    assert m["updates"] == 8  # the two demonstrations (a GAN and a DDPM), 4 updates each
    assert "[from workshop pack, trained" in out["text"] and "demonstration" in out["text"]
    assert not (out["folder"] / "networks.json").exists()
    # the same generators, drawn from the same noise (fp16 weights): the FD ratios are those of the trained run
    theirs = {(r["lab"], r["arm"], r.get("fraction"), r["seed"]): r for r in m0["runs"]}
    assert len(m["runs"]) == len(m0["runs"])
    for r in m["runs"]:
        t = theirs[r["lab"], r["arm"], r.get("fraction"), r["seed"]]
        if r["arm"].startswith("DDPM"):  # a new draw of the reverse chain: the same model, other noise
            assert math.isfinite(r["fd_ratio"]) and r["updates"] == t["updates"]
        elif math.isfinite(t["fd_ratio"]):
            assert r["fd_ratio"] == pytest.approx(t["fd_ratio"], rel=0.05), r["network"]
    assert m["ring_runs"] == m0["ring_runs"] and m["scarcity_gap"] == m0["scarcity_gap"]  # recorded, as labelled


@pytest.mark.slow
def test_notebook_07_falls_back_to_training_on_a_mismatching_parameter_or_a_tampered_file(trained_07):
    bad = tampered_copy(trained_07["pack"], trained_07["root"] / "tampered", "07/scarcity_G_0.25_plain_0.pt", -50)
    cheap = {"LABS": ["stability"], "LOSSES": ["non-saturating"], "EPOCHS": 1, "RING_STEPS": 10}
    for params, why in (({"PRETRAINED": str(trained_07["pack"]), "BASE": 16, **cheap}, "BASE=32"),
                        ({"PRETRAINED": str(bad), **cheap}, "SHA-256")):
        out = _run_07(trained_07["root"] / f"fallback_{why[:4]}", params)
        rec = out["results"]
        assert rec["pretrained"] is None and rec["metrics"]["updates"] > 8  # trained as usual
        lines = [line for line in out["text"].splitlines() if "Workshop pack not used" in line]
        assert len(lines) == 1 and why in lines[0] and "Fix:" in lines[0]
        assert "[from workshop pack" not in out["text"]
