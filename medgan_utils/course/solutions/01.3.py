for split, ds in DATA["breastmnist"].items():
    b = class_balance(ds)
    print(f"{split:<5}: counts {b['counts']}; minority label {b['minority_label']} = {b['minority_name']!r} "
          f"({b['fractions'][b['minority_label']]:.1%})")
    if ds.is_real:
        assert b["minority_label"] == 0 and ds.label_names[0] == "malignant"
if REAL["breastmnist"]:
    print("PASS: label 0 (malignant) is the minority class in every split")
