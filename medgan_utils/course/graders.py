"""Graders for the training steps that learners write themselves (notebooks 02 and 03).

:func:`grade_step` runs the learner's step and a reference step from identical starts (same seed,
same initial weights, same batches and noise) and compares every tensor afterwards: the weights and
buffers of G and D and both optimisers' states. It passes only if the two runs agree (to float
rounding), and otherwise names the first tensor that differs and lists the usual faults.

A *trainer* here is anything with ``G``, ``D``, ``opt_G``, ``opt_D`` and ``run_steps(n)``:
:class:`~medgan_utils.gan.DCGANTrainer` (notebook 03, steps ``step(tr, real, z)``) or the small
:class:`ToyGANTrainer` (notebook 02, steps ``step(G, D, opt_g, opt_d, real, z)``), whose reference
step is :func:`toy_gan_step`.
"""
from __future__ import annotations

from typing import Callable

import torch

from ..gan.losses import d_loss_bce, g_loss_nonsaturating
from .toy import make_discriminator, make_generator

__all__ = ["grade_step", "toy_gan_step", "ToyGANTrainer", "USUAL_FAULTS"]

USUAL_FAULTS = (
    "the fake batch is not detached (fake.detach()) in D's loss, so D's loss also sends gradients into G",
    "swapped labels: real images must get label 1 and generated images label 0 in D's loss",
    "a wrong loss sign, or the saturating log(1 - D(G(z))) instead of the non-saturating -log D(G(z))",
    "G is updated before D, or G's loss uses D's scores from before D's update",
    "a missing or misplaced zero_grad(), so gradients of the previous loss or step pile up",
    "real and fake scored in one concatenated D batch, although D has batch norm",
)


def toy_gan_step(G, D, opt_g, opt_d, real: torch.Tensor, z: torch.Tensor):
    """One step of a toy GAN with the non-saturating loss (notebook 02's ``train_step``, without autocast).

    D first: one pass over real (label 1) and detached generated (label 0) samples. Then G, through the
    updated D, with the non-saturating loss on the same generated samples. Returns ``(loss_d, loss_g)``.
    """
    b = real.size(0)
    fake = G(z)
    logits = D(torch.cat([real, fake.detach()])).float()
    loss_d = d_loss_bce(logits[:b], logits[b:])
    opt_d.zero_grad(set_to_none=True)
    loss_d.backward()
    opt_d.step()
    fake_logits = D(fake).float()
    loss_g = g_loss_nonsaturating(fake_logits)
    opt_g.zero_grad(set_to_none=True)
    loss_g.backward()
    opt_g.step()
    return loss_d.detach(), loss_g.detach()


class ToyGANTrainer:
    """Just enough of a trainer to grade toy steps: MLP ``G`` and ``D`` from a seed, Adam for each,
    and ``run_steps(n)``, which calls ``step_fn(G, D, opt_G, opt_D, real, z)`` with batches from
    ``sample_real(n, generator)`` and noise from the trainer's own seeded ``torch.Generator``."""

    def __init__(self, step_fn: Callable, sample_real: Callable, *, latent_dim: int = 1, data_dim: int = 1,
                 hidden: int = 32, batch: int = 64, lr_g: float = 2e-3, lr_d: float = 2e-3, seed: int = 0):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.G = make_generator(latent_dim, data_dim, hidden=hidden)
            self.D = make_discriminator(data_dim, hidden=hidden)
        self.opt_G = torch.optim.Adam(self.G.parameters(), lr=lr_g, betas=(0.5, 0.999))
        self.opt_D = torch.optim.Adam(self.D.parameters(), lr=lr_d, betas=(0.5, 0.999))
        self.step_fn, self.sample_real = step_fn, sample_real
        self.latent_dim, self.batch = latent_dim, batch
        self.gen = torch.Generator().manual_seed(seed + 1)

    def run_steps(self, n: int) -> None:
        for _ in range(n):
            real = self.sample_real(self.batch, self.gen)
            z = torch.randn(self.batch, self.latent_dim, generator=self.gen)
            self.step_fn(self.G, self.D, self.opt_G, self.opt_D, real, z)


def _tensors(trainer):
    """``(name, tensor)`` for everything a step changes: the networks (D, G; or a PairTrainer's ``names``), then
    their optimisers."""
    nets = tuple(getattr(trainer, "names", None) or ("D", "G"))
    for net in nets:
        module = getattr(trainer, f"{net}_raw", None)
        module = getattr(trainer, net) if module is None else module
        for key, value in module.state_dict().items():
            yield f"{net}.{key}", value
    for opt in (f"opt_{net}" for net in nets):
        for index, state in sorted(getattr(trainer, opt).state_dict()["state"].items()):
            for key, value in state.items():
                if torch.is_tensor(value):
                    yield f"{opt}.state[{index}].{key}", value


def _first_difference(mine, ref, rtol: float, atol: float) -> tuple[str, str] | None:
    """``(tensor name, what is wrong)`` for the first tensor of ``mine`` that does not match ``ref``."""
    a, b = dict(_tensors(mine)), dict(_tensors(ref))
    for name, want in b.items():
        got = a.get(name)
        if got is None or got.shape != want.shape:
            return name, "is missing or has another shape"
        if not torch.allclose(got.float(), want.float(), rtol=rtol, atol=atol, equal_nan=True):
            return name, f"differs: max |diff| {(got.float() - want.float()).abs().max().item():.1e}"
    extra = sorted(set(a) - set(b))
    return (extra[0], "exists only in your run") if extra else None


def _name(fn) -> str:
    return getattr(fn, "__name__", type(fn).__name__)


def _fail(text: str) -> AssertionError:
    hints = "\n".join(f"  - {h}" for h in USUAL_FAULTS)
    return AssertionError(f"{text}\nUsual faults:\n{hints}")


def grade_step(learner_step: Callable, reference_step: Callable, make_trainer: Callable, steps: int = 2,
               rtol: float = 1e-5, atol: float = 1e-6) -> bool:
    """Compare ``learner_step`` with ``reference_step`` from identical starts; print PASS or raise.

    ``make_trainer(step_fn)`` must build a fresh trainer from a fixed seed each time it is called (same
    initial weights, batches and noise). Both trainers run ``steps`` training steps, one at a time; after
    each, every tensor of D and G (``state_dict``, buffers included) and of both optimisers' states is
    compared. The first one that differs is named in an ``AssertionError`` (e.g. ``"D.net.0.weight differs
    after step 1: max |diff| 3.1e-03"``) together with the usual faults. An error raised inside the
    learner's step becomes an ``AssertionError`` too (``NotImplementedError`` is passed on unchanged).
    """
    def learner(*args):
        out = learner_step(*args)  # a step may return nothing: the trainer's bookkeeping gets NaNs then
        return out if isinstance(out, dict) else {}

    learner.__name__ = _name(learner_step)
    mine, ref = make_trainer(learner), make_trainer(reference_step)
    for step in range(1, steps + 1):
        ref.run_steps(1)
        try:
            mine.run_steps(1)
        except NotImplementedError:
            raise
        except Exception as err:  # the learner's code failed: say where, and what usually causes it
            why = ("\nA second backward() through G's graph: the fake batch was probably not detached in D's loss."
                   if "backward through the graph a second time" in str(err) else "")
            raise _fail(f"{_name(learner_step)} raised {type(err).__name__} in step {step}: {err}{why}") from err
        diff = _first_difference(mine, ref, rtol, atol)
        if diff:
            name, what = diff
            what = what.replace("differs:", f"differs after step {step}:") if what.startswith("differs") \
                else f"{what} after step {step}"
            raise _fail(f"{name} {what} ({_name(learner_step)} vs {_name(reference_step)})")
    n = sum(1 for _ in _tensors(ref))
    print(f"PASS: {_name(learner_step)} matches {_name(reference_step)} after {steps} step(s): "
          f"all {n} tensors of the networks and their optimisers agree")
    return True
