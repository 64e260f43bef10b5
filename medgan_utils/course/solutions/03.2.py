bn_runs = {"with BN": short_run(),
           "without BN": short_run(d_net=Discriminator(train.channels, size, batch_norm=False,
                                                       generator=torch.Generator().manual_seed(SEED)))}
fig, axes = plt.subplots(1, 2, figsize=(10, 3), sharey=True)
for ax, (name, t) in zip(axes, bn_runs.items()):
    fd, fd_ref = quick_fd(t)
    plot_curves(t.history, ["D_x", "D_G_z"], ax=ax, reference=0.5, title=f"{name}: FD {fd:.2f} (ref {fd_ref:.2f})")
    print(f"{name:<11} after {t.epoch} epochs: FD {fd:.3f} (reference {fd_ref:.3f}), "
          f"last D(x) {t.history['D_x'][-1]:.2f}, D(G(z)) {t.history['D_G_z'][-1]:.2f}")
axes[0].set_ylabel("mean D output (sigmoid)")
plt.tight_layout()
plt.show()
quiz_03_2 = "b"
