import torch
import torch.nn.functional as F


def my_train_step(tr, real, z):
    G, D, opt_G, opt_D, scaler = tr.G, tr.D, tr.opt_G, tr.opt_D, tr.scaler
    ones = torch.ones(real.shape[0], device=real.device)

    # (1) Discriminator: label 1 for the real batch, label 0 for the generated one.
    #     fake.detach(): D's loss must not send gradients into G.
    with tr.autocast():
        fake = G(z)
        real_logits = D(real).float()
        fake_logits = D(fake.detach()).float()
    loss_D = (F.binary_cross_entropy_with_logits(real_logits, ones)
              + F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(ones)))
    opt_D.zero_grad(set_to_none=True)
    scaler.scale(loss_D).backward()
    scaler.step(opt_D)

    # (2) Generator, non-saturating: the *updated* D should call the same fakes real (label 1).
    with tr.autocast():
        gen_logits = D(fake).float()
    loss_G = F.binary_cross_entropy_with_logits(gen_logits, ones)
    opt_G.zero_grad(set_to_none=True)
    scaler.scale(loss_G).backward()
    scaler.step(opt_G)
    scaler.update()

    return {"loss_D": loss_D.detach(), "loss_G": loss_G.detach(),
            "D_x": torch.sigmoid(real_logits.detach()).mean(), "D_G_z": torch.sigmoid(fake_logits.detach()).mean()}
