"""Hostile and clumsy input, part 1 (issue 24): data files and folders, environment variables, CLI arguments,
notebook parameters, checkpoints and a full disk. Each case was a traceback, a hang or a wrong message; now it
is one line that names the thing at fault and the fix (exit 2 from the CLI), and nothing is lost.

No notebook is executed: the functions that would start papermill are replaced by ones that fail.
"""
from __future__ import annotations

import errno
import io
import os
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import medgan_utils.data.user_data as user_data
import medgan_utils.tools.runner as runner_mod
from medgan_utils.core.env import read_env
from medgan_utils.core.errors import CoursePathError, SettingError
from medgan_utils.core.io import CheckpointError, atomic_write_text
from medgan_utils.data import UserDataError, load_dataset
from medgan_utils.gan import DCGANTrainer
from medgan_utils.nets import make_dcgan
from medgan_utils.tools.cli import main
from helpers import one_line_error

ROOT = Path(__file__).resolve().parents[1]
NB = ROOT / "notebooks"

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(autouse=True)
def no_notebook_runs(monkeypatch, tmp_path):
    monkeypatch.setenv("MEDGAN_CACHE_DIR", str(tmp_path / "cache"))
    for var in ("MEDGAN_THREADS", "MEDGAN_DEVICE", "MEDGAN_OFFLINE", "MEDGAN_DATA_DIR"):
        monkeypatch.delenv(var, raising=False)

    def must_not_run(*a, **k):
        raise AssertionError("a notebook would have been executed")

    monkeypatch.setattr(runner_mod, "run_notebooks", must_not_run)
    monkeypatch.setattr(runner_mod, "run_notebook", must_not_run)
    user_data._DECODED.clear()


def write_npz(path: Path, h: int = 8, w: int = 8, top_label: int | None = None) -> Path:
    rng = np.random.default_rng(0)
    arrays = {}
    for split, n in (("train", 10), ("val", 4), ("test", 4)):
        arrays[f"{split}_images"] = rng.integers(0, 256, (n, h, w), dtype=np.uint8)
        labels = np.arange(n) % 2
        if top_label is not None and split == "train":
            labels = labels.astype(np.int64)
            labels[0] = top_label
        arrays[f"{split}_labels"] = labels
    np.savez(path, **arrays)
    return path


# --------------------------------------------------------------------------- data (defects 2, 7, 10; untried 2, 5)
@pytest.mark.timeout(20)
def test_npz_label_of_2_pow_40_is_refused_at_once(tmp_path, capsys):
    path = write_npz(tmp_path / "big_label.npz", top_label=2 ** 40)
    t0 = time.perf_counter()
    with pytest.raises(UserDataError) as exc:
        load_dataset(path, "train", 28)
    assert time.perf_counter() - t0 < 5
    msg = str(exc.value)
    assert str(2 ** 40) in msg and "1000" in msg and "Fix" in msg and "\n" not in msg
    assert main(["data", "info", str(path)]) == 2
    assert "big_label.npz" in one_line_error(capsys)


@pytest.mark.parametrize("size", ["100000", "1025"])
def test_size_of_own_data_has_an_upper_bound(tmp_path, capsys, size):
    path = write_npz(tmp_path / "ok.npz")
    assert main(["data", "info", str(path), "--size", size]) == 2
    line = one_line_error(capsys)
    assert size in line and "1024" in line
    assert main(["data", "info", str(path), "--size", "1024"]) == 0  # the bound itself is allowed
    capsys.readouterr()


def test_npz_of_0x0_images_is_refused(tmp_path, capsys):
    path = write_npz(tmp_path / "empty_images.npz", h=0, w=0)
    with pytest.raises(UserDataError, match="0×0"):
        load_dataset(path, "train", 28)
    assert main(["data", "info", str(path)]) == 2
    line = one_line_error(capsys)
    assert "train_images" in line and "Fix" in line


@pytest.mark.timeout(20)
def test_data_info_of_a_device_file_does_not_hang(capsys):
    if not Path("/dev/zero").exists():
        pytest.skip("no /dev/zero here")
    t0 = time.perf_counter()
    assert main(["data", "info", "/dev/zero"]) == 2
    line = one_line_error(capsys)
    assert "/dev/zero" in line and "device" in line and "Fix" in line
    assert time.perf_counter() - t0 < 5
    with pytest.raises(UserDataError, match="character device"):
        load_dataset("/dev/zero", "train", 28)


@pytest.fixture(scope="module")
def ten_thousand_tiny_files(tmp_path_factory) -> Path:
    from PIL import Image

    root = tmp_path_factory.mktemp("tiny_files")
    buf = io.BytesIO()
    Image.fromarray(np.full((2, 2), 128, np.uint8)).save(buf, format="PNG")
    png = buf.getvalue()
    for c in ("a", "b"):
        (root / c).mkdir()
    for i in range(10_000):
        (root / ("a" if i % 2 else "b") / f"{i:05d}.png").write_bytes(png)
    return root


@pytest.mark.timeout(120)
def test_ten_thousand_tiny_files_load_as_a_users_folder(ten_thousand_tiny_files, capsys):
    """Held before the fix too (about 1.3 s on M1); kept as a guard against a per-file cost creeping in."""
    t0 = time.perf_counter()
    assert main(["data", "info", str(ten_thousand_tiny_files), "--json"]) == 0
    assert time.perf_counter() - t0 < 30
    out = capsys.readouterr().out
    assert '"train": 7000' in out and '"2x2"' in out


def test_decoding_that_would_not_fit_in_memory_is_refused_before_it_starts(ten_thousand_tiny_files, monkeypatch,
                                                                          capsys):
    import medgan_utils.data.limits as limits_mod

    monkeypatch.setattr(limits_mod, "available_memory", lambda: 2 ** 30)  # 1 GiB free
    monkeypatch.setattr(user_data, "_decode_image", lambda *a: (_ for _ in ()).throw(AssertionError("decoded")))
    assert main(["data", "info", str(ten_thousand_tiny_files), "--size", "512"]) == 2
    line = one_line_error(capsys)
    assert "10000 images at 512x512" in line and "GiB" in line and "smaller size" in line


# --------------------------------------------------------------------------- environment and CLI (15, 16)
def test_huge_thread_count_is_refused(monkeypatch, capsys):
    monkeypatch.setenv("MEDGAN_THREADS", "99999999999999999999")
    with pytest.raises(SettingError, match="MEDGAN_THREADS"):
        read_env()
    assert main(["env"]) == 2
    line = one_line_error(capsys)
    assert "MEDGAN_THREADS" in line and "1024" in line
    monkeypatch.setenv("MEDGAN_THREADS", "1024")
    assert read_env().threads == 1024


@pytest.mark.parametrize("workers", ["-3", "0"])
def test_env_workers_must_be_positive(capsys, workers):
    assert main(["env", "--workers", workers]) == 2
    line = one_line_error(capsys)
    assert "--workers" in line and workers in line


# --------------------------------------------------------------------------- notebook parameters (9; untried 1)
@pytest.mark.parametrize("notebook, key, value, words", [
    ("03", "DEVICE", "gpu", ["device", "cuda:N"]),
    ("03", "EPOCHS", "0", [">= 1"]),
    ("03", "IMAGE_SIZE", "17", ["4·2^k", "28"]),
    ("03", "SEED", "-1", ["from 0"]),
    ("03", "BATCH_SIZE", "0", [">= 1"]),
    ("03", "N_EVAL", "0", [">= 10"]),
    ("04", "FRACTIONS", "[0]", ["(0, 1]"]),
    ("04", "N_SEEDS", "0", [">= 1"]),
    ("05", "IMAGE_SIZE", "17", ["multiple of 8"]),
    ("07", "FRACTIONS", "[0]", ["(0, 1]"]),
    ("07", "N_SEEDS", "0", [">= 1"]),
    ("08", "FRACTIONS", "[]", ["non-empty"]),
])
def test_bad_notebook_values_fail_before_the_kernel_starts(tmp_path, capsys, notebook, key, value, words):
    out = tmp_path / "o"
    t0 = time.perf_counter()
    assert main(["run", notebook, "--fast", "-p", key, value, "--out", str(out)]) == 2
    assert time.perf_counter() - t0 < 20
    line = one_line_error(capsys)
    assert key in line and "Fix" in line
    for w in words:
        assert w in line, line
    assert not out.exists()


def test_device_the_machine_lacks_fails_before_the_kernel_starts(tmp_path, capsys):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    assert main(["run", "03", "-p", "DEVICE", "cuda", "--out", str(tmp_path / "o")]) == 2
    line = one_line_error(capsys)
    assert "DEVICE" in line and "available: cpu" in line


def test_good_notebook_values_pass_the_checker():
    from medgan_utils.tools.runner import check_parameters

    assert check_parameters(NB / "03_dcgan.ipynb", {"EPOCHS": 1, "IMAGE_SIZE": 64, "SEED": 0, "N_EVAL": 10,
                                                   "DEVICE": "cpu"}) == {"EPOCHS": 1, "IMAGE_SIZE": 64, "SEED": 0,
                                                                         "N_EVAL": 10, "DEVICE": "cpu"}
    assert check_parameters(NB / "04_augmentation.ipynb", {"FRACTIONS": [0.1, 1.0]})["FRACTIONS"] == [0.1, 1.0]


# --------------------------------------------------------------------------- checkpoints (12, 13)
def _images():
    return torch.rand(32, 1, 28, 28, generator=torch.Generator().manual_seed(0)) * 2 - 1


def test_checkpoint_of_another_width_is_named_as_such_in_one_line(tmp_path, one_thread):
    G, D = make_dcgan(28, 1, 16, base=8, seed=0)
    tr = DCGANTrainer(G, D, _images(), batch_size=16, precision="fp32", progress=False, checkpoint_dir=tmp_path)
    tr.fit(1)
    G2, D2 = make_dcgan(28, 1, 16, base=16, seed=0)
    with pytest.warns(RuntimeWarning, match="another architecture"):
        with pytest.raises(CheckpointError) as exc:
            DCGANTrainer(G2, D2, _images(), batch_size=16, precision="fp32", progress=False,
                         checkpoint_dir=tmp_path, resume=True)
    msg = str(exc.value)
    assert "\n" not in msg and "another architecture" in msg and "width" in msg and "damaged" not in msg
    assert "dcgan_epoch0001.pt" in msg and "another checkpoint_dir" in msg
    assert (tmp_path / "dcgan_epoch0001.pt").exists()  # nothing deleted


@pytest.mark.parametrize("below", [False, True])
def test_checkpoint_folder_that_is_a_file_is_found_before_training(tmp_path, below):
    blocker = tmp_path / "ckpt"
    blocker.write_text("precious")
    target = blocker / "sub" if below else blocker
    G, D = make_dcgan(28, 1, 16, base=8, seed=0)
    with pytest.raises(CheckpointError) as exc:
        DCGANTrainer(G, D, _images(), batch_size=16, precision="fp32", progress=False, checkpoint_dir=target)
    msg = str(exc.value)
    assert str(blocker) in msg and "is a file" in msg and "Fix" in msg
    assert blocker.read_text() == "precious"


# --------------------------------------------------------------------------- downloads (14), a full disk (11)
def test_offline_forced_fetch_over_a_corrupt_copy_says_it_is_there(tmp_path, monkeypatch, capsys):
    corrupt = tmp_path / "breastmnist.npz"
    corrupt.write_bytes(b"not the real file")
    monkeypatch.setenv("MEDGAN_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("MEDGAN_OFFLINE", "1")
    assert main(["data", "fetch", "breastmnist", "--force"]) != 0
    err = capsys.readouterr().err
    assert "Traceback" not in err and "is not in" not in err
    assert "is present" in err and "left as it is" in err and "--force" in err
    assert corrupt.read_bytes() == b"not the real file"


def test_a_full_disk_names_the_file(tmp_path, monkeypatch, capsys):
    def full(self, data):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(Path, "write_bytes", full)
    with pytest.raises(CoursePathError) as exc:
        atomic_write_text(tmp_path / "summary.json", "{}", role="run summary", fix="free some space")
    msg = str(exc.value)
    assert "summary.json" in msg and "no space left on device" in msg and "free some space" in msg
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no .part left behind
    monkeypatch.undo()
    folder = tmp_path / "runs" / "03_dcgan"
    folder.mkdir(parents=True)
    (folder / "results.json").write_text('{"notebook": "03_dcgan", "mode": "fast", "metrics": {"fd": 1.0}}')
    monkeypatch.setattr(Path, "write_bytes", full)
    assert main(["report", str(tmp_path / "runs")]) == 2
    line = one_line_error(capsys)
    assert "report.csv" in line and "no space left on device" in line


def test_a_full_disk_while_saving_a_checkpoint_names_it(tmp_path, monkeypatch):
    from medgan_utils.core.io import save_checkpoint

    def full(*a, **k):
        raise RuntimeError("[enforce fail at inline_container.cc:626] . PytorchStreamWriter failed writing file "
                           "data/0: file write failed")

    monkeypatch.setattr(torch, "save", full)
    with pytest.raises(CoursePathError) as exc:
        save_checkpoint(tmp_path / "dcgan_epoch0001.pt", {"a": 1})
    assert "dcgan_epoch0001.pt" in str(exc.value) and "disk" in str(exc.value)
    assert list(tmp_path.iterdir()) == []
