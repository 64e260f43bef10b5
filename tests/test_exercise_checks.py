"""Every exercise's check: a correct answer passes and one deliberately wrong answer is rejected, with a message in
the learner's terms; every notebook exercise has a registered check and a check cell; every stored solution defines
the names its check reads (so batch runs check the solutions); ``medgan exercises`` lists them all.

The answers are built on small stand-ins for the notebooks' objects (a few images, tiny networks), so the whole
file runs in well under a minute on a 2-core CPU; nbval runs the same checks against the stored solutions on the
real notebooks (batch mode).
"""
import ast
import json
import math
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import matplotlib
import numpy as np
import pytest
import torch
import torch.nn.functional as F

matplotlib.use("Agg")

import medgan_utils as mu  # noqa: E402
from medgan_utils.course.checking import check_exercise, checks, exercise_table  # noqa: E402
from medgan_utils.course.exercises import solution_code  # noqa: E402
from medgan_utils.course.feedback import AnswerIncorrect  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
STUB = re.compile(r"""^student_exercise\(\s*["'](\d\d\.\d+)["']""", re.M)


def _run_solution(eid: str, ns: dict) -> dict:
    import matplotlib.pyplot as plt

    base = {"torch": torch, "F": F, "np": np, "math": math, "plt": plt}
    base.update(ns)
    exec(compile(solution_code(eid), f"solutions/{eid}.py", "exec"), base)
    plt.close("all")
    return base


def _labels(counts):
    return torch.cat([torch.full((n,), c, dtype=torch.long) for c, n in enumerate(counts)])


class _Set(SimpleNamespace):
    def __len__(self):
        return len(self.labels if getattr(self, "labels", None) is not None else self.images)


def _images(n, size=8, seed=0):
    return torch.rand(n, 1, size, size, generator=torch.Generator().manual_seed(seed)) * 2 - 1


# ------------------------------------------------------------------------------------------ correct and wrong answers

def _case_00_1():
    from medgan_utils.core.device import get_device
    from medgan_utils.core.env import read_env  # noqa: F401

    try:
        import os

        old = os.environ.get("MEDGAN_DEVICE")
        os.environ["MEDGAN_DEVICE"] = "mps"
        try:
            mps = get_device()
        except RuntimeError as err:
            mps = str(err)
    finally:
        os.environ.pop("MEDGAN_DEVICE") if old is None else os.environ.__setitem__("MEDGAN_DEVICE", old)
    good = {"forced": torch.device("cpu"), "mps_result": mps}
    return good, {**good, "forced": "cpu"}, r"forced should be what get_device\(\) returned \(a torch\.device\)"


def _case_00_2():
    cfg = SimpleNamespace(device=torch.device("cpu"))
    fresh = {n: mu.time_matmul(cfg.device, n=n, repeats=3)["gflops"] for n in (32, 128, 512)}
    seconds = {n: 2 * n ** 3 / (r * 1e9) for n, r in fresh.items()}
    good = {"rates": fresh, "quiz_00_2": "b", "cfg": cfg}
    return good, {**good, "rates": seconds}, r"Store time_matmul\(\.\.\.\)\['gflops'\], not the seconds"


def _case_00_3():
    good = _run_solution("00.3", {"environment_report": lambda: {"datasets": []}})
    always = {"offline_ready": lambda: True}
    return {"offline_ready": good["offline_ready"]}, always, r"returned True when busi is missing: it should return False"


def _pneumonia():
    return {"pneumoniamnist": {"test": _Set(labels=_labels([234, 390]), label_names={0: "normal", 1: "pneumonia"})}}


def _case_01_1():
    good = {"majority_acc": 390 / 624, "DATA": _pneumonia()}
    return good, {**good, "majority_acc": 234 / 624}, r"is the share of the minority class"


def _busi_train():
    masks = torch.zeros(6, 1, 16, 16)
    for i, side in enumerate([2, 5, 9, 3, 7, 1]):
        masks[i, 0, :side, :side] = 1
    return _Set(images=_images(6, 16), masks=masks, labels=_labels([3, 3]), label_names={0: "benign", 1: "malignant"})


def _case_01_2():
    good = {"i_max": 2, "busi_train": _busi_train()}
    return good, {**good, "i_max": 5}, r"That is the smallest lesion: use argmax, not argmin"


def _case_01_3():
    names = {0: "malignant", 1: "normal, benign"}
    splits = {s: _Set(labels=_labels(c), label_names=names) for s, c in
              {"train": [147, 399], "val": [21, 57], "test": [42, 114]}.items()}
    good = {"minority": {s: 0 for s in splits}, "label0_name": "malignant", "DATA": {"breastmnist": splits}}
    return good, {**good, "minority": {**good["minority"], "val": 1}}, r"minority\['val'\] = 1, but label 0 is the rarer"


def _case_01_4():
    train = _busi_train()
    test = _Set(images=torch.cat([train.images[[4, 1]] + 0.01, _images(3, 16, seed=9)]))
    d, idx = mu.nearest_neighbours(test.images, train.images)
    closest = [(t, int(idx[t])) for t in d.argsort()[:3].tolist()]
    good = {"closest": closest, "DATA": {"busi": {"test": test}}, "busi_train": train}
    return good, {**good, "closest": [(r, t) for t, r in closest]}, r"closest = .*but the three closest pairs are"


def _p_data():
    return mu.Mixture1D(means=(-1.5, 1.2), stds=(0.5, 0.7), weights=(0.4, 0.6))


def _case_02_1():
    ns = _run_solution("02.1", {"p_data": _p_data(), "Mixture1D": mu.Mixture1D, "jsd_on_grid": mu.jsd_on_grid,
                                "kl_on_grid": mu.kl_on_grid})
    good = {k: ns[k] for k in ("divergences", "preferred", "quiz_02_1", "p_data")}
    j, a, b = good["divergences"]["p_drop"]
    bad = {**good, "divergences": {**good["divergences"], "p_drop": (j, b, a)}}
    return good, bad, r"for p_drop your two KLs are swapped"


def _case_02_2():
    good = {"first_bad": {"saturating": 15, "non-saturating": -89}}
    return good, {"first_bad": {"saturating": -15, "non-saturating": -89}}, r"fails for large \*positive\* logits"


def _c_of_g_from_notebook():
    cells = ["".join(c["source"]) for c in json.loads((ROOT / "notebooks" / "02_minimax_loss.ipynb").read_text())
             ["cells"] if c["cell_type"] == "code"]
    src = next(s for s in cells if "def c_of_g(p, q):" in s)
    tree = ast.parse(src)
    fn = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "c_of_g")
    ns = {"np": np}
    from scipy import integrate
    from scipy.special import xlogy

    ns.update(integrate=integrate, xlogy=xlogy)
    exec(ast.get_source_segment(src, fn), ns)
    return ns["c_of_g"]


def _case_02_3():
    ns = _run_solution("02.3", {"c_of_g": _c_of_g_from_notebook(), "p_ref": mu.Mixture1D.gaussian(0.0, 1.0)})
    good = {k: ns[k] for k in ("flat_from", "quiz_02_3", "c_of_g", "p_ref")}
    return good, {**good, "flat_from": 0.5}, r"lies before the steepest point"


def _trace(dominants, modes_end, steps=600):
    out = []
    for i, dom in enumerate(dominants):
        shares = torch.full((8,), 0.02)
        shares[dom] = 0.86
        out.append(((i + 1) * steps // len(dominants), modes_end if i == len(dominants) - 1 else 1, 0.9,
                    (shares * 0.9, shares)))
    return out


def _case_02_4():
    traces = {0: _trace([3, 3, 3], 1), 1: _trace([2, 5, 5], 1)}
    good = {"ring_traces": traces, "outcome": {0: "stays", 1: "hops"}, "EX_RING_STEPS": 600}
    return good, {**good, "outcome": {0: "stays", 1: "stays"}}, r"seed 1: you said 'stays'.*1 change\(s\) of the dominant"


def _case_02_5():
    return {"faults_found": set("abcdef")}, {"faults_found": set("abcdefg")}, r"not faults: \(g\) LeakyReLU\(0\.2\)"


def _toy_trainer(step):
    return mu.ToyGANTrainer(step, lambda n, g: torch.randn(n, 1, generator=g) * 0.5 + 2.0, seed=0)


def _case_02_6():
    from tests.test_exercises import _toy_swapped_labels

    ns = _run_solution("02.6", {})
    good = {"my_toy_step": ns["my_toy_step"], "grading_toy_trainer": _toy_trainer}
    return good, {**good, "my_toy_step": _toy_swapped_labels}, r"Usual faults of exercise 02\.6"


def _dcgan_trainer(step=None, lr_G=2e-4, lr_D=2e-4, d=None, fit=0):
    data = torch.rand(32, 1, 28, 28, generator=torch.Generator().manual_seed(0)) * 2 - 1
    G, D = mu.make_dcgan(28, 1, 16, base=8, seed=0)
    t = mu.DCGANTrainer(G, d or D, data, step_fn=step, device="cpu", batch_size=16, precision="fp32", progress=False,
                        seed=3, lr_G=lr_G, lr_D=lr_D)
    if fit:
        t.fit(fit)
    return t


def _case_03_1():
    from tests.test_exercises import _dcgan_missing_detach

    ns = _run_solution("03.1", {})
    good = {"my_train_step": ns["my_train_step"], "grading_trainer": _dcgan_trainer}
    return good, {**good, "my_train_step": _dcgan_missing_detach}, r"^Exercise 03\.1: G\.\S+ differs after step 1"


def _case_03_2():
    no_bn = mu.Discriminator(1, 28, base=8, batch_norm=False, generator=torch.Generator().manual_seed(0))
    good = {"bn_runs": {"with BN": _dcgan_trainer(fit=1), "without BN": _dcgan_trainer(d=no_bn, fit=1)},
            "quiz_03_2": "b"}
    bad = {**good, "bn_runs": {"with BN": _dcgan_trainer(fit=1), "without BN": _dcgan_trainer(fit=1)}}
    return good, bad, r"the 'without BN' discriminator still has \d+ batch-norm layer\(s\): build it with Discriminator"


def _case_03_3():
    runs = {"lr_D = 4 x lr_G": _dcgan_trainer(lr_G=1e-4, lr_D=4e-4, fit=1),
            "lr_G = 4 x lr_D": _dcgan_trainer(lr_G=4e-4, lr_D=1e-4, fit=1)}
    bad = {**runs, "lr_G = 4 x lr_D": _dcgan_trainer(lr_G=8e-4, lr_D=2e-4, fit=1)}
    return ({"ttur_runs": runs, "quiz_03_3": "b"}, {"ttur_runs": bad, "quiz_03_3": "b"},
            r"the geometric mean of 'lr_G = 4 x lr_D''s learning rates = 0\.0004")


def _case_03_4():
    b_train = _Set(used="breastmnist", is_real=True, labels=_labels([147, 399]))
    res = {"fd": 3.2, "memorisation": {"ratio": 0.9, "copy_fraction": 0.02, "test_copy_fraction": 0.01}}
    good = {"b_train": b_train, "b_res": res, "quiz_03_4": "b"}
    return good, {**good, "quiz_03_4": "c"}, r"quiz_03_4 = 'c' is not the best answer\. With 546 images"


def _case_03_5():
    runs = {"two D passes": _dcgan_trainer(mu.dcgan_step, fit=1),
            "one concatenated D batch": _dcgan_trainer(mu.make_step("dcgan", concat=True), fit=1)}
    trap = {}
    for name, t in runs.items():
        k = max(1, len(t.history["loss_G"]) // 4)
        trap[name] = (sum(t.history["D_G_z"][-k:]) / k, sum(math.exp(-v) for v in t.history["loss_G"][-k:]) / k)
    good = {"bn_trap": trap, "bn_trap_runs": runs, "quiz_03_5": "b"}
    bad = {**good, "bn_trap": {n: (g, d) for n, (d, g) in trap.items()}}
    return good, bad, r"bn_trap\['one concatenated D batch'\]\[0\] \(the D step's D\(G\(z\)\)\) = .*but recomputing it gives"


def _cgan_trainer(step):
    G, D = mu.make_conditional_gan(2, 28, 1, 16, base=8, seed=0)
    data = torch.rand(32, 1, 28, 28, generator=torch.Generator().manual_seed(0)) * 2 - 1
    return mu.DCGANTrainer(G, D, data, labels=_labels([16, 16]), step_fn=step, device="cpu", batch_size=16,
                           precision="fp32", progress=False, seed=3)


def _hinge_without_relu(tr, real, z, y):
    fake = tr.G(z, y)
    real_logits, fake_logits = tr.D(real, y).float(), tr.D(fake.detach(), y).float()
    loss_D = (1 - real_logits).mean() + (1 + fake_logits).mean()  # BUG: no relu, no margin
    tr.opt_D.zero_grad(set_to_none=True)
    loss_D.backward()
    tr.opt_D.step()
    loss_G = -tr.D(fake, y).float().mean()
    tr.opt_G.zero_grad(set_to_none=True)
    loss_G.backward()
    tr.opt_G.step()
    return {"loss_D": loss_D.detach(), "loss_G": loss_G.detach(), "D_x": torch.sigmoid(real_logits.detach()).mean(),
            "D_G_z": torch.sigmoid(fake_logits.detach()).mean()}


def _case_04_1():
    ns = _run_solution("04.1", {})
    good = {"my_cgan_step": ns["my_cgan_step"], "grading_trainer": _cgan_trainer}
    return good, {**good, "my_cgan_step": _hinge_without_relu}, r"the hinge written without the margin or the ReLU"


def _gans_04():
    labels = _labels([10, 30])
    return {(0.25, 0): (torch.arange(40), SimpleNamespace(labels=labels))}, labels


def _case_04_2():
    gans, labels = _gans_04()
    shuffled = labels[torch.randperm(40, generator=torch.Generator().manual_seed(0))]
    good = {"broken": SimpleNamespace(labels=shuffled), "fidelity_true": [0.8, 0.9], "fidelity_shuffled": [0.2, 0.9],
            "quiz_04_2": "b", "n_classes": 2, "gans": gans, "fractions": [0.25], "seeds": [0]}
    return good, {**good, "broken": SimpleNamespace(labels=labels.clone())}, r"broken was trained on the true labels"


def _case_04_3():
    gans, labels = _gans_04()
    counts = {b: mu.synthetic_counts_for(labels, 1.0, 2, b) for b in (True, False)}
    metrics = {b: {"auc": 0.8, "acc": 0.7, "sensitivity_at_half": 0.5 + 0.2 * b} for b in (True, False)}
    good = {"val_metrics": metrics, "synth_counts": counts, "quiz_04_3": "b", "gans": gans, "fractions": [0.25],
            "seeds": [0], "n_classes": 2, "DEFAULT_RATIO": 1.0, "TEST": SimpleNamespace(times_opened=1)}
    return good, {**good, "TEST": SimpleNamespace(times_opened=2)}, r"the sealed test split has been opened 2 times"


def _seg_trainer(step):
    from tests.test_exercises import _pair_trainer

    return _pair_trainer(step)


def _critic_sees_attached_pred(tr, images, masks):
    S, D = tr.S, tr.D
    logits = S(images).float()
    pred = torch.sigmoid(logits)
    real_logits, fake_logits = D(images, masks).float(), D(images, pred).float()  # BUG: pred not detached
    loss_D = (F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits))
              + F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits)))
    tr.opt_D.zero_grad(set_to_none=True)
    loss_D.backward()
    tr.opt_D.step()
    gen_logits = D(images, pred).float()
    loss_S = mu.dice_bce_loss(logits, masks) + tr.lambda_adv * F.binary_cross_entropy_with_logits(
        gen_logits, torch.ones_like(gen_logits))
    tr.opt_S.zero_grad(set_to_none=True)
    loss_S.backward()
    tr.opt_S.step()
    return {"loss_S": loss_S.detach(), "loss_D": loss_D.detach()}


def _case_05_1():
    ns = _run_solution("05.1", {"dice_bce_loss": mu.dice_bce_loss})
    good = {"my_adv_step": ns["my_adv_step"], "grading_trainer": _seg_trainer}
    return good, {**good, "my_adv_step": _critic_sees_attached_pred}, r"raised RuntimeError in step 1"


def _case_05_2():
    runs = [{"arm": "unet", "fraction": 1.0, "seed": 0, "val_dice": 0.6}]
    strong = SimpleNamespace(lambda_adv=10.0, best={"score": 0.4, "step": 3}, names=["S", "D"])
    good = {"strong": strong, "quiz_05_2": "b", "runs": runs, "fractions": [1.0], "seeds": [0]}
    bad = {**good, "strong": SimpleNamespace(lambda_adv=1.0, best={"score": 0.5}, names=["S", "D"])}
    return good, bad, r"trained with lambda_adv = 1; the task asks for 10"


def _case_05_3():
    ns = _run_solution("05.3", {"segmentation_metrics": mu.segmentation_metrics})
    good = {"conv": ns["conv"], "quiz_05_3": ns["quiz_05_3"]}
    return good, {**good, "conv": {**good["conv"], "b": (0.0, 0.0, 0.0)}}, r"case \(b\).*HD95 = 0.*64·√2"


def _case_06_1():
    from tests.test_exercises import _enhance_without_l1_branch, _pair_trainer

    ns = _run_solution("06.1", {})
    grading = lambda step, lambda_adv=0.1: _pair_trainer(step, lambda_adv, nets=("G", "D"))  # noqa: E731
    good = {"my_enhance_step": ns["my_enhance_step"], "grading_trainer": grading}
    return good, {**good, "my_enhance_step": _enhance_without_l1_branch}, r"Exercise 06\.1: D\.\S+ differs"


def _case_06_2():
    xv = _Set(images=torch.rand(40, 1, 28, 28, generator=torch.Generator().manual_seed(2)) * 2 - 1,
              labels=_labels([20, 20]))
    clf = mu.make_classifier("cnn", 1, 2, seed=0).eval()
    lesson = {"data": {"xray": {"val": xv}}, "downstream": {"xray": clf}, "task_kind": "binary-class", "positive": 1,
              "READ_NOISE": 2.0}
    ns = _run_solution("06.2", {**lesson, "diagnosis_metrics": mu.diagnosis_metrics, "predict_proba": mu.predict_proba,
                                "low_dose": mu.low_dose})
    good = {**lesson, **{k: ns[k] for k in ("auc_by_dose", "clean_auc", "first_drop")}}
    bad = {**good, "auc_by_dose": {**good["auc_by_dose"], 5: good["auc_by_dose"][5] + 0.1}}
    return good, bad, r"auc_by_dose\[5\] = .*but recomputing it gives"


def _case_06_3():
    clean = _images(8, 16, seed=4)
    bad = clean + 0.1 * torch.randn(clean.shape, generator=torch.Generator().manual_seed(5))
    lesson = {"tasks": ["denoise"], "val_pairs": {"denoise": (clean, bad)}, "levels": {"denoise": [20.0, 50.0]},
              "hardest": {"denoise": 20.0}, "sigma": {("denoise", 20.0): 0.1}}
    deg = [float(mu.hallucination_fraction(bad[:4], clean[:4], 0.1, k).mean()) for k in (1, 2, 3, 4)]
    good = {**lesson, "fractions_by_k": {"degraded": deg, "unet_l1": [0.3, 0.1, 0.05, 0.01],
                                         "pix2pix": [0.4, 0.2, 0.1, 0.08]}, "quiz_06_3": "b"}
    bad_answer = {**good, "fractions_by_k": {**good["fractions_by_k"], "pix2pix": [0.1, 0.2, 0.3, 0.4]}}
    return good, bad_answer, r"can only fall as k grows"


def _noise_first(model, opt, schedule, x0, generator=None):
    noise = torch.randn(x0.shape, generator=generator)  # BUG: drawn before t
    t = torch.randint(0, schedule.T, (x0.shape[0],), generator=generator)
    loss = F.mse_loss(model(schedule.add_noise(x0, t, noise), t), noise)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return loss.detach()


def _case_07_1():
    ns = {}
    src = solution_code("07.1").split("\n\n\nresults = []")[0]
    exec(src, {"torch": torch, "F": F}, ns)
    return {"my_ddpm_step": ns["my_ddpm_step"]}, {"my_ddpm_step": _noise_first}, r"The order of the random draws matters"


def _strong(lr_d, loss):
    return SimpleNamespace(opt_G=SimpleNamespace(param_groups=[{"lr": 1e-4}]),
                           opt_D=SimpleNamespace(param_groups=[{"lr": lr_d}]), g_loss_name=loss)


def _case_07_2():
    sig = {"D_x": 0.95, "D_G_z": 0.03, "g_grad_norm": 0.01, "diversity": 0.8, "failure": "D overpowers G"}
    good = {"strong_runs": {"minimax": _strong(1e-3, "saturating"), "non-saturating": _strong(1e-3, "bce")},
            "strong_sigs": {"minimax": sig, "non-saturating": {**sig, "g_grad_norm": 0.5}}, "quiz_07_2": "b"}
    bad = {**good, "strong_runs": {**good["strong_runs"], "minimax": _strong(2e-4, "saturating")}}
    return good, bad, r"strong_runs\['minimax'\] has lr_D / lr_G = 2"


def _case_07_3():
    ns = _run_solution("07.3", {"make_dcgan": mu.make_dcgan, "conv2d_flops": mu.conv2d_flops, "SEED": 0})
    good = {"predicted_flops": ns["predicted_flops"], "counted_flops": ns["counted_flops"], "quiz_07_3": "b",
            "SEED": 0}
    return good, {**good, "predicted_flops": ns["predicted_flops"] // 2}, r"predicted_flops is half the closed form"


def _case_08_1():
    net = mu.make_classifier("cnn", 1, 2, seed=0).eval()
    val = _Set(images=torch.rand(24, 1, 28, 28, generator=torch.Generator().manual_seed(6)) * 2 - 1,
               labels=_labels([8, 16]))
    lesson = {"classifiers": {("real", 0): net}, "seeds": [0], "bm_val": val, "positive": 0}
    ns = _run_solution("08.1", {**lesson, "predict_proba": mu.predict_proba})
    good = {**lesson, "targeted_pgd": ns["targeted_pgd"], "share_called": ns["share_called"]}

    def not_doubled(net, images, target, eps, steps=10):
        return ns["targeted_pgd"](net, images, target, eps / 2, steps)  # the radius eps, not 2 eps

    return good, {**good, "targeted_pgd": not_doubled}, r"the images are in \[-1, 1\], a range of 2, so the radius is 2·ε"


def _case_08_2():
    pn_train = _Set(images=torch.rand(60, 1, 28, 28, generator=torch.Generator().manual_seed(7)) * 2 - 1,
                    labels=_labels([20, 40]))
    pn_val = _Set(images=torch.rand(12, 1, 28, 28, generator=torch.Generator().manual_seed(8)) * 2 - 1,
                  labels=_labels([4, 8]))
    G, D = mu.make_dcgan(28, 1, 100, 8, seed=0)
    tr = mu.DCGANTrainer(G, D, pn_train.images, device="cpu", batch_size=8, precision="fp32", progress=False, seed=0)
    lesson = {"dcgans": {0.1: tr}, "fractions": [0.1], "pn_train": pn_train, "pn_val": pn_val, "SEED": 0}
    ns = _run_solution("08.2", {**lesson, "stratified_fraction": mu.stratified_fraction,
                                "membership_auc": mu.membership_auc, "membership_inference": mu.membership_inference})
    good = {**lesson, "black_auc": ns["black_auc"], "white_auc": ns["white_auc"]}
    return good, {**good, "black_auc": 1 - ns["black_auc"]}, r"black_auc is 1 - AUC: the score is \*minus\* the distance"


def _case_08_3():
    rows = [{"mode": "local", "auc": 0.71}, {"mode": "blended", "auc": 0.64}]
    auc = {("local", "local"): 0.71, ("local", "blended"): 0.55, ("blended", "local"): 0.66,
           ("blended", "blended"): 0.64}
    good = {"transfer_auc": auc, "quiz_08_3": "b", "detector_rows": rows}
    bad = {**good, "transfer_auc": {**auc, ("local", "local"): 0.55, ("local", "blended"): 0.71}}
    return good, bad, r"transfer_auc\[\('local', 'local'\)\] = 0\.55, but recomputing it gives 0\.71"


CASES = {name[6:].replace("_", "."): fn for name, fn in globals().items() if name.startswith("_case_")}


def test_08_3_checks_the_transfer_rows_of_the_main_table_too(capsys):
    """Section 2.1's table now holds the transfer rows (trained on one blend mode, tested on the other): a swapped
    transfer pair passes the same-mode rows but not those."""
    good, _, _ = _case_08_3()
    rows = [{"trained_on": tm, "mode": sm, "auc": good["transfer_auc"][tm, sm]} for tm in ("local", "blended")
            for sm in ("local", "blended")]
    assert check_exercise("08.3", namespace={**good, "detector_rows": rows}) is True
    swapped = {**good["transfer_auc"], ("local", "blended"): 0.66, ("blended", "local"): 0.55}
    with pytest.raises(AnswerIncorrect, match=r"transfer_auc\[\('local', 'blended'\)\] = 0\.66, but recomputing it gives 0\.55"):
        check_exercise("08.3", namespace={**good, "transfer_auc": swapped, "detector_rows": rows})
    assert check_exercise("08.3", namespace={**good, "transfer_auc": swapped}) is True  # same-mode rows alone miss it


def test_every_registered_check_has_a_case_here():
    assert set(CASES) == set(checks()), f"no case for {sorted(set(checks()) - set(CASES))}"


@pytest.mark.parametrize("eid", sorted(CASES))
def test_a_correct_answer_passes_and_a_wrong_one_is_rejected(eid, capsys, one_thread):
    good, bad, message = CASES[eid]()
    assert check_exercise(eid, namespace=dict(good)) is True
    assert f"PASS (exercise {eid}):" in capsys.readouterr().out
    with pytest.raises(AnswerIncorrect) as info:
        check_exercise(eid, namespace=dict(bad))
    text = str(info.value)
    assert text.startswith(f"Exercise {eid}: "), text
    assert re.search(message, text, re.S), text
    assert "medgan_utils" not in "\n".join(info.value._render_traceback_())


# ------------------------------------------------------------------------------------------ notebooks and solutions

def _answer_and_check_cells():
    for path in NOTEBOOKS:
        cells = json.loads(path.read_text())["cells"]
        for i, c in enumerate(cells):
            m = STUB.search("".join(c["source"])) if c["cell_type"] == "code" else None
            if m:
                yield path.name, m.group(1), "".join(cells[i + 1]["source"])


def test_every_notebook_exercise_has_a_check_and_a_check_cell_after_its_answer_cell():
    seen = []
    for name, eid, after in _answer_and_check_cells():
        seen.append(eid)
        assert eid in checks(), f"{name}: exercise {eid} has no registered check"
        assert after.strip().endswith(f'check_exercise("{eid}")'), \
            f"{name}: the cell after {eid}'s answer cell must end with check_exercise(\"{eid}\"), got {after[-80:]!r}"
    assert sorted(seen) == sorted(checks()), "every registered check belongs to a notebook exercise"


@pytest.mark.parametrize("eid", sorted(checks()))
def test_each_stored_solution_defines_the_names_its_check_reads(eid):
    """In a batch run the solution stands in for the answer, so it must define every answer name of the check."""
    tree = ast.parse(solution_code(eid))
    defined = {n.name for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
    for node in ast.walk(tree):
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(
            node, (ast.AugAssign, ast.AnnAssign)) else []
        for t in targets:
            defined |= {x.id for x in ast.walk(t) if isinstance(x, ast.Name)}
    lesson_made = {"grading_toy_trainer", "grading_trainer"}  # defined by the notebook's check cell itself
    missing = set(checks()[eid].answer) - defined - lesson_made
    assert not missing, f"solutions/{eid}.py does not define {sorted(missing)}"


def test_each_task_names_what_its_check_reads():
    tasks = {}
    for path in NOTEBOOKS:
        cells = json.loads(path.read_text())["cells"]
        for i, c in enumerate(cells):
            m = STUB.search("".join(c["source"])) if c["cell_type"] == "code" else None
            if m:
                tasks[m.group(1)] = "".join(cells[i - 1]["source"]) + "".join(c["source"])
    for eid, check in checks().items():
        missing = [n for n in check.answer if n not in tasks[eid] and n not in ("grading_toy_trainer", "grading_trainer")]
        assert not missing, f"exercise {eid}: the task never names {missing}"


def test_exercise_table_lists_every_exercise_as_checked_with_minutes():
    rows = exercise_table(ROOT / "notebooks")
    ids = [r["id"] for r in rows]
    assert ids == sorted(checks(), key=lambda i: tuple(map(int, i.split("."))))
    assert all(r["checked"] and r["fast_minutes"] < 1 and r["check"] for r in rows), \
        [r for r in rows if not (r["checked"] and r["fast_minutes"] < 1)]
    assert {r["notebook"] for r in rows} == {p.name for p in NOTEBOOKS}


def test_medgan_exercises_json_lists_every_student_exercise_id_as_checked(capsys, monkeypatch):
    out = subprocess.run([sys.executable, "-m", "medgan_utils.tools.cli", "exercises", "--json"], capture_output=True,
                         text=True, cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr
    rows = json.loads(out.stdout)
    in_notebooks = sorted(eid for _, eid, _ in _answer_and_check_cells())
    assert sorted(r["id"] for r in rows) == in_notebooks
    assert all(r["checked"] is True for r in rows)
    assert set(rows[0]) >= {"id", "notebook", "checked", "fast_minutes"}
    from medgan_utils.tools.cli import main

    monkeypatch.chdir(ROOT)
    assert main(["exercises"]) == 0
    text = capsys.readouterr().out
    assert "02.4   02_minimax_loss.ipynb    yes" in text
    assert f"{len(rows)} exercises, {len(rows)} checked" in text


# ------------------------------------------------------------------------------------------ every exercise in batch mode

def _imageset(n_per_class, size=28, seed=0, masks=False, name="breastmnist"):
    labels = _labels(n_per_class)
    g = torch.Generator().manual_seed(seed)
    images = torch.rand(len(labels), 1, size, size, generator=g) * 2 - 1
    m = (torch.rand(len(labels), 1, size, size, generator=g) > 0.8).float() if masks else None
    return mu.ImageSet(images=images, labels=labels, name=name, used=name, split="train", size=size,
                       label_names={0: "malignant", 1: "benign"}, masks=m, info={"source": "real"})


def _cfg():
    return SimpleNamespace(device=torch.device("cpu"), fast=True, seed=0, pick=lambda fast=None, full=None, gpu=None: fast)


def _temporary_env(**values):
    import contextlib
    import os

    @contextlib.contextmanager
    def cm():
        old = {k: os.environ.get(k) for k in values}
        os.environ.update(values)
        try:
            yield
        finally:
            for k, v in old.items():
                os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)
    return cm()


def _tiny_short_run(d_net=None, lr_G=2e-4, lr_D=2e-4, data=None, seed=0):
    return _dcgan_trainer(lr_G=lr_G, lr_D=lr_D, d=d_net, fit=1)


def _lesson(eid):
    """The lesson's objects that exercise ``eid``'s stored solution and check read, as small stand-ins."""
    import matplotlib.pyplot as plt

    base = {"torch": torch, "F": F, "np": np, "math": math, "plt": plt, "SEED": 0, "cfg": _cfg(), **vars(mu)}
    nn = eid[:2]
    if nn == "00":
        return {**base, "temporary_env": _temporary_env, "os": __import__("os"),
                "environment_report": lambda: {"datasets": []}}
    if nn == "01":
        busi = _busi_train()
        data = {**_pneumonia(), "breastmnist": _case_01_3()[0]["DATA"]["breastmnist"],
                "busi": {"test": _Set(images=torch.cat([busi.images[[4, 1]] + 0.01, _images(3, 16, seed=9)]))}}
        data["pneumoniamnist"]["test"].used = "pneumoniamnist"
        return {**base, "DATA": data, "busi_train": _imageset([3, 3], 16, masks=True, name="busi"),
                "REAL": {"breastmnist": True}}
    if nn == "02":
        traces = {0: _trace([3, 3, 3], 1), 1: _trace([2, 5, 5], 1)}
        return {**base, "p_data": _p_data(), "c_of_g": _c_of_g_from_notebook(), "p_ref": mu.Mixture1D.gaussian(0, 1),
                "train_ring_gan": lambda lr_g, steps, seed, eval_every: (None, _trace([3, 3, 5], 1, steps)),
                "hops": lambda tr: sum(a != b for a, b in zip([int(t[3][1].argmax()) for t in tr],
                                                              [int(t[3][1].argmax()) for t in tr][1:])),
                "EX_RING_STEPS": 600, "RING_STEPS": 3000, "grading_toy_trainer": _toy_trainer, "_t": traces}
    if nn == "03":
        return _lesson_03(base)
    if nn == "04":
        return _lesson_04(base)
    if nn == "05":
        return _lesson_05(base)
    if nn == "06":
        return _lesson_06(base)
    if nn == "07":
        return _lesson_07(base)
    return _lesson_08(base)


def _lesson_03(base):
    b = _imageset([6, 10])
    b.used = "phantom"  # a stand-in for BreastMNIST: not the real 546 images
    res = {"fd": 3.0, "memorisation": {"ratio": 0.9, "copy_fraction": 0.02, "test_copy_fraction": 0.01}}
    return {**base, "grading_trainer": _dcgan_trainer, "short_run": _tiny_short_run, "quick_fd": lambda t: (2.0, 1.0),
            "train": b, "size": 28, "ex_train": b.images[:32], "LATENT_DIM": 16, "BATCH_SIZE": 16, "LR": 2e-4,
            "betas": (0.5, 0.999), "PRECISION": "fp32", "train_step": mu.dcgan_step,
            "load_dataset": lambda *a, **k: b, "train_feature_net": lambda *a, **k: (None, {}),
            "evaluate_generator": lambda *a, **k: res, "evaluation_table": lambda r: "(table)",
            "make_dcgan": lambda size, ch, latent=16, base=8, seed=0: mu.make_dcgan(size, ch, 16, 8, seed=seed),
            "DCGANTrainer": _small_dcgan_trainer}


def _small_dcgan_trainer(g, d, data, **kw):
    kw = {**kw, "batch_size": 16, "device": "cpu"}
    data = data.images[:32] if hasattr(data, "images") else data[:32]
    return mu.DCGANTrainer(g, d, data, **{k: v for k, v in kw.items() if k != "on_diverge"})


def _lesson_04(base):
    train, val = _imageset([10, 30]), _imageset([6, 10], seed=1)
    idx = torch.arange(40)
    pair = lambda seed: mu.make_conditional_gan(2, 28, 1, 100, 8, seed=seed)  # noqa: E731
    gan = mu.DCGANTrainer(*pair(0), train, step_fn=mu.cgan_step, device="cpu", batch_size=16, precision="fp32",
                          progress=False, seed=0)
    gan.run_steps(1)
    fnet = mu.make_classifier("cnn", 1, 2, seed=0).eval()
    return {**base, "grading_trainer": _cgan_trainer, "fractions": [0.25], "seeds": [0], "gans": {(0.25, 0): (idx, gan)},
            "train": train, "val": val, "make_pair": pair, "BATCH_SIZE": 16, "cgan_train_step": mu.cgan_step,
            "PRECISION": "fp32", "LR_GAN": 2e-4, "gan_steps": 2, "n_classes": 2, "fnet": fnet, "positive": 0,
            "DEFAULT_RATIO": 1.0, "CLASSIFIER": "cnn", "channels": 1, "clf_steps": 2, "updates_per_pass": 1, "clf_patience": 1,
            "task": "binary-class",
            "LR_CLF": 1e-3, "clf_precision": "fp32", "disease": {"name": "malignancy", "label": "malignant"},
            "TEST": SimpleNamespace(times_opened=1)}


def _lesson_05(base):
    from tests.test_exercises import _pair_trainer

    val = _imageset([4, 4], 32, masks=True, name="busi")
    trained = _pair_trainer(mu.adversarial_segmentation_step, 10.0)
    trained.best = {"score": 0.4, "step": 1}
    return {**base, "grading_trainer": _seg_trainer, "train": _imageset([8, 8], 32, masks=True, name="busi"),
            "val": val, "seeds": [0], "fractions": [1.0], "seg_steps": 2, "train_segmenter": lambda *a, **k: trained,
            "runs": [{"arm": "unet", "fraction": 1.0, "seed": 0, "val_dice": 0.6}]}


def _lesson_06(base):
    lesson = {k: v for k, v in _case_06_2()[0].items() if k in ("data", "downstream", "task_kind", "positive",
                                                                 "READ_NOISE")}
    pairs = {k: v for k, v in _case_06_3()[0].items() if k in ("tasks", "val_pairs", "levels", "hardest", "sigma")}
    identity = SimpleNamespace(predict=lambda x, net="G": x * 0.9)
    grading = lambda step, lambda_adv=0.1: __import__("tests.test_exercises", fromlist=["x"])._pair_trainer(  # noqa
        step, lambda_adv, nets=("G", "D"))
    return {**base, **lesson, **pairs, "lambdas": [0.1], "grading_trainer": grading,
            "enhancers": {("denoise", 0.0, 0): identity, ("denoise", 0.1, 0): identity}}


def _lesson_07(base):
    train = _imageset([16, 16])
    variants = dict(mu.STABILITY_VARIANTS)

    def train_image_gan(name, images, **kw):
        opts = variants[name]
        t = _dcgan_trainer(lr_G=opts["lr_G"], lr_D=opts["lr_D"], fit=1)
        t.g_loss_name = opts["loss"]
        return t

    return {**base, "train": train, "epochs": 2, "BASE": 8, "BATCH_SIZE": 16, "make_variant_step": None,
            "train_image_gan": train_image_gan, "STABILITY_VARIANTS": variants}


def _lesson_08(base):
    answers = {"targeted_pgd", "share_called", "black_auc", "white_auc"}
    lesson = {k: v for k, v in {**_case_08_1()[0], **_case_08_2()[0]}.items() if k not in answers}
    rows_ns = {"detector_rows": None}
    g = torch.Generator().manual_seed(0)

    def detector_data(images, masks, mode, seed):
        x = torch.randn(len(images) * 2, 4, generator=torch.Generator().manual_seed(seed + len(mode))).numpy()
        y = np.array([0, 1] * len(images))
        x[y == 1] += 0.5
        return x, y

    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score

    busi = _imageset([6, 6], 16, masks=True, name="busi")
    timgs, tmasks = busi.images[:8], busi.masks[:8]
    rows = []
    for mode in ("local", "blended"):
        x_fit, y_fit = detector_data(busi.images[:12], busi.masks[:12], mode, 1)
        x_t, y_t = detector_data(timgs, tmasks, mode, 0)
        clf = LogisticRegression(max_iter=2000).fit(x_fit, y_fit)
        rows.append({"mode": mode, "auc": roc_auc_score(y_t, clf.predict_proba(x_t)[:, 1])})
    rows_ns["detector_rows"] = rows
    del g
    return {**base, **lesson, **rows_ns, "detector_data": detector_data, "busi_train": busi, "n_fit": 12,
            "timgs": timgs, "tmasks": tmasks, "LogisticRegression": LogisticRegression, "roc_auc_score": roc_auc_score}


@pytest.mark.parametrize("eid", sorted(checks()))
def test_every_exercise_in_batch_mode_runs_its_solution_and_passes_its_check(eid, monkeypatch, capsys, one_thread):
    """What nbval does on the real notebooks, on small stand-ins: the answer cell runs the stored solution (batch
    flag set), then the check cell checks what the solution defined."""
    monkeypatch.setenv("MEDGAN_HEADLESS", "1")
    ns = _lesson(eid)
    answer_names = set(checks()[eid].answer) - {"grading_toy_trainer", "grading_trainer"}
    assert not answer_names & set(ns), f"the stand-ins must not define the answer {sorted(answer_names & set(ns))}"
    mu.student_exercise(eid, namespace=ns)
    assert "batch run (MEDGAN_HEADLESS=1), so the reference solution runs" in capsys.readouterr().out
    assert mu.check_exercise(eid, namespace=ns) is True
    assert f"PASS (exercise {eid})" in capsys.readouterr().out
