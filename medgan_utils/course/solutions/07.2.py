STABILITY_VARIANTS["minimax-strong-D"] = {"loss": "saturating", "lr_G": 1e-4, "lr_D": 1e-3}
STABILITY_VARIANTS["ns-strong-D"] = {"loss": "bce", "lr_G": 1e-4, "lr_D": 1e-3}
strong_runs, strong_sigs = {}, {}
for key, name in (("minimax", "minimax-strong-D"), ("non-saturating", "ns-strong-D")):
    t = strong_runs[key] = train_image_gan(name, train.images, seed=SEED, epochs=max(2, epochs // 2), base=BASE,
                                           batch_size=BATCH_SIZE, device=cfg.device, step_factory=make_variant_step)
    sig = strong_sigs[key] = failure_signature(t, t.sample(200), train.images)
    print(f"{name:<17} D(x) {sig['D_x']:.2f}  D(G(z)) {sig['D_G_z']:.3f}  |grad G| {sig['g_grad_norm']:.3g}  "
          f"diversity {sig['diversity']:.2f} -> {sig['failure']}")
for name in ("minimax-strong-D", "ns-strong-D"):
    del STABILITY_VARIANTS[name]
quiz_07_2 = "b"
