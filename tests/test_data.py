import hashlib
import io
import shutil
import urllib.error

import pytest
import torch

from medgan_utils import data
from medgan_utils.data import download as download_mod
from medgan_utils.data import load as load_mod
from medgan_utils.data import (
    CorruptDataError, DataUnavailableError, PhantomFallbackWarning, UnknownDatasetError,
    UnsupportedSizeError, dataset_info, file_spec, load_dataset,
)
from tests.helpers import require_real


@pytest.fixture(autouse=True)
def _fresh_cache():
    load_mod._RAW.clear()
    load_mod._PHANTOMS.clear()
    load_mod._ANNOUNCED.clear()
    yield
    load_mod._RAW.clear()


@pytest.fixture
def empty_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDGAN_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("MEDGAN_OFFLINE", "1")
    monkeypatch.delenv("MEDGAN_REQUIRE_REAL_DATA", raising=False)
    return tmp_path


def test_unknown_name_lists_available_names():
    with pytest.raises(UnknownDatasetError) as exc:
        load_dataset("pneumonia")
    msg = str(exc.value)
    assert "pneumoniamnist" in msg and "busi" in msg and "phantom" in msg and "Did you mean" in msg


def test_unsupported_size_lists_supported_sizes():
    with pytest.raises(UnsupportedSizeError, match="28, 64, 128, 224"):
        load_dataset("breastmnist", size=32)
    with pytest.raises(UnsupportedSizeError, match="128, 256"):
        load_dataset("busi", size=28)
    with pytest.raises(ValueError, match="split"):
        load_dataset("phantom", split="training", size=16)


def test_pneumoniamnist_real_splits():
    require_real("pneumoniamnist", 28)
    sets = data.load_splits("pneumoniamnist", 28)
    assert {k: len(v) for k, v in sets.items()} == {"train": 4708, "val": 524, "test": 624}
    tr = sets["train"]
    assert tr.is_real and tr.used == "pneumoniamnist" and tr.info["checksum"] == "verified"
    assert tr.images.shape == (4708, 1, 28, 28) and tr.images.dtype == torch.float32
    assert tr.images.min() >= -1 and tr.images.max() <= 1 and tr.images.min() < -0.9 and tr.images.max() > 0.9
    assert tr.class_counts() == {"normal": 1214, "pneumonia": 3494}
    assert sets["test"].class_counts() == {"normal": 234, "pneumonia": 390}


def test_breastmnist_labels_and_rgb_option():
    require_real("breastmnist", 28)
    ds = load_dataset("breastmnist", "test", as_rgb=True)
    assert ds.images.shape == (156, 3, 28, 28)
    assert ds.label_names[0] == "malignant"  # MedMNIST: 0 = malignant, 1 = normal or benign
    assert ds.class_counts() == {"malignant": 42, "normal, benign": 114}
    assert torch.equal(ds.images[:, 0], ds.images[:, 2])


def test_busi_segmentation_masks_and_labels():
    require_real("busi", 128)
    sets = data.load_splits("busi", 128)
    assert {k: len(v) for k, v in sets.items()} == {"train": 452, "val": 64, "test": 131}
    tr = sets["train"]
    assert tr.masks.shape == (452, 1, 128, 128)
    assert set(tr.masks.unique().tolist()) == {0.0, 1.0}
    assert tr.class_counts() == {"benign": 305, "malignant": 147}
    assert (tr.masks.flatten(1).sum(1) > 0).all()  # every benign/malignant case has a lesion
    # lesions are darker than their surroundings in ultrasound (hypoechoic)
    inside = (tr.images * tr.masks).sum() / tr.masks.sum()
    outside = (tr.images * (1 - tr.masks)).sum() / (1 - tr.masks).sum()
    assert inside < outside


def test_whole_split_on_device_and_channels_last():
    ds = load_dataset("phantom", "val", 32, device="cpu", channels_last=True, n=10)
    assert len(ds) == 10 and ds.images.is_contiguous(memory_format=torch.channels_last)
    assert ds.masks.shape == (10, 1, 32, 32)


def test_corrupt_file_is_refused_with_the_fix(tmp_path, monkeypatch):
    real = require_real("breastmnist", 28)
    monkeypatch.setenv("MEDGAN_DATA_DIR", str(tmp_path))
    bad = tmp_path / "breastmnist.npz"
    bad.write_bytes(real.read_bytes()[:100_000])  # truncated download
    with pytest.raises(CorruptDataError) as exc:
        load_dataset("breastmnist")
    msg = str(exc.value)
    assert str(bad) in msg and "medgan data fetch breastmnist --size 28" in msg and "750601b1" in msg
    assert bad.exists() and bad.stat().st_size == 100_000  # nothing deleted behind the user's back
    info = dataset_info("breastmnist")
    assert info["checksum"] == "corrupt" and info["checksum_verified"] is False


def test_missing_offline_falls_back_to_phantom_loudly(empty_offline, capsys):
    with pytest.warns(PhantomFallbackWarning, match="USING SYNTHETIC PHANTOM DATA instead of pneumoniamnist"):
        ds = load_dataset("pneumoniamnist", "train")
    assert ds.used == "phantom" and ds.source == "phantom" and not ds.is_real
    assert ds.images.shape[1:] == (1, 28, 28) and len(ds) == 4708
    assert "medgan data fetch pneumoniamnist --size 28" in capsys.readouterr().err
    assert data.datasets_used()["pneumoniamnist"]["used"] == "phantom"
    # the banner is shown once per dataset; later splits only get a one-line reminder
    small = load_dataset("pneumoniamnist", "val", n=16)
    assert len(small) == 16 and small.used == "phantom"
    err = capsys.readouterr().err
    assert "USING SYNTHETIC" not in err and "phantom fallback still in use for pneumoniamnist" in err


def test_require_real_data_raises_with_url_md5_and_command(empty_offline, monkeypatch):
    monkeypatch.setenv("MEDGAN_REQUIRE_REAL_DATA", "1")
    with pytest.raises(DataUnavailableError) as exc:
        load_dataset("busi", "train", 128)
    msg = str(exc.value)
    spec = file_spec("busi", 128)
    assert spec.url in msg and spec.md5 in msg and "medgan data fetch busi --size 128" in msg and "busi_128.npz" in msg


class _FakeResponse(io.BytesIO):
    def __init__(self, payload, fail_after=None):
        super().__init__(payload)
        self.headers = {"Content-Length": str(len(payload))}
        self.fail_after = fail_after

    def read(self, n=-1):
        if self.fail_after is not None and self.tell() >= self.fail_after:
            raise ConnectionResetError("connection dropped mid-download")
        return super().read(n)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_download_is_checksummed_and_atomic(tmp_path, monkeypatch):
    real = require_real("breastmnist", 28)
    payload = real.read_bytes()
    monkeypatch.setenv("MEDGAN_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("MEDGAN_OFFLINE", raising=False)
    target = tmp_path / "breastmnist.npz"

    # 1. connection drops half-way: no file appears, no temp file is left behind
    monkeypatch.setattr(download_mod.urllib.request, "urlopen", lambda *a, **k: _FakeResponse(payload, fail_after=len(payload) // 2))
    with pytest.raises(DataUnavailableError, match="connection dropped"):
        data.fetch("breastmnist")
    assert list(tmp_path.iterdir()) == []

    # 2. server sends wrong bytes: refused, nothing written
    monkeypatch.setattr(download_mod.urllib.request, "urlopen", lambda *a, **k: _FakeResponse(payload[:-10] + b"0" * 10))
    with pytest.raises(CorruptDataError, match="expected 750601b1"):
        data.fetch("breastmnist")
    assert list(tmp_path.iterdir()) == []

    # 3. the right bytes: verified file appears and loads without further network use
    monkeypatch.setattr(download_mod.urllib.request, "urlopen", lambda *a, **k: _FakeResponse(payload))
    path = data.fetch("breastmnist")
    assert path == target and hashlib.md5(target.read_bytes()).hexdigest() == file_spec("breastmnist").md5

    def no_network(*a, **k):
        raise AssertionError("network used although the file is cached and verified")

    monkeypatch.setattr(download_mod.urllib.request, "urlopen", no_network)
    assert len(load_dataset("breastmnist", "val")) == 78


def test_no_network_error_is_clear(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDGAN_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("MEDGAN_OFFLINE", raising=False)

    def refuse(*a, **k):
        raise urllib.error.URLError("Name or service not known")

    monkeypatch.setattr(download_mod.urllib.request, "urlopen", refuse)
    with pytest.raises(DataUnavailableError, match="could not be downloaded.*medgan data fetch dermamnist"):
        data.fetch("dermamnist")


def test_documented_variant_is_reported_not_hidden(tmp_path):
    real = require_real("busi", 128)
    shutil.copy(real, tmp_path / "busi_128.npz")
    st = data.check_file(file_spec("busi", 128), tmp_path)
    if st["md5"] == file_spec("busi", 128).md5:
        pytest.skip("this is the official file")
    assert st["status"] == "verified" and "not the official" in st["variant"]
