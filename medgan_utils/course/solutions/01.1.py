test = DATA["pneumoniamnist"]["test"]
counts = torch.bincount(test.labels, minlength=2)
majority = int(counts.argmax())
majority_acc = counts[majority].item() / len(test)
print(f"{test.used} test: counts {dict(enumerate(counts.tolist()))}; always answering {majority} "
      f"({test.label_names[majority]}) is right {majority_acc:.1%} of the time")
print("class_balance agrees:", abs(majority_acc - class_balance(test)["majority_rate"]) < 1e-12)
