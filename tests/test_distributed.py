"""DDP training under torchrun: 2 CPU processes (gloo) against one process with the same global batch and seed,
and resume under DDP against an uninterrupted DDP run.

Tolerance. Both runs do the same arithmetic in a different order (two half-batches whose gradients DDP averages,
batch-norm sums added across ranks), so they differ by float32 rounding. Adam turns a rounding-sized difference in
a gradient that is itself near zero into a different update sign (up to 2·lr per step), and these differences
grow over the steps. Stated tolerance after k = 4 steps: the mean absolute weight difference is below 5 % of one
learning rate (lr = 2e-4), and no weight differs by more than 2·lr·k. Measured on M1 (2026-11-26): mean |dw|
1.8e-6 for G and 1.6e-7 for D (0.9 % and 0.08 % of lr), max 1.6e-4 and 4.6e-5. The same comparison with per-rank
batch norm (no --sync-bn: a real difference in the computation) gives 1.2e-4 and 4.8e-5 (59 % and 24 % of lr), so
the check can fail. Resuming under DDP must reproduce the uninterrupted DDP run bit for bit.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from medgan_utils.core.errors import SettingError
from medgan_utils.data.load import load_dataset
from medgan_utils.gan.distributed import DistributedDCGANTrainer, init_distributed
from medgan_utils.gan.trainer import DCGANTrainer
from medgan_utils.nets.dcgan import make_dcgan

LR, BATCH, SEED = 2e-4, 16, 3


@pytest.fixture(scope="module")
def tiny_npz(tmp_path_factory) -> Path:
    rng = np.random.default_rng(0)
    arrays = {}
    for split, n in (("train", 64), ("val", 16), ("test", 16)):
        arrays[f"{split}_images"] = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        arrays[f"{split}_labels"] = rng.integers(0, 2, (n, 1))
    path = tmp_path_factory.mktemp("ddp") / "tiny.npz"
    np.savez(path, **arrays)
    return path


def _torchrun(npz: Path, out: Path, epochs: int, *extra: str) -> dict:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "medgan_utils.tools.train_ddp", "--dataset", str(npz), "--image-size", "28", "--epochs", str(epochs),
           "--batch", str(BATCH), "--lr", str(LR), "--seed", str(SEED), "--precision", "fp32", "--deterministic",
           "--device", "cpu", "--out", str(out), *extra]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=240)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads((out / "results.json").read_text())


def _single(npz: Path, epochs: int) -> DCGANTrainer:
    torch.set_num_threads(1)
    data = load_dataset(npz, "train", size=28)
    G, D = make_dcgan(28, channels=1, seed=SEED)
    tr = DCGANTrainer(G, D, data, batch_size=BATCH, lr=LR, seed=SEED, precision="fp32", deterministic=True,
                      progress=False)
    tr.fit(epochs)
    return tr


def _difference(tr: DCGANTrainer, final: Path) -> dict:
    ref = torch.load(final, weights_only=True)
    out = {}
    for name, net in (("G", tr.G_raw), ("D", tr.D_raw)):
        params = dict(net.named_parameters())
        diff = torch.cat([(p.detach() - ref[name][k]).abs().flatten() for k, p in params.items()])
        out[name] = (diff.mean().item(), diff.max().item())
    return out


def test_two_gloo_processes_match_one_process_and_resume(tiny_npz, tmp_path):
    out = tmp_path / "ddp"
    first = _torchrun(tiny_npz, out, 1, "--sync-bn")  # 4 steps of global batch 16, checkpoint by rank 0
    m = first["metrics"]
    assert (m["world_size"], m["backend"], m["global_step"], m["global_batch"]) == (2, "gloo", 4, 16)
    diffs = _difference(_single(tiny_npz, 1), out / "final.pt")
    print("DDP vs one process after 4 steps (mean, max |dw|):", diffs)
    for name, (mean, worst) in diffs.items():
        assert mean < 0.05 * LR, f"{name} after 4 steps: mean |dw| {mean:.2e} >= 5 % of lr"
        assert worst <= 2 * LR * 4 + 1e-7, f"{name} after 4 steps: max |dw| {worst:.2e} > 2 lr k"
    resumed = _torchrun(tiny_npz, out, 2, "--sync-bn", "--resume")  # 4 more steps after resuming on both ranks
    assert resumed["metrics"]["resumed_from"].endswith("dcgan_ddp_epoch0001.pt")
    assert resumed["metrics"]["global_step"] == 8
    names = sorted(p.name for p in (out / "checkpoints").iterdir())
    assert names == ["dcgan_ddp_epoch0001.pt", "dcgan_ddp_epoch0002.pt"]  # one writer: no duplicates, no .part
    straight = _torchrun(tiny_npz, tmp_path / "straight", 2, "--sync-bn")  # 8 steps without interruption
    assert straight["metrics"]["resumed_from"] is None
    a, b = torch.load(out / "final.pt", weights_only=True), torch.load(tmp_path / "straight" / "final.pt",
                                                                        weights_only=True)
    for name in ("G", "D"):  # resuming under DDP continues exactly: same arithmetic, same order
        for key, value in a[name].items():
            assert torch.equal(value, b[name][key]), f"resumed {name}.{key} differs from the uninterrupted run"


def test_per_rank_batch_norm_is_detected_by_the_same_check(tiny_npz, tmp_path):
    """Without --sync-bn each rank normalises its own half batch: a different computation, which the tolerance
    above must not accept (otherwise the equivalence test could not fail)."""
    _torchrun(tiny_npz, tmp_path / "local_bn", 1)
    diffs = _difference(_single(tiny_npz, 1), tmp_path / "local_bn" / "final.pt")
    print("per-rank batch norm vs one process after 4 steps (mean, max |dw|):", diffs)
    assert diffs["G"][0] > 0.05 * LR and diffs["D"][0] > 0.05 * LR, diffs


def test_clear_errors_outside_torchrun(monkeypatch, tiny_npz):
    for var in ("RANK", "WORLD_SIZE"):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(SettingError, match="torchrun"):
        init_distributed("cpu")
    with pytest.raises(SettingError, match="not initialised"):
        DistributedDCGANTrainer(*make_dcgan(28, seed=0), load_dataset(tiny_npz, "train", size=28), batch_size=15)


def test_extra_critic_batches_are_this_ranks_rows_of_one_global_draw(monkeypatch, tiny_npz):
    """next_real (the extra D updates of d_steps > 1) gives each rank its slice of the global batch one process
    would draw, not a whole global batch per rank."""
    import medgan_utils.gan.distributed as DD

    data = load_dataset(tiny_npz, "train", size=28)
    rows = {}
    for rank in (0, 1):
        monkeypatch.setattr(DD.dist, "is_initialized", lambda: True)
        monkeypatch.setattr(DD.dist, "get_rank", lambda r=rank: r)
        monkeypatch.setattr(DD.dist, "get_world_size", lambda: 2)
        monkeypatch.setattr(DD.dist, "barrier", lambda: None)
        monkeypatch.setattr(DD, "ddp_without_forward_buffer_sync", lambda m, ids=None: m)
        G, D = make_dcgan(28, channels=1, seed=SEED)
        tr = DistributedDCGANTrainer(G, D, data, batch_size=BATCH, lr=LR, seed=SEED, precision="fp32", progress=False,
                                     device="cpu")
        rows[rank] = tr.next_real()
    G, D = make_dcgan(28, channels=1, seed=SEED)
    whole = DCGANTrainer(G, D, data, batch_size=BATCH, lr=LR, seed=SEED, precision="fp32", progress=False,
                         device="cpu").next_real()
    assert rows[0].shape[0] == rows[1].shape[0] == BATCH // 2
    assert torch.equal(torch.cat([rows[0], rows[1]]), whole)
