def my_enhance_step(tr, clean, degraded):
    G = tr.G
    with tr.autocast():
        restored = G(degraded)
    loss_l1 = (restored.float() - clean).abs().mean()
    if tr.lambda_adv == 0:
        tr.opt_G.zero_grad(set_to_none=True)
        tr.scaler.scale(loss_l1).backward()
        tr.scaler.step(tr.opt_G)
        tr.scaler.update()
        return {"loss_G": loss_l1.detach(), "loss_l1": loss_l1.detach()}
    D = tr.D
    with tr.autocast():
        real_logits = D(clean, degraded).float()
        fake_logits = D(restored.detach(), degraded).float()
    loss_D = (F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits))
              + F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits)))
    tr.opt_D.zero_grad(set_to_none=True)
    tr.scaler.scale(loss_D).backward()
    tr.scaler.step(tr.opt_D)
    with tr.autocast():
        gen_logits = D(restored, degraded).float()
    loss_G = loss_l1 + tr.lambda_adv * F.binary_cross_entropy_with_logits(gen_logits, torch.ones_like(gen_logits))
    tr.opt_G.zero_grad(set_to_none=True)
    tr.scaler.scale(loss_G).backward()
    tr.scaler.step(tr.opt_G)
    tr.scaler.update()
    return {"loss_G": loss_G.detach(), "loss_D": loss_D.detach()}
