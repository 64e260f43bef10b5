"""Bad input gets a clear error that names the thing at fault and the fix, and nothing is written,
lost or executed: environment variables, CLI arguments, notebook parameters, data folders and files,
output folders, locks and checkpoints.

No notebook is executed here: the functions that would start papermill are replaced by ones that fail.
"""
from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import urllib.error
from pathlib import Path

import pytest
import torch

import medgan_utils.data.download as download_mod
import medgan_utils.data.load as load_mod
import medgan_utils.tools.runner as runner_mod
from medgan_utils.core.env import read_env
from medgan_utils.core.errors import CourseError, SettingError
from medgan_utils.core.io import (CheckpointError, FolderInUse, atomic_write_text, folder_lock, load_checkpoint,
                                  remove_stale_parts)
from medgan_utils.data import (CorruptDataError, DataFolderError, DataUnavailableError, PhantomFallbackWarning,
                               UnsupportedSizeError, check_size, dataset_info, datasets_used, ensure_file, file_spec,
                               load_dataset, reset_datasets_used)
from medgan_utils.gan import DCGANTrainer
from medgan_utils.nets import make_dcgan
from medgan_utils.tools.cli import main
from medgan_utils.tools.runner import check_parameters
from helpers import one_line_error

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
SHARED_DATA = Path("/work/shared/data")
BREAST = SHARED_DATA / "breastmnist.npz"
ENV_VARS = ("MEDGAN_THREADS", "MEDGAN_DOWNLOAD_TIMEOUT", "MEDGAN_FAST", "MEDGAN_DEVICE", "MEDGAN_DATA_DIR",
            "MEDGAN_OFFLINE", "MEDGAN_REQUIRE_REAL_DATA", "MEDGAN_CACHE_DIR")

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(autouse=True)
def clean_state(monkeypatch, tmp_path):
    """Known environment, a fresh phantom-fallback announcement record, and no notebook may run."""
    for var in ENV_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("MEDGAN_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(load_mod, "_ANNOUNCED", set())

    def must_not_run(*a, **k):
        raise AssertionError("a notebook would have been executed")

    monkeypatch.setattr(runner_mod, "run_notebooks", must_not_run)
    monkeypatch.setattr(runner_mod, "run_notebook", must_not_run)


def needs_real(path: Path = BREAST) -> Path:
    if not path.is_file():
        pytest.skip(f"{path} not available")
    return path


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def tree(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


# --------------------------------------------------------------------------- environment variables
@pytest.mark.parametrize("name, value", [
    ("MEDGAN_THREADS", "abc"), ("MEDGAN_THREADS", "0"), ("MEDGAN_THREADS", "-1"), ("MEDGAN_THREADS", "1.5"),
    ("MEDGAN_DOWNLOAD_TIMEOUT", "abc"), ("MEDGAN_DOWNLOAD_TIMEOUT", "0"), ("MEDGAN_DOWNLOAD_TIMEOUT", "inf"),
    ("MEDGAN_FAST", "maybe"), ("MEDGAN_OFFLINE", "2"), ("MEDGAN_DEVICE", "gpu"), ("MEDGAN_DEVICE", "cuda:x"),
])
def test_bad_env_var_names_variable_and_value(monkeypatch, capsys, name, value):
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingError) as exc:
        read_env()
    msg = str(exc.value)
    assert name in msg and repr(value) in msg
    assert main(["env"]) == 2
    line = one_line_error(capsys)
    assert name in line and value in line


def test_good_env_values_parse(monkeypatch):
    monkeypatch.setenv("MEDGAN_THREADS", " 3 ")
    monkeypatch.setenv("MEDGAN_DOWNLOAD_TIMEOUT", "2.5")
    monkeypatch.setenv("MEDGAN_FAST", "Yes")
    monkeypatch.setenv("MEDGAN_DEVICE", "CUDA:1")
    env = read_env()
    assert (env.threads, env.download_timeout, env.fast, env.device) == (3, 2.5, True, "cuda:1")


# --------------------------------------------------------------------------- CLI arguments
@pytest.mark.timeout(30)
@pytest.mark.parametrize("batch", ["-1", "0"])
def test_bench_bad_batch_fails_fast(capsys, batch):
    assert main(["bench", "dcgan", "--batch", batch]) == 2
    line = one_line_error(capsys)
    assert "--batch" in line and batch in line


@pytest.mark.timeout(30)
def test_bench_bad_size_and_batch_above_images(capsys):
    assert main(["bench", "dcgan", "--size", "30"]) == 2
    assert "--size" in one_line_error(capsys)
    assert main(["bench", "dcgan", "--batch", "5000"]) == 2
    assert "--batch" in one_line_error(capsys)


def test_data_info_size_zero_is_not_treated_as_missing(capsys):
    assert main(["data", "info", "pneumoniamnist", "--size", "0"]) == 2
    line = one_line_error(capsys)
    assert "pneumoniamnist" in line and "size" in line.lower() and "got 0" in line


@pytest.mark.parametrize("size", [28.9, float("inf"), float("nan"), -28, 0, True, "28px", 30])
def test_check_size_rejects_non_published_sizes(size):
    with pytest.raises(UnsupportedSizeError) as exc:
        check_size("pneumoniamnist", size)
    assert "pneumoniamnist" in str(exc.value) or "Image size" in str(exc.value)


def test_check_size_accepts_whole_numbers():
    assert check_size("pneumoniamnist", 28.0) == 28
    assert check_size("pneumoniamnist", "64") == 64


# --------------------------------------------------------------------------- notebook parameters
def test_param_key_injection_is_refused_and_nothing_runs(tmp_path, capsys):
    marker = Path(f"/tmp/pwned_{os.getpid()}")
    marker.unlink(missing_ok=True)
    out = tmp_path / "o"
    rc = main(["run", "00", "--fast", "-p", f"import os; os.system('touch {marker}'); X", "1", "--out", str(out)])
    assert rc == 2
    line = one_line_error(capsys)
    assert "00_setup" in line and "MATMUL_N" in line
    assert not marker.exists()
    assert not out.exists()


def test_misspelt_param_names_the_known_parameters(tmp_path, capsys):
    out = tmp_path / "o"
    assert main(["run", "00", "-p", "MATMUL_NN", "5", "--out", str(out)]) == 2
    line = one_line_error(capsys)
    assert "MATMUL_NN" in line
    for known in ("FAST", "SEED", "DEVICE", "MATMUL_N"):
        assert known in line
    assert not out.exists()


def test_param_of_wrong_type_fails_before_anything_runs(tmp_path, capsys):
    out = tmp_path / "o"
    assert main(["run", "00", "--fast", "-p", "MATMUL_N", "abc", "--out", str(out)]) == 2
    line = one_line_error(capsys)
    assert "MATMUL_N" in line and "int" in line
    assert not out.exists()


def test_check_parameters_of_notebook_03():
    nb = NOTEBOOKS / "03_dcgan.ipynb"
    with pytest.raises(SettingError, match="BATCH_SIZE"):
        check_parameters(nb, {"BATCH_SIZE": "x"})
    with pytest.raises(SettingError, match="BATCH_SIZE"):
        check_parameters(nb, {"BATCH_SIZE": True})  # a bool is not an int here
    assert check_parameters(nb, {"BATCH_SIZE": 64}) == {"BATCH_SIZE": 64}
    lr = check_parameters(nb, {"LR": 1})["LR"]
    assert lr == 1.0 and isinstance(lr, float)
    assert check_parameters(nb, {"PRECISION": 16}, raw={"PRECISION": "16"}) == {"PRECISION": "16"}
    with pytest.raises(SettingError, match="BATCH_SIZ"):
        check_parameters(nb, {"BATCH_SIZ": 64})


def test_type_comment_of_a_none_default_is_enforced(tmp_path):
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    cell = nbformat.v4.new_code_cell("N = None  # type: int  how many\nNAME = None  # free text\n")
    cell.metadata["tags"] = ["parameters"]
    nb.cells.append(cell)
    path = tmp_path / "99_x.ipynb"
    nbformat.write(nb, path)
    with pytest.raises(SettingError, match=r"\bN\b.*\bint\b"):
        check_parameters(path, {"N": "abc"})
    assert check_parameters(path, {"N": 5}) == {"N": 5}
    assert check_parameters(path, {"N": None}) == {"N": None}


@pytest.mark.parametrize("timeout", ["0", "-1"])
def test_run_timeout_must_be_positive(tmp_path, capsys, timeout):
    out = tmp_path / "o"
    assert main(["run", "00", "--fast", "--timeout", timeout, "--out", str(out)]) == 2
    line = one_line_error(capsys)
    assert "--timeout" in line and timeout in line
    assert not out.exists()


@pytest.mark.timeout(30)
def test_bench_unknown_compile_mode_is_a_setting_error(capsys):
    assert main(["bench", "dcgan", "--size", "28", "--batch", "8", "--compile", "bogus"]) == 2
    line = one_line_error(capsys)
    assert "bogus" in line and "reduce-overhead" in line


def test_out_that_is_a_file_is_refused_and_untouched(tmp_path, capsys):
    target = tmp_path / "results.txt"
    target.write_text("precious")
    assert main(["run", "00", "--fast", "--out", str(target)]) == 2
    line = one_line_error(capsys)
    assert "--out" in line and str(target) in line
    assert target.read_text() == "precious"
    assert tree(tmp_path) == ["results.txt"]


# --------------------------------------------------------------------------- file modes
@pytest.mark.parametrize("mask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_atomic_write_follows_the_umask(tmp_path, mask, mode):
    old = os.umask(mask)
    try:
        path = atomic_write_text(tmp_path / "a.txt", "x")
    finally:
        os.umask(old)
    assert path.read_text() == "x"
    assert stat.S_IMODE(path.stat().st_mode) == mode
    assert tree(tmp_path) == ["a.txt"]  # no .part file left behind


# --------------------------------------------------------------------------- data folders and files
def test_data_dir_that_is_a_file(monkeypatch, tmp_path, capsys):
    bogus = tmp_path / "data.txt"
    bogus.write_text("not a folder")
    monkeypatch.setenv("MEDGAN_DATA_DIR", str(bogus))
    with pytest.raises(DataFolderError) as exc:
        load_dataset("breastmnist", "train", 28)
    msg = str(exc.value)
    assert str(bogus.resolve()) in msg and "MEDGAN_DATA_DIR" in msg and "Fix" in msg
    assert isinstance(exc.value, CourseError)
    assert main(["data", "info", "breastmnist"]) == 2
    assert "MEDGAN_DATA_DIR" in one_line_error(capsys)
    assert bogus.read_text() == "not a folder"


def test_unreadable_dataset_file_is_a_course_error(monkeypatch, tmp_path):
    (tmp_path / "breastmnist.npz").write_bytes(b"x" * 100)
    monkeypatch.setenv("MEDGAN_DATA_DIR", str(tmp_path))

    def denied(path, *a, **k):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(download_mod, "open", denied, raising=False)
    with pytest.raises(DataFolderError) as exc:
        load_dataset("breastmnist", "train", 28)
    msg = str(exc.value)
    assert "breastmnist.npz" in msg and "permission denied" in msg and "Fix" in msg


@pytest.mark.parametrize("offline", ["1", ""])
def test_data_dir_below_a_file_fails_before_any_download(monkeypatch, tmp_path, offline):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    monkeypatch.setenv("MEDGAN_DATA_DIR", str(blocker / "sub"))
    if offline:
        monkeypatch.setenv("MEDGAN_OFFLINE", "1")
    calls = []

    def no_network(*a, **k):
        calls.append(a)
        raise urllib.error.URLError("the network must not be used")

    monkeypatch.setattr(download_mod.urllib.request, "urlopen", no_network)
    for call in (lambda: ensure_file("breastmnist", 28), lambda: load_dataset("breastmnist", "train", 28),
                 lambda: download_mod.download(file_spec("breastmnist", 28), progress=False)):
        with pytest.raises(DataFolderError) as exc:
            call()
        msg = str(exc.value)
        assert str(blocker) in msg and "MEDGAN_DATA_DIR" in msg and "Fix" in msg
    assert calls == []
    assert blocker.read_text() == "x"


def test_offline_fallback_creates_nothing(monkeypatch, tmp_path):
    nope = tmp_path / "nope"
    monkeypatch.setenv("MEDGAN_OFFLINE", "1")
    monkeypatch.setenv("MEDGAN_DATA_DIR", str(nope))
    with pytest.warns(PhantomFallbackWarning, match="breastmnist"):
        ds = load_dataset("breastmnist", "train", 28)
    assert ds.used == "phantom" and not ds.is_real
    assert "MEDGAN_OFFLINE" in ds.info["fallback_reason"]
    assert not nope.exists()


def test_require_real_data_refuses_the_fallback(monkeypatch, tmp_path):
    monkeypatch.setenv("MEDGAN_OFFLINE", "1")
    monkeypatch.setenv("MEDGAN_REQUIRE_REAL_DATA", "1")
    monkeypatch.setenv("MEDGAN_DATA_DIR", str(tmp_path / "nope"))
    with pytest.raises(DataUnavailableError, match="MEDGAN_REQUIRE_REAL_DATA"):
        load_dataset("breastmnist", "train", 28)
    assert not (tmp_path / "nope").exists()


def test_stale_part_files_of_dead_processes_are_removed(tmp_path):
    dead = tmp_path / f".breastmnist.npz.{dead_pid()}.abc.part"
    live = tmp_path / f".breastmnist.npz.{os.getpid()}.x.part"
    other = tmp_path / f".pneumoniamnist.npz.{dead_pid()}.y.part"
    for p in (dead, live, other):
        p.write_bytes(b"partial")
    removed = remove_stale_parts(tmp_path, "breastmnist.npz")
    assert removed == [dead]
    assert not dead.exists() and live.exists() and other.exists()
    assert remove_stale_parts(tmp_path / "missing", "breastmnist.npz") == []


def test_download_cleans_stale_parts_even_when_the_network_fails(monkeypatch, tmp_path):
    dead = tmp_path / f".breastmnist.npz.{dead_pid()}.abc.part"
    dead.write_bytes(b"partial")
    calls = []

    def no_network(*a, **k):
        calls.append(a)
        raise urllib.error.URLError("no route to host")

    monkeypatch.setattr(download_mod.urllib.request, "urlopen", no_network)
    with pytest.raises(DataUnavailableError) as exc:
        download_mod.download(file_spec("breastmnist", 28), tmp_path, progress=False)
    assert calls, "download() did not try the network"
    assert "no route to host" in str(exc.value) and "Fix" in str(exc.value)
    assert not dead.exists()
    assert tree(tmp_path) == []


def test_corrupt_dataset_is_reported_as_corrupt_not_phantom(monkeypatch, tmp_path):
    src = needs_real()
    data = bytearray(src.read_bytes())
    for i in range(1000, 1064):
        data[i] ^= 0xFF
    (tmp_path / "breastmnist.npz").write_bytes(bytes(data))
    monkeypatch.setenv("MEDGAN_DATA_DIR", str(tmp_path))
    info = dataset_info("breastmnist", 28)
    assert info["source"].startswith("corrupt")
    assert info["checksum"] == "corrupt" and not info["checksum_verified"]
    assert "--force" in info["fix"]
    with pytest.raises(CorruptDataError, match="breastmnist.npz"):
        load_dataset("breastmnist", "train", 28)
    assert (tmp_path / "breastmnist.npz").read_bytes() == bytes(data)  # never deleted or replaced


def test_phantom_fallback_is_replaced_by_real_data_once_the_file_appears(monkeypatch, tmp_path):
    src = needs_real()
    monkeypatch.setenv("MEDGAN_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("MEDGAN_OFFLINE", "1")
    with pytest.warns(PhantomFallbackWarning):
        first = load_dataset("breastmnist", "train", 28)
    assert first.used == "phantom"
    shutil.copy(src, tmp_path / "breastmnist.npz")
    second = load_dataset("breastmnist", "train", 28)
    assert second.used == "breastmnist" and second.is_real
    assert second.info["checksum"] == "verified"
    assert second.images.shape[1:] == (1, 28, 28)
    assert not torch.equal(second.images[: len(first)], first.images[: len(second)])
    assert datasets_used()["breastmnist"]["used"] == "breastmnist"


def test_loaders_return_independent_objects(monkeypatch):
    needs_real()
    monkeypatch.setenv("MEDGAN_DATA_DIR", str(SHARED_DATA))
    a = load_dataset("breastmnist", "train", 28)
    b = load_dataset("breastmnist", "train", 28)
    keep = b.images.clone()
    a.images.fill_(0.5)
    a.labels.fill_(7)
    a.info["path"] = "changed"
    assert torch.equal(b.images, keep)
    assert not torch.equal(b.labels, a.labels)
    c = load_dataset("breastmnist", "train", 28)
    assert torch.equal(c.images, keep) and c.info["path"] != "changed"


def test_phantom_loads_are_independent_too(monkeypatch, tmp_path):
    monkeypatch.setenv("MEDGAN_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("MEDGAN_OFFLINE", "1")
    with pytest.warns(PhantomFallbackWarning):
        a = load_dataset("breastmnist", "train", 28)
    b = load_dataset("breastmnist", "train", 28)
    keep = b.images.clone()
    a.images.fill_(0.5)
    assert torch.equal(b.images, keep)
    assert torch.equal(load_dataset("breastmnist", "train", 28).images, keep)


def test_datasets_used_records_only_loads_since_reset(monkeypatch):
    needs_real()
    needs_real(SHARED_DATA / "pneumoniamnist.npz")
    monkeypatch.setenv("MEDGAN_DATA_DIR", str(SHARED_DATA))
    load_dataset("pneumoniamnist", "val", 28)
    reset_datasets_used()
    assert datasets_used() == {}
    load_dataset("breastmnist", "val", 28)
    dataset_info("pneumoniamnist", 28)
    used = datasets_used()
    assert list(used) == ["breastmnist"]
    assert used["breastmnist"]["used"] == "breastmnist" and used["breastmnist"]["source"] == "real"
    used["breastmnist"]["used"] = "tampered"  # a copy: the record itself is unchanged
    assert datasets_used()["breastmnist"]["used"] == "breastmnist"
    reset_datasets_used()


# --------------------------------------------------------------------------- locks
def test_folder_lock_held_by_a_live_process(tmp_path):
    lock = tmp_path / ".medgan.lock"
    lock.write_text(str(os.getppid()))
    with pytest.raises(FolderInUse) as exc:
        with folder_lock(tmp_path):
            pass
    msg = str(exc.value)
    assert "in use" in msg and str(os.getppid()) in msg and str(tmp_path) in msg and "Fix" in msg
    assert lock.read_text() == str(os.getppid())  # the other run's lock is left alone


def test_folder_lock_of_a_dead_process_is_taken_over(tmp_path):
    lock = tmp_path / ".medgan.lock"
    lock.write_text(str(dead_pid()))
    with folder_lock(tmp_path) as held:
        assert held == lock and lock.read_text().split()[0] == str(os.getpid())
    assert not lock.exists()


def test_folder_lock_refuses_a_second_run_in_the_same_process(tmp_path):
    with folder_lock(tmp_path):
        with pytest.raises(FolderInUse, match="in use"):
            with folder_lock(tmp_path):
                pass
        assert (tmp_path / ".medgan.lock").exists()  # the outer run still holds it
    assert not (tmp_path / ".medgan.lock").exists()


def test_data_fetch_bad_size_is_a_usage_error(capsys, monkeypatch):
    def no_download(*a, **k):
        raise AssertionError("nothing may be downloaded")

    monkeypatch.setattr(download_mod, "download", no_download)
    assert main(["data", "fetch", "breastmnist", "--size", "0"]) == 2
    err = capsys.readouterr().err
    assert "Image size" in err and "Traceback" not in err


def test_folder_lock_is_released_on_error(tmp_path):
    with pytest.raises(ZeroDivisionError):
        with folder_lock(tmp_path):
            1 / 0
    assert not (tmp_path / ".medgan.lock").exists()


# --------------------------------------------------------------------------- checkpoints
def test_checkpoint_that_is_not_a_dict(tmp_path):
    path = tmp_path / "x.pt"
    torch.save([1, 2, 3], path)
    with pytest.raises(CheckpointError, match="holds a list") as exc:
        load_checkpoint(path)
    assert "Fix" in str(exc.value)
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.pt")
    (tmp_path / "trunc.pt").write_bytes(path.read_bytes()[:20])
    with pytest.raises(CheckpointError, match="could not be loaded safely"):
        load_checkpoint(tmp_path / "trunc.pt")


def _tiny_data():
    x = torch.rand(32, 1, 28, 28, generator=torch.Generator().manual_seed(0)) * 2 - 1
    return x


@pytest.mark.parametrize("state", [
    {"format": "medgan-dcgan-v2", "config": "abc"},
    {"format": "medgan-dcgan-v2", "config": {"image_shape": [1, 28, 28], "latent_dim": 100, "batch_size": 16,
                                             "n_train": 32, "precision": "fp32"}},  # no weights at all
    {"format": "something-else"},
])
def test_damaged_checkpoint_in_resume_folder_gives_checkpoint_error(tmp_path, state):
    torch.save(state, tmp_path / "dcgan_epoch0001.pt")
    G, D = make_dcgan(28, 1, 100, base=8, seed=0)
    with pytest.warns(RuntimeWarning, match="Skipping checkpoint"):
        with pytest.raises(CheckpointError) as exc:
            DCGANTrainer(G, D, _tiny_data(), batch_size=16, precision="fp32", progress=False,
                         checkpoint_dir=tmp_path, resume=True)
    assert "Fix" in str(exc.value) and "dcgan_epoch0001.pt" in str(exc.value)
    assert (tmp_path / "dcgan_epoch0001.pt").exists()


@pytest.mark.parametrize("options", [{"batch_size": 0}, {"batch_size": 2.5}, {"batch_size": -4},
                                     {"batch_size": "16x"}, {"bogus": 1}, {"lr": 0}, {"lr": float("nan")},
                                     {"betas": (0.5,)}, {"on_diverge": "ignore"}, {"batch_size": 64},
                                     {"compile": "fastest"}])
def test_bad_trainer_options_raise_setting_error(options):
    G, D = make_dcgan(28, 1, 100, base=8, seed=0)
    with pytest.raises(SettingError) as exc:
        DCGANTrainer(G, D, _tiny_data(), progress=False, **options)
    assert next(iter(options)) in str(exc.value)
