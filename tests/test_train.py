"""DCGANTrainer: training, bit-identical resume, safe checkpoints, divergence guard, custom steps."""
import warnings

import pytest
import torch

from medgan_utils.core.io import load_checkpoint
from medgan_utils.nets import make_dcgan
from medgan_utils.core.precision import cpu_has_native_bf16 as cpu_bf16_supported
from medgan_utils.core.precision import resolve_precision
from medgan_utils.data.imageset import to_uint8
from medgan_utils.gan import DCGANTrainer, TrainingDiverged, dcgan_step, make_step

N, SIZE, BATCH = 192, 28, 32  # 6 steps per epoch


pytestmark = pytest.mark.usefixtures("one_thread")



def _data(seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(N, 1, SIZE, SIZE, generator=g) * 2 - 1


def _trainer(data, **kw):
    G, D = make_dcgan(SIZE, 1, latent_dim=16, base=8, seed=kw.pop("init_seed", 0))
    kw.setdefault("progress", False)
    kw.setdefault("n_fixed", 8)
    return DCGANTrainer(G, D, data, batch_size=BATCH, **kw)


def _same_state(a: DCGANTrainer, b: DCGANTrainer) -> bool:
    ok = all(torch.equal(x, y) for x, y in zip(a.G_raw.state_dict().values(), b.G_raw.state_dict().values()))
    ok &= all(torch.equal(x, y) for x, y in zip(a.D_raw.state_dict().values(), b.D_raw.state_dict().values()))
    for oa, ob in ((a.opt_G, b.opt_G), (a.opt_D, b.opt_D)):
        for sa, sb in zip(oa.state_dict()["state"].values(), ob.state_dict()["state"].values()):
            ok &= all(torch.equal(sa[k], sb[k]) for k in sa)
    return bool(ok)


def test_fit_history_snapshots_summary():
    tr = _trainer(_data(), precision="fp32", log_every=2)
    out = tr.fit(2)
    assert out["epoch"] == 2 and out["global_step"] == 12 and out["diverged"] is None
    assert out["img_per_s"] > 0 and out["precision"] == "fp32"
    assert len(tr.history["loss_D"]) == 12 and tr.history["step"] == list(range(1, 13))
    assert all(0 <= v <= 1 for v in tr.history["D_x"] + tr.history["D_G_z"])
    assert len(tr.snapshots) == 2 and tr.snapshots[0].dtype == torch.uint8
    assert tr.snapshots[0].shape == (8, 1, SIZE, SIZE) and tr.snapshot_epochs == [1, 2]
    assert [e["epoch"] for e in tr.epoch_log] == [1, 2]
    assert tr.fit(2)["global_step"] == 12  # already done: nothing more to train


@pytest.mark.parametrize("precision", ["fp32", "auto"])
def test_resume_is_bit_identical(tmp_path, precision):
    data = _data()
    full = _trainer(data, precision=precision, checkpoint_dir=tmp_path / "full", seed=5)
    full.fit(4)

    first = _trainer(data, precision=precision, checkpoint_dir=tmp_path / "split", seed=5)
    first.fit(2)
    torch.manual_seed(1234)  # the notebook may use the global RNG in between: must not matter
    # a fresh process would build new networks (different init) and resume from disk
    second = _trainer(data, precision=precision, checkpoint_dir=tmp_path / "split", seed=5, resume=True, init_seed=99)
    assert second.epoch == 2 and second.resumed_from.endswith("dcgan_epoch0002.pt")
    second.fit(4)
    assert _same_state(full, second)
    assert full.history == second.history
    assert all(torch.equal(a, b) for a, b in zip(full.snapshots, second.snapshots))
    assert torch.equal(full.fixed_noise, second.fixed_noise)


def test_resume_after_crash_mid_epoch(tmp_path):
    """Ctrl-C / a kill in the middle of epoch 3: resuming redoes epoch 3 from the epoch-2 checkpoint."""
    data = _data()
    full = _trainer(data, precision="fp32", seed=1)
    full.fit(3)

    calls = {"n": 0}

    def crashing_step(tr, real, z):
        calls["n"] += 1
        if calls["n"] == 15:  # step 3 of epoch 3
            raise KeyboardInterrupt
        return dcgan_step(tr, real, z)

    crashing = _trainer(data, precision="fp32", seed=1, step_fn=crashing_step, checkpoint_dir=tmp_path)
    with pytest.raises(KeyboardInterrupt):
        crashing.fit(3)
    assert [p.name for p in crashing.checkpoints()] == ["dcgan_epoch0001.pt", "dcgan_epoch0002.pt"]
    resumed = _trainer(data, precision="fp32", seed=1, checkpoint_dir=tmp_path, resume=True, init_seed=7)
    resumed.fit(3)
    assert _same_state(full, resumed)


def test_checkpoint_contents_and_tidying(tmp_path):
    tr = _trainer(_data(), precision="fp32", checkpoint_dir=tmp_path, checkpoint_every=1, keep_checkpoints=2)
    tr.fit(3)
    assert [p.name for p in tr.checkpoints()] == ["dcgan_epoch0002.pt", "dcgan_epoch0003.pt"]
    state = torch.load(tmp_path / "dcgan_epoch0003.pt", weights_only=True)  # no pickled code needed
    for key in ("G", "D", "opt_G", "opt_D", "epoch", "global_step", "rng", "history", "fixed_noise", "snapshots"):
        assert key in state
    assert state["epoch"] == 3 and state["global_step"] == 18
    assert set(state["rng"]) == {"trainer", "device_type"}  # the global RNG is not saved (nor restored)
    assert load_checkpoint(tmp_path / "dcgan_epoch0003.pt")["config"]["batch_size"] == BATCH
    assert not list(tmp_path.glob("*.part"))  # atomic writes leave no temp files


def test_checkpoint_every_n_epochs_and_last(tmp_path):
    tr = _trainer(_data(), precision="fp32", checkpoint_dir=tmp_path, checkpoint_every=2, keep_checkpoints=5)
    tr.fit(3)
    assert [p.name for p in tr.checkpoints()] == ["dcgan_epoch0002.pt", "dcgan_epoch0003.pt"]


def test_resume_false_starts_over_and_removes_old_checkpoints(tmp_path):
    _trainer(_data(), precision="fp32", checkpoint_dir=tmp_path).fit(2)
    tr = _trainer(_data(), precision="fp32", checkpoint_dir=tmp_path, resume=False)
    assert tr.epoch == 0
    tr.fit(1)
    assert [p.name for p in tr.checkpoints()] == ["dcgan_epoch0001.pt"]


def test_incompatible_checkpoint_is_refused(tmp_path):
    _trainer(_data(), precision="fp32", checkpoint_dir=tmp_path).fit(1)
    G, D = make_dcgan(SIZE, 1, latent_dim=16, base=8)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(RuntimeError, match="No usable checkpoint"):
            DCGANTrainer(G, D, _data(), batch_size=16, checkpoint_dir=tmp_path, resume=True, progress=False)


def test_divergence_guard_keeps_last_good_checkpoint(tmp_path):
    data = _data()
    tr = _trainer(data, precision="fp32", checkpoint_dir=tmp_path)
    tr.fit(1)
    good = tmp_path / "dcgan_epoch0001.pt"
    good_bytes = good.read_bytes()
    tr.data[5] = float("nan")  # one corrupt image poisons the step that draws it
    with pytest.raises(TrainingDiverged, match="diverged.*last good checkpoint") as err:
        tr.fit(3)
    assert err.value.checkpoint.endswith("dcgan_epoch0001.pt")
    assert [p.name for p in tr.checkpoints()] == ["dcgan_epoch0001.pt"]
    assert good.read_bytes() == good_bytes  # never overwritten with NaN weights
    assert tr.epoch == 1  # the last good state was reloaded ...
    assert all(torch.isfinite(p).all() for p in tr.G_raw.parameters())  # ... and is finite
    assert tr.sample(4).isfinite().all()


def test_divergence_with_huge_learning_rate_stop_mode():
    tr = _trainer(_data(), precision="fp32", lr=1e30, on_diverge="stop", log_every=1)
    with pytest.warns(RuntimeWarning, match="diverged"):
        out = tr.fit(3)
    assert out["diverged"] and "lr_G=1e+30" in out["diverged"]
    assert out["epoch"] == 0  # no epoch completed with finite losses


def test_custom_step_and_named_losses():
    seen = []

    def my_step(tr, real, z):
        seen.append((real.shape, z.shape))
        return dcgan_step(tr, real, z)

    tr = _trainer(_data(), precision="fp32", step_fn=my_step)
    tr.fit(1)
    assert seen[0] == (torch.Size([BATCH, 1, SIZE, SIZE]), torch.Size([BATCH, 16, 1, 1])) and len(seen) == 6
    for loss in ("lsgan", "hinge"):
        tr = _trainer(_data(), precision="fp32", loss=loss)
        assert tr.fit(1)["diverged"] is None
    concat = _trainer(_data(), precision="fp32", step_fn=make_step("bce", concat=True))
    assert concat.fit(1)["diverged"] is None
    with pytest.raises(ValueError):
        _trainer(_data(), step_fn=my_step, loss="bce")


def test_step_matches_between_trainer_and_make_step():
    """The built-in step and make_step('bce') compute the same update."""
    a = _trainer(_data(), precision="fp32")
    b = _trainer(_data(), precision="fp32", step_fn=make_step("bce"))
    a.fit(1), b.fit(1)
    for x, y in zip(a.G_raw.parameters(), b.G_raw.parameters()):
        torch.testing.assert_close(x, y, rtol=1e-4, atol=1e-6)


def test_sample_is_per_z_in_eval_mode():
    tr = _trainer(_data(), precision="fp32")
    tr.fit(1)
    z = torch.randn(6, 16)
    batch = tr.sample(z=z)
    single = tr.sample(z=z[2:3])
    torch.testing.assert_close(batch[2:3], single)  # eval-mode BN: no dependence on the rest of the batch
    assert tr.G_raw.training  # mode restored
    assert batch.shape == (6, 1, SIZE, SIZE) and batch.device.type == "cpu"


def test_precision_resolution():
    assert resolve_precision("fp32", "cpu") == "fp32"
    # CPU bf16 needs native support *and* a stored passing check (tests/test_gpu_policy.py covers that path)
    assert resolve_precision("auto", "cpu") in {"fp32", "bf16"}
    if cpu_bf16_supported():
        assert resolve_precision("bfloat16", "cpu") == "bf16"
    with pytest.raises(ValueError):
        resolve_precision("fp8", "cpu")
    assert resolve_precision("auto", "mps") == "fp32"


def test_to_uint8():
    x = torch.tensor([-1.0, 0.0, 1.0, 2.0])
    assert to_uint8(x).tolist() == [0, 128, 255, 255]


def test_snapshot_thinning_keeps_first_and_last():
    tr = _trainer(_data(), precision="fp32", max_snapshots=4)
    tr.fit(7)
    assert len(tr.snapshots) <= 4 and tr.snapshot_epochs[0] == 1 and tr.snapshot_epochs[-1] == 7


def test_fp16_grad_scaler_path_and_its_checkpoint(tmp_path):
    """The GPU fallback (fp16 + GradScaler) exercised on the CPU: scaler state survives a resume."""
    tr = _trainer(_data(), precision="fp16", checkpoint_dir=tmp_path)
    assert tr.scaler.is_enabled()
    assert tr.fit(2)["diverged"] is None
    scale = tr.scaler.get_scale()
    resumed = _trainer(_data(), precision="fp16", checkpoint_dir=tmp_path, resume=True)
    assert resumed.scaler.is_enabled() and resumed.scaler.get_scale() == scale


def test_count_step_flops_counts_both_updates():
    from medgan_utils.gan import count_step_flops

    G, D = make_dcgan(28, 1, latent_dim=100, base=64, seed=0)
    one = count_step_flops(G, D, torch.zeros(2, 1, 28, 28), torch.randn(2, 100))
    two = count_step_flops(G, D, torch.zeros(4, 1, 28, 28), torch.randn(4, 100))
    assert two == 2 * one  # linear in the batch
    # a forward pass of G and of D alone costs far less than the step (3 D passes, 2 backward passes)
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as fwd:
        D(G(torch.randn(2, 100)))
    assert 3 * fwd.get_total_flops() < one < 10 * fwd.get_total_flops()
    assert all(p.grad is None for p in [*G.parameters(), *D.parameters()])
