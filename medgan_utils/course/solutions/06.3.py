task = tasks[0]
clean_v, bad_all = val_pairs[task]
n_per_level = len(clean_v) // len(levels[task])
level_i = levels[task].index(hardest[task])
part = slice(level_i * n_per_level, (level_i + 1) * n_per_level)
clean_v, bad_v = clean_v[part], bad_all[part]
sig = sigma[task, hardest[task]]
arms = {"degraded": bad_v,
        "unet_l1": enhancers[task, 0.0, SEED].predict(bad_v, net="G").clamp(-1, 1),
        f"pix2pix λ={max(lambdas):g}": enhancers[task, max(lambdas), SEED].predict(bad_v, net="G").clamp(-1, 1)}
fractions_by_k = {}
for name, img in arms.items():
    fractions_by_k[name] = [float(hallucination_fraction(img, clean_v, sig, k).mean()) for k in (1, 2, 3, 4)]
    print(f"{name:16s}", " ".join(f"k={k}: {f:.2%}" for k, f in zip((1, 2, 3, 4), fractions_by_k[name])))
quiz_06_3 = "b"
