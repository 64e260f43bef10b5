"""What ``grade_step`` knows about each "write the training step" exercise: what the step must return, the order
in which the reference calls the networks and steps the optimisers, and the usual faults of that exercise.

A network with batch norm (or spectral norm) updates buffers at *every* call in training mode: batch norm's
running mean and variance, spectral norm's power-iteration vectors. Two steps that compute the same losses and
gradients therefore still differ if they call a network a different number of times or in a different order.
The tasks state the order; the grader explains such a difference instead of reporting a bare tensor name.
"""
from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["StepSpec", "STEP_SPECS", "GENERIC_FAULTS", "spec_for"]

GENERIC_FAULTS = (
    "the fake batch is not detached (fake.detach()) in D's loss, so D's loss also sends gradients into G",
    "swapped labels: real images must get label 1 and generated images label 0 in D's loss",
    "a wrong loss sign, or the saturating log(1 - D(G(z))) instead of the non-saturating -log D(G(z))",
    "G is updated before D, or G's loss uses D's scores from before D's update",
    "a missing or misplaced zero_grad(), so gradients of the previous loss or step pile up",
)


@dataclass(frozen=True)
class StepSpec:
    """One step exercise: ``returns`` is ``("tuple", n)`` or ``("dict", keys)`` (keys the reference also returns
    are required), ``order`` the reference's calls in words, ``faults`` the usual faults of this exercise."""

    signature: str
    returns: tuple
    order: str
    faults: tuple = field(default_factory=tuple)


STEP_SPECS = {
    "02.6": StepSpec(
        "my_toy_step(G, D, opt_g, opt_d, real, z) -> (loss_d, loss_g)", ("tuple", 2),
        "G(z); D(torch.cat([real, fake.detach()])); opt_d.step(); D(fake) with the updated D; opt_g.step()",
        ("the fake batch is not detached in D's pass (torch.cat([real, fake.detach()])): D's loss then reaches G",
         "swapped labels: d_loss_bce(real_logits, fake_logits) wants the real half first (label 1), the fakes "
         "second (label 0)",
         "the saturating g_loss_saturating instead of g_loss_nonsaturating for G",
         "G scored by D before D's update (reusing the logits of D's pass for G's loss)",
         "a fresh G(z) for G's update instead of the same generated batch",
         "zero_grad() missing before a backward(), so D's gradients leak into G's update or pile up over steps")),
    "03.1": StepSpec(
        "my_train_step(tr, real, z) -> {'loss_D', 'loss_G', 'D_x', 'D_G_z'}",
        ("dict", ("loss_D", "loss_G", "D_x", "D_G_z")),
        "G(z); D(real); D(fake.detach()); opt_D step; D(fake) with the updated D; opt_G step; scaler.update() once",
        ("the fakes scored before the reals in D's update: D has batch norm, so the order of D's calls matters "
         "(real first, then fake.detach())",
         "real and fake scored in one concatenated D batch: with batch norm that is a different function of each "
         "image (exercise 03.5)",
         "the fake batch is not detached in D's loss",
         "swapped labels: BCE with label 1 for real, 0 for generated",
         "G's loss with label 0 or the saturating log(1 - D(G(z))) instead of BCE with label 1",
         "a fresh G(z) or an extra D call for G's update (each call moves batch norm's running statistics)",
         "D_x / D_G_z as logits instead of sigmoid(logits).mean(), or D_G_z taken after D's update",
         "tr.scaler.update() called after each optimiser step instead of once at the end")),
    "04.1": StepSpec(
        "my_cgan_step(tr, real, z, y) -> {'loss_D', 'loss_G', 'D_x', 'D_G_z'}",
        ("dict", ("loss_D", "loss_G", "D_x", "D_G_z")),
        "G(z, y); D(real, y); D(fake.detach(), y); opt_D step; D(fake, y) with the updated D; opt_G step; "
        "scaler.update() once",
        ("the hinge written without the margin or the ReLU: D's loss is relu(1 - real_logits).mean() + "
         "relu(1 + fake_logits).mean()",
         "G's hinge loss taken as relu(1 - D(G(z, y), y)) instead of the plain -D(G(z, y), y).mean()",
         "fakes drawn for random classes instead of the real batch's classes y (a valid cGAN, but another one)",
         "an extra D or G call: the projection D's spectral norm runs one power iteration per call, and G's "
         "batch norm moves its running statistics at every call (call G once, D three times)",
         "the fake batch is not detached in D's loss",
         "D_x / D_G_z as logits instead of sigmoid(logits).mean()")),
    "05.1": StepSpec(
        "my_adv_step(tr, images, masks) -> {'loss_S', 'loss_D'}", ("dict", ("loss_S", "loss_D")),
        "S(images) once; D(images, masks); D(images, pred.detach()); opt_D step; D(images, pred) with the updated "
        "D; opt_S step on dice_bce_loss(logits, masks) + tr.lambda_adv * BCE(label 1); scaler.update() once",
        ("S run a second time for its own update: S has batch norm, so every extra S(images) call moves its "
         "running statistics; reuse the logits of the single S(images) call",
         "shared logits with a missing detach: D's update must see pred.detach(), S's update the attached pred",
         "the critic shown thresholded masks instead of probabilities (no gradient reaches S)",
         "the adversarial term without tr.lambda_adv, or with label 0",
         "S scored by the critic before the critic's update",
         "D's calls in another order (true pair first, then the predicted pair): D has batch norm")),
    "06.1": StepSpec(
        "my_enhance_step(tr, clean, degraded) -> {'loss_G', ...} (and 'loss_D' when tr.lambda_adv > 0)",
        ("dict", ("loss_G", "loss_D")),
        "G(degraded) once; if tr.lambda_adv == 0: opt_G step on L1 only; else D(clean, degraded); "
        "D(restored.detach(), degraded); opt_D step; D(restored, degraded) with the updated D; opt_G step on "
        "L1 + tr.lambda_adv * BCE(label 1); scaler.update() once",
        ("the λ = 0 branch still builds or steps the critic (with λ = 0 there is no critic: L1 only)",
         "the critic's pairs in the wrong order: (image, condition) = (clean, degraded) and (restored, degraded)",
         "restored not detached in the critic's update",
         "G run a second time for its own update instead of reusing the single restored batch",
         "the L1 term computed against the degraded image instead of the clean one",
         "the adversarial term without tr.lambda_adv")),
}


def spec_for(exercise: str | None) -> StepSpec | None:
    """The spec of a step exercise, or ``None`` for a plain comparison."""
    return STEP_SPECS.get(exercise) if exercise else None
