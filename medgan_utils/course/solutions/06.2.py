xv = data["xray"]["val"]
doses = [5, 10, 20, 50, 100, 500]
clean_auc = diagnosis_metrics(xv.labels, predict_proba(downstream["xray"], xv.images), task_kind, positive)["auc"]
auc_by_dose = {d: diagnosis_metrics(xv.labels, predict_proba(downstream["xray"], low_dose(xv.images, d, READ_NOISE, seed=3)),
                                    task_kind, positive)["auc"] for d in doses}
below = [d for d in doses if auc_by_dose[d] < clean_auc - 0.02]
first_drop = max(below) if below else None
plt.figure(figsize=(4.5, 3))
plt.semilogx(doses, [auc_by_dose[d] for d in doses], "o-", label="low-dose images")
plt.axhline(clean_auc, color="grey", ls="--", label="clean images")
plt.xlabel("photons for a white pixel (log scale)")
plt.ylabel("validation AUC")
plt.title("the fixed classifier against dose")
plt.legend()
plt.show()
print("AUC by dose:", {d: round(a, 3) for d, a in auc_by_dose.items()}, "| clean:", round(clean_auc, 3),
      f"| more than 0.02 below clean from {first_drop} photons down" if first_drop else "| never 0.02 below clean")
