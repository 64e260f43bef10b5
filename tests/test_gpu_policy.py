"""GPU policy, checked on the CPU: precision per device, channels_last, memory guard, resume across
device types, the trainer's RNG and backend-flag hygiene, uint8 data storage, and the torch floor.

No GPU is needed: CUDA and MPS devices are described by ``torch.device`` objects and the few
functions that would ask real hardware (compute capability, native bf16, free memory) are patched.
"""
from __future__ import annotations

import json
import math
import re
import tomllib
from pathlib import Path

import pytest
import torch
from packaging.requirements import Requirement
from packaging.version import Version

import medgan_utils.core.precision as precision_mod
import medgan_utils.gan.trainer as trainer_mod
from medgan_utils.core.device import backend_flags, data_placement, prefers_channels_last
from medgan_utils.core.errors import SettingError
from medgan_utils.core.precision import cuda_capability, native_bf16, precision_check_path, resolve_precision
from medgan_utils.gan import DCGANTrainer
from medgan_utils.gan.config import TrainConfig
from medgan_utils.nets import make_dcgan

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path("/work/shared/data")
CPU, CUDA, MPS = torch.device("cpu"), torch.device("cuda"), torch.device("mps")

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    """No stored precision checks, no device override and one thread (tiny nets, deterministic)."""
    for var in ("MEDGAN_DEVICE", "MEDGAN_THREADS", "MEDGAN_OFFLINE", "MEDGAN_REQUIRE_REAL_DATA"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("MEDGAN_CACHE_DIR", str(tmp_path / "cache"))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def fake_capability(monkeypatch, cap):
    """Make every CUDA device report compute capability ``cap``; returns the devices that were asked."""
    asked = []

    def get_device_capability(device=None):
        asked.append(device)
        return cap

    monkeypatch.setattr(torch.cuda, "get_device_capability", get_device_capability)
    return asked


def write_check(device, verdict, precision):
    path = precision_check_path(device)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"verdict": verdict, "precision": precision}))
    return path


# --------------------------------------------------------------------------- precision policy
def test_t4_auto_is_fp16_and_bf16_is_refused_naming_capability(monkeypatch):
    fake_capability(monkeypatch, (7, 5))
    assert native_bf16(CUDA) is False
    assert resolve_precision("auto", CUDA) == "fp16"
    assert resolve_precision("fp32", CUDA) == "fp32"
    with pytest.raises(SettingError) as exc:
        resolve_precision("bf16", CUDA)
    msg = str(exc.value)
    assert "7.5" in msg and "8.0" in msg and "Fix" in msg


@pytest.mark.parametrize("cap", [(8, 0), (8, 6), (9, 0)])
def test_ampere_and_hopper_auto_is_bf16(monkeypatch, cap):
    fake_capability(monkeypatch, cap)
    assert native_bf16(CUDA) is True
    assert resolve_precision("auto", CUDA) == "bf16"
    assert resolve_precision("bf16", CUDA) == "bf16"
    assert resolve_precision("bfloat16", CUDA) == "bf16"


def test_mps_is_fp32_without_a_stored_check_and_never_bf16(monkeypatch):
    assert not precision_check_path(MPS).exists()
    assert resolve_precision("auto", MPS) == "fp32"
    with pytest.raises(SettingError, match="mps"):
        resolve_precision("bf16", MPS)
    write_check(MPS, "pass", "fp16")
    assert resolve_precision("auto", MPS) == "fp16"
    write_check(MPS, "pass", "bf16")  # a check for the wrong precision allows nothing
    assert resolve_precision("auto", MPS) == "fp32"


def test_cpu_without_native_bf16_is_fp32_even_with_a_passing_check(monkeypatch):
    monkeypatch.setattr(precision_mod, "cpu_has_native_bf16", lambda: False)
    write_check(CPU, "pass", "bf16")
    assert resolve_precision("auto", CPU) == "fp32"
    with pytest.raises(SettingError, match="no native bf16"):
        resolve_precision("bf16", CPU)


def test_cpu_with_native_bf16_needs_a_stored_passing_check(monkeypatch):
    monkeypatch.setattr(precision_mod, "cpu_has_native_bf16", lambda: True)
    path = precision_check_path(CPU)
    assert not path.exists()
    assert resolve_precision("auto", CPU) == "fp32"
    write_check(CPU, "pass", "bf16")
    assert resolve_precision("auto", CPU) == "bf16"
    write_check(CPU, "fail", "bf16")
    assert resolve_precision("auto", CPU) == "fp32"
    path.write_text("{not json")  # a damaged file counts as no check
    assert resolve_precision("auto", CPU) == "fp32"


def test_stored_check_is_per_device_model_and_torch_version(monkeypatch):
    monkeypatch.setattr(precision_mod, "cpu_has_native_bf16", lambda: True)
    other = precision_check_path(CPU, device_label="Some Other CPU Model")
    assert other != precision_check_path(CPU)
    other.parent.mkdir(parents=True, exist_ok=True)
    other.write_text(json.dumps({"verdict": "pass", "precision": "bf16"}))
    assert resolve_precision("auto", CPU) == "fp32"
    assert torch.__version__.split("+")[0] in precision_check_path(CPU).name


def test_capability_is_read_from_the_target_device_not_the_current_gpu(monkeypatch):
    asked = fake_capability(monkeypatch, (8, 0))
    assert cuda_capability(torch.device("cuda:1")) == (8, 0)
    assert len(asked) == 1 and torch.device(asked[0]) == torch.device("cuda:1")
    asked.clear()
    resolve_precision("auto", torch.device("cuda:1"))
    assert asked and all(torch.device(d).index == 1 for d in asked)


# --------------------------------------------------------------------------- channels_last, Settings.pick
def test_prefers_channels_last_per_device():
    assert prefers_channels_last(CUDA) is True
    assert prefers_channels_last(torch.device("cuda:1")) is True
    assert prefers_channels_last(MPS) is False
    assert prefers_channels_last(CPU) is bool(torch.backends.mkldnn.is_available())


def test_settings_pick_by_device():
    from medgan_utils.course.settings import Settings

    s = Settings(fast=False, device=MPS, seed=0, threads=1, data_dir=Path("."))
    assert s.pick(fast=1, full=2, gpu=3) == 2  # a Mac gets the laptop setting, not the CUDA one
    assert s.pick(fast=1, full=2, gpu=3, mps=4) == 4
    s.device = CUDA
    assert s.pick(fast=1, full=2, gpu=3) == 3
    assert s.pick(fast=1, full=2, gpu=3, mps=4) == 3
    assert s.pick(fast=1, full=2) == 2
    s.device = CPU
    assert s.pick(fast=1, full=2, gpu=3, mps=4) == 2
    s.fast = True
    assert s.pick(fast=1, full=2, gpu=3, mps=4) == 1


# --------------------------------------------------------------------------- memory guard
def test_data_placement_memory_guard():
    gib = 2 ** 30
    asked = []

    def info(dev):
        asked.append(dev)
        return 8 * gib, 16 * gib

    where, why = data_placement(1 * gib, CUDA, mem_get_info=info)
    assert where == "device" and "GiB" in why
    assert asked == [CUDA]
    where, why = data_placement(6 * gib, CUDA, mem_get_info=info)  # more than half of the free 8 GiB
    assert where == "host"
    assert "GiB" in why and "8.0" in why and "16.0" in why and "6.00" in why
    assert data_placement(4 * gib, CUDA, mem_get_info=info)[0] == "device"  # exactly half fits
    assert data_placement(4 * gib, CUDA, fraction=0.25, mem_get_info=info)[0] == "host"

    def never(dev):
        raise AssertionError("the CPU has no separate device memory to ask about")

    assert data_placement(10 ** 15, CPU, mem_get_info=never)[0] == "device"
    assert data_placement(10 ** 15, MPS, mem_get_info=never)[0] == "device"


# --------------------------------------------------------------------------- trainer helpers
def tiny_images(n=64, seed=0):
    x = torch.rand(n, 1, 28, 28, generator=torch.Generator().manual_seed(seed)) * 2 - 1
    return x.add(1).mul(127.5).round().div(127.5).sub(1)  # 8-bit levels


def tiny_trainer(data=None, **kw):
    G, D = make_dcgan(28, 1, 100, base=8, seed=0)
    opts = dict(batch_size=16, precision="fp32", progress=False, n_fixed=4, seed=0)
    opts.update(kw)
    return DCGANTrainer(G, D, tiny_images() if data is None else data, **opts)


def weights(tr):
    return {**{f"G.{k}": v.clone() for k, v in tr.G_raw.state_dict().items()},
            **{f"D.{k}": v.clone() for k, v in tr.D_raw.state_dict().items()}}


# --------------------------------------------------------------------------- cross-device resume
def test_checkpoint_from_another_device_type_resumes_with_a_warning(tmp_path):
    tr = tiny_trainer(checkpoint_dir=tmp_path)
    tr.fit(1)
    ckpt = tr.latest_checkpoint()
    assert ckpt is not None and ckpt.name == "dcgan_epoch0001.pt"
    state = torch.load(ckpt, weights_only=True)
    state["rng"] = {"trainer": torch.zeros(16, dtype=torch.uint8), "device_type": "cuda"}
    torch.save(state, ckpt)

    with pytest.warns(RuntimeWarning, match="reseeded") as rec:
        tr2 = tiny_trainer(checkpoint_dir=tmp_path, resume=True)
    assert any("cuda" in str(w.message) for w in rec)
    assert tr2.epoch == 1 and tr2.global_step == 4 and tr2.resumed_from == str(ckpt)
    out = tr2.fit(2)
    assert out["epoch"] == 2 and out["global_step"] == 8 and not out["diverged"]
    assert len(tr2.history["loss_D"]) == 8
    assert all(math.isfinite(v) for v in tr2.history["loss_D"])


def test_same_device_type_resume_is_bit_exact(tmp_path, recwarn):
    full = tiny_trainer()
    full.fit(2)

    part = tiny_trainer(checkpoint_dir=tmp_path)
    part.fit(1)
    resumed = tiny_trainer(checkpoint_dir=tmp_path, resume=True)
    assert resumed.epoch == 1
    assert not [w for w in recwarn if "reseeded" in str(w.message)]
    resumed.fit(2)

    a, b = weights(full), weights(resumed)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert full.history["loss_D"] == resumed.history["loss_D"]
    assert torch.equal(full.gen.get_state(), resumed.gen.get_state())


def test_loading_a_checkpoint_leaves_the_global_rng_alone(tmp_path):
    tiny_trainer(checkpoint_dir=tmp_path).fit(1)
    G, D = make_dcgan(28, 1, 100, base=8, seed=0)
    data = tiny_images()
    torch.manual_seed(123)
    state = torch.get_rng_state()
    tr = DCGANTrainer(G, D, data, batch_size=16, precision="fp32", progress=False, n_fixed=4,
                      checkpoint_dir=tmp_path, resume=True)
    assert tr.epoch == 1
    assert torch.equal(torch.get_rng_state(), state)
    tr.fit(2)  # training draws from the trainer's own generator only
    assert torch.equal(torch.get_rng_state(), state)


# --------------------------------------------------------------------------- metrics a step does not return
def test_missing_step_metrics_are_nan_without_creating_tensors(monkeypatch):
    def losses_only(tr, real, z):
        real_logits = tr.D(real)
        fake_logits = tr.D(tr.G(z).detach())
        return {"loss_D": real_logits.mean() - fake_logits.mean(), "loss_G": fake_logits.mean()}

    tr = tiny_trainer(step_fn=losses_only)
    batch, no_labels = next(iter(tr._epoch_batches()))  # (images, labels); None for an unconditional G
    assert no_labels is None

    def no_tensor(*a, **k):
        raise AssertionError("torch.tensor called inside a training step (host sync / allocation)")

    monkeypatch.setattr(torch, "tensor", no_tensor)
    row = tr._run_step(batch)
    tr.run_steps(2)
    monkeypatch.undo()
    assert row.shape == (len(trainer_mod.METRIC_KEYS),)
    vals = dict(zip(trainer_mod.METRIC_KEYS, row.tolist()))
    assert math.isfinite(vals["loss_D"]) and math.isfinite(vals["loss_G"])
    assert math.isnan(vals["D_x"]) and math.isnan(vals["D_G_z"])


# --------------------------------------------------------------------------- uint8 storage
def _same_perm_first_batch(tr):
    g = torch.Generator(device=tr.device)
    g.set_state(tr.gen.get_state())
    return torch.randperm(tr.n_train, device=tr.device, generator=g)[: tr.batch_size]


def test_real_images_are_stored_as_uint8_and_batches_match_the_float_images(monkeypatch):
    from medgan_utils.data import load_dataset

    if not (SHARED_DATA / "breastmnist.npz").is_file():
        pytest.skip("real breastmnist.npz not available")
    monkeypatch.setenv("MEDGAN_DATA_DIR", str(SHARED_DATA))
    ds = load_dataset("breastmnist", "train", 28)
    assert ds.used == "breastmnist"
    tr = tiny_trainer(ds, batch_size=32)
    assert tr.data_dtype == "uint8" and tr.data.dtype == torch.uint8
    assert tr.data.numel() * tr.data.element_size() * 4 == ds.images.numel() * ds.images.element_size()
    idx = _same_perm_first_batch(tr)
    first, _ = next(iter(tr._epoch_batches()))
    assert first.dtype == torch.float32
    assert torch.equal(first, ds.images[idx])


def test_continuous_images_are_stored_as_float32():
    x = torch.rand(48, 1, 28, 28, generator=torch.Generator().manual_seed(1)) * 2 - 1
    tr = tiny_trainer(x)
    assert tr.data_dtype == "float32" and tr.data.dtype == torch.float32
    idx = _same_perm_first_batch(tr)
    assert torch.equal(next(iter(tr._epoch_batches()))[0], x[idx])


# --------------------------------------------------------------------------- backend flags
CUDA_STYLE = {"cudnn_benchmark": True, "cudnn_deterministic": False, "deterministic_algorithms": False,
              "matmul_allow_tf32": True}


def _fit_recording_flags(monkeypatch):
    monkeypatch.setattr(trainer_mod, "fast_kernel_flags", lambda device: dict(CUDA_STYLE))
    seen = []

    def step(tr, real, z):
        seen.append(backend_flags())
        return trainer_mod.dcgan_step(tr, real, z)

    tr = tiny_trainer(step_fn=step)
    tr.fit(1)
    return seen


def test_fast_flags_hold_during_steps_and_are_restored_after_fit(monkeypatch):
    before = backend_flags()
    seen = _fit_recording_flags(monkeypatch)
    assert len(seen) == 4
    for flags in seen:
        assert {k: flags[k] for k in CUDA_STYLE} == CUDA_STYLE
    assert backend_flags() == before


def test_strict_deterministic_mode_survives_a_fit(monkeypatch):
    """A caller's strict deterministic mode (no warn_only) must come back strict, not warn-only."""
    mode = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled())
    torch.use_deterministic_algorithms(True, warn_only=False)
    try:
        before = backend_flags()
        _fit_recording_flags(monkeypatch)
        assert backend_flags() == before
        assert torch.are_deterministic_algorithms_enabled()
        assert not torch.is_deterministic_algorithms_warn_only_enabled()
    finally:
        torch.use_deterministic_algorithms(mode[0], warn_only=mode[1])


def test_deterministic_trainer_does_not_touch_flags(monkeypatch):
    monkeypatch.setattr(trainer_mod, "fast_kernel_flags", lambda device: dict(CUDA_STYLE))
    tr = tiny_trainer(deterministic=True)
    assert tr._speed_flags == {}
    assert TrainConfig().deterministic is False


# --------------------------------------------------------------------------- packaging
def _torch_requirement_from_env_yml() -> Requirement:
    text = (ROOT / "environment.yml").read_text()
    found = [Requirement(m) for m in re.findall(r"""^\s*-\s*["']?(torch\s*[<>=!~][^"'\n#]*)["']?""", text, re.M)]
    assert len(found) == 1, f"environment.yml should list torch exactly once, found {found}"
    return found[0]


def test_torch_floor_supports_the_apis_used():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = [Requirement(r) for r in project["dependencies"]]
    torch_req = [r for r in reqs if r.name == "torch"]
    assert len(torch_req) == 1
    spec = torch_req[0].specifier
    # torch.amp.GradScaler(device) needs 2.3, fused Adam on the CPU 2.4: nothing older may be allowed.
    for old in ("2.0.1", "2.2.2", "2.3.1"):
        assert not spec.contains(old), f"pyproject allows torch {old}"
    assert spec.contains("2.4.0")
    assert spec.contains(Version(torch.__version__.split("+")[0]).base_version), "installed torch is outside the pin"
    env_req = _torch_requirement_from_env_yml()
    assert env_req.specifier == spec, f"environment.yml has {env_req}, pyproject.toml has {torch_req[0]}"
