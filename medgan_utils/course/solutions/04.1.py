def my_cgan_step(tr, real, z, y):
    G, D = tr.G, tr.D
    with tr.autocast():
        fake = G(z, y)
        real_logits = D(real, y).float()
        fake_logits = D(fake.detach(), y).float()
    loss_D = F.relu(1 - real_logits).mean() + F.relu(1 + fake_logits).mean()
    tr.opt_D.zero_grad(set_to_none=True)
    tr.scaler.scale(loss_D).backward()
    tr.scaler.step(tr.opt_D)
    with tr.autocast():
        gen_logits = D(fake, y).float()
    loss_G = -gen_logits.mean()
    tr.opt_G.zero_grad(set_to_none=True)
    tr.scaler.scale(loss_G).backward()
    tr.scaler.step(tr.opt_G)
    tr.scaler.update()
    return {"loss_D": loss_D.detach(), "loss_G": loss_G.detach(),
            "D_x": torch.sigmoid(real_logits.detach()).mean(), "D_G_z": torch.sigmoid(fake_logits.detach()).mean()}
