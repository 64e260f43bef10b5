"""The workshop pack: save_run_networks, medgan pack build / verify, open_pack, and notebook 03 with a pack."""
import json
import os
import stat
from pathlib import Path

import pytest
import torch

from medgan_utils import NoPack, PackError, open_pack, record_results, save_run_networks
from medgan_utils.core.io import umask_mode
from medgan_utils.course.pretrained import MANIFEST, sha256_file
from medgan_utils.tools.cli import main
from medgan_utils.tools.pack import build_pack, verify_pack
from tests.helpers import fast_run, fast_run_and_pack, flip_byte, tampered_copy
from tests.helpers import tiny_net as tiny

ROOT = Path(__file__).resolve().parents[1]
PARAMS = {"DATASET": "pneumoniamnist", "IMAGE_SIZE": 28, "CHANNELS": 1, "LATENT_DIM": 4}


@pytest.fixture
def fake_run(tmp_path, monkeypatch):
    """A finished run of '03' with tiny networks: networks/ + networks.json + results.json."""
    folder = tmp_path / "run" / "03_dcgan"
    monkeypatch.setenv("MEDGAN_RESULTS_DIR", str(folder))
    monkeypatch.setenv("MEDGAN_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("MEDGAN_PRETRAINED", raising=False)
    G, D = tiny(0), tiny(1)
    G(torch.randn(16, 4))  # moves the batch-norm statistics and counts a batch (an integer buffer)
    feature_file = tmp_path / "train_cache" / "pneumoniamnist_28px_abc.pt"
    feature_file.parent.mkdir()
    torch.save({"state_dict": tiny(2).state_dict(), "config": {"width": 8}, "info": {"hash": "abc"}}, feature_file)
    metrics = {"fd": 1.5, "fd_ratio_val": 1.2, "updates": 100}
    save_run_networks("03_dcgan", {"generator": G, "discriminator": D}, fp16=("generator",), metrics=metrics,
                      params=PARAMS, files={"feature_net": feature_file})
    record_results("03_dcgan", metrics, params={**PARAMS, "EPOCHS": 3}, show=False)
    return {"dir": tmp_path / "run", "G": G, "D": D, "feature_file": feature_file, "tmp": tmp_path}


@pytest.fixture
def pack(fake_run):
    out = fake_run["tmp"] / "pack"
    build_pack(fake_run["dir"], out, echo=lambda *a, **k: None)
    return out


def _manifest(pack_dir: Path) -> dict:
    return json.loads((pack_dir / MANIFEST).read_text())


def test_build_writes_a_manifest_with_hashes_sizes_provenance_and_metrics(pack, fake_run):
    m = _manifest(pack)
    import medgan_utils

    assert m["course_version"] == medgan_utils.__version__ and m["torch"] == torch.__version__
    nb = m["notebooks"]["03"]
    assert nb["notebook"] == "03_dcgan" and nb["metrics"]["fd"] == 1.5 and nb["params"]["EPOCHS"] == 3
    assert nb["match"] == PARAMS and nb["trained_at"] and nb["device"]
    assert set(nb["files"]) == {"generator", "discriminator", "feature_net"}
    for f in nb["files"].values():
        path = pack / f["path"]
        assert f["sha256"] == sha256_file(path) and f["bytes"] == path.stat().st_size
        assert stat.S_IMODE(path.stat().st_mode) == umask_mode()
    assert not [p for p in pack.parent.iterdir() if p.name.endswith(".part")]  # the staging folder is gone


def test_fp16_storage_halves_floats_keeps_integers_and_loads_back_in_the_module_dtype(pack, fake_run):
    state = torch.load(pack / "03" / "generator.pt", weights_only=True)
    assert state["0.weight"].dtype == torch.float16 and state["1.num_batches_tracked"].dtype == torch.int64
    p = open_pack(pack, "03_dcgan", params=PARAMS, echo=lambda *a: None)
    G = tiny(5)
    assert p and p.load("generator", G)
    assert G[0].weight.dtype == torch.float32
    assert torch.allclose(G[0].weight, fake_run["G"][0].weight, atol=1e-3)
    assert int(G[1].num_batches_tracked) == 1
    D = tiny(6)
    p.load("discriminator", D)
    assert all(torch.equal(a, b) for a, b in zip(D.state_dict().values(), fake_run["D"].state_dict().values()))


def test_open_pack_records_the_manifest_hash_the_networks_and_tags_titles(pack, fake_run, tmp_path):
    lines = []
    p = open_pack(str(pack), "03", params=PARAMS, echo=lines.append)
    p.load("generator", tiny(3))
    assert p.install_cached("feature_net", tmp_path / "laptop_cache")
    assert (tmp_path / "laptop_cache" / fake_run["feature_file"].name).read_bytes() == fake_run["feature_file"].read_bytes()
    assert p.install_all_cached(tmp_path / "other_cache") == ["feature_net"]
    rec = p.record()
    assert rec["pack"] == sha256_file(pack / MANIFEST) and rec["networks"] == ["generator", "feature_net"]
    assert p.title_tag.startswith("[from workshop pack, trained 20") and " on " in p.title_tag
    assert len(lines) == 1 and "reuses generator, discriminator, feature_net" in lines[0]


def test_environment_variable_is_the_default(pack, monkeypatch):
    monkeypatch.setenv("MEDGAN_PRETRAINED", str(pack))
    assert open_pack(None, "03_dcgan", params=PARAMS, echo=lambda *a: None)
    monkeypatch.delenv("MEDGAN_PRETRAINED")
    assert isinstance(open_pack(None, "03_dcgan", params=PARAMS), NoPack)


def _fallback(pack_dir, params=PARAMS) -> str:
    lines = []
    p = open_pack(pack_dir, "03_dcgan", params=params, echo=lines.append)
    assert not p and isinstance(p, NoPack) and p.record() is None and not p.load("generator", tiny(0))
    assert len(lines) == 1 and "Fix:" in lines[0] and "Training as usual" in lines[0]
    return lines[0]


def test_tampered_file_falls_back_with_one_line(pack):
    flip_byte(pack / "03" / "discriminator.pt")
    assert "SHA-256" in _fallback(pack)
    with pytest.raises(PackError, match="discriminator.*SHA-256.*Fix"):
        verify_pack(pack, echo=lambda *a: None)


def test_other_course_version_falls_back_with_one_line(pack):
    m = _manifest(pack)
    m["course_version"] = "0.1.0"
    (pack / MANIFEST).write_text(json.dumps(m))
    assert "course version 0.1.0" in _fallback(pack)
    with pytest.raises(PackError, match="0.1.0.*Fix: rebuild"):
        verify_pack(pack, echo=lambda *a: None)


def test_missing_network_and_missing_file_fall_back_with_one_line(pack):
    m = _manifest(pack)
    del m["notebooks"]["03"]["files"]["discriminator"]
    (pack / MANIFEST).write_text(json.dumps(m))
    assert "lacks discriminator" in _fallback(pack)
    with pytest.raises(PackError, match="lacks discriminator"):
        verify_pack(pack, echo=lambda *a: None)
    (pack / "03" / "generator.pt").unlink()
    assert "missing" in _fallback(pack)


def test_parameters_that_change_the_networks_must_match(pack):
    line = _fallback(pack, {**PARAMS, "IMAGE_SIZE": 64})
    assert "IMAGE_SIZE=28" in line and "IMAGE_SIZE=64" in line
    assert "not a folder" in _fallback(pack / "nowhere")
    with pytest.raises(PackError, match="PACK_MATCH"):
        open_pack(pack, "03_dcgan", params={"EPOCHS": 3})  # a typo in a notebook's hook is a bug, not a fallback


def test_verify_prints_what_each_notebook_reuses_and_checks_torch(pack):
    lines = []
    verify_pack(pack, echo=lines.append)
    assert any(line.startswith("03 03_dcgan: will reuse generator, discriminator, feature_net") for line in lines)
    assert "OK" in lines[-1]
    m = _manifest(pack)
    m["torch"] = "1.13.1"
    (pack / MANIFEST).write_text(json.dumps(m))
    with pytest.raises(PackError, match="torch 1.13.1.*Fix"):
        verify_pack(pack, echo=lambda *a: None)


def test_cli_verify_fails_with_one_line_and_no_traceback(pack, capsys):
    assert main(["pack", "verify", str(pack)]) == 0
    (pack / "03" / "generator.pt").write_bytes(b"not a network")
    assert main(["pack", "verify", str(pack)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "SHA-256" in err and "Traceback" not in err


def test_build_halves_the_pack_fp16_networks_unless_as_trained(fake_run, tmp_path, monkeypatch):
    import medgan_utils.tools.pack as pack_module

    monkeypatch.setitem(pack_module.PACK_FP16, "03", ("discriminator", "generator"))
    saved = json.loads((fake_run["dir"] / "03_dcgan" / "networks.json").read_text())["files"]
    halved = _manifest(build_pack(fake_run["dir"], tmp_path / "half", echo=lambda *a: None).parent)["notebooks"]["03"]
    assert main(["pack", "build", "--from", str(fake_run["dir"]), "--out", str(tmp_path / "kept"), "--as-trained"]) == 0
    kept = _manifest(tmp_path / "kept")
    d, g = halved["files"]["discriminator"], halved["files"]["generator"]
    assert d["dtype"].startswith("float16 (halved") and d["trained_sha256"] == saved["discriminator"]["sha256"]
    assert d["bytes"] < saved["discriminator"]["bytes"] and d["sha256"] == sha256_file(tmp_path / "half" / d["path"])
    assert stat.S_IMODE((tmp_path / "half" / d["path"]).stat().st_mode) == umask_mode()
    assert g["dtype"] == "float16" and g["sha256"] == saved["generator"]["sha256"]  # saved in fp16: copied as it is
    assert kept["notebooks"]["03"]["files"]["discriminator"]["sha256"] == saved["discriminator"]["sha256"]
    state = torch.load(tmp_path / "half" / d["path"], weights_only=True)
    assert state["0.weight"].dtype == torch.float16 and state["1.num_batches_tracked"].dtype == torch.int64
    verify_pack(tmp_path / "half", echo=lambda *a: None)
    D = tiny(7)
    assert open_pack(tmp_path / "half", "03_dcgan", params=PARAMS, echo=lambda *a: None).load("discriminator", D)
    assert D[0].weight.dtype == torch.float32 and not torch.equal(D[0].weight, fake_run["D"][0].weight)
    assert torch.allclose(D[0].weight, fake_run["D"][0].weight, atol=1e-3)


def test_build_refuses_a_folder_that_is_not_a_pack_and_a_run_without_networks(fake_run, tmp_path):
    other = tmp_path / "notes"
    other.mkdir()
    (other / "mine.txt").write_text("keep me")
    with pytest.raises(PackError, match="not a pack"):
        build_pack(fake_run["dir"], other, echo=lambda *a: None)
    assert (other / "mine.txt").read_text() == "keep me"
    with pytest.raises(PackError, match="no saved networks of notebook"):
        build_pack(fake_run["dir"], tmp_path / "p", only=["04"], echo=lambda *a: None)
    out = tmp_path / "p2"
    build_pack(fake_run["dir"], out, echo=lambda *a: None)
    build_pack(fake_run["dir"], out, only=["03"], echo=lambda *a: None)  # an existing pack is replaced whole
    assert set(_manifest(out)["notebooks"]) == {"03"}


def test_build_refuses_networks_changed_after_the_run(fake_run, tmp_path):
    (fake_run["dir"] / "03_dcgan" / "networks" / "generator.pt").write_bytes(b"x")
    with pytest.raises(PackError, match="changed since the run"):
        build_pack(fake_run["dir"], tmp_path / "p", echo=lambda *a: None)


def test_with_data_copies_md5_checked_files(fake_run, tmp_path, monkeypatch):
    from medgan_utils.data.registry import file_spec

    spec = file_spec("pneumoniamnist", 28)
    shared = Path(os.environ.get("MEDGAN_DATA_DIR", ROOT / "data")) / spec.filename
    if not shared.is_file():
        pytest.skip("needs the real pneumoniamnist file (MEDGAN_DATA_DIR)")
    monkeypatch.setenv("MEDGAN_DATA_DIR", str(shared.parent))
    rec_path = fake_run["dir"] / "03_dcgan" / "results.json"
    rec = json.loads(rec_path.read_text())
    rec["datasets"] = {"pneumoniamnist": {"used": "pneumoniamnist", "size": 28, "source": "medmnist"}}
    rec_path.write_text(json.dumps(rec))
    out = tmp_path / "pack"
    build_pack(fake_run["dir"], out, with_data=True, echo=lambda *a: None)
    entry = _manifest(out)["data"][spec.filename]
    assert entry["md5"] == spec.md5 and (out / "data" / spec.filename).stat().st_size == entry["bytes"]
    verify_pack(out, echo=lambda *a: None)


# --- notebook 03 with a pack (each fast run of 03 costs about a minute: few tests, one shared trained run) -----



def _run_03(folder: Path, params: dict) -> dict:
    return fast_run("03_dcgan", folder, params)


@pytest.fixture(scope="module")
def trained_03(tmp_path_factory):
    """One fast run of 03 (no pack) and the pack built from it."""
    return fast_run_and_pack("03_dcgan", tmp_path_factory.mktemp("pack03"))


# 03 reused from a pack (with 04, from one pack): tests/test_pack_04.py::test_one_pack_of_03_and_04_is_verified_and_reused_by_both


@pytest.mark.slow
def test_notebook_03_falls_back_to_training_on_a_tampered_pack(trained_03):
    bad = tampered_copy(trained_03["pack"], trained_03["root"] / "tampered", "03/generator.pt")
    out = _run_03(trained_03["root"] / "fallback", {"PRETRAINED": str(bad), "EPOCHS": 1})
    rec = out["results"]
    assert rec["pretrained"] is None and rec["metrics"]["updates"] > 8  # trained as usual: a whole epoch
    lines = [line for line in out["text"].splitlines() if "Workshop pack not used" in line]
    assert len(lines) == 1 and "SHA-256" in lines[0] and "Fix:" in lines[0]
    assert "[from workshop pack" not in out["text"]


# --- notebook 05: families of networks (one segmenter per arm and seed) -------------------------------------------

PARAMS_05 = {"DATASET": "busi", "SPLIT": "grouped", "SEED": 0, "IMAGE_SIZE": 64, "UNET_BASE": 16,
             "CRITIC_INPUT": "masked", "PATCH_LAYERS": 2}


@pytest.fixture
def pack_05(tmp_path, monkeypatch):
    """A pack of a fake finished run of '05': two segmenters, one generator, two critics, a feature-net file."""
    folder = tmp_path / "run" / "05_segmentation"
    monkeypatch.setenv("MEDGAN_RESULTS_DIR", str(folder))
    monkeypatch.delenv("MEDGAN_PRETRAINED", raising=False)
    feature_file = tmp_path / "busi_64px_abc.pt"
    torch.save({"state_dict": tiny(9).state_dict()}, feature_file)
    runs = [{"arm": "unet", "ratio": 0.0, "fraction": 1.0, "seed": 0, "val_dice": 0.5, "network": "segmenter_0"},
            {"arm": "unet+adv", "ratio": 0.1, "fraction": 1.0, "seed": 0, "val_dice": 0.6, "network": "segmenter_1"}]
    metrics = {"runs": runs, "synthetic_fd": [{"fraction": 1.0, "seed": 0, "fd": 3.0, "network": "mask_to_image_0_0"}],
               "updates": 500}
    nets = {"segmenter_0": tiny(0), "segmenter_1": tiny(1), "mask_to_image_0_0": tiny(2), "critic": tiny(3),
            "pix2pix_critic": tiny(4)}
    save_run_networks("05_segmentation", nets, metrics=metrics, params=PARAMS_05, files={"feature_net": feature_file})
    record_results("05_segmentation", metrics, params=PARAMS_05, show=False)
    build_pack(tmp_path / "run", tmp_path / "pack", echo=lambda *a, **k: None)
    return tmp_path / "pack"


def test_05_families_are_checked_listed_and_required(pack_05):
    lines = []
    p = open_pack(pack_05, "05_segmentation", params=PARAMS_05, echo=lines.append)
    assert p and "segmenter_*" in lines[0]
    names = [r["network"] for r in p.metrics["runs"]] + [r["network"] for r in p.metrics["synthetic_fd"]]
    assert p.require(names) is p
    shown = []
    verify_pack(pack_05, echo=shown.append)
    assert any(line.startswith("05 05_segmentation: will reuse segmenter_0, segmenter_1, mask_to_image_0_0, critic, "
                               "pix2pix_critic, feature_net") for line in shown)
    # a network the run's records name but the pack lacks: one line, and the notebook trains
    lines.clear()
    q = p.require(names + ["segmenter_7"], echo=lines.append)
    assert not q and isinstance(q, NoPack) and q.require(["x"]) is q
    assert len(lines) == 1 and "lacks segmenter_7" in lines[0] and "Training as usual" in lines[0]


def test_05_a_mismatching_parameter_or_a_missing_family_falls_back(pack_05):
    for name, other in (("SPLIT", "published"), ("SEED", 1), ("CRITIC_INPUT", "pair"), ("PATCH_LAYERS", 3),
                        ("IMAGE_SIZE", 128)):
        lines = []
        assert not open_pack(pack_05, "05", params={**PARAMS_05, name: other}, echo=lines.append)
        assert len(lines) == 1 and f"{name}={PARAMS_05[name]!r}" in lines[0] and f"{name}={other!r}" in lines[0]
    m = _manifest(pack_05)
    files = m["notebooks"]["05"]["files"]
    for k in [k for k in files if k.startswith("segmenter_")]:
        del files[k]
    (pack_05 / MANIFEST).write_text(json.dumps(m))
    lines = []
    assert not open_pack(pack_05, "05", params=PARAMS_05, echo=lines.append)
    assert "lacks segmenter_*" in lines[0]


def test_05_a_tampered_member_of_a_family_falls_back(pack_05):
    flip_byte(pack_05 / "05" / "segmenter_1.pt")
    lines = []
    assert not open_pack(pack_05, "05", params=PARAMS_05, echo=lines.append)
    assert "segmenter_1" in lines[0] and "SHA-256" in lines[0]


# --- notebook 05 with a pack: one trained fast run, one run with its pack (about 3 minutes in all) ---------------



@pytest.mark.slow
def test_notebook_05_reuses_every_segmenter_and_rescores_them(tmp_path):
    def run(folder, params):
        out = fast_run("05_segmentation", folder, params)
        return out["results"], out["text"], out["folder"]

    trained, _, _ = run(tmp_path / "run", {})
    build_pack(tmp_path / "run", tmp_path / "pack", echo=lambda *a, **k: None)
    rec, text, folder = run(tmp_path / "with_pack", {"PRETRAINED": str(tmp_path / "pack")})
    assert trained["pretrained"] is None and trained["metrics"]["updates"] > 100
    runs = trained["metrics"]["runs"]
    assert rec["pretrained"]["pack"] == sha256_file(tmp_path / "pack" / MANIFEST)
    assert set(rec["pretrained"]["networks"]) == {r["network"] for r in runs} | {
        "critic", "pix2pix_critic", "feature_net", *(r["network"] for r in trained["metrics"]["synthetic_fd"])}
    assert rec["metrics"]["updates"] == 8  # the two demonstrations, 4 updates each
    assert "[from workshop pack, trained" in text and "demonstration on copies" in text
    assert not (folder / "networks.json").exists()
    # every segmenter re-scored on the test split gives the trained run's numbers: the table is the pack run's
    for mine, theirs in zip(rec["metrics"]["runs"], runs):
        assert (mine["arm"], mine["seed"], mine["val_dice"]) == (theirs["arm"], theirs["seed"], theirs["val_dice"])
        assert mine["dice"] == pytest.approx(theirs["dice"], abs=1e-6)
    assert rec["metrics"]["chosen_lambda"] == trained["metrics"]["chosen_lambda"]
    # the mask-to-image generators are stored in fp16 (PACK_FP16): their FD moves a little
    assert rec["metrics"]["synthetic_fd"][0]["fd"] == pytest.approx(trained["metrics"]["synthetic_fd"][0]["fd"], rel=0.01)
