b_train = load_dataset("breastmnist", "train", 28)
b_test = load_dataset("breastmnist", "test", b_train.size)
g_b, d_b = make_dcgan(b_train.size, b_train.channels, LATENT_DIM, seed=SEED)
t_b = DCGANTrainer(g_b, d_b, b_train, device=cfg.device, batch_size=64, lr=LR, betas=betas,
                   precision=PRECISION, seed=SEED, progress=False, on_diverge="stop")
t_b.fit(cfg.pick(fast=2, full=60))
b_net, b_info = train_feature_net(b_train, epochs=cfg.pick(fast=1, full=10), device=cfg.device, seed=SEED)
b_res = evaluate_generator(t_b.sample(cfg.pick(fast=200, full=1000)), b_train, b_test, b_net, seed=SEED,
                           n_boot=cfg.pick(fast=0, full=200))
print(f"BreastMNIST ({b_train.used}, {len(b_train)} training images, {t_b.epoch} epochs, "
      f"{t_b.global_step} steps)")
print(evaluation_table(b_res))
b_mem = b_res["memorisation"]
print(f"memorisation: nearest-train distance ratio {b_mem['ratio']:.2f}, "
      f"{b_mem['copy_fraction']:.1%} near-copies (test reference {b_mem['test_copy_fraction']:.1%})")
fig, axes = plt.subplots(1, 2, figsize=(10, 2.8))
show_grid(b_train.images[:24], nrow=12, ax=axes[0], title="real BreastMNIST (training images)")
show_grid(t_b.sample(24), nrow=12, ax=axes[1], title=f"generated (DCGAN, seed {SEED}, {t_b.epoch} epochs)")
plt.tight_layout()
plt.show()
quiz_03_4 = "b"
