def targeted_pgd(net, images, target, eps, steps=10):
    """Descend the loss of class `target` (the attacker wants that answer), inside the L-inf ball."""
    radius, alpha = 2 * eps, 2 * 2.5 * eps / steps  # images lie in [-1, 1]: the range is 2
    x0 = images.detach()
    x = x0.clone()
    wanted = torch.full((len(x0),), int(target), dtype=torch.long)
    net.eval()
    for _ in range(steps):
        x = x.detach().requires_grad_(True)
        (grad,) = torch.autograd.grad(F.cross_entropy(net(x).float(), wanted), x)
        x = x - alpha * grad.sign()  # minus: towards the target class
        x = torch.min(torch.max(x, x0 - radius), x0 + radius).clamp(-1, 1)
    return x.detach()


net = classifiers["real", seeds[0]]
benign = bm_val.images[bm_val.labels == 1 - positive]
share_called = {}
for eps in (0.0, 2 / 255, 8 / 255):
    called = predict_proba(net, targeted_pgd(net, benign, positive, eps) if eps else benign).argmax(1) == positive
    share_called[eps] = float(called.mean())
    print(f"ε = {eps * 255:g}/255: {called.mean():.0%} of {len(benign)} benign validation images called malignant")
