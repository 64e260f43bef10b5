"""The checks of exercises 03.1–05.3 (see :mod:`medgan_utils.course.checking`)."""
from __future__ import annotations

import math

import numpy as np
import torch

from .checking import close, number, quiz, register, wrong


def _trainers(a, var: str, keys: tuple) -> dict:
    runs = a[var]
    if not isinstance(runs, dict) or set(runs) != set(keys):
        raise wrong(f"{var} should be a dict with the keys {list(keys)}, each a trained DCGANTrainer; got "
                    f"{sorted(runs) if isinstance(runs, dict) else type(runs).__name__}.")
    for k, t in runs.items():
        if not hasattr(t, "opt_G") or not hasattr(t, "history"):
            raise wrong(f"{var}[{k!r}] should be a trainer (what short_run(...) returns), not {type(t).__name__}.")
        if not getattr(t, "global_step", 0):
            raise wrong(f"{var}[{k!r}] has not been trained yet (0 updates).")
    return runs


def _lr(opt) -> float:
    return float(opt.param_groups[0]["lr"])


# ------------------------------------------------------------------------------------------ 03 DCGAN

@register("03.1", ("my_train_step", "grading_trainer"), tests="grade_step against dcgan_step: every weight, buffer "
          "and optimiser state after two steps, the returned dict; a batch-norm-only difference is explained with "
          "the order of calls", minutes=0.05)
def _03_1(a):
    from ..gan.steps import dcgan_step
    from .graders import grade_step

    grade_step(a["my_train_step"], dcgan_step, a["grading_trainer"], exercise="03.1")
    return "your step trains the DCGAN exactly as the package's dcgan_step does."


@register("03.2", ("bn_runs", "quiz_03_2"), tests="two short runs with the same number of updates: the 'without BN' "
          "D has no BatchNorm layer, the 'with BN' D has; the question on what replaces batch norm", minutes=0.3)
def _03_2(a):
    runs = _trainers(a, "bn_runs", ("with BN", "without BN"))
    bn = {k: sum(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in t.D_raw.modules())
          for k, t in runs.items()}
    if bn["without BN"]:
        raise wrong(f"the 'without BN' discriminator still has {bn['without BN']} batch-norm layer(s): build it with "
                    "Discriminator(train.channels, size, batch_norm=False) and pass it as short_run(d_net=...).")
    if not bn["with BN"]:
        raise wrong("the 'with BN' discriminator has no batch norm: use short_run() with its default D.")
    steps = {k: t.global_step for k, t in runs.items()}
    if len(set(steps.values())) != 1:
        raise wrong(f"the two runs trained for different numbers of updates {steps}: compare at the same length.")
    quiz(a, "quiz_03_2", "b", "Modern GANs keep a normalisation in D but use spectral normalisation (Miyato et al. "
         "2018), which bounds D's Lipschitz constant without mixing the images of a batch (b).")
    return f"both runs trained {steps['with BN']} updates; only the first D has batch norm."


@register("03.3", ("ttur_runs", "quiz_03_3"), tests="the two runs' Adam learning rates: ratio 4 each way, geometric "
          "mean 2e-4 (±1 %), labelled the right way round", minutes=0.3)
def _03_3(a):
    runs = _trainers(a, "ttur_runs", ("lr_D = 4 x lr_G", "lr_G = 4 x lr_D"))
    for name, t in runs.items():
        lg, ld = _lr(t.opt_G), _lr(t.opt_D)
        ratio = ld / lg if name.startswith("lr_D") else lg / ld
        if abs(ratio - 4) > 0.04:
            flipped = abs(1 / ratio - 4) < 0.04
            raise wrong(f"{name!r}: lr_G = {lg:g}, lr_D = {ld:g}" + (" (the other way round)." if flipped else
                        f", a ratio of {ratio:.3g}, not 4."))
        close(f"the geometric mean of {name!r}'s learning rates", math.sqrt(lg * ld), 2e-4, 2e-6,
              "Keep sqrt(lr_G * lr_D) = 2e-4: the pair is 1e-4 and 4e-4.")
    quiz(a, "quiz_03_3", "b", "One short run per setting, one seed: a hint, to be repeated with about three seeds "
         "before concluding (b).")
    return "lr_D = 4e-4 with lr_G = 1e-4, and the reverse, both at a geometric mean of 2e-4."


@register("03.4", ("b_train", "b_res", "quiz_03_4"), tests="a DCGAN evaluated on BreastMNIST's 546 training images "
          "(evaluate_generator's result with its memorisation audit in range), and the question on small datasets",
          minutes=0.5)
def _03_4(a):
    b_train, res = a["b_train"], a["b_res"]
    if getattr(b_train, "used", None) != "breastmnist" and getattr(b_train, "name", None) != "breastmnist":
        raise wrong("b_train should be BreastMNIST's training split: load_dataset('breastmnist', 'train', 28).")
    if getattr(b_train, "is_real", False) and len(b_train) != 546:
        raise wrong(f"b_train has {len(b_train)} images; BreastMNIST's training split has 546.")
    if not isinstance(res, dict) or "memorisation" not in res or "fd" not in res:
        raise wrong("b_res should be what evaluate_generator(samples, b_train, b_test, b_net, seed=SEED) returns "
                    "(a dict with 'fd', 'precision', 'recall' and 'memorisation').")
    mem = res["memorisation"]
    number("b_res['fd']", res["fd"], 0)
    number("the memorisation ratio", mem["ratio"], 0)
    number("the near-copy share", mem["copy_fraction"], 0, 1)
    quiz(a, "quiz_03_4", "b", "With 546 images each one is seen far more often for the same number of updates, so "
         "near copies become likelier (ratio below 1, a near-copy share above the test reference), and with a small "
         "test split every reference value is noisier (b).")
    return (f"memorisation ratio {mem['ratio']:.2f}, near copies {mem['copy_fraction']:.1%} "
            f"(test reference {mem['test_copy_fraction']:.1%}).")


@register("03.5", ("bn_trap", "bn_trap_runs", "quiz_03_5"), tests="D(G(z)) seen by the D step and by the G step "
          "(mean over the last quarter) recomputed from each run's history (±1e-3); the concatenated run used "
          "make_step('dcgan', concat=True); the question on why they differ", minutes=0.3)
def _03_5(a):
    names = ("two D passes", "one concatenated D batch")
    runs = _trainers(a, "bn_trap_runs", names)
    if "concat" not in getattr(runs[names[1]].step_fn, "__name__", ""):
        raise wrong("the 'one concatenated D batch' run should use step_fn=make_step('dcgan', concat=True).")
    if "concat" in getattr(runs[names[0]].step_fn, "__name__", ""):
        raise wrong("the 'two D passes' run should use the notebook's train_step (or dcgan_step), not concat=True.")
    trap = a["bn_trap"]
    if not isinstance(trap, dict) or set(trap) != set(names):
        raise wrong(f"bn_trap should be {{name: (D(G(z)) seen by the D step, seen by the G step)}} for {list(names)}.")
    for name, t in runs.items():
        k = max(1, len(t.history["loss_G"]) // 4)
        d_step = sum(t.history["D_G_z"][-k:]) / k
        g_step = sum(math.exp(-v) for v in t.history["loss_G"][-k:]) / k
        got = trap[name]
        close(f"bn_trap[{name!r}][0] (the D step's D(G(z)))", got[0], d_step, 1e-3,
              "Average history['D_G_z'] over the last quarter of the steps.")
        close(f"bn_trap[{name!r}][1] (the G step's D(G(z)))", got[1], g_step, 1e-3,
              "The G step's D(G(z)) is exp(-loss_G) (non-saturating loss), averaged over the last quarter.")
    quiz(a, "quiz_03_5", "b", "With one concatenated batch, batch norm normalises real and fake together, so D's "
         "verdict on a fake depends on the reals next to it; G is trained against D on an all-fake batch (b).")
    gaps = {n: abs(trap[n][0] - trap[n][1]) for n in names}
    return "gap between the two views of D(G(z)): " + ", ".join(f"{n} {g:.3f}" for n, g in gaps.items()) + "."


# ------------------------------------------------------------------------------------------ 04 augmentation

@register("04.1", ("my_cgan_step", "grading_trainer"), tests="grade_step against cgan_step (hinge loss, projection "
          "D): every weight and optimiser state after two steps, the returned dict", minutes=0.05)
def _04_1(a):
    from ..gan.steps import cgan_step
    from .graders import grade_step

    grade_step(a["my_cgan_step"], cgan_step, a["grading_trainer"], exercise="04.1")
    return "your conditional step trains the GAN exactly as the package's cgan_step does."


@register("04.2", ("broken", "fidelity_true", "fidelity_shuffled", "quiz_04_2"), ("n_classes", "gans", "fractions",
          "seeds"), tests="the broken GAN was trained on a permutation of the subset's labels (not the labels "
          "themselves), one fidelity per class in [0, 1], the question on what it does to the gan arm", minutes=0.4)
def _04_2(a):
    idx, trained = a["gans"][min(a["fractions"]), a["seeds"][0]]
    broken = a["broken"]
    labels = getattr(broken, "labels", None)
    if labels is None:
        raise wrong("broken should be the DCGANTrainer you trained with labels=<shuffled labels>.")
    true = trained.labels.cpu() if getattr(trained, "labels", None) is not None else None
    got = labels.cpu()
    if true is not None and len(got) == len(true):
        if torch.equal(got, true):
            raise wrong("broken was trained on the true labels: pass labels=subset.labels[torch.randperm(len(subset))].")
        if not torch.equal(torch.sort(got).values, torch.sort(true).values):
            raise wrong("broken's labels are not a permutation of the subset's labels: shuffle them, do not redraw.")
    elif len(got) != len(idx):
        raise wrong(f"broken was trained on {len(got)} images; the smallest fraction's subset has {len(idx)}.")
    for var in ("fidelity_true", "fidelity_shuffled"):
        vals = a[var]
        if len(vals) != a["n_classes"]:
            raise wrong(f"{var} should hold one fidelity per class ({a['n_classes']}), got {len(vals)}.")
        for c, v in enumerate(vals):
            number(f"{var}[{c}]", v, 0, 1)
    quiz(a, "quiz_04_2", "b", "Images of a GAN that ignores its class carry wrong labels: label noise, so at best "
         "the gan arm behaves like the real arm with noisier training, at worst the disease sensitivity falls (b).")
    return ("class fidelity, true labels " + ", ".join(f"{v:.2f}" for v in a["fidelity_true"]) + "; shuffled "
            + ", ".join(f"{v:.2f}" for v in a["fidelity_shuffled"]) + ".")


@register("04.3", ("val_metrics", "synth_counts", "quiz_04_3"), ("gans", "fractions", "seeds", "n_classes",
          "DEFAULT_RATIO", "TEST"), tests="synthetic counts recomputed with synthetic_counts_for for both settings, "
          "validation metrics in range, the sealed test split not reopened, the question on AUC vs sensitivity",
          minutes=0.3)
def _04_3(a):
    from .augmentation import synthetic_counts_for

    idx, gan = a["gans"][min(a["fractions"]), a["seeds"][0]]
    labels = gan.labels.cpu() if getattr(gan, "labels", None) is not None else None
    for balanced in (True, False):
        if balanced not in a["synth_counts"] or balanced not in a["val_metrics"]:
            raise wrong("synth_counts and val_metrics should each have the keys True (balanced) and False.")
        if labels is not None:
            want = list(synthetic_counts_for(labels, float(a["DEFAULT_RATIO"]), a["n_classes"], balanced))
            if list(a["synth_counts"][balanced]) != want:
                raise wrong(f"synth_counts[{balanced}] = {list(a['synth_counts'][balanced])}, but "
                            f"synthetic_counts_for(real.labels, DEFAULT_RATIO, n_classes, {balanced}) gives {want}.")
        m = a["val_metrics"][balanced]
        for key in ("auc", "sensitivity_at_half"):
            if key not in m:
                raise wrong(f"val_metrics[{balanced}] should be what diagnosis_metrics(val.labels, probabilities, "
                            f"task, positive) returns (with {key!r}).")
            number(f"val_metrics[{balanced}][{key!r}]", m[key], 0, 1)
    opened = getattr(a["TEST"], "times_opened", 1)
    if opened > 1:
        raise wrong(f"the sealed test split has been opened {opened} times: this design decision must be made on "
                    "the validation split only (rerun the notebook from the top).")
    quiz(a, "quiz_04_3", "b", "Rebalancing shifts the predicted probabilities, so the fixed cut at 0.5 moves along "
         "the same ROC curve, while AUC uses no threshold (b).")
    d = {k: a["val_metrics"][k] for k in (True, False)}
    return (f"validation AUC balanced {d[True]['auc']:.3f} vs proportional {d[False]['auc']:.3f}; sensitivity at "
            f"p = 0.5 {d[True]['sensitivity_at_half']:.2f} vs {d[False]['sensitivity_at_half']:.2f}.")


# ------------------------------------------------------------------------------------------ 05 segmentation

@register("05.1", ("my_adv_step", "grading_trainer"), tests="grade_step against adversarial_segmentation_step: "
          "every weight, buffer and optimiser state after two steps, the returned dict; an extra S call is "
          "explained with the order of calls", minutes=0.05)
def _05_1(a):
    from ..gan.pix2pix import adversarial_segmentation_step
    from .graders import grade_step

    grade_step(a["my_adv_step"], adversarial_segmentation_step, a["grading_trainer"], exercise="05.1")
    return "your step trains the segmenter and its critic exactly as adversarial_segmentation_step does."


@register("05.2", ("strong", "quiz_05_2"), ("runs", "fractions", "seeds"), tests="the strong-critic segmenter was "
          "trained with lambda_adv = 10 and a critic, its best validation Dice is in [0, 1]; the question on what "
          "it learns", minutes=0.3)
def _05_2(a):
    strong = a["strong"]
    lam = getattr(strong, "lambda_adv", None)
    if lam is None or not hasattr(strong, "best"):
        raise wrong("strong should be the PairTrainer that train_segmenter(pairs, seeds[0], lambda_adv=10.0) returns.")
    if float(lam) != 10.0:
        raise wrong(f"strong was trained with lambda_adv = {lam:g}; the task asks for 10.")
    if "D" not in getattr(strong, "names", ()):
        raise wrong("strong has no critic D: pass lambda_adv=10.0 to train_segmenter.")
    dice = number("strong.best['score'] (validation Dice)", strong.best["score"], 0, 1)
    plain = next((r["val_dice"] for r in a["runs"] if (r["arm"], r["fraction"], r["seed"]) ==
                  ("unet", max(a["fractions"]), a["seeds"][0])), None)
    quiz(a, "quiz_05_2", "b", "When the critic's verdict outweighs the overlap loss, the segmenter learns masks that "
         "look like lesion masks to the critic (smooth blobs) whether or not they sit on the lesion (b).")
    return f"validation Dice {dice:.3f} with λ = 10" + (f" vs {plain:.3f} for the plain U-Net." if plain else ".")


@register("05.3", ("conv", "quiz_05_3"), tests="known values of the empty-mask convention on 64 x 64 masks: (a) "
          "1/1/0, (b) 0/0/90.5, (c) 0/0/90.5 (±0.05); the mean Dice of an empty predictor with 60 % normal images",
          minutes=0.01)
def _05_3(a):
    diag = float(np.hypot(64, 64))
    want = {"a": (1.0, 1.0, 0.0), "b": (0.0, 0.0, diag), "c": (0.0, 0.0, diag)}
    conv = a["conv"]
    if not isinstance(conv, dict) or set(conv) != set(want):
        raise wrong("conv should be {'a': (Dice, IoU, HD95), 'b': (...), 'c': (...)} for the three 64 x 64 cases.")
    what = {"a": "an empty prediction on an empty truth", "b": "one predicted pixel on an empty truth",
            "c": "an empty prediction on a true lesion"}
    for case, (d, i, h) in want.items():
        got = [number(f"conv[{case!r}]", v) for v in conv[case]]
        for label, g, w in zip(("Dice", "IoU", "HD95"), got, (d, i, h)):
            if abs(g - w) > 0.05:
                raise wrong(f"case ({case}), {what[case]}: {label} = {g:g}, but the course's convention gives {w:.1f}"
                            + (" (HD95 of one empty mask is the image diagonal, 64·√2 px)." if label == "HD95" else
                               ". Use segmentation_metrics(pred, truth) on 1 x 1 x 64 x 64 masks."))
    quiz(a, "quiz_05_3", 0.6, "An empty predictor scores Dice 1 on every normal image and 0 on every lesion: with "
         "60 % normal images its mean Dice is 0.6.", tol=0.01)
    return "the convention: empty on empty is perfect, a single false pixel or a missed lesion scores 0 and the diagonal."
