"""The GPU code paths, checked on the CPU (issue 24): one GradScaler update per step with extra D steps, 07 on
the course's precision policy, a feature net whose identity includes how it was trained, fp16 on MPS only where
autocast covers it, determinism that is reported off when it is off, no compile on MPS, pinned batches from the
host fallback, and DDP ranks sharing one GPU. The DDP double-forward check is tests/test_ddp_buffers.py."""
import json
import subprocess
import sys

import pytest
import torch

import medgan_utils.core.device as device_mod
import medgan_utils.core.precision as precision_mod
import medgan_utils.evaluation.features as features_mod
import medgan_utils.gan.trainer as trainer_mod
from medgan_utils.core.errors import SettingError
from medgan_utils.course.challenges import train_image_gan
from medgan_utils.gan.regularisers import STABILITY_VARIANTS, make_stable_step, variant_options
from medgan_utils.gan.trainer import DCGANTrainer
from medgan_utils.nets.dcgan import make_dcgan

pytestmark = pytest.mark.timeout(60)


def _images(n=32, seed=0):
    return torch.rand(n, 1, 28, 28, generator=torch.Generator().manual_seed(seed)) * 2 - 1


class CountingScaler(torch.amp.GradScaler):
    """An enabled CPU GradScaler (torch >= 2.3) that counts its calls; it raises like the CUDA one on a second
    step() of one optimiser before update()."""

    def __init__(self):
        super().__init__("cpu", enabled=True)
        self.steps = self.updates = 0

    def step(self, optimizer, *a, **k):
        self.steps += 1
        return super().step(optimizer, *a, **k)

    def update(self, *a, **k):
        self.updates += 1
        return super().update(*a, **k)


@pytest.mark.parametrize("variant", sorted(STABILITY_VARIANTS))
def test_enabled_grad_scaler_with_every_stability_variant(variant, one_thread):
    step_opts, other = variant_options(variant)
    G, D = make_dcgan(28, 1, 16, base=8, seed=0, d_norm=other.get("d_norm", "batch"))
    tr = DCGANTrainer(G, D, _images(), step_fn=make_stable_step(**step_opts), batch_size=16, precision="fp32",
                      progress=False, lr_G=other.get("lr_G"), lr_D=other.get("lr_D"))
    tr.scaler = CountingScaler()
    tr.run_steps(3)  # d-steps-2 raised "step() has already been called since the last update()" here
    d_steps = step_opts.get("d_steps", 1)
    assert tr.scaler.steps == 3 * (d_steps + 1)
    assert tr.scaler.updates == 3 * d_steps  # one update per D step; the last D step shares it with G's
    assert int(tr.opt_D.state_dict()["state"][0]["step"]) == 3 * d_steps  # every D update was taken


def test_07_trains_with_the_course_precision_policy(monkeypatch, one_thread):
    images = _images()
    kw = dict(seed=0, steps=2, base=8, batch_size=16)
    fp32 = train_image_gan("non-saturating", images, precision="fp32", **kw)
    auto = train_image_gan("non-saturating", images, **kw)  # this CPU has no passed bf16 check: auto is fp32
    assert auto.precision == fp32.precision == "fp32"
    for a, b in zip(auto.G_raw.parameters(), fp32.G_raw.parameters()):  # the same numbers as before the change
        assert torch.equal(a, b)
    monkeypatch.setattr(precision_mod, "cpu_has_native_bf16", lambda: True)
    monkeypatch.setattr(precision_mod, "reduced_precision_allowed", lambda device: True)
    assert train_image_gan("non-saturating", images, **kw).precision == "bf16"  # the policy, not forced fp32


def test_feature_net_trains_in_fp32_everywhere_and_its_identity_says_so(monkeypatch, one_thread):
    from medgan_utils.data.imageset import ImageSet

    assert features_mod._precision_for(torch.device("cuda"), None) == "fp32"  # no CUDA call needed: fp32 always
    images = _images(64)
    train = ImageSet(images=images, labels=torch.arange(64) % 2, name="t", used="t", split="train", size=28,
                     label_names={0: "a", 1: "b"})
    kw = dict(epochs=1, device="cpu", batch_size=32, cache_dir=False, verbose=False, width=4)
    _, plain = features_mod.train_feature_net(train, **kw)
    assert plain["precision"] == "fp32" and plain["version"] == features_mod.FEATURE_NET_VERSION == 3
    monkeypatch.setattr(features_mod, "resolve_precision", lambda p, d: "bf16")
    _, mixed = features_mod.train_feature_net(train, amp=True, **kw)
    assert mixed["precision"] == "bf16"
    assert mixed["hash"] != plain["hash"]  # another training precision is another net


@pytest.mark.parametrize("version, allowed", [("2.4.1", False), ("2.5.0", True), ("2.14.1+cu130", True)])
def test_fp16_on_mps_needs_torch_2_5(monkeypatch, version, allowed):
    monkeypatch.setattr(torch, "__version__", version)
    monkeypatch.setattr(precision_mod, "reduced_precision_allowed", lambda device: True)  # a stored "pass"
    if allowed:
        assert precision_mod.resolve_precision("auto", "mps") == "fp16"
        return
    with pytest.raises(SettingError) as exc:
        precision_mod.resolve_precision("fp16", "mps")
    msg = str(exc.value)
    assert "\n" not in msg and "2.5" in msg and version in msg and "Fix" in msg
    assert precision_mod.resolve_precision("auto", "mps") == "fp32"  # never a silent fp32 labelled fp16


def test_precision_check_on_old_mps_stores_no_verdict(monkeypatch, tmp_path):
    import medgan_utils.tools.precision_check as check_mod

    monkeypatch.setattr(torch, "__version__", "2.4.0")
    monkeypatch.setattr(check_mod, "get_device", lambda d: torch.device("mps"))
    monkeypatch.setenv("MEDGAN_CACHE_DIR", str(tmp_path))
    with pytest.raises(SettingError, match="2.5"):
        check_mod.run_precision_check("mps")
    assert not list(tmp_path.rglob("*.json"))


def test_cublas_workspace_is_set_on_import_before_any_cuda_work():
    code = ("import os; os.environ.pop('CUBLAS_WORKSPACE_CONFIG', None); import medgan_utils, torch; "
            "print(os.environ.get('CUBLAS_WORKSPACE_CONFIG'), torch.cuda.is_initialized())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == [":4096:8", "False"]


def test_determinism_is_reported_off_when_it_is_off(monkeypatch, capsys):
    from medgan_utils.course.settings import setup

    before = device_mod.backend_flags()
    try:
        cfg = setup(SEED=0, DEVICE="cpu", deterministic=False)
        assert cfg.extra["determinism"]["on"] is False
        assert "deterministic kernels: OFF" in capsys.readouterr().out
        cfg = setup(SEED=0, DEVICE="cpu")
        assert cfg.extra["determinism"]["on"] is True
        monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # a GPU machine ...
        monkeypatch.setenv("CUBLAS_WORKSPACE_CONFIG", ":0:0")  # ... with a non-deterministic cuBLAS workspace
        status = device_mod.determinism_status()
        assert status["on"] is False and "CUBLAS_WORKSPACE_CONFIG" in status["reason"]
        monkeypatch.setenv("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        assert device_mod.determinism_status()["on"] is True
        monkeypatch.setattr(device_mod, "_CUBLAS_SET_LATE", True)  # CUDA was used before the package set it
        assert "before" in device_mod.determinism_status()["reason"]
        assert device_mod.determinism_status()["on"] is False
    finally:
        device_mod.set_backend_flags(**before)


def test_results_json_records_determinism(monkeypatch, tmp_path):
    from medgan_utils.course.results import record_results

    monkeypatch.setenv("MEDGAN_RESULTS_DIR", str(tmp_path))
    record_results("99_x", {"a": 1}, show=False)
    rec = json.loads((tmp_path / "results.json").read_text())
    assert set(rec["determinism"]) == {"on", "warn_only", "reason"}


def test_trainer_summary_says_whether_training_was_deterministic():
    G, D = make_dcgan(28, 1, 16, base=8, seed=0)
    tr = DCGANTrainer(G, D, _images(), batch_size=16, precision="fp32", progress=False, deterministic=True)
    assert tr.summary()["deterministic"] is True


def test_compile_is_refused_on_mps_before_anything_moves():
    G, D = make_dcgan(28, 1, 16, base=8, seed=0)
    with pytest.raises(SettingError) as exc:
        DCGANTrainer(G, D, _images(), batch_size=16, device="mps", compile=True, progress=False)
    assert "MPS" in str(exc.value) and "Fix" in str(exc.value)
    assert next(G.parameters()).device.type == "cpu"


class Pinned(Exception):
    pass


def test_host_fallback_batches_go_through_pinned_memory(monkeypatch, one_thread):
    def pin(self):
        raise Pinned  # the real pin_memory needs a GPU; reaching it is what is checked

    monkeypatch.setattr(torch.Tensor, "pin_memory", pin)
    data, rows = torch.arange(40.0).reshape(10, 4), torch.tensor([3, 1])
    with pytest.raises(Pinned):
        device_mod.batch_to(data, rows, "cuda")  # host rows bound for a GPU are pinned before the copy
    assert torch.equal(device_mod.batch_to(data, rows, "cpu"), data[rows])  # nothing to pin on the CPU
    seen = []
    monkeypatch.setattr(trainer_mod, "batch_to", lambda d, r, dev: seen.append(dev) or device_mod.batch_to(d, r, dev))
    G, D = make_dcgan(28, 1, 16, base=8, seed=0)
    DCGANTrainer(G, D, _images(), batch_size=16, precision="fp32", progress=False).run_steps(1)
    assert seen == [torch.device("cpu")]


def test_ddp_ranks_can_share_one_gpu_only_when_asked(monkeypatch):
    import torch.distributed as dist

    import medgan_utils.gan.distributed as ddp_mod

    calls = {}
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "set_device", lambda d: calls.setdefault("device", d))
    monkeypatch.setattr(dist, "is_initialized", lambda: False)
    monkeypatch.setattr(dist, "init_process_group", lambda backend, **k: calls.setdefault("backend", backend))
    monkeypatch.setattr(dist, "get_rank", lambda: 1)
    monkeypatch.setattr(dist, "get_world_size", lambda: 2)
    for name, value in {"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2"}.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SettingError, match="no GPU of its own"):
        ddp_mod.init_distributed("cuda")
    assert ddp_mod.init_distributed("cuda", share_gpus=True) == (1, 2, torch.device("cuda", 0))
    assert calls == {"device": torch.device("cuda", 0), "backend": "gloo"}  # NCCL refuses two ranks on one GPU
