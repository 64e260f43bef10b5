ttur_runs = {}
for name, (lg, ld) in {"lr_D = 4 x lr_G": (1e-4, 4e-4), "lr_G = 4 x lr_D": (4e-4, 1e-4)}.items():
    t = ttur_runs[name] = short_run(lr_G=lg, lr_D=ld)
    fd, fd_ref = quick_fd(t)
    print(f"{name}: FD {fd:.3f} (reference {fd_ref:.3f}), mean D(x) {sum(t.history['D_x']) / len(t.history['D_x']):.2f}, "
          f"mean D(G(z)) {sum(t.history['D_G_z']) / len(t.history['D_G_z']):.2f}"
          + (f"  [diverged: {t.diverged[:60]}...]" if t.diverged else ""))
quiz_03_3 = "b"
