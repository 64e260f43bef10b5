busi_test = DATA["busi"]["test"]
d_nn, i_nn = nearest_neighbours(busi_test.images, busi_train.images)
order = d_nn.argsort()[:3].tolist()
closest = [(t, int(i_nn[t])) for t in order]
pairs = torch.cat([torch.stack([busi_test.images[t], busi_train.images[r]]) for t, r in closest])
show_grid(pairs, nrow=2, figsize=(4, 6), title="the closest three pairs", col_labels=["test", "nearest train"],
          row_labels=[f"test #{t}\ntrain #{r}" for t, r in closest])
plt.show()
for t, r in closest:
    print(f"test #{t} ↔ train #{r}: RMS distance {d_nn[t]:.3f} (median over the test set {d_nn.median():.3f})")
