fraction, seed = min(fractions), seeds[0]
idx, trained = gans[fraction, seed]
subset = train.select(idx)
shuffled = subset.labels[torch.randperm(len(subset), generator=torch.Generator().manual_seed(seed))]
g, d = make_pair(seed)
batch = max(2, min(BATCH_SIZE, len(subset) // 2))
broken = DCGANTrainer(g, d, subset, labels=shuffled, device=cfg.device, batch_size=batch, step_fn=cgan_train_step,
                      precision=PRECISION, lr=LR_GAN, progress=False, seed=seed)
broken.fit(math.ceil(gan_steps / (len(subset) // batch)))


def fidelity(tr):
    counts = [int((val.labels == c).sum()) for c in range(n_classes)]
    fake, y_fake = draw_synthetic(tr, counts, seed=seed + 1000)
    pred = predict_proba(fnet, fake).argmax(1)
    return [float((pred[y_fake.numpy() == c] == c).mean()) for c in range(n_classes)]


fidelity_true, fidelity_shuffled = fidelity(trained), fidelity(broken)
for name, fid in (("true labels", fidelity_true), ("shuffled labels", fidelity_shuffled)):
    print(f"{name:<16}: class fidelity per class " + ", ".join(f"{c}: {v:.2f}" for c, v in enumerate(fid)))
quiz_04_2 = "b"
