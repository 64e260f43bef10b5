def naive_sat(l):
    return torch.log(1 - torch.sigmoid(l)).mean()


def naive_ns(l):
    return -torch.log(torch.sigmoid(l)).mean()


grid = torch.arange(-120, 121, 1, dtype=torch.float32)
first_bad = {}
for name, naive, stable in [("saturating", naive_sat, g_loss_saturating),
                            ("non-saturating", naive_ns, g_loss_nonsaturating)]:
    bad = []
    for l in grid:
        l1 = l.clone().requires_grad_(True)
        val = naive(l1)
        (g,) = torch.autograd.grad(val, l1)
        l2 = l.clone().requires_grad_(True)
        ref = stable(l2)
        (g_ref,) = torch.autograd.grad(ref, l2)
        wrong = not (torch.isfinite(val) and torch.isfinite(g)) or abs(val - ref) > 1e-3 * (1 + abs(ref)) \
            or abs(g - g_ref) > 1e-3
        if wrong:
            bad.append(int(l))
    first_bad[name] = min(bad, key=abs)
    print(f"naive {name:<15}: wrong or non-finite at {len(bad)} of {len(grid)} logits; "
          f"the smallest |l| that fails is l = {first_bad[name]}")
print("The softplus versions are finite and correct at every one of these logits (see tests/test_losses.py).")
