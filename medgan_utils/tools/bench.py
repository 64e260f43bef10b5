"""``medgan bench dcgan``: training throughput of our DCGAN trainer against the classic tutorial loop.

Both sides train the same architecture (:mod:`medgan_utils.nets.dcgan`), with the
same batch size, on the same device and the same image tensors:

* **ours**: :class:`medgan_utils.gan.DCGANTrainer` with its default step: data
  resident on the device as uint8, an on-device shuffle, BCE on logits,
  channels_last where it pays, fused Adam, no host synchronisation inside the
  timed steps. It is timed twice: in fp32 (the reference's precision) and at
  the precision ``--precision`` resolves to (the course's policy);
* **reference**: the loop of the classic PyTorch DCGAN tutorial, kept as it is on
  purpose: a ``DataLoader`` (2 worker processes) over a ``TensorDataset``, separate
  D passes for the real and fake batch, ``nn.Sigmoid`` + ``nn.BCELoss``, fp32 in NCHW,
  ``.item()`` calls every iteration, PyTorch's default cuDNN settings. On Ampere and
  newer GPUs its "fp32" convolutions run in TF32 (cuDNN's default), and so do ours.

Three ratios are reported: ours against the reference at the same precision
(``same_precision``), ours at the best precision against the reference in fp32
(``best_precision_vs_fp32``), and our ``fit()`` rate (per-epoch syncs, snapshots and
logging included, as notebook 03 reports it) against our ``run_steps`` rate. The
implementations are timed in alternating windows after an untimed warm-up, and the
medians are reported, so a machine whose load changes affects all alike. The images
are random tensors in [-1, 1]: throughput does not depend on content.
"""
from __future__ import annotations

import contextlib
import platform
import statistics
import time

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from ..core.device import device_name, get_device, set_backend_flags, synchronize
from ..core.errors import SettingError, positive_int
from ..core.precision import cpu_class, resolve_precision
from ..data.imageset import from_uint8, to_uint8
from ..gan.trainer import DCGANTrainer
from ..nets.dcgan import dcgan_layout, make_dcgan

__all__ = ["run_dcgan_bench", "ClassicDCGANLoop", "check_bench_args"]


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
def _pytorch_defaults(device: torch.device):
    """PyTorch's default cuDNN settings (what the tutorial runs with), restored afterwards."""
    if device.type != "cuda":
        yield
        return
    before = set_backend_flags(deterministic_algorithms=False, cudnn_deterministic=False, cudnn_benchmark=False,
                               cudnn_allow_tf32=True, matmul_allow_tf32=False)
    try:
        yield
    finally:
        set_backend_flags(**before)


def _timed(run, steps: int, device: torch.device) -> float:
    synchronize(device)
    t0 = time.perf_counter()
    run(steps)
    synchronize(device)
    return time.perf_counter() - t0


def check_bench_args(size, batch, channels, seconds, n_images) -> tuple[int, int, int, float | None, int]:
    """Validate the benchmark's arguments before anything is built; raises :class:`SettingError`."""
    size = positive_int(size, "--size")
    try:
        dcgan_layout(size)
    except ValueError as err:
        raise SettingError(f"--size {size} is not a DCGAN size: {err} Fix: use 28, 32, 64 or 128.") from None
    n_images = positive_int(n_images, "number of images")
    batch = positive_int(batch, "--batch")
    if batch > n_images:
        raise SettingError(f"--batch {batch} exceeds the {n_images} benchmark images. Fix: use a smaller --batch.")
    if channels not in (1, 3):
        raise SettingError(f"--channels must be 1 or 3, got {channels!r}.")
    if seconds is not None and not (isinstance(seconds, (int, float)) and 0 < seconds < float("inf")):
        raise SettingError(f"--seconds must be a positive number, got {seconds!r}.")
    return size, batch, channels, seconds, n_images


def run_dcgan_bench(size: int = 64, batch: int = 128, device=None, channels: int = 1, seconds: float | None = None,
                    *, precision: str = "auto", compile=False, windows: int = 3, n_images: int = 4708,
                    latent_dim: int = 100, base: int = 64, num_workers: int = 2, warmup: int = 3, seed: int = 0,
                    fit_epochs: int = 1, fit_seconds: float = 8.0, verbose: bool = False) -> dict:
    """Images per second of our DCGAN trainer (fp32 and best precision, steps and fit) and of the tutorial loop.

    ``seconds`` is the timed time per implementation, split over ``windows`` windows
    (default 20 s on the CPU, 10 s on a GPU); warm-up and compile time come on top.
    ``n_images`` = 4708 is PneumoniaMNIST's training split. Returns a dict with the
    rates (img/s), the three ratios, and the details (precision, TF32, per-window rates).
    """
    size, batch, channels, seconds, n_images = check_bench_args(size, batch, channels, seconds, n_images)
    dev = get_device(device)
    best = resolve_precision(precision, dev)
    seconds = float(seconds or (20.0 if dev.type == "cpu" else 10.0))
    windows = max(1, int(windows))
    images = torch.rand(n_images, channels, size, size, generator=torch.Generator().manual_seed(seed)) * 2 - 1
    images = from_uint8(to_uint8(images))  # 8-bit levels, as real data

    def trainer(prec):
        G, D = make_dcgan(size, channels, latent_dim, base, seed=seed)
        return DCGANTrainer(G, D, images, device=dev, batch_size=batch, precision=prec, compile=compile,
                            progress=False, seed=seed)

    impls = {"ours_fp32": trainer("fp32")}
    impls["ours_best"] = impls["ours_fp32"] if best == "fp32" else trainer(best)
    first_step_s = _timed(impls["ours_best"].run_steps, 1, dev)
    Gr, Dr = make_dcgan(size, channels, latent_dim, base, seed=seed)
    with _pytorch_defaults(dev):
        ref = ClassicDCGANLoop(Gr, Dr, images, batch, dev, latent_dim, num_workers=num_workers, seed=seed)
    runners = {"ours_fp32": impls["ours_fp32"].run_steps, "ours_best": impls["ours_best"].run_steps,
               "reference": ref.run_steps}
    if best == "fp32":
        runners.pop("ours_best")
    rates = _alternating_windows(runners, dev, batch, seconds / windows, windows, warmup, verbose)
    ref.close()
    if best == "fp32":
        rates["ours_best"] = rates["ours_fp32"]
    med = {k: statistics.median(v) for k, v in rates.items()}
    # fit() on a subset sized to about `fit_seconds` at the measured rate: an epoch of all 4,708 images at 64 px
    # takes minutes on an AVX2 laptop, and the per-epoch costs fit() adds do not need the whole set to show
    n_fit = int(min(n_images, max(4 * batch, med["ours_best"] * float(fit_seconds))))
    G, D = make_dcgan(size, channels, latent_dim, base, seed=seed)
    fitter = DCGANTrainer(G, D, images[:n_fit], device=dev, batch_size=batch, precision=best, compile=compile,
                          progress=False, seed=seed)
    fit = fitter.fit(positive_int(fit_epochs, "fit_epochs"))
    fit_rate = fit["img_per_s"] or 0.0
    return {
        "ours_fp32_img_s": round(med["ours_fp32"], 1), "ours_best_img_s": round(med["ours_best"], 1),
        "ours_fit_img_s": round(fit_rate, 1), "reference_img_s": round(med["reference"], 1),
        "ratios": {"same_precision": round(med["ours_fp32"] / med["reference"], 3),
                   "best_precision_vs_fp32": round(med["ours_best"] / med["reference"], 3),
                   "fit_vs_run_steps": round(fit_rate / med["ours_best"], 3)},
        "ratio": round(med["ours_best"] / med["reference"], 3),
        "device": str(dev), "device_name": device_name(dev), "cpu_class": cpu_class(), "size": size, "batch": batch,
        "channels": channels,
        "precision": best, "reference_precision": "fp32",
        "tf32": bool(dev.type == "cuda" and torch.cuda.get_device_capability(dev) >= (8, 0)),
        "channels_last": impls["ours_best"].channels_last, "data_dtype": impls["ours_best"].data_dtype,
        "compile": compile if isinstance(compile, str) else bool(compile), "first_step_s": round(first_step_s, 2),
        "windows": {k: [round(v, 1) for v in vals] for k, vals in rates.items()},
        "seconds_per_implementation": seconds, "n_images": n_images, "n_images_fit": n_fit,
        "num_workers_reference": int(num_workers),
        "threads": torch.get_num_threads(), "torch": torch.__version__, "python": platform.python_version(),
    }


def _alternating_windows(runners: dict, dev, batch: int, window_s: float, windows: int, warmup: int,
                         verbose: bool) -> dict:
    """Time each runner in ``windows`` windows of about ``window_s`` seconds, in rotating order."""
    step_s = {}
    for name, run in runners.items():
        run(1)
        step_s[name] = _timed(run, warmup, dev) / warmup
    steps = {k: max(2, round(window_s / max(v, 1e-6))) for k, v in step_s.items()}
    rates = {k: [] for k in runners}
    names = list(runners)
    for w in range(windows):
        for name in names[w % len(names):] + names[: w % len(names)]:
            ctx = _pytorch_defaults(dev) if name == "reference" else contextlib.nullcontext()
            with ctx:
                dt = _timed(runners[name], steps[name], dev)
            rates[name].append(steps[name] * batch / dt)
            if verbose:
                print(f"window {w + 1}/{windows} {name:>9}: {rates[name][-1]:8.1f} img/s")
    return rates
