"""Fast mode sized by measured speed: time a few training steps, then train as many as fit the cell's budget.

A fixed epoch count takes 40 s on one laptop and 4 minutes on another (AVX2 without bf16 trains several times
slower than AVX-512 with bf16). :func:`measure_speed` times a short probe on a throwaway copy of the training
(so the real run starts from the same state and stays a deterministic function of the count it is given), and
:func:`units_for_budget` turns the speed into a count of steps or epochs within ``[minimum, maximum]``. The
choice is printed and recorded in ``results.json`` as ``metrics.fast_budget``.
"""
from __future__ import annotations

import math
import time

from ..core.errors import SettingError

__all__ = ["measure_speed", "units_for_budget", "fast_budget", "trainer_fast_budget"]


def measure_speed(probe, steps: int = 3, warmup: int = 1, clock=time.perf_counter) -> float:
    """Seconds per training step of ``probe(n)`` (which runs n steps), after ``warmup`` untimed steps."""
    if warmup:
        probe(int(warmup))
    t0 = clock()
    probe(int(steps))
    seconds = clock() - t0
    return max(seconds, 1e-9) / int(steps)


def units_for_budget(seconds_per_unit: float, budget_s: float, minimum: int, maximum: int) -> int:
    """How many units (steps or epochs) of ``seconds_per_unit`` fit ``budget_s``, clamped to [minimum, maximum]."""
    if not (budget_s > 0 and math.isfinite(budget_s)):
        raise SettingError(f"A fast-mode budget must be a positive number of seconds, got {budget_s!r}.")
    if minimum < 1 or maximum < minimum:
        raise SettingError(f"Need 1 <= minimum <= maximum, got {minimum} and {maximum}.")
    return int(min(maximum, max(minimum, math.floor(budget_s / max(seconds_per_unit, 1e-9)))))


def fast_budget(probe, *, budget_s: float, steps_per_unit: int, images_per_step: int, minimum: int, maximum: int,
                probe_steps: int = 3, unit: str = "epochs", clock=time.perf_counter) -> dict:
    """Measure the speed with ``probe`` and choose the number of ``unit`` that fit ``budget_s``.

    Returns ``{"units", "unit", "steps", "img_per_s", "budget_s", "seconds_per_step", "probe_steps",
    "expected_s", "at_minimum"}``; ``at_minimum`` says the machine is too slow to fit even the minimum.
    """
    per_step = measure_speed(probe, probe_steps, clock=clock)
    units = units_for_budget(per_step * steps_per_unit, budget_s, minimum, maximum)
    return {"units": units, "unit": unit, "steps": units * steps_per_unit,
            "img_per_s": round(images_per_step / per_step, 1), "budget_s": float(budget_s),
            "seconds_per_step": per_step, "probe_steps": int(probe_steps),
            "expected_s": round(units * steps_per_unit * per_step, 1),
            "at_minimum": per_step * steps_per_unit * minimum > budget_s}


def trainer_fast_budget(make_trainer, *, budget_s: float, minimum: int, maximum: int, probe_steps: int = 3,
                        clock=time.perf_counter) -> dict:
    """:func:`fast_budget` in epochs for a :class:`~medgan_utils.gan.trainer.DCGANTrainer`.

    ``make_trainer()`` builds a throwaway trainer like the real one (no checkpoints are written by the probe: it
    only calls ``run_steps``); it is dropped afterwards, so the real run starts from its own seeded state.
    """
    probe = make_trainer()
    try:
        return fast_budget(probe.run_steps, budget_s=budget_s, steps_per_unit=probe.steps_per_epoch,
                           images_per_step=probe.batch_size, minimum=minimum, maximum=maximum,
                           probe_steps=probe_steps, unit="epochs", clock=clock)
    finally:
        del probe
