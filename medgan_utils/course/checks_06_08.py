"""The checks of exercises 06.1–08.3 (see :mod:`medgan_utils.course.checking`)."""
from __future__ import annotations

import torch

from .checking import call, close, number, quiz, register, wrong


# ------------------------------------------------------------------------------------------ 06 enhancement

@register("06.1", ("my_enhance_step", "grading_trainer"), tests="grade_step against enhancement_step twice: with "
          "λ = 0 (the L1-only branch, no critic) and with λ = 0.1 (critic, then enhancer)", minutes=0.05)
def _06_1(a):
    from ..gan.pix2pix import enhancement_step
    from .graders import grade_step

    make = a["grading_trainer"]
    for lam in (0.0, 0.1):
        print(f"λ = {lam:g}:", end=" ")
        grade_step(a["my_enhance_step"], enhancement_step, lambda step, _lam=lam: make(step, lambda_adv=_lam),
                   exercise="06.1")
    return "both branches (λ = 0 and λ = 0.1) train exactly as the package's enhancement_step does."


DOSES_06_2 = (5, 10, 20, 50, 100, 500)


@register("06.2", ("auc_by_dose", "clean_auc", "first_drop"), ("data", "downstream", "task_kind", "positive",
          "READ_NOISE"), tests="the clean AUC and the AUC at 5 and 500 photons recomputed with low_dose(seed=3) "
          "(±1e-6), every dose present, and the largest dose more than 0.02 below the clean AUC read off your curve",
          minutes=0.1)
def _06_2(a):
    from ..data.degrade import low_dose
    from ..evaluation.diagnosis import diagnosis_metrics, predict_proba

    xv, clf = a["data"]["xray"]["val"], a["downstream"]["xray"]

    def auc(images):
        return diagnosis_metrics(xv.labels, predict_proba(clf, images), a["task_kind"], a["positive"])["auc"]

    got = a["auc_by_dose"]
    if not isinstance(got, dict) or set(DOSES_06_2) - set(got):
        raise wrong(f"auc_by_dose should be {{photons: AUC}} for the doses {list(DOSES_06_2)}.")
    close("clean_auc", a["clean_auc"], auc(xv.images), 1e-6, "Score the clean validation images.")
    for dose in (5, 500):
        want = auc(low_dose(xv.images, dose, a["READ_NOISE"], seed=3))
        close(f"auc_by_dose[{dose}]", got[dose], want, 1e-6,
              "Use low_dose(images, photons, READ_NOISE, seed=3) and the fixed classifier downstream['xray'].")
    below = [d for d in DOSES_06_2 if number(f"auc_by_dose[{d}]", got[d], 0, 1) < float(a["clean_auc"]) - 0.02]
    want_drop = max(below) if below else None
    if a["first_drop"] != want_drop:
        raise wrong(f"first_drop = {a['first_drop']!r}; by your own numbers the largest dose whose AUC is more than "
                    f"0.02 below the clean AUC is {want_drop!r}.")
    return f"clean AUC {float(a['clean_auc']):.3f}; 5 photons {got[5]:.3f}, 500 photons {got[500]:.3f}."


@register("06.3", ("fractions_by_k", "quiz_06_3"), ("tasks", "val_pairs", "levels", "hardest", "sigma"),
          tests="the degraded input's changed-pixel fractions recomputed for k = 1..4 (±1e-6), every method's "
          "fractions in [0, 1] and non-increasing in k (invariant), the question on errors that survive k = 4",
          minutes=0.05)
def _06_3(a):
    from ..evaluation.image_quality import hallucination_fraction

    task = a["tasks"][0]
    clean, bad = a["val_pairs"][task]
    n = len(clean) // len(a["levels"][task])
    i = a["levels"][task].index(a["hardest"][task])
    clean, bad = clean[i * n:(i + 1) * n], bad[i * n:(i + 1) * n]
    sig = a["sigma"][task, a["hardest"][task]]
    fr = a["fractions_by_k"]
    if not isinstance(fr, dict) or "degraded" not in fr or len(fr) < 3:
        raise wrong("fractions_by_k should be {method: [fraction at k=1, 2, 3, 4]} for 'degraded', 'unet_l1' and "
                    "pix2pix at the largest λ.")
    for k, g in zip((1, 2, 3, 4), fr["degraded"]):
        want = float(hallucination_fraction(bad, clean, sig, k).mean())
        close(f"fractions_by_k['degraded'] at k = {k}", g, want, 1e-6, "Use the hardest level's slice of "
              "val_pairs[tasks[0]] (levels are stacked in order) and sigma[task, hardest[task]].")
    for name, vals in fr.items():
        vals = [number(f"fractions_by_k[{name!r}]", v, 0, 1) for v in vals]
        if len(vals) != 4 or any(b > x + 1e-12 for x, b in zip(vals, vals[1:])):
            raise wrong(f"fractions_by_k[{name!r}] = {vals}: four fractions, for k = 1, 2, 3, 4, can only fall as k "
                        "grows (a stricter threshold flags fewer pixels).")
    quiz(a, "quiz_06_3", "b", "Leftover noise has thin tails and falls fast with k; a share that stays high at k = 4 "
         "is structured change: an edge moved, texture invented, a spot added or erased (b).")
    return "; ".join(f"{m}: {v[0]:.1%} → {v[-1]:.1%}" for m, v in fr.items()) + " (k = 1 → 4)."


# ------------------------------------------------------------------------------------------ 07 challenges

@register("07.1", ("my_ddpm_step",), tests="three calls of my_ddpm_step and ddpm_step from the same seeds on a small "
          "noise predictor: bit-identical losses and weights, a detached scalar loss, weights that move",
          minutes=0.02)
def _07_1(a):
    from ..gan.diffusion import ddpm_step
    from ..nets.ddpm import DDPMSchedule, make_noise_predictor

    x0 = torch.rand(8, 1, 28, 28, generator=torch.Generator().manual_seed(5)) * 2 - 1
    runs = []
    for step in (a["my_ddpm_step"], ddpm_step):
        net = make_noise_predictor(1, 8, seed=0)
        start = [p.detach().clone() for p in net.parameters()]
        opt = torch.optim.Adam(net.parameters(), lr=1e-3)
        g = torch.Generator().manual_seed(0)
        losses = [call("my_ddpm_step", step, net, opt, DDPMSchedule(20), x0, g) for _ in range(3)]
        runs.append((losses, list(net.parameters()), start))
    (mine, w_mine, start), (ref, w_ref, _) = runs
    if any(l is None for l in mine):
        raise wrong("my_ddpm_step returned nothing: return the loss, detached (loss.detach()).")
    if not all(torch.is_tensor(l) and l.numel() == 1 for l in mine):
        raise wrong("my_ddpm_step should return the loss as a one-number tensor.")
    if any(l.requires_grad for l in mine):
        raise wrong("my_ddpm_step returns a loss still attached to its graph: return loss.detach().")
    if all(torch.equal(p, s) for p, s in zip(w_mine, start)):
        raise wrong("my_ddpm_step changed no weight: call opt.zero_grad(), loss.backward() and opt.step().")
    if not torch.equal(torch.stack(mine).reshape(-1), torch.stack(ref).reshape(-1)):
        raise wrong(f"the losses differ from ddpm_step's ({[round(float(l), 5) for l in mine]} vs "
                    f"{[round(float(l), 5) for l in ref]}). The order of the random draws matters: t first "
                    "(torch.randint(0, schedule.T, (n,), generator=generator)), then the noise (torch.randn(x0.shape, "
                    "generator=generator)); the target is the noise, the loss F.mse_loss(model(x_t, t), noise).")
    if not all(torch.equal(p, q) for p, q in zip(w_mine, w_ref)):
        raise wrong("the losses agree but the weights do not: take exactly one opt.step() per call, after "
                    "opt.zero_grad(set_to_none=True) and loss.backward().")
    return "three steps, bit-identical to ddpm_step (losses and weights)."


@register("07.2", ("strong_runs", "strong_sigs", "quiz_07_2"), tests="both runs use lr_D = 10 x lr_G, the minimax "
          "run the saturating loss and the other the non-saturating one, the signatures have finite D(x), D(G(z)) "
          "and |grad G|; the question on why the minimax gradient vanishes", minutes=0.3)
def _07_2(a):
    runs, sigs = a["strong_runs"], a["strong_sigs"]
    names = {"minimax": "saturating", "non-saturating": "bce"}
    if not isinstance(runs, dict) or set(runs) != set(names) or not isinstance(sigs, dict) or set(sigs) != set(names):
        raise wrong("strong_runs and strong_sigs should each have the keys 'minimax' and 'non-saturating' (the "
                    "trainers from train_image_gan and their failure_signature(...)).")
    for name, loss in names.items():
        t = runs[name]
        ratio = t.opt_D.param_groups[0]["lr"] / t.opt_G.param_groups[0]["lr"]
        if abs(ratio - 10) > 0.1:
            raise wrong(f"strong_runs[{name!r}] has lr_D / lr_G = {ratio:.3g}; the task asks for 10 (e.g. lr_G "
                        "1e-4, lr_D 1e-3 in your STABILITY_VARIANTS entry).")
        used = getattr(t, "g_loss_name", None)
        if used is not None and used != loss:
            raise wrong(f"strong_runs[{name!r}] was trained with the loss {used!r}; the {name} run needs "
                        f"'loss': {loss!r} in its STABILITY_VARIANTS entry.")
        for key, lo, hi in (("D_x", 0, 1), ("D_G_z", 0, 1), ("g_grad_norm", 0, float("inf"))):
            number(f"strong_sigs[{name!r}][{key!r}]", sigs[name][key], lo, hi)
    quiz(a, "quiz_07_2", "b", "Under the minimax loss the gradient on a fake's logit is -σ(l) = -D(G(z)): it "
         "vanishes exactly when D rejects the fakes (b). The non-saturating loss gives σ(l) - 1 instead.")
    g = {n: sigs[n]["g_grad_norm"] for n in names}
    return f"|grad G| minimax {g['minimax']:.3g} vs non-saturating {g['non-saturating']:.3g} at lr_D = 10 x lr_G."


@register("07.3", ("predicted_flops", "counted_flops", "quiz_07_3"), ("SEED",), tests="the closed-form sum over "
          "the 28-px DCGAN discriminator's convolutions and FlopCounterMode's count, both recomputed exactly; the "
          "question on what the counter counts", minutes=0.01)
def _07_3(a):
    from torch.utils.flop_counter import FlopCounterMode

    from ..evaluation.cost import conv2d_flops
    from ..nets.dcgan import make_dcgan

    _, D = make_dcgan(28, 1, base=64, seed=a["SEED"])
    predicted, h = 0, 28
    for m in D.modules():
        if isinstance(m, torch.nn.Conv2d):
            k, s, p = m.kernel_size[0], m.stride[0], m.padding[0]
            h = (h + 2 * p - k) // s + 1
            predicted += conv2d_flops(m.in_channels, m.out_channels, k, h, h)
    with FlopCounterMode(display=False) as counter:
        D(torch.zeros(1, 1, 28, 28))
    counted = counter.get_total_flops()
    got = int(number("predicted_flops", a["predicted_flops"], 0))
    if got * 2 == predicted:
        raise wrong("predicted_flops is half the closed form: a multiply-add counts as 2 FLOPs (the factor 2).")
    close("predicted_flops", got, predicted, 0.5, "Walk D's Conv2d layers in order; each output size is "
          "(h + 2·padding - kernel) // stride + 1, starting from h = 28.")
    close("counted_flops", a["counted_flops"], counted, 0.5, "Count one forward pass of one 1 x 28 x 28 image.")
    quiz(a, "quiz_07_3", "b", "The counter counts the matrix products of convolutions and linear layers only, not "
         "batch norm, activations or biases (b), which is why it agrees with the closed form.")
    return f"{predicted:,} FLOPs predicted and counted for one image."


# ------------------------------------------------------------------------------------------ 08 trust

def _tiny_classifier() -> torch.nn.Module:
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 2))
    with torch.no_grad():
        net[1].weight.copy_(torch.randn(2, 64, generator=torch.Generator().manual_seed(3)))
        net[1].bias.zero_()
    return net.eval()


@register("08.1", ("targeted_pgd", "share_called"), ("classifiers", "seeds", "bm_val", "positive"),
          tests="on a small made-up classifier: the perturbation stays within 2·ε in the [-1, 1] input range and "
          "uses that budget, images stay in [-1, 1], the target class's probability rises (invariants, behaviour); "
          "your shares at 2/255 and 8/255 recomputed on the notebook's classifier (±0.01)", minutes=0.05)
def _08_1(a):
    fn, eps = a["targeted_pgd"], 8 / 255
    net = _tiny_classifier()
    x = torch.rand(32, 1, 8, 8, generator=torch.Generator().manual_seed(4)) * 1.6 - 0.8
    out = call("targeted_pgd(net, images, target, eps)", fn, net, x, 1, eps)
    if not torch.is_tensor(out) or out.shape != x.shape:
        raise wrong(f"targeted_pgd should return the attacked images, a tensor of the input's shape {tuple(x.shape)}.")
    out = out.detach()
    step = (out - x).abs().amax().item()
    if out.min() < -1 - 1e-6 or out.max() > 1 + 1e-6:
        raise wrong("the attacked images leave [-1, 1]: clamp them to the images' range after each step.")
    if step > 2 * eps + 1e-6:
        raise wrong(f"the perturbation reaches {step * 255 / 2:.1f}/255 of the pixel range, over ε = 8/255: project "
                    "back into the ball after each step.")
    if step < 1.5 * eps:
        raise wrong(f"the largest change is {step:.4f} in the model's input range, but ε = 8/255 of the pixel range "
                    f"is {2 * eps:.4f} there: the images are in [-1, 1], a range of 2, so the radius is 2·ε (the "
                    "notebook's pgd_attack multiplies by hi - lo).")
    with torch.no_grad():
        before, after = (torch.softmax(net(v), 1)[:, 1].mean().item() for v in (x, out))
    if not after > before:
        raise wrong(f"the mean probability of the target class fell ({before:.3f} → {after:.3f}): a targeted attack "
                    "*descends* the loss of the target class, x = x - alpha * grad.sign().")
    net_nb = a["classifiers"]["real", a["seeds"][0]]
    benign = a["bm_val"].images[a["bm_val"].labels == 1 - a["positive"]]
    from ..evaluation.diagnosis import predict_proba

    for e in (2 / 255, 8 / 255):
        adv = call("targeted_pgd", fn, net_nb, benign, a["positive"], e)
        share = float((predict_proba(net_nb, adv).argmax(1) == a["positive"]).mean())
        got = a["share_called"].get(e) if isinstance(a["share_called"], dict) else None
        if got is None:
            raise wrong("share_called should be {eps: share} with the keys 2 / 255 and 8 / 255.")
        close(f"share_called[{e * 255:g}/255]", got, share, 0.01,
              "The share of benign validation images the plain classifier of seeds[0] calls malignant.")
    return f"the target's probability rose {before:.3f} → {after:.3f} within ε; shares recomputed."


@register("08.2", ("black_auc", "white_auc"), ("dcgans", "fractions", "pn_train", "pn_val", "SEED"),
          tests="the white-box AUC recomputed with membership_inference, the black-box AUC with 2,000 samples "
          "drawn with seed 123 and minus the nearest-sample distance (both ±1e-6)", minutes=0.1)
def _08_2(a):
    from ..data.sampling import stratified_fraction
    from ..evaluation.privacy import membership_auc, membership_inference

    tr = a["dcgans"][min(a["fractions"])]
    members = a["pn_train"].images[stratified_fraction(a["pn_train"].labels, min(a["fractions"]), seed=a["SEED"])]
    white = membership_inference(tr.D_raw, members, a["pn_val"].images, seed=a["SEED"])["auc"]
    close("white_auc", a["white_auc"], white, 1e-6, "Use membership_inference(tr.D_raw, members, pn_val.images, "
          "seed=SEED)['auc'].")
    samples = tr.sample(2000, generator=torch.Generator().manual_seed(123)).flatten(1)
    n = min(len(members), len(a["pn_val"]))

    def score(images):
        return -torch.cdist(images.flatten(1), samples).amin(1).numpy()

    black = membership_auc(score(members[:n]), score(a["pn_val"].images[:n]))["auc"]
    got = number("black_auc", a["black_auc"], 0, 1)
    if abs(got - (1 - black)) < 1e-6 and abs(black - 0.5) > 1e-6:
        raise wrong("black_auc is 1 - AUC: the score is *minus* the distance (closer to a sample = more likely a "
                    "member).")
    close("black_auc", got, black, 1e-6, "Score = minus the distance to the nearest of 2,000 samples drawn with "
          "generator=torch.Generator().manual_seed(123); the first n members and n validation images, "
          "n = min(len(members), len(pn_val)).")
    return f"black-box AUC {black:.3f} against white-box {white:.3f}."


@register("08.3", ("transfer_auc", "quiz_08_3"), ("detector_rows",), tests="the four train/test AUCs in [0, 1]; "
          "the AUCs equal section 2.1's table's combined detector AUCs (±1e-6, same data and seeds); the question on what "
          "blending changes", minutes=0.1)
def _08_3(a):
    modes = ("local", "blended")
    got = a["transfer_auc"]
    keys = {(tm, sm) for tm in modes for sm in modes}
    if not isinstance(got, dict) or set(got) != keys:
        raise wrong("transfer_auc should be {(trained on, tested on): AUC} for the four pairs of 'local' and "
                    "'blended'.")
    for k in keys:
        number(f"transfer_auc[{k}]", got[k], 0, 1)
    for row in a["detector_rows"]:  # section 2.1's table: same-mode rows, and transfer rows where it has them
        key = (row.get("trained_on", row["mode"]), row["mode"])
        close(f"transfer_auc[{key!r}]", got[key], row["auc"], 1e-6,
              "Train on detector_data(busi_train.images[:n_fit], busi_train.masks[:n_fit], mode, SEED + 1) and test "
              "on detector_data(timgs, tmasks, mode, SEED), as section 2.1 does.")
    quiz(a, "quiz_08_3", "b", "Blending softens the edge, the ring around the region, while the core stays "
         "generated (b); a detector that leans on the core transfers better.")
    return ", ".join(f"{tm}→{sm} {got[tm, sm]:.3f}" for tm in modes for sm in modes) + "."

