"""Notebook 07's runners: one GAN variant on images or on 02's ring, and the measured signature of a failure.

* :func:`train_image_gan`: 03's DCGAN with a stability variant of
  :data:`~medgan_utils.gan.regularisers.STABILITY_VARIANTS` (and optionally DiffAugment);
* :func:`train_ring_gan`: the same variant on the ring of 8 Gaussians with 02's toy networks, scored by the
  share of samples on a mode and the number of modes covered, which :func:`ring_outcome` turns into one label
  ("collapse" and "off the data" are different outcomes);
* :func:`divergence_signature`: the measured signature that counts a run as diverged (:data:`DIVERGENCE_RULES`);
* :func:`failure_signature`: D(x), D(G(z)), their swing, G's gradient norm and sample diversity, and the
  failure they point to (heuristic thresholds, stated in the notebook);
* :func:`check_labs`: the notebook's ``LABS`` parameter, validated.
"""
from __future__ import annotations

import contextlib
import math
import time
from types import SimpleNamespace

import torch
from torch import nn

from ..core.errors import check_names
from ..gan.ema import make_generator_ema
from ..gan.losses import d_loss_wgan, get_losses
from ..gan.regularisers import make_stable_step, variant_options, variant_recipe
from ..gan.trainer import DCGANTrainer
from ..nets.dcgan import make_dcgan
from .toy import make_discriminator, make_generator, mode_coverage, ring_centers, sample_ring

__all__ = ["LAB_NAMES", "check_labs", "train_image_gan", "train_ring_gan", "failure_signature",
           "generator_grad_norm", "diversity_ratio", "divergence_signature", "ring_outcome", "DIVERGENCE_RULES",
           "RING_OUTCOMES", "ON_MODE_LEVEL"]

LAB_NAMES = ("stability", "scarcity", "cost", "diffusion")

# What counts as a divergence: a measured signature, never a low mode count by itself.
D_LOSS_FLOOR, G_LOSS_EXPLODED, FELL_BELOW = 0.05, 5.0, 0.1
DIVERGENCE_RULES = {
    "non-finite": "a loss, a weight or a sample became NaN or infinite",
    "D wins, G's loss explodes": f"in every one of the last quarter of the updates (at least 5), D's loss is below "
                                 f"{D_LOSS_FLOOR} and G's loss above {G_LOSS_EXPLODED} (losses whose D loss has a "
                                 "floor at 0: not the WGAN critic's)",
    "fell off the data": f"ring: the on-mode share was at least 0.5 at an earlier check and below {FELL_BELOW} at the end",
}
# The ring's outcomes: a sample is on a mode within 3 std of its centre; a mode is covered by 02's rule.
ON_MODE_LEVEL, COLLAPSE_MODES, COVER_MODES = 0.5, 2, 7
RING_OUTCOMES = ("covers the ring", "partial coverage", "collapse", "off the data", "diverged")


def divergence_signature(loss_D, loss_G, *, loss: str = "bce", non_finite: bool = False,
                         on_mode_trace=None) -> str:
    """The first signature of :data:`DIVERGENCE_RULES` a run shows, or ``""``: ``loss_D``/``loss_G`` are the
    per-update losses, ``loss`` the variant's loss name, ``on_mode_trace`` ``[(update, on-mode share), ...]``."""
    d = torch.as_tensor([float(v) for v in loss_D], dtype=torch.float64)
    g = torch.as_tensor([float(v) for v in loss_G], dtype=torch.float64)
    if non_finite or not bool(torch.isfinite(d).all()) or not bool(torch.isfinite(g).all()):
        return "non-finite"
    window = max(5, len(d) // 4)
    if get_losses(loss)[0] is not d_loss_wgan and len(d) >= window and len(g) >= window:
        if bool((d[-window:] < D_LOSS_FLOOR).all()) and bool((g[-window:] > G_LOSS_EXPLODED).all()):
            return "D wins, G's loss explodes"
    shares = [float(s) for _, s in (on_mode_trace or [])]
    if len(shares) > 1 and max(shares[:-1]) >= ON_MODE_LEVEL and shares[-1] < FELL_BELOW:
        return "fell off the data"
    return ""


def ring_outcome(on_mode_share: float, modes: int, divergence: str = "") -> str:
    """One label of :data:`RING_OUTCOMES`: ``"diverged"`` if a divergence signature was measured, else ``"off the
    data"`` when under half the samples are on a mode, else by modes covered: ``"collapse"`` (≤ 2),
    ``"covers the ring"`` (≥ 7) or ``"partial coverage"``."""
    if divergence:
        return "diverged"
    if not on_mode_share >= ON_MODE_LEVEL:
        return "off the data"
    if modes <= COLLAPSE_MODES:
        return "collapse"
    return "covers the ring" if modes >= COVER_MODES else "partial coverage"


def check_labs(labs) -> list[str]:
    """``LABS`` as a list of known lab names (SettingError naming the fix)."""
    return check_names(labs, LAB_NAMES, "LABS", example="['stability']")


def train_image_gan(variant: str, images: torch.Tensor, *, seed: int, epochs: int = 1, base: int = 32,
                    batch_size: int = 64, augment=None, device=None, max_seconds=None, lr: float = 2e-4,
                    steps: int | None = None, step_factory=make_stable_step, precision: str = "auto",
                    probe=None, probe_every: int = 0):
    """A DCGAN at the images' size trained with ``variant`` for ``epochs`` (with history and the NaN guard) or
    exactly ``steps`` updates (no history); returns the trainer (``diverged`` set on NaN, ``recipe`` the settings
    of :func:`~medgan_utils.gan.regularisers.variant_recipe`). ``epochs`` and ``steps`` count G updates: with
    ``n_critic`` D updates per G update, one epoch reads ``n_critic`` times as many real batches.

    ``step_factory(**step options, augment=...)`` builds the training step: notebook 07 passes its visible copy
    of :func:`~medgan_utils.gan.make_stable_step`. ``precision`` is the course's policy (``"auto"``: fp32 on a
    CPU without a passed bf16 check, bf16 or fp16 with a GradScaler on CUDA); ``tr.precision`` says what ran.

    With ``steps``, ``probe(tr)`` (e.g. D's train − validation gap) is called before training and after every
    ``probe_every`` updates (and at the end); ``tr.probes`` keeps ``(update, value)``, and its time is not
    counted in ``tr.train_seconds``."""
    step_opts, other = variant_options(variant)
    G, D = make_dcgan(images.shape[-1], images.shape[1], base=base, seed=seed, d_norm=other.get("d_norm", "batch"))
    tr = DCGANTrainer(G, D, images, step_fn=step_factory(**step_opts, augment=augment), device=device,
                      batch_size=batch_size, lr=lr, lr_G=other.get("lr_G"), lr_D=other.get("lr_D"),
                      betas=other.get("betas", (0.5, 0.999)), ema_decay=other.get("ema_decay"),
                      ema_rampup=other.get("ema_rampup"), seed=seed, precision=precision, on_diverge="stop",
                      progress=False, n_fixed=16, max_snapshots=4, log_every=1000, name=f"07_{variant}")
    tr.recipe = variant_recipe(variant, lr=lr)
    if steps is None:
        tr.fit(epochs, max_seconds=max_seconds)
    else:
        _run_probed(tr, int(steps), probe, int(probe_every))
        if not tr._params_finite():
            tr.diverged = "a weight became NaN/inf"
    tr.g_loss_name = step_opts["loss"]
    return tr


def _run_probed(tr, steps: int, probe, every: int) -> None:
    """``steps`` updates of ``tr`` in chunks of ``every``, ``probe(tr)`` before and after each chunk."""
    every = every if probe is not None and every > 0 else steps
    tr.probes, done, seconds = [], 0, 0.0
    if probe is not None:
        tr.probes.append((0, probe(tr)))
    while done < steps:
        k = min(every, steps - done)
        t0 = time.perf_counter()
        tr.run_steps(k)
        seconds += time.perf_counter() - t0
        done += k
        if probe is not None:
            tr.probes.append((done, probe(tr)))
    tr.train_seconds = seconds


def _spectral(net: nn.Sequential) -> nn.Sequential:
    for i, m in enumerate(net):
        if isinstance(m, nn.Linear):
            net[i] = nn.utils.parametrizations.spectral_norm(m)
    return net


def train_ring_gan(variant: str, *, seed: int, steps: int, batch_size: int = 256, lr: float = 1e-3,
                   n_eval: int = 2000, std: float = 0.02, step_factory=make_stable_step, n_checks: int = 10) -> dict:
    """The variant on the 8-Gaussian ring with 02's toy MLPs (no batch norm), ``steps`` G updates.

    Returns ``modes`` covered, ``on_mode_share`` (the share of ``n_eval`` samples within 3 std of a centre), the
    ``divergence`` signature (``""`` for none), the ``outcome`` of :func:`ring_outcome`, the on-mode ``trace`` at
    ``n_checks`` points, the ``recipe``, 500 samples and the ``generator`` that drew them (the EMA copy when the variant
    keeps one; notebook 07 saves it for the workshop pack). ``step_factory`` builds the step, as in
    :func:`train_image_gan`; extra critic updates draw new ring samples (``tr.next_real``)."""
    step_opts, other = variant_options(variant)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        G, D = make_generator(2, 2), make_discriminator(2)
        if other.get("d_norm") == "spectral":
            D = _spectral(D)
    betas = other.get("betas", (0.5, 0.999))
    opt_G = torch.optim.Adam(G.parameters(), lr=other.get("lr_G", lr), betas=betas)
    opt_D = torch.optim.Adam(D.parameters(), lr=other.get("lr_D", lr), betas=betas)
    gen = torch.Generator().manual_seed(seed)
    tr = SimpleNamespace(G=G, D=D, opt_G=opt_G, opt_D=opt_D, gen=gen, autocast=contextlib.nullcontext,
                         scaler=torch.amp.GradScaler("cpu", enabled=False),
                         next_real=lambda: sample_ring(batch_size, std=std, generator=gen))
    ema = make_generator_ema(G, other["ema_decay"], other.get("ema_rampup")) if "ema_decay" in other else None
    z_check = torch.randn(500, 2, generator=torch.Generator().manual_seed(seed + 1))  # its own generator
    every, centers = max(1, int(steps) // max(1, n_checks)), ring_centers()
    step, t0, losses, trace = step_factory(**step_opts), time.perf_counter(), ([], []), []
    for i in range(int(steps)):
        out = step(tr, sample_ring(batch_size, std=std, generator=gen), torch.randn(batch_size, 2, generator=gen))
        if ema is not None:
            ema.update_parameters(G)
        losses[0].append(float(out["loss_D"]))
        losses[1].append(float(out["loss_G"]))
        if not (math.isfinite(losses[0][-1]) and math.isfinite(losses[1][-1])):
            break
        if (i + 1) % every == 0 or i + 1 == int(steps):
            with torch.no_grad():
                check = (ema.module if ema is not None else G)(z_check)
            trace.append((i + 1, mode_coverage(check, centers, std)[1] if torch.isfinite(check).all() else 0.0))
    with torch.no_grad():
        samples = (ema.module if ema is not None else G)(torch.randn(n_eval, 2, generator=gen))
    finite = bool(torch.isfinite(samples).all())
    modes, on_mode = mode_coverage(samples, centers, std) if finite else (0, 0.0)
    divergence = divergence_signature(*losses, loss=step_opts["loss"], non_finite=not finite, on_mode_trace=trace)
    return {"modes": modes, "on_mode_share": on_mode, "divergence": divergence, "diverged": bool(divergence),
            "outcome": ring_outcome(on_mode, modes, divergence), "trace": trace,
            "recipe": variant_recipe(variant, lr=lr, d_norm="none"), "seconds": time.perf_counter() - t0,
            "samples": samples[:500].detach(), "generator": ema.module if ema is not None else G}


def generator_grad_norm(tr, n: int = 64, seed: int = 0) -> float:
    """‖∂L_G/∂θ_G‖ of the trainer's G under its own G loss, on ``n`` fresh noise vectors."""
    _, g_loss_fn = get_losses(getattr(tr, "g_loss_name", "bce"))
    z = torch.randn(n, tr.latent_dim, 1, 1, generator=torch.Generator().manual_seed(seed)).to(tr.device)
    tr.G_raw.zero_grad(set_to_none=True)
    g_loss_fn(tr.D_raw(tr.G_raw(z)).float()).backward()
    norm = math.sqrt(sum(float(p.grad.pow(2).sum()) for p in tr.G_raw.parameters() if p.grad is not None))
    tr.G_raw.zero_grad(set_to_none=True)
    tr.D_raw.zero_grad(set_to_none=True)
    return norm


def diversity_ratio(fake: torch.Tensor, real: torch.Tensor, n: int = 200) -> float:
    """Mean pairwise pixel distance among generated images over the same among real ones (≈ 1: as varied)."""
    def spread(x):
        x = x[:n].flatten(1).double()
        d = torch.cdist(x, x)
        return float(d.sum() / (len(x) * (len(x) - 1)))
    return spread(fake) / spread(real)


def failure_signature(tr, fake: torch.Tensor, real: torch.Tensor) -> dict:
    """Measured signature of a trained image GAN (last half of training) and the failure it indicates.

    collapse: diversity ratio < 0.5; D overpowers G: mean D(x) > 0.9 and D(G(z)) < 0.1;
    oscillation: the standard deviation of D(G(z)) over the last half of the steps > 0.15; divergence: a
    signature of :data:`DIVERGENCE_RULES` in the run's losses (``divergence``, ``""`` for none).
    """
    h = tr.history
    half = max(1, len(h["D_x"]) // 2)
    d_x = sum(h["D_x"][half:]) / max(1, len(h["D_x"][half:])) if h["D_x"] else float("nan")
    d_gz_tail = torch.tensor(h["D_G_z"][half:] or [float("nan")])
    sig = {"D_x": d_x, "D_G_z": float(d_gz_tail.mean()), "D_G_z_swing": float(d_gz_tail.std()) if len(d_gz_tail) > 1
           else 0.0, "g_grad_norm": generator_grad_norm(tr) if not tr.diverged else float("nan"),
           "diversity": diversity_ratio(fake, real) if torch.isfinite(fake).all() else float("nan")}
    sig["divergence"] = divergence_signature(h["loss_D"], h["loss_G"], loss=getattr(tr, "g_loss_name", "bce"),
                                             non_finite=bool(tr.diverged))
    labels = []
    if sig["divergence"]:
        labels.append(f"diverged ({sig['divergence']})")
    if sig["diversity"] < 0.5:
        labels.append("collapse")
    if sig["D_x"] > 0.9 and sig["D_G_z"] < 0.1:
        labels.append("D overpowers G")
    if sig["D_G_z_swing"] > 0.15:
        labels.append("oscillation")
    sig["failure"] = ", ".join(labels) or "none detected"
    return sig
