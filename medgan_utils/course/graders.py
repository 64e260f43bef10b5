"""Graders for the training steps that learners write themselves (notebooks 02–06).

:func:`grade_step` runs the learner's step and a reference step from identical starts (same seed, same initial
weights, same batches and noise) and compares every tensor afterwards: the weights and buffers of every network
and every optimiser's state. It passes only if the two runs agree (to float rounding). Otherwise it says what is
wrong, in this order:

1. the step raised an error (the learner's frames are shown, the package's are not);
2. the step changed nothing ("your step changed nothing"), or left a network's weights untouched;
3. only buffers differ (batch norm's running statistics, spectral norm's vectors): the networks were called a
   different number of times or in a different order, shown next to the reference's order of calls;
4. the first tensor that differs, with the usual faults *of that exercise* (``exercise="03.1"``);
5. the return contract (nothing returned, a missing key, a loss still attached to its graph, a returned number
   that differs from the reference's): the exercise's, else the shape of what the reference returns.

A *trainer* is anything with its networks (``G`` and ``D``, or a PairTrainer's ``names``), an optimiser
``opt_<name>`` for each, and ``run_steps(n)``: :class:`~medgan_utils.gan.DCGANTrainer` (steps
``step(tr, real, z)``), :class:`~medgan_utils.gan.PairTrainer`, or the small :class:`ToyGANTrainer` of
notebook 02 (steps ``step(G, D, opt_g, opt_d, real, z)``, reference :func:`toy_gan_step`).
"""
from __future__ import annotations

import inspect
from typing import Callable

import torch

from ..gan.losses import d_loss_bce, g_loss_nonsaturating
from .feedback import AnswerIncorrect
from .step_faults import GENERIC_FAULTS, spec_for
from .toy import make_discriminator, make_generator

__all__ = ["grade_step", "toy_gan_step", "ToyGANTrainer", "USUAL_FAULTS"]

USUAL_FAULTS = GENERIC_FAULTS


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


# ------------------------------------------------------------------------------------------ the trainer's state

def _networks(trainer) -> list[tuple[str, torch.nn.Module]]:
    nets = tuple(getattr(trainer, "names", None) or ("D", "G"))
    out = []
    for net in nets:
        module = getattr(trainer, f"{net}_raw", None)
        out.append((net, getattr(trainer, net) if module is None else module))
    return out


def _tensors(trainer):
    """``(name, tensor, kind)`` for everything a step changes: the networks' parameters and buffers, then their
    optimisers' states. ``kind`` is ``"param"``, ``"buffer"`` or ``"optim"``."""
    nets = _networks(trainer)
    for net, module in nets:
        buffers = {k for k, _ in module.named_buffers()}
        for key, value in module.state_dict().items():
            yield f"{net}.{key}", value, "buffer" if key in buffers else "param"
    for opt in (f"opt_{net}" for net, _ in nets):
        for index, state in sorted(getattr(trainer, opt).state_dict()["state"].items()):
            for key, value in state.items():
                if torch.is_tensor(value):
                    yield f"{opt}.state[{index}].{key}", value, "optim"


def _snapshot(trainer) -> dict:
    return {name: (value.detach().clone(), kind) for name, value, kind in _tensors(trainer)}


def _differs(a: torch.Tensor, b: torch.Tensor, rtol: float, atol: float) -> bool:
    return a.shape != b.shape or not torch.allclose(a.float(), b.float(), rtol=rtol, atol=atol, equal_nan=True)


def _max_diff(got, want: torch.Tensor) -> float:
    if got is None or got[0].shape != want.shape:
        return float("inf")
    return (got[0].float() - want.float()).abs().max().item()


def _differences(mine: dict, ref: dict, rtol: float, atol: float) -> list[tuple[str, str, str]]:
    """``(name, kind, what)`` for every tensor of ``ref`` that ``mine`` lacks or does not match, then extras."""
    out = []
    for name, (want, kind) in ref.items():
        got = mine.get(name)
        if got is None or got[0].shape != want.shape:
            out.append((name, kind, "is missing or has another shape"))
        elif _differs(got[0], want, rtol, atol):
            out.append((name, kind, f"differs: max |diff| {(got[0].float() - want.float()).abs().max().item():.1e}"))
    out += [(name, mine[name][1], "exists only in your run") for name in sorted(set(mine) - set(ref))]
    return out


# ------------------------------------------------------------------------------------------ the order of calls

class _CallTrace:
    """Records, during one step, each network call (with its inputs named) and each optimiser step."""

    def __init__(self, trainer, arg_names: list[str]):
        self.calls, self.handles, self.known, self.arg_names = [], [], {}, arg_names
        for net, module in _networks(trainer):
            self.handles.append(module.register_forward_pre_hook(self._pre(net)))
            self.handles.append(module.register_forward_hook(self._post(net)))
            self.handles.append(getattr(trainer, f"opt_{net}").register_step_post_hook(self._opt(net)))

    def name_args(self, args) -> None:
        self.known = {a.data_ptr(): n for n, a in zip(self.arg_names, args) if torch.is_tensor(a)}

    def _label(self, x) -> str:
        return self.known.get(x.data_ptr(), "·") if torch.is_tensor(x) and x.numel() else "·"

    def _pre(self, net):
        def hook(_module, args):
            self.calls.append(f"{net}({', '.join(self._label(a) for a in args)})")
        return hook

    def _post(self, net):
        def hook(_module, _args, out):
            if torch.is_tensor(out) and out.numel():
                self.known.setdefault(out.data_ptr(), f"{net}'s output")
        return hook

    def _opt(self, net):
        def hook(*_):
            self.calls.append(f"opt_{net}.step()")
        return hook

    def close(self) -> str:
        for h in self.handles:
            h.remove()
        return " → ".join(self.calls) or "(no network call)"


def _param_names(fn) -> list[str]:
    try:
        return list(inspect.signature(fn).parameters)
    except (TypeError, ValueError):
        return []


# ------------------------------------------------------------------------------------------ messages

def _name(fn) -> str:
    return getattr(fn, "__name__", type(fn).__name__)


def _fail(text: str, exercise: str | None, order: str | None = None) -> AnswerIncorrect:
    spec = spec_for(exercise)
    faults = spec.faults if spec else GENERIC_FAULTS
    head = f"Exercise {exercise}: " if exercise else ""
    tail = f"\nThe reference's order: {spec.order}" if spec and order is None else ""
    hints = "\n".join(f"  - {h}" for h in faults)
    return AnswerIncorrect(f"{head}{text}{tail}\nUsual faults{' of exercise ' + exercise if exercise else ''}:\n{hints}")


def _shape_of(ref_out, spec) -> tuple[str, object, str]:
    """``(kind, what, signature)``: the exercise's contract, else the shape of the reference's return value."""
    if spec is not None:
        return (*spec.returns, spec.signature)
    if isinstance(ref_out, dict):
        return "dict", tuple(ref_out), "the reference returns a dict with " + ", ".join(map(repr, ref_out))
    if isinstance(ref_out, (tuple, list)):
        return "tuple", len(ref_out), f"the reference returns a tuple of {len(ref_out)}"
    return "none", None, ""


def _contract(out, ref_out, spec, who: str) -> str | None:
    """What is wrong with the learner's return value ``out`` (None: nothing)."""
    kind, what, signature = _shape_of(ref_out, spec)
    if kind == "none":
        return None
    if out is None:
        want = f"a tuple of {what}" if kind == "tuple" else "a dict with " + ", ".join(repr(k) for k in what)
        return f"{who} returned nothing (None): it must return {want} ({signature})."
    if kind == "tuple":
        if not isinstance(out, (tuple, list)) or len(out) != what:
            return f"{who} returned {type(out).__name__} {out!r:.80}: it must return a tuple of {what} losses."
        pairs = [(f"value {i + 1}", o, r) for i, (o, r) in enumerate(zip(out, ref_out))]
    else:
        if not isinstance(out, dict):
            return f"{who} returned a {type(out).__name__}: it must return a dict ({signature})."
        need = [k for k in what if k in ref_out]
        missing = [k for k in need if k not in out]
        if missing:
            return f"{who}'s dict lacks {', '.join(repr(k) for k in missing)} ({signature})."
        pairs = [(repr(k), out[k], ref_out[k]) for k in need]
    for label, got, want in pairs:
        if not torch.is_tensor(got) or got.numel() != 1:
            return f"{who}'s {label} is {type(got).__name__}, not a one-number tensor (a loss or a mean)."
        if got.requires_grad:
            return (f"{who}'s {label} is still attached to its graph: return loss.detach(), so that the step's graph "
                    "can be freed.")
        if torch.is_tensor(want) and _differs(got.detach().reshape(()), want.detach().reshape(()), 1e-4, 1e-5):
            return (f"{who}'s {label} is {got.item():.5g}, the reference's is {want.item():.5g} after step 1 "
                    "(weights may agree while a returned number is computed on the wrong tensor).")
    return None


def _unchanged(before: dict, after: dict, ref_before: dict, ref_after: dict, who: str) -> str | None:
    """"Your step changed nothing", or which network's weights it left untouched although the reference moves them."""
    if set(before) == set(after) and not any(_differs(after[n][0], before[n][0], 0, 0) for n in before):
        return (f"your step changed nothing: after one call of {who} every weight, buffer and optimiser state is "
                "exactly as before. Did you call the optimisers' step (tr.scaler.step(opt) / opt.step())?")
    nets = sorted({n.split(".")[0] for n, (_, k) in ref_before.items() if k == "param"})
    for net in nets:
        moved = lambda b, a: any(_differs(a[n][0], v, 0, 0) for n, (v, k) in b.items()  # noqa: E731
                                 if k == "param" and n.startswith(net + ".") and n in a)
        if moved(ref_before, ref_after) and not moved(before, after):
            return (f"your step left {net}'s weights unchanged (the reference updates them): opt_{net} never "
                    f"stepped, or {net}'s loss sent it no gradient.")
    return None


# ------------------------------------------------------------------------------------------ grade_step

def _check_step_one(who: str, mine, ref, returns, starts, exercise, rtol, atol) -> list:
    """After step 1: nothing changed, buffers only, then (if the tensors agree) the return contract; returns the
    differences left for the caller to report."""
    (before, ref_before), spec = starts, spec_for(exercise)
    (mine_tr, mine_calls), (ref_tr, ref_calls) = mine, ref
    after, ref_after = _snapshot(mine_tr), _snapshot(ref_tr)
    problem = _unchanged(before, after, ref_before, ref_after, who)
    if problem:
        raise _fail(problem, exercise)
    diffs = _differences(after, ref_after, rtol, atol)
    buffers = [d for d in diffs if d[1] == "buffer"]
    rest = max((_max_diff(after.get(n), ref_after[n][0]) if n in ref_after else float("inf")
                for n, k, _ in diffs if k != "buffer"), default=0.0)
    if buffers and (len(buffers) == len(diffs) or (mine_calls != ref_calls and rest < 1e-4)):
        name, _, what = buffers[0]
        same = ("every weight and optimiser state matches" if len(buffers) == len(diffs) else
                f"the weights agree up to float rounding (max |diff| {rest:.1e}, from a differently built graph)")
        raise _fail(f"only buffers differ after step 1 (first: {name} {what}); {same}. You called the networks a "
                    f"different number of times or in a different order: batch norm moves its running statistics "
                    f"(and spectral norm its vectors) at every call in training mode.\n  your calls:      "
                    f"{mine_calls}\n  the reference: {ref_calls}"
                    + (f"\nThe task's order: {spec.order}" if spec else ""), exercise, order="shown")
    problem = None if diffs else _contract(returns[0], returns[1], spec, who)
    if problem:
        raise _fail(problem, exercise)
    return diffs


def grade_step(learner_step: Callable, reference_step: Callable, make_trainer: Callable, steps: int = 2,
               rtol: float = 1e-5, atol: float = 1e-6, *, exercise: str | None = None) -> bool:
    """Compare ``learner_step`` with ``reference_step`` from identical starts; print PASS or raise.

    ``make_trainer(step_fn)`` must build a fresh trainer from a fixed seed each time it is called (same initial
    weights, batches and noise). Both trainers run ``steps`` training steps, one at a time; after each, every
    tensor of the networks (``state_dict``, buffers included) and of their optimisers' states is compared.
    ``exercise`` (e.g. ``"03.1"``) adds that exercise's return contract and usual faults. Every failure is an
    :class:`~medgan_utils.course.feedback.AnswerIncorrect` (an ``AssertionError``) whose message says what is
    wrong; ``NotImplementedError`` (an unanswered exercise) passes through unchanged.
    """
    returns = [None, None]

    def learner(*args):
        returns[0] = learner_step(*args)
        return returns[0] if isinstance(returns[0], dict) else {}  # the trainers' bookkeeping wants a dict

    def reference(*args):
        returns[1] = reference_step(*args)
        return returns[1] if isinstance(returns[1], dict) else {}

    who = learner.__name__ = _name(learner_step)
    reference.__name__ = _name(reference_step)
    mine, ref = make_trainer(learner), make_trainer(reference)
    starts = (_snapshot(mine), _snapshot(ref))
    arg_names = _param_names(reference_step)
    for step in range(1, steps + 1):
        if step == 1:
            ref_calls = _run_one(ref, reference_step, step, exercise, arg_names)
            mine_calls = _run_one(mine, learner_step, step, exercise, arg_names)
            diffs = _check_step_one(who, (mine, mine_calls), (ref, ref_calls), returns, starts, exercise, rtol, atol)
        else:
            _run_one(ref, reference_step, step, exercise)
            _run_one(mine, learner_step, step, exercise)
            diffs = _differences(_snapshot(mine), _snapshot(ref), rtol, atol)
        if diffs:
            name, _, what = diffs[0]
            what = what.replace("differs:", f"differs after step {step}:") if what.startswith("differs") \
                else f"{what} after step {step}"
            raise _fail(f"{name} {what} ({who} vs {_name(reference_step)})", exercise)
    n = sum(1 for _ in _tensors(ref))
    print(f"PASS: {who} matches {_name(reference_step)} after {steps} step(s): all {n} tensors of the networks and "
          "their optimisers agree, and so do the numbers it returns")
    return True


def _run_one(trainer, step_fn, step: int, exercise: str | None, arg_names: list | None = None) -> str | None:
    """One training step of ``trainer``; with ``arg_names``, the calls it made (see :class:`_CallTrace`)."""
    trace = _CallTrace(trainer, arg_names) if arg_names is not None else None
    inner = trainer.step_fn
    if trace is not None:
        def named(*args):
            trace.name_args(args)
            return inner(*args)
        trainer.step_fn = named
    try:
        trainer.run_steps(1)
    except (NotImplementedError, AnswerIncorrect):
        raise
    except Exception as err:  # the learner's code failed: say where, and what usually causes it
        why = ("\nA second backward() through G's graph: the fake batch was probably not detached in D's loss."
               if "backward through the graph a second time" in str(err) else "")
        raise _fail(f"{_name(step_fn)} raised {type(err).__name__} in step {step}: {err}{why}", exercise) from err
    finally:
        trainer.step_fn = inner
        calls = trace.close() if trace is not None else None
    return calls
