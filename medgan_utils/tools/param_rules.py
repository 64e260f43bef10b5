"""Value rules for notebook parameters, checked with their types before any kernel starts.

``medgan run -p EPOCHS 0`` or a sweep with ``SEED: -1`` used to start a kernel that failed a minute later (or, worse,
ran on). :func:`value_problem` says what is wrong with one value, by the parameter's name (the course uses one
name for one meaning in every notebook) and, for image sizes, by the networks of the notebook:

* counts (``EPOCHS``, ``BATCH_SIZE``, ``N_SEEDS``, ``*_EPOCHS``, ``*_STEPS``, widths ...): whole numbers >= 1;
  ``N_EVAL`` >= 10 (k-NN precision/recall and KID need a few images); ``SEED`` in 0..2**31-1;
* fractions (``FRACTIONS``, ``REAL_FRACTIONS``: a non-empty list) in (0, 1];
* rates and budgets (``LR*``, ``*_MIN``) > 0; lists of weights and ratios >= 0 and not empty;
* ``IMAGE_SIZE``/``SEG_SIZE``: 8..1024 px, and what the notebook's networks take (03: 4·2^k or 7·2^k;
  04: a multiple of 4; 05 and 06's ``SEG_SIZE``: a multiple of 8);
* ``PRECISION``: auto, fp32, bf16 or fp16; ``DEVICE``: auto, cpu, cuda, cuda:N or mps, and (``devices=True``)
  one that this machine has.
"""
from __future__ import annotations

import math
import numbers

from ..core.env import _DEVICE_RE

COUNTS = {"EPOCHS", "BATCH_SIZE", "N_SEEDS", "RING_SEEDS", "PER_CLASS", "MATMUL_N", "CHECKPOINT_EVERY", "LATENT_DIM",
          "TAMPER_N", "BASE", "DIFFUSION_SEEDS", "DP_TRAIN_N", "DP_BATCH", "DP_SEEDS"}
COUNT_SUFFIXES = ("_EPOCHS", "_STEPS", "_BASE")
FRACTIONS = {"FRACTIONS", "REAL_FRACTIONS"}
NON_NEGATIVE_LISTS = {"LAMBDA_ADV", "SYNTH_RATIOS", "EPSILONS"}
POSITIVE_LISTS = {"DP_EPSILONS", "DOSE_LEVELS", "SPECKLE_LOOKS", "COST_SIZES"}
#: (notebook number, parameter) -> (test, what the notebook's networks take)
SIZE_RULES = {
    ("03", "IMAGE_SIZE"): (lambda s: any(s % b == 0 and (s // b) >= 2 and (s // b) & (s // b - 1) == 0
                                         for b in (4, 7)), "4·2^k or 7·2^k px for the DCGAN, e.g. 28, 32, 64 or 128"),
    ("04", "IMAGE_SIZE"): (lambda s: s % 4 == 0, "a multiple of 4 for the conditional GAN, e.g. 28 or 64"),
    ("05", "IMAGE_SIZE"): (lambda s: s % 8 == 0, "a multiple of 8 (the U-Net pools three times), e.g. 64 or 128"),
    ("06", "SEG_SIZE"): (lambda s: s % 8 == 0, "a multiple of 8 (the U-Net pools three times), e.g. 64 or 128"),
}
MAX_SIZE = 1024
MAX_SEED = 2 ** 31 - 1


def _number(v) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(float(v))


def _whole(v, low: int, high: int | None = None) -> bool:
    return (isinstance(v, numbers.Integral) and not isinstance(v, bool) and v >= low
            and (high is None or v <= high))


def _list_of(v, ok) -> bool:
    return isinstance(v, (list, tuple)) and len(v) > 0 and all(ok(x) for x in v)


def _size_problem(notebook: str, key: str, v) -> str | None:
    if not _whole(v, 8, MAX_SIZE):
        return f"must be a whole number of pixels from 8 to {MAX_SIZE}"
    rule = SIZE_RULES.get((notebook[:2], key))
    if rule is not None and not rule[0](int(v)):
        return f"must be {rule[1]}"
    return None


def _device_problem(v, devices: bool) -> str | None:
    if not isinstance(v, str) or not _DEVICE_RE.match(v.strip().lower()):
        return "must name a device: auto, cpu, cuda, cuda:N or mps"
    if devices and v.strip().lower() != "auto":
        from ..core.device import DeviceUnavailable, available_devices, get_device

        try:
            get_device(v)
        except DeviceUnavailable:
            return f"names a device this machine does not have (available: {', '.join(available_devices())})"
    return None


def value_problem(notebook: str, key: str, value, *, devices: bool = True) -> str | None:
    """What is wrong with ``value`` for parameter ``key`` of ``notebook`` (e.g. "03_dcgan"), or ``None``.

    ``None`` values are left to the notebook (they mean "by mode"); the type was checked before.
    """
    if value is None:
        return None
    if key == "DEVICE":
        return _device_problem(value, devices)
    if key == "PRECISION":
        from ..core.precision import ALIASES, PRECISIONS

        ok = str(value).strip().lower() in (*PRECISIONS, *ALIASES)
        return None if ok else f"must be one of {', '.join(PRECISIONS)}"
    if key == "SEED":
        return None if _whole(value, 0, MAX_SEED) else f"must be a whole number from 0 to {MAX_SEED}"
    if key == "N_EVAL":
        return None if _whole(value, 10) else "must be a whole number >= 10 (generated images to score)"
    if key in COUNTS or key.endswith(COUNT_SUFFIXES):
        return None if _whole(value, 1) else "must be a whole number >= 1"
    if key == "SCALE":
        return None if _number(value) and value >= 1 else "must be a number >= 1"
    if key in ("IMAGE_SIZE", "SEG_SIZE"):
        return _size_problem(notebook, key, value)
    if key in FRACTIONS:
        ok = _list_of(value, lambda f: _number(f) and 0 < f <= 1)
        return None if ok else "must be a non-empty list of fractions in (0, 1], e.g. [0.25, 1.0]"
    if key.startswith("LR") or key.endswith("_MIN"):
        return None if _number(value) and value > 0 else "must be a number > 0"
    if key in NON_NEGATIVE_LISTS:
        return None if _list_of(value, lambda x: _number(x) and x >= 0) else "must be a non-empty list of numbers >= 0"
    if key in POSITIVE_LISTS:
        return None if _list_of(value, lambda x: _number(x) and x > 0) else "must be a non-empty list of numbers > 0"
    return None
