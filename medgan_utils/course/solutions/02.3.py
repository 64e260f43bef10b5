deltas = np.linspace(0, 8, 33)
h = 1e-3
slopes = np.array([(c_of_g(p_ref, p_ref.shifted(d + h)) - c_of_g(p_ref, p_ref.shifted(d - h))) / (2 * h)
                   for d in deltas])
flat = deltas[(np.abs(slopes) < 0.01 * np.abs(slopes).max()) & (deltas > deltas[np.argmax(np.abs(slopes))])]
print("delta :", np.round(deltas[::4], 2))
print("dC/dδ :", np.round(slopes[::4], 4))
print(f"largest slope {np.abs(slopes).max():.3f} at δ = {deltas[np.argmax(np.abs(slopes))]:.2f}; "
      f"below 1 % of it from δ ≈ {flat.min():.2f} on" if flat.size else "slope never falls below 1 %")
print("Far from the data, an optimal D makes C(G) flat: the minimax loss gives G almost no direction.")
