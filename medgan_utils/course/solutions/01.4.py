busi_test = DATA["busi"]["test"]
d_nn, i_nn = nearest_neighbours(busi_test.images, busi_train.images)
order = d_nn.argsort()[:3].tolist()
pairs = torch.cat([torch.stack([busi_test.images[t], busi_train.images[int(i_nn[t])]]) for t in order])
show_grid(pairs, nrow=2, figsize=(4, 6), title="test | nearest train (closest three pairs)")
plt.show()
for t in order:
    print(f"test #{t} ↔ train #{int(i_nn[t])}: RMS distance {d_nn[t]:.3f} (median over the test set {d_nn.median():.3f})")
