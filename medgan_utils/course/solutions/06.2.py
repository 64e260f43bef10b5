xv = data["xray"]["val"]
doses = [5, 10, 20, 50, 100, 500]
clean_auc = diagnosis_metrics(xv.labels, predict_proba(downstream["xray"], xv.images), task_kind, positive)["auc"]
aucs = [diagnosis_metrics(xv.labels, predict_proba(downstream["xray"], low_dose(xv.images, d, READ_NOISE, seed=3)),
                          task_kind, positive)["auc"] for d in doses]
plt.figure(figsize=(4.5, 3))
plt.semilogx(doses, aucs, "o-", label="low-dose images")
plt.axhline(clean_auc, color="grey", ls="--", label="clean images")
plt.xlabel("photons for a white pixel")
plt.ylabel("validation AUC")
plt.legend()
plt.show()
print("AUC by dose:", {d: round(a, 3) for d, a in zip(doses, aucs)}, "| clean:", round(clean_auc, 3))
