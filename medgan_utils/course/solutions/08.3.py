det_data = {mode: (detector_data(busi_train.images[:n_fit], busi_train.masks[:n_fit], mode, SEED + 1),
               detector_data(timgs, tmasks, mode, SEED)) for mode in ("local", "blended")}
transfer_auc = {}
for train_mode in ("local", "blended"):
    (x_fit, y_fit), _ = det_data[train_mode]
    clf = LogisticRegression(max_iter=2000).fit(x_fit, y_fit)
    for test_mode in ("local", "blended"):
        _, (x_t, y_t) = det_data[test_mode]
        transfer_auc[train_mode, test_mode] = roc_auc_score(y_t, clf.predict_proba(x_t)[:, 1])
        print(f"trained on {train_mode:<7}, tested on {test_mode:<7}: AUC {transfer_auc[train_mode, test_mode]:.3f}")
quiz_08_3 = "b"
