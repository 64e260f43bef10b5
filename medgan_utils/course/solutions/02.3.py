deltas = np.linspace(0, 8, 33)
h = 1e-3
slopes = np.array([(c_of_g(p_ref, p_ref.shifted(d + h)) - c_of_g(p_ref, p_ref.shifted(d - h))) / (2 * h)
                   for d in deltas])
peak = int(np.argmax(np.abs(slopes)))
flat = deltas[(np.abs(slopes) < 0.01 * np.abs(slopes[peak])) & (deltas > deltas[peak])]
flat_from = float(flat.min())
print("delta :", np.round(deltas[::4], 2))
print("dC/dδ :", np.round(slopes[::4], 4))
print(f"largest slope {np.abs(slopes).max():.3f} at δ = {deltas[peak]:.2f}; below 1 % of it from δ ≈ {flat_from:.2f} on")
print("Far from the data, an optimal D makes C(G) flat: the minimax loss gives G almost no direction.")
quiz_02_3 = "b"
