minority = {}
for split, ds in DATA["breastmnist"].items():
    b = class_balance(ds)
    minority[split] = b["minority_label"]
    print(f"{split:<5}: counts {b['counts']}; minority label {b['minority_label']} = {b['minority_name']!r} "
          f"({b['fractions'][b['minority_label']]:.1%})")
label0_name = DATA["breastmnist"]["train"].label_names[0]
print(f"label 0 means {label0_name!r}; the minority label of each split: {minority}")
