def my_adv_step(tr, images, masks):
    S, D = tr.S, tr.D
    with tr.autocast():
        logits = S(images).float()
        pred = torch.sigmoid(logits)
        real_logits = D(images, masks).float()
        fake_logits = D(images, pred.detach()).float()
    loss_D = (F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits))
              + F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits)))
    tr.opt_D.zero_grad(set_to_none=True)
    tr.scaler.scale(loss_D).backward()
    tr.scaler.step(tr.opt_D)
    with tr.autocast():
        gen_logits = D(images, pred).float()
    loss_S = dice_bce_loss(logits, masks) + tr.lambda_adv * F.binary_cross_entropy_with_logits(
        gen_logits, torch.ones_like(gen_logits))
    tr.opt_S.zero_grad(set_to_none=True)
    tr.scaler.scale(loss_S).backward()
    tr.scaler.step(tr.opt_S)
    tr.scaler.update()
    return {"loss_S": loss_S.detach(), "loss_D": loss_D.detach()}
