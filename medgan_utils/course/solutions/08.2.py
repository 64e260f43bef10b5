tr = dcgans[min(fractions)]
idx = stratified_fraction(pn_train.labels, min(fractions), seed=SEED)
members = pn_train.images[idx]
n = min(len(members), len(pn_val))
samples = tr.sample(2000, generator=torch.Generator().manual_seed(123)).flatten(1)


def nn_score(images):
    """Minus the distance to the nearest generated image: closer = more likely a member."""
    return -torch.cdist(images.flatten(1), samples).amin(1).numpy()


black = membership_auc(nn_score(members[:n]), nn_score(pn_val.images[:n]))
white = membership_inference(tr.D_raw, members, pn_val.images, seed=SEED)
black_auc, white_auc = black["auc"], white["auc"]
print(f"black-box (samples only): AUC {black['auc']:.3f} [{black['ci_low']:.3f}, {black['ci_high']:.3f}]")
print(f"white-box (D's score):    AUC {white['auc']:.3f} [{white['ci_low']:.3f}, {white['ci_high']:.3f}]")
