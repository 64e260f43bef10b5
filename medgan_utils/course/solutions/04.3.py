fraction, seed = min(fractions), seeds[0]
idx, gan = gans[fraction, seed]
real = train.select(idx)
val_disease = (val.labels.numpy() == positive)
val_metrics, synth_counts = {}, {}
for balanced in (True, False):
    counts = synth_counts[balanced] = synthetic_counts_for(real.labels, float(DEFAULT_RATIO), n_classes, balanced)
    synth = draw_synthetic(gan, counts, seed=seed)
    images, labels, _ = arm_training_set("gan", real, synth, counts, seed=seed)
    net = make_classifier(CLASSIFIER, channels, n_classes, seed=seed)
    net, info = train_classifier(net, images, labels, val.images, val.labels, steps=clf_steps, task=task,
                                 batch_size=BATCH_SIZE, lr=LR_CLF, seed=seed, precision=clf_precision,
                                 device=cfg.device, eval_every=updates_per_pass, patience=clf_patience)
    m = val_metrics[balanced] = diagnosis_metrics(val.labels, predict_proba(net, val.images), task, positive)
    print(f"balanced={balanced!s:<5}: synthetic per class {counts}; validation AUC {m['auc']:.3f}, "
          f"{disease['name']} sensitivity at p = 0.5 {m['sensitivity_at_half']:.2f} "
          f"({int(val_disease.sum())} {disease['label']} images)")
quiz_04_3 = "b"
