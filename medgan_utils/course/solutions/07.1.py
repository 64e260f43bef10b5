def my_ddpm_step(model, opt, schedule, x0, generator=None):
    t = torch.randint(0, schedule.T, (x0.shape[0],), device=x0.device, generator=generator)
    noise = torch.randn(x0.shape, device=x0.device, generator=generator)
    loss = F.mse_loss(model(schedule.add_noise(x0, t, noise), t), noise)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return loss.detach()


results = []
for step in (my_ddpm_step, ddpm_step):
    net = make_noise_predictor(1, 8, seed=SEED)
    adam = torch.optim.Adam(net.parameters(), lr=1e-3)
    g = torch.Generator().manual_seed(SEED)
    losses = torch.stack([step(net, adam, DDPMSchedule(20), train.images[:16], g) for _ in range(3)])
    results.append((losses, [p.detach().clone() for p in net.parameters()]))
same = torch.equal(results[0][0], results[1][0]) and all(torch.equal(a, b) for a, b in zip(results[0][1], results[1][1]))
print(f"losses {results[0][0].tolist()} | bit-identical to ddpm_step: {same}")
