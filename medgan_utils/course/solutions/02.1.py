from medgan_utils import kl_on_grid

x = np.linspace(-10, 10, 8001)
mix_mean = sum(w * m for w, m in zip(p_data.weights, p_data.means))
mix_var = sum(w * (s**2 + m**2) for w, m, s in zip(p_data.weights, p_data.means, p_data.stds)) - mix_mean**2
candidates = {
    "p_drop (right mode only)": Mixture1D.gaussian(p_data.means[1], p_data.stds[1]),
    "p_blur (one wide Gaussian)": Mixture1D.gaussian(mix_mean, math.sqrt(mix_var)),
}
for name, q in candidates.items():
    a, b = p_data.pdf(x), q.pdf(x)
    jsd = jsd_on_grid(a, b, x)
    print(f"{name:<28} JSD {jsd:.3f} -> C(G) {-math.log(4) + 2 * jsd:+.3f} | KL(p_data||p_g) {kl_on_grid(a, b, x):7.3f}"
          f" | KL(p_g||p_data) {kl_on_grid(b, a, x):.3f}")
print("KL(p_data || p_g) explodes when p_g puts almost no mass where data exist (a dropped mode);")
print("KL(p_g || p_data) barely minds dropping a mode but punishes mass where there is no data (blurring).")
print("The JSD is symmetric and bounded by log 2: it sits between the two.")
