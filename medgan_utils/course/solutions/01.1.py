test = DATA["pneumoniamnist"]["test"]
counts = torch.bincount(test.labels, minlength=2)
majority = int(counts.argmax())
acc = counts[majority].item() / len(test)
print(f"{test.used} test: counts {dict(enumerate(counts.tolist()))}; always answering {majority} "
      f"({test.label_names[majority]}) is right {acc:.1%} of the time")
assert abs(acc - class_balance(test)["majority_rate"]) < 1e-12
