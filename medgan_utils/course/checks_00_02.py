"""The checks of exercises 00.1–02.6 (see :mod:`medgan_utils.course.checking`)."""
from __future__ import annotations

import math
from unittest import mock

import numpy as np
import torch

from .checking import call, close, number, quiz, register, wrong


# ------------------------------------------------------------------------------------------ 00 setup

@register("00.1", ("forced", "mps_result"), tests="forced is the CPU device that get_device() returned under "
          "MEDGAN_DEVICE=cpu; mps_result is the device or the error text for 'mps'; MEDGAN_DEVICE is not left set",
          minutes=0.02)
def _00_1(a):
    from ..core.device import get_device, mps_available
    from ..core.env import read_env

    forced = a["forced"]
    if not isinstance(forced, torch.device):
        raise wrong(f"forced should be what get_device() returned (a torch.device), not {type(forced).__name__}.")
    if forced.type != "cpu":
        raise wrong(f"forced is {forced}: inside `with temporary_env(MEDGAN_DEVICE=\"cpu\"):` get_device() returns "
                    "the CPU. Did you call get_device() inside the with block?")
    got = a["mps_result"]
    text = str(got)
    if mps_available() and not (isinstance(got, torch.device) and got.type == "mps"):
        raise wrong(f"this machine has Apple MPS, so get_device() under MEDGAN_DEVICE=mps returns mps, not {text!r}.")
    if not mps_available() and "mps" not in text.lower():
        raise wrong(f"mps_result should be what happened for 'mps' here: no MPS on this machine, so get_device() "
                    f"raises an error that says so (store str(err)); got {text!r:.80}.")
    if read_env().device == "mps" and not mps_available():
        raise wrong("MEDGAN_DEVICE is still 'mps' after your code: set it only inside `with temporary_env(...)`.")
    get_device()  # the environment is usable again
    return "the CPU was forced through MEDGAN_DEVICE, and the 'mps' request was reported as it behaves here."


@register("00.2", ("rates", "quiz_00_2"), ("cfg",), tests="GFLOP/s for n = 32, 128, 512 are positive, n = 512 "
          "beats n = 32 (behaviour), n = 512 is within 20x of a fresh time_matmul measurement, and the question on "
          "fixed costs", minutes=0.05)
def _00_2(a):
    from .tour import time_matmul

    rates = a["rates"]
    if not isinstance(rates, dict) or not {32, 128, 512} <= set(rates):
        raise wrong(f"rates should be a dict {{n: GFLOP/s}} with at least n = 32, 128 and 512; got {rates!r:.80}.")
    vals = {n: number(f"rates[{n}]", v, 0, 1e7) for n, v in rates.items()}
    if min(vals.values()) <= 0:
        raise wrong("a rate of 0 GFLOP/s: use time_matmul(cfg.device, n=size)['gflops'].")
    fresh = time_matmul(a["cfg"].device, n=512, repeats=3)["gflops"]
    if not fresh / 20 <= vals[512] <= fresh * 20:
        raise wrong(f"rates[512] = {vals[512]:.3g}, but a fresh measurement gives about {fresh:.3g} GFLOP/s here. "
                    "Store time_matmul(...)['gflops'], not the seconds or the number of operations.")
    if not vals[512] > vals[32]:
        raise wrong(f"rates[512] = {vals[512]:.3g} is not above rates[32] = {vals[32]:.3g}: a 512 x 512 product "
                    "should run many times more operations per second. Did you swap the sizes?")
    quiz(a, "quiz_00_2", "b", "A small product does few operations per call, so the fixed costs of each call "
         "(Python, dispatch, thread start-up) dominate: (b).")
    return f"{vals[512] / vals[32]:.0f}x more operations per second at n = 512 than at n = 32."


@register("00.3", ("offline_ready",), tests="offline_ready() returns True for a report where every dataset is "
          "verified, and False (printing each fix command) when one is missing (behaviour, on made-up reports)",
          minutes=0.02)
def _00_3(a):
    import builtins

    fn = a["offline_ready"]
    ok = {"name": "pneumoniamnist", "size": 28, "status": "verified", "ready_offline": True, "fix": None}
    bad = {"name": "busi", "size": 128, "status": "missing", "ready_offline": False,
           "fix": "medgan data fetch busi --size 128"}
    outcomes = {}
    for label, datasets in (("all ready", [ok]), ("one missing", [ok, bad])):
        fake = lambda *args, _d=datasets, **kw: {"datasets": [dict(d) for d in _d]}  # noqa: E731
        printed = []
        glb = getattr(fn, "__globals__", {})
        patches = [mock.patch.dict(glb, {"environment_report": fake})] if "environment_report" in glb else []
        patches += [mock.patch(f"medgan_utils.{m}environment_report", fake) for m in ("", "course.", "course.envinfo.")]
        patches.append(mock.patch.object(builtins, "print", lambda *p, **k: printed.append(" ".join(map(str, p)))))
        for p in patches:
            p.start()
        try:
            outcomes[label] = (call("offline_ready()", fn), "\n".join(printed))
        finally:
            for p in reversed(patches):
                p.stop()
    if outcomes["all ready"][0] is not True:
        raise wrong(f"offline_ready() returned {outcomes['all ready'][0]!r} when every dataset is verified: it should "
                    "return True (use environment_report()['datasets'] and each entry's 'ready_offline').")
    result, printed = outcomes["one missing"]
    if result is not False:
        raise wrong(f"offline_ready() returned {result!r} when busi is missing: it should return False.")
    if bad["fix"] not in printed:
        raise wrong("offline_ready() did not print the fix command of the missing dataset (its 'fix' entry, e.g. "
                    f"{bad['fix']!r}).")
    return "True when every dataset is verified; False, with the fix command printed, when one is missing."


# ------------------------------------------------------------------------------------------ 01 background

def _split(a, name, split):
    return a["DATA"][name][split]


@register("01.1", ("majority_acc",), ("DATA",), tests="the majority-class accuracy equals class_balance's "
          "majority_rate of the PneumoniaMNIST test split (±1e-9)", minutes=0.02)
def _01_1(a):
    from .tour import class_balance

    b = class_balance(_split(a, "pneumoniamnist", "test"))
    x = number("majority_acc", a["majority_acc"], 0, max(1.0, b["n"]))
    if x > 1:
        raise wrong(f"majority_acc = {x:g} is a count: divide by the number of test images ({b['n']}).")
    if abs(x - (1 - b["majority_rate"])) < 1e-9 and b["majority_rate"] != 0.5:
        raise wrong(f"majority_acc = {x:.4f} is the share of the minority class: always answering the *majority* "
                    f"class is right {b['majority_rate']:.4f} of the time.")
    close("majority_acc", x, b["majority_rate"], 1e-9, "Count the images per class with torch.bincount(labels).")
    return f"always answering '{b['majority_name']}' is right {x:.1%} of the time on the test split."


@register("01.2", ("i_max",), ("busi_train",), tests="i_max is the index of the BUSI training image with the "
          "largest lesion fraction (recomputed with lesion_fraction)", minutes=0.02)
def _01_2(a):
    from .tour import lesion_fraction

    frac = lesion_fraction(a["busi_train"].masks)
    i = int(number("i_max", a["i_max"], 0, len(frac) - 1))
    best = int(frac.argmax())
    if frac[i] < frac[best]:
        hint = " That is the smallest lesion: use argmax, not argmin." if i == int(frac.argmin()) else ""
        raise wrong(f"image #{i} has a lesion of {frac[i]:.1%} of the image; image #{best} has {frac[best]:.1%}.{hint}")
    return f"training image #{i}: its lesion covers {frac[i]:.1%} of the image."


@register("01.3", ("minority", "label0_name"), ("DATA",), tests="the minority label of every BreastMNIST split "
          "and the name of label 0, recomputed with class_balance", minutes=0.02)
def _01_3(a):
    from .tour import class_balance

    splits, minority = a["DATA"]["breastmnist"], a["minority"]
    if not isinstance(minority, dict) or set(minority) != set(splits):
        raise wrong(f"minority should be a dict with one entry per split {sorted(splits)}, e.g. "
                    f"{{'train': 0, ...}}; got {minority!r:.80}.")
    for split, ds in splits.items():
        want = class_balance(ds)["minority_label"]
        if int(minority[split]) != want:
            raise wrong(f"minority[{split!r}] = {minority[split]!r}, but label {want} is the rarer class there.")
    name = splits["train"].label_names[0]
    if str(a["label0_name"]).strip().lower() != str(name).lower():
        raise wrong(f"label0_name = {a['label0_name']!r}; label 0 of BreastMNIST means {name!r} (label_names[0]).")
    return f"label {minority['train']} is the minority in every split; label 0 is {name!r}."


@register("01.4", ("closest",), ("DATA", "busi_train"), tests="the three closest BUSI test/train pairs, recomputed "
          "with nearest_neighbours", minutes=0.05)
def _01_4(a):
    from .tour import nearest_neighbours

    test = a["DATA"]["busi"]["test"]
    d, idx = nearest_neighbours(test.images, a["busi_train"].images)
    want = [(t, int(idx[t])) for t in d.argsort()[:3].tolist()]
    try:
        got = [(int(t), int(r)) for t, r in a["closest"]]
    except (TypeError, ValueError):
        raise wrong("closest should be a list of three (test index, train index) pairs, closest first.") from None
    if got[:3] != want:
        swapped = [(r, t) for t, r in want] == got[:3]
        raise wrong(f"closest = {got[:3]}, but the three closest pairs are {want}."
                    + (" You swapped the order inside each pair: (test, train)." if swapped else
                       " Search from each *test* image into the *training* images, then sort by distance."))
    return f"the closest pairs {want} (RMS distances {', '.join(f'{d[t]:.3f}' for t, _ in want)})."


# ------------------------------------------------------------------------------------------ 02 minimax

@register("02.1", ("divergences", "preferred", "quiz_02_1"), ("p_data",), tests="JSD and both KLs of p_drop and "
          "p_blur against a grid recomputation (±2 %), the generator C(G) prefers, which KL punishes mode dropping",
          minutes=0.02)
def _02_1(a):
    from .toy import Mixture1D, jsd_on_grid, kl_on_grid

    p = a["p_data"]
    mean = sum(w * m for w, m in zip(p.weights, p.means))
    var = sum(w * (s ** 2 + m ** 2) for w, m, s in zip(p.weights, p.means, p.stds)) - mean ** 2
    x = np.linspace(-12, 12, 12001)
    cands = {"p_drop": Mixture1D.gaussian(p.means[1], p.stds[1]), "p_blur": Mixture1D.gaussian(mean, math.sqrt(var))}
    div = a["divergences"]
    if not isinstance(div, dict) or set(div) != set(cands):
        raise wrong("divergences should be {'p_drop': (JSD, KL(p_data||p_g), KL(p_g||p_data)), 'p_blur': (...)}.")
    for name, q in cands.items():
        pa, qa = p.pdf(x), q.pdf(x)
        want = (jsd_on_grid(pa, qa, x), kl_on_grid(pa, qa, x), kl_on_grid(qa, pa, x))
        got = [number(f"divergences[{name!r}]", v) for v in div[name]]
        if len(got) != 3:
            raise wrong(f"divergences[{name!r}] should hold three numbers: JSD, KL(p_data||p_g), KL(p_g||p_data).")
        if abs(got[1] - want[2]) < 0.02 * want[2] and abs(got[2] - want[1]) < 0.02 * want[1]:
            raise wrong(f"for {name} your two KLs are swapped: KL(p_data||p_g) = {want[1]:.3f}, KL(p_g||p_data) = "
                        f"{want[2]:.3f}. kl_on_grid(a, b, x) is KL(a||b).")
        for label, g, w in zip(("JSD", "KL(p_data||p_g)", "KL(p_g||p_data)"), got, want):
            close(f"{label} of {name}", g, w, 0.02 * abs(w) + 1e-4, "Use a wide, fine grid such as "
                  "np.linspace(-10, 10, 8001); p_blur has the mixture's mean and standard deviation.")
    best = min(cands, key=lambda n: div[n][0])
    if str(a["preferred"]).strip() != best:
        raise wrong(f"preferred = {a['preferred']!r}: C(G) = -log 4 + 2 JSD is lower for {best} (smaller JSD).")
    quiz(a, "quiz_02_1", "a", "KL(p_data||p_g) weighs the log-ratio by p_data: where data exist and p_g has "
         "almost no mass (a dropped mode) it explodes, so (a) punishes mode dropping harder.")
    return f"C(G) prefers {best}; KL(p_data||p_g) of p_drop is {div['p_drop'][1]:.2f}, the largest of the six."


@register("02.2", ("first_bad",), tests="the smallest |logit| where each naive loss breaks in float32 lies in the "
          "stated band (saturating 12–18, non-saturating -105 to -86)", minutes=0.02)
def _02_2(a):
    fb = a["first_bad"]
    if not isinstance(fb, dict) or set(fb) != {"saturating", "non-saturating"}:
        raise wrong("first_bad should be {'saturating': logit, 'non-saturating': logit}: for each naive loss the "
                    "logit of smallest |l| in [-120, 120] where the value or the gradient is wrong or not finite.")
    sat, ns = number("first_bad['saturating']", fb["saturating"]), number("first_bad['non-saturating']",
                                                                          fb["non-saturating"])
    if not 12 <= sat <= 18:
        raise wrong(f"first_bad['saturating'] = {sat:g}. log(1 - sigmoid(l)) fails for large *positive* logits: "
                    "sigmoid rounds to 1 in float32 near l = 17 (1 - 1 = 0, log 0 = -inf), and loses its digits a "
                    "little before. Compare value and gradient with g_loss_saturating at every integer logit.")
    if not -105 <= ns <= -86:
        raise wrong(f"first_bad['non-saturating'] = {ns:g}. -log(sigmoid(l)) fails for large *negative* logits, "
                    "where sigmoid(l) underflows to 0 in float32 (somewhere between l = -89 and l = -104).")
    return f"the naive saturating loss breaks from l = {sat:g}, the naive non-saturating one from l = {ns:g}."


@register("02.3", ("flat_from", "quiz_02_3"), ("c_of_g", "p_ref"), tests="the shift beyond which dC/dδ stays below "
          "1 % of its peak, against a central-difference recomputation (±0.3), and what it means for G", minutes=0.1)
def _02_3(a):
    c_of_g, p_ref = a["c_of_g"], a["p_ref"]
    deltas, h = np.linspace(0, 8, 33), 1e-3
    slopes = np.array([(c_of_g(p_ref, p_ref.shifted(d + h)) - c_of_g(p_ref, p_ref.shifted(d - h))) / (2 * h)
                       for d in deltas])
    peak = int(np.argmax(np.abs(slopes)))
    flat = deltas[(np.abs(slopes) < 0.01 * np.abs(slopes[peak])) & (deltas > deltas[peak])]
    want = float(flat.min())
    got = number("flat_from", a["flat_from"], 0, 100)
    if got <= deltas[peak]:
        raise wrong(f"flat_from = {got:g} lies before the steepest point (δ ≈ {deltas[peak]:.2f}): look for the "
                    "first shift *beyond* the peak where |dC/dδ| falls below 1 % of its largest value.")
    close("flat_from", got, want, 0.3, "Differentiate c_of_g(p_ref, p_ref.shifted(δ)) by central differences.")
    quiz(a, "quiz_02_3", "b", "Against an optimal D the minimax criterion is flat far from the data: a generator "
         "that starts far away gets almost no gradient and barely moves (b).")
    return f"C(G) is flat (slope < 1 % of its peak) from δ ≈ {want:.2f} on."


def _ring_outcome(trace, min_share: float = 0.2) -> tuple[str, int, int]:
    """'spreads' (>= 3 of 8 modes at the end), else 'hops' (the dominant mode changed), else 'stays'."""
    dominant = [int(t[3][1].argmax()) for t in trace if float(t[3][1].max()) >= min_share]
    hops = sum(x != y for x, y in zip(dominant, dominant[1:]))
    modes = int(trace[-1][1])
    return ("spreads" if modes >= 3 else "hops" if hops else "stays"), hops, modes


@register("02.4", ("ring_traces", "outcome"), ("EX_RING_STEPS",), tests="two seeds trained for EX_RING_STEPS steps "
          "with lr_G = 1e-4 (the trace ends there, modes in 0..8), and each seed's verdict matches its own trace",
          minutes=0.35)
def _02_4(a):
    traces, outcome, steps = a["ring_traces"], a["outcome"], int(a["EX_RING_STEPS"])
    if not isinstance(traces, dict) or len(traces) < 2:
        raise wrong("ring_traces should be a dict {seed: trace} with two seeds (the trace that "
                    "train_ring_gan(lr_g=1e-4, steps=EX_RING_STEPS, seed=seed) returns).")
    said = []
    for seed, trace in traces.items():
        if not trace or int(trace[-1][0]) != steps:
            raise wrong(f"the trace of seed {seed} ends at step {trace[-1][0] if trace else None}, not at "
                        f"EX_RING_STEPS = {steps}: pass steps=EX_RING_STEPS.")
        if not all(0 <= int(t[1]) <= 8 for t in trace):
            raise wrong(f"the trace of seed {seed} does not look like train_ring_gan's (modes covered in 0..8).")
        want, hops, modes = _ring_outcome(trace)
        got = str(outcome.get(seed, "")).strip().lower() if isinstance(outcome, dict) else ""
        if got not in ("stays", "hops", "spreads"):
            raise wrong(f"outcome[{seed}] should be 'stays', 'hops' or 'spreads'; got {got or None!r}.")
        if got != want:
            raise wrong(f"seed {seed}: you said {got!r}, but its trace shows {modes} of 8 modes at the end and "
                        f"{hops} change(s) of the dominant mode (counted while it holds >= 20 % of the samples), "
                        f"which is {want!r} by the task's rule.")
        said.append(f"seed {seed} {want}")
    return "; ".join(said) + f" (after {steps} steps)."


FAULTS_02_5 = frozenset("abcdef")


@register("02.5", ("faults_found",), tests="the set of real faults chosen from the list (a)–(i): all six faults, "
          "none of the three distractors", minutes=0.01)
def _02_5(a):
    why = {"g": "LeakyReLU(0.2) is the usual choice in a DCGAN discriminator, not a fault",
           "h": "a sigmoid output with BinaryCrossentropy does train (logits are only numerically safer, see 02.2)",
           "i": "Conv2DTranspose with strides=2 and padding='same' does double the size (8 → 16 → 32 → 64)"}
    try:
        got = {str(x).strip().lower().strip("()") for x in a["faults_found"]}
    except TypeError:
        raise wrong("faults_found should be a set of letters, e.g. {'a', 'c'}.") from None
    extra, missed = sorted(got - FAULTS_02_5), sorted(FAULTS_02_5 - got)
    if extra:
        raise wrong("not faults: " + "; ".join(f"({e}) {why.get(e, 'not in the list')}" for e in extra) + ".")
    if missed:
        raise wrong(f"you found {len(got)} of the 6 faults; look again at the loop for {len(missed)} more (hint: "
                    "follow the names, the shapes and what `epochs` does).")
    return "all six faults found, and none of the distractors."


@register("02.6", ("my_toy_step", "grading_toy_trainer"), tests="grade_step: my_toy_step against toy_gan_step for "
          "two steps from the same start (every weight and optimiser state, the returned losses)", minutes=0.02)
def _02_6(a):
    from .graders import grade_step, toy_gan_step

    grade_step(a["my_toy_step"], toy_gan_step, a["grading_toy_trainer"], exercise="02.6")
    return "your step trains the toy GAN exactly as the package's toy_gan_step does."
