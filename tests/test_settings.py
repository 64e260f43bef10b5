import random

import numpy as np
import pytest
import torch

from medgan_utils.core import SettingError, get_device, read_env, seed_everything
from medgan_utils.course.settings import is_fast, setup


def test_fast_parameter_wins_over_environment(monkeypatch):
    monkeypatch.setenv("MEDGAN_FAST", "1")
    assert is_fast(None) is True
    assert is_fast(False) is False
    monkeypatch.setenv("MEDGAN_FAST", "0")
    assert is_fast(None) is False
    assert is_fast(True) is True
    assert is_fast("true") is True
    monkeypatch.delenv("MEDGAN_FAST")
    assert is_fast(None) is False


def test_bad_boolean_environment_value_is_an_error(monkeypatch):
    monkeypatch.setenv("MEDGAN_FAST", "maybe")
    with pytest.raises(SettingError, match="MEDGAN_FAST='maybe'"):
        read_env()


def test_device_auto_and_override(monkeypatch):
    monkeypatch.delenv("MEDGAN_DEVICE", raising=False)
    auto = get_device()
    expected = "cuda" if torch.cuda.is_available() else ("mps" if torch.backends.mps.is_available() else "cpu")
    assert auto.type == expected
    monkeypatch.setenv("MEDGAN_DEVICE", "cpu")
    assert get_device().type == "cpu"
    assert get_device("cpu").type == "cpu"


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_absent_gpu_gives_clear_error(monkeypatch):
    with pytest.raises(RuntimeError, match="no CUDA GPU"):
        get_device("cuda")
    monkeypatch.setenv("MEDGAN_DEVICE", "cuda:0")
    with pytest.raises(RuntimeError, match="available: .*cpu"):
        get_device()


def test_unknown_device_name():
    with pytest.raises(RuntimeError, match="Unknown device|Unsupported device"):
        get_device("tpu")


def test_seed_everything_reproduces_all_generators():
    seed_everything(123)
    a = (random.random(), np.random.rand(), torch.rand(3))
    seed_everything(123)
    b = (random.random(), np.random.rand(), torch.rand(3))
    assert a[0] == b[0] and a[1] == b[1] and torch.equal(a[2], b[2])
    seed_everything(124)
    assert not torch.equal(torch.rand(3), a[2])


def test_setup_pick_by_mode(monkeypatch):
    monkeypatch.delenv("MEDGAN_DEVICE", raising=False)
    cfg = setup(FAST=True, DEVICE="cpu", SEED=3, quiet=True)
    assert cfg.fast and cfg.mode == "fast" and cfg.seed == 3
    assert cfg.pick(fast=1, full=2, gpu=3) == 1
    cfg = setup(FAST=False, DEVICE="cpu", SEED=3, quiet=True)
    assert cfg.pick(fast=1, full=2, gpu=3) == 2  # CPU: the full value, not the GPU one
    assert cfg.as_dict()["device"] == "cpu"


def test_check_names_accepts_known_names_and_names_the_choices_otherwise():
    import pytest

    from medgan_utils.core import SettingError, check_names

    assert check_names("b", ("a", "b"), "X") == ["b"]
    assert check_names(["A ", "b"], ("a", "b"), "X", lower=True) == ["a", "b"]
    with pytest.raises(SettingError, match=r"X: unknown or no entries \['c'\]\. Fix: choose from a, b, e\.g\. \['a'\]"):
        check_names(["a", "c"], ("a", "b"), "X", example="['a']")
    with pytest.raises(SettingError, match="no entries"):
        check_names([], ("a",), "X")
