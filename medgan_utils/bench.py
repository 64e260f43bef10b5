"""``medgan bench dcgan``: training throughput of our DCGAN step against the classic tutorial loop.

Both sides train the same architecture (:mod:`medgan_utils.models`), with the
same batch size, on the same device and the same image tensors:

* **ours** – :class:`medgan_utils.train.DCGANTrainer` with its default step
  (:func:`medgan_utils.train.dcgan_step`): data resident on the device, an
  on-device shuffle, one backward pass for the real and fake discriminator losses,
  BCE on logits, channels_last, mixed precision where it pays (``precision``),
  fused Adam, no host synchronisation inside the timed steps;
* **reference** – a re-implementation of the loop of the classic PyTorch DCGAN
  tutorial: a ``DataLoader`` (2 worker processes, shuffling) over a
  ``TensorDataset``; separate discriminator passes for the real and the fake
  batch, each with its own backward; ``nn.Sigmoid`` appended to D and
  ``nn.BCELoss``; fp32 in NCHW; ``.item()`` calls for logging in every
  iteration. On CUDA it runs with PyTorch's default cuDNN settings.

The two are timed in alternating windows (ours, reference, reference, ours,
...) after a warm-up that is not timed, and the medians are reported, so a
machine whose load changes during the run affects both sides alike.
The images are random tensors in [-1, 1]: throughput does not depend on content.
"""
from __future__ import annotations

import contextlib
import platform
import statistics
import time

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from .models import make_dcgan
from .settings import device_name, get_device
from .train import DCGANTrainer

__all__ = ["run_dcgan_bench", "ClassicDCGANLoop"]


class ClassicDCGANLoop:
    """The classic tutorial training loop, runnable a given number of iterations at a time.

    ``G`` and ``D`` are the course networks; D gets an ``nn.Sigmoid`` appended so it
    outputs probabilities for ``nn.BCELoss``, as in the tutorial.
    """

    def __init__(self, G: nn.Module, D: nn.Module, images: torch.Tensor, batch: int, device, latent_dim: int = 100,
                 num_workers: int = 2, lr: float = 2e-4, betas=(0.5, 0.999), seed: int = 0):
        self.device = torch.device(device)
        self.netG = G.to(self.device)
        self.netD = nn.Sequential(D, nn.Sigmoid()).to(self.device)
        self.latent_dim = latent_dim
        self.loader = DataLoader(TensorDataset(images.cpu()), batch_size=batch, shuffle=True,
                                 num_workers=num_workers, generator=torch.Generator().manual_seed(seed))
        self.criterion = nn.BCELoss()
        self.optD = torch.optim.Adam(self.netD.parameters(), lr=lr, betas=betas)
        self.optG = torch.optim.Adam(self.netG.parameters(), lr=lr, betas=betas)
        self.real_label, self.fake_label = 1.0, 0.0
        self.G_losses: list[float] = []
        self.D_losses: list[float] = []
        self.log: list[str] = []
        self._iterations = self._loop()

    def _loop(self):
        epoch = 0
        while True:  # epochs; the DataLoader starts its worker processes at every epoch, as in the tutorial
            for i, batch in enumerate(self.loader):
                # --- D: maximise log D(x) + log(1 - D(G(z))), real and fake batches separately
                self.netD.zero_grad()
                real = batch[0].to(self.device)
                n = real.size(0)
                label = torch.full((n,), self.real_label, dtype=torch.float, device=self.device)
                out = self.netD(real).view(-1)
                loss_real = self.criterion(out, label)
                loss_real.backward()
                d_x = out.mean().item()
                noise = torch.randn(n, self.latent_dim, 1, 1, device=self.device)
                fake = self.netG(noise)
                label.fill_(self.fake_label)
                out = self.netD(fake.detach()).view(-1)
                loss_fake = self.criterion(out, label)
                loss_fake.backward()
                d_g_z1 = out.mean().item()
                loss_d = loss_real + loss_fake
                self.optD.step()
                # --- G: maximise log D(G(z))
                self.netG.zero_grad()
                label.fill_(self.real_label)
                out = self.netD(fake).view(-1)
                loss_g = self.criterion(out, label)
                loss_g.backward()
                d_g_z2 = out.mean().item()
                self.optG.step()
                if i % 50 == 0:  # the tutorial prints here; we keep the line instead of printing it
                    self.log.append(f"[{epoch}][{i}/{len(self.loader)}] Loss_D: {loss_d.item():.4f} "
                                    f"Loss_G: {loss_g.item():.4f} D(x): {d_x:.4f} D(G(z)): {d_g_z1:.4f} / {d_g_z2:.4f}")
                self.G_losses.append(loss_g.item())
                self.D_losses.append(loss_d.item())
                yield
            epoch += 1

    def run_steps(self, n: int) -> None:
        for _ in range(int(n)):
            next(self._iterations)

    def close(self) -> None:
        """Stop the loop (and with it the DataLoader's worker processes)."""
        self._iterations.close()


@contextlib.contextmanager
def _cudnn_defaults(device: torch.device):
    """PyTorch's default cuDNN/TF32 settings (what the tutorial runs with), restored afterwards."""
    if device.type != "cuda":
        yield
        return
    saved = (torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic,
             torch.backends.cuda.matmul.allow_tf32, torch.are_deterministic_algorithms_enabled())
    torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = False, False
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.use_deterministic_algorithms(False)
    try:
        yield
    finally:
        torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = saved[0], saved[1]
        torch.backends.cuda.matmul.allow_tf32 = saved[2]
        torch.use_deterministic_algorithms(saved[3])


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def _timed(run, steps: int, device: torch.device) -> float:
    _sync(device)
    t0 = time.perf_counter()
    run(steps)
    _sync(device)
    return time.perf_counter() - t0


def run_dcgan_bench(size: int = 64, batch: int = 128, device=None, channels: int = 1, seconds: float | None = None,
                    *, precision: str = "auto", compile: bool = False, windows: int = 3, n_images: int = 4708,
                    latent_dim: int = 100, base: int = 64, num_workers: int = 2, warmup: int = 3, seed: int = 0,
                    verbose: bool = False) -> dict:
    """Images per second of our DCGAN training step and of the classic tutorial loop.

    Args:
        size, channels: image size (28, 32, 64, 128) and channels (1 or 3).
        batch: images per step for both.
        device: ``None``/``"auto"`` picks cuda → mps → cpu.
        seconds: timed seconds per implementation, split over ``windows`` windows
            (default 30 on the CPU, 10 on a GPU); warm-up comes on top.
        precision: our trainer's precision (``'auto'`` = bf16 where it pays; the reference is always fp32).
        compile: ``torch.compile`` our G and D (compile time is excluded and reported).
        n_images: size of the random training set (4708 = PneumoniaMNIST's training split).
    Returns a dict with ``ours_img_s``, ``reference_img_s``, ``ratio`` (ours / reference),
    ``device``, ``size``, ``batch`` and the details (per-window rates, precision, versions).
    """
    dev = get_device(device)
    if seconds is None:
        seconds = 30.0 if dev.type == "cpu" else 10.0
    windows = max(1, int(windows))
    window_s = float(seconds) / windows
    gen = torch.Generator().manual_seed(seed)
    images = torch.rand(int(n_images), channels, size, size, generator=gen).mul_(2).sub_(1)

    # ours
    G, D = make_dcgan(size, channels, latent_dim, base, seed=seed)
    ours = DCGANTrainer(G, D, images, device=dev, batch_size=batch, precision=precision, compile=compile,
                        progress=False, deterministic=False, seed=seed)
    t0 = time.perf_counter()
    ours.run_steps(1)
    _sync(dev)
    first_step_s = time.perf_counter() - t0
    ours_step = _timed(ours.run_steps, warmup, dev) / warmup
    # reference (fresh, identically initialised networks)
    Gr, Dr = make_dcgan(size, channels, latent_dim, base, seed=seed)
    with _cudnn_defaults(dev):
        ref = ClassicDCGANLoop(Gr, Dr, images, batch, dev, latent_dim, num_workers=num_workers, seed=seed)
        ref.run_steps(1)
        ref_step = _timed(ref.run_steps, warmup, dev) / warmup

    n_ours = max(2, round(window_s / max(ours_step, 1e-6)))
    n_ref = max(2, round(window_s / max(ref_step, 1e-6)))
    rates = {"ours": [], "reference": []}
    for w in range(windows):
        order = ("ours", "reference") if w % 2 == 0 else ("reference", "ours")
        for who in order:
            if who == "ours":
                dt = _timed(ours.run_steps, n_ours, dev)
                rates["ours"].append(n_ours * batch / dt)
            else:
                with _cudnn_defaults(dev):
                    dt = _timed(ref.run_steps, n_ref, dev)
                rates["reference"].append(n_ref * batch / dt)
            if verbose:
                print(f"window {w + 1}/{windows} {who:>9}: {rates[who][-1]:8.1f} img/s")
    ref.close()
    ours_med = statistics.median(rates["ours"])
    ref_med = statistics.median(rates["reference"])
    return {
        "ours_img_s": round(ours_med, 1),
        "reference_img_s": round(ref_med, 1),
        "ratio": round(ours_med / ref_med, 3),
        "device": str(dev),
        "size": int(size),
        "batch": int(batch),
        "channels": int(channels),
        "precision": ours.precision,
        "reference_precision": "fp32",
        "channels_last": ours.channels_last,
        "compile": compile if isinstance(compile, str) else bool(compile),
        "first_step_s": round(first_step_s, 2),
        "windows": {k: [round(v, 1) for v in vals] for k, vals in rates.items()},
        "steps_per_window": {"ours": n_ours, "reference": n_ref},
        "seconds_per_implementation": float(seconds),
        "n_images": int(n_images),
        "num_workers_reference": int(num_workers),
        "threads": torch.get_num_threads(),
        "device_name": device_name(dev),
        "torch": torch.__version__,
        "python": platform.python_version(),
    }
