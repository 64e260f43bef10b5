import torch

from medgan_utils import d_loss_bce, g_loss_nonsaturating


def my_toy_step(G, D, opt_g, opt_d, real, z):
    b = real.size(0)
    fake = G(z)

    # (1) D: one pass over the real batch (label 1) and the detached generated batch (label 0).
    logits = D(torch.cat([real, fake.detach()]))
    loss_d = d_loss_bce(logits[:b], logits[b:])
    opt_d.zero_grad(set_to_none=True)
    loss_d.backward()
    opt_d.step()

    # (2) G: the non-saturating loss on the same generated batch, scored by the updated D (no detach).
    loss_g = g_loss_nonsaturating(D(fake))
    opt_g.zero_grad(set_to_none=True)
    loss_g.backward()
    opt_g.step()
    return loss_d.detach(), loss_g.detach()
