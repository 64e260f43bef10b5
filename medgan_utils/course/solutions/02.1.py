x = np.linspace(-10, 10, 8001)
mix_mean = sum(w * m for w, m in zip(p_data.weights, p_data.means))
mix_var = sum(w * (s**2 + m**2) for w, m, s in zip(p_data.weights, p_data.means, p_data.stds)) - mix_mean**2
candidates = {
    "p_drop": Mixture1D.gaussian(p_data.means[1], p_data.stds[1]),  # the right mode only
    "p_blur": Mixture1D.gaussian(mix_mean, math.sqrt(mix_var)),  # one wide Gaussian
}
divergences = {}
for name, q in candidates.items():
    a, b = p_data.pdf(x), q.pdf(x)
    divergences[name] = (jsd_on_grid(a, b, x), kl_on_grid(a, b, x), kl_on_grid(b, a, x))
    jsd, kl_dg, kl_gd = divergences[name]
    print(f"{name}: JSD {jsd:.3f} -> C(G) {-math.log(4) + 2 * jsd:+.3f} | KL(p_data||p_g) {kl_dg:7.3f}"
          f" | KL(p_g||p_data) {kl_gd:.3f}")
preferred = min(divergences, key=lambda n: divergences[n][0])  # C(G) = -log 4 + 2 JSD: the smaller JSD wins
print(f"C(G) prefers {preferred}.")
print("KL(p_data || p_g) explodes when p_g puts almost no mass where data exist (a dropped mode);")
print("KL(p_g || p_data) barely minds dropping a mode but punishes mass where there is no data (blurring).")
quiz_02_1 = "a"
