bn_trap, bn_trap_runs = {}, {}
for name, step in {"two D passes": train_step, "one concatenated D batch": make_step("dcgan", concat=True)}.items():
    g, d = make_dcgan(size, train.channels, LATENT_DIM, seed=SEED)
    t = DCGANTrainer(g, d, ex_train, device=cfg.device, batch_size=min(BATCH_SIZE, len(ex_train) // 2), lr=LR,
                     betas=betas, step_fn=step, precision=PRECISION, seed=SEED, progress=False, on_diverge="stop")
    t.fit(cfg.pick(fast=2, full=8))
    bn_trap_runs[name] = t
    k = max(1, len(t.history["loss_G"]) // 4)  # the last quarter of the steps
    d_step = sum(t.history["D_G_z"][-k:]) / k
    g_step = sum(math.exp(-v) for v in t.history["loss_G"][-k:]) / k
    bn_trap[name] = (d_step, g_step)
    print(f"{name:<26}: D(G(z)) seen by the D step {d_step:.3f} | seen by the G step {g_step:.3f} | "
          f"FD {quick_fd(t)[0]:.2f}")
quiz_03_5 = "b"
