"""Evaluation of generators: a fixed domain feature net, FD/KID/precision-recall, memorisation, Inception FID;
segmentation metrics (Dice, IoU, HD95) and near-duplicate checks across splits.

Nothing here imports :mod:`medgan_utils.gan`: metrics never depend on how a model was trained.
"""
from .attacks import (ATTACKS, attack_images, attack_metrics, check_attacks, check_epsilons, fgsm,
                      perturbation_stats, pgd, train_adversarial)
from .diagnosis import (SUPPORTED_TASKS, diagnosis_metrics, minority_class, official_test_metrics, predict_proba,
                        task_of, train_classifier)
from .distances import frechet_distance, frechet_distance_from_stats, kid, knn_radii, precision_recall
from .features import FIXED_RECIPE, default_cache_dir, extract_features, fixed_feature_net, train_feature_net
from .generator_report import evaluate_generator, evaluation_table
from .image_quality import (PSNR_CAP_DB, hallucination_fraction, lesion_changes, noise_level, psnr,
                            ssim, structured_error)
from .inception import (INCEPTION_FID_CAVEAT, InceptionWeightsUnavailable, inception_features,
                        inception_features_available, inception_fid, inception_weights_path)
from .memorisation import memorisation_audit, plot_memorisation_pairs
from .gan_gate import gan_gate, gate_verdict, kid_interval, kid_unbiased
from .neighbours import NEAR_DUPLICATE_MAX, NEAR_DUPLICATE_RELATIVE, near_duplicate_pairs, nearest_neighbours
from .privacy import (discriminator_gap, discriminator_scores, drop_near_copies, dp_leak_verdict, membership_auc,
                      membership_evidence, membership_inference, tpr_at_fpr)
from .robustness import CHECKLIST, attack_success_rate, format_checklist, pgd_restarts, robustness_checklist
from .segmentation import binarise, dice, dice_scores, hd95, iou, segmentation_metrics
from .cost import conv2d_flops, count_flops, format_cost_table, training_cost
from .statistics import conclusions, interval, mean_ci, paired_bootstrap, paired_difference, summarise_runs, verdict
from .evidence import (BOOTSTRAP_METHOD, EvidenceTable, SelectionLog, SelectionOnTestError, bootstrap_contrast, claim,
                       fast_auc, holm, seed_contrast, wilson_interval)
from .operating_point import (DISEASE_CLASSES, calibration, diagnosis_bootstrap, disease_class, fix_threshold,
                              positive_scores, sensitivity_specificity)
from .neighbours import near_copy_clusters

__all__ = [
    "frechet_distance", "frechet_distance_from_stats", "kid", "knn_radii", "precision_recall",
    "gan_gate", "gate_verdict", "kid_interval", "kid_unbiased",
    "FIXED_RECIPE", "default_cache_dir", "extract_features", "fixed_feature_net", "train_feature_net", "evaluate_generator", "evaluation_table",
    "INCEPTION_FID_CAVEAT", "InceptionWeightsUnavailable", "inception_features", "inception_features_available",
    "inception_fid", "inception_weights_path", "memorisation_audit", "plot_memorisation_pairs",
    "nearest_neighbours", "SUPPORTED_TASKS", "diagnosis_metrics", "minority_class", "official_test_metrics",
    "predict_proba", "task_of", "train_classifier", "conclusions", "interval", "mean_ci", "paired_difference",
    "summarise_runs", "verdict",
    "NEAR_DUPLICATE_MAX", "NEAR_DUPLICATE_RELATIVE", "near_duplicate_pairs",
    "binarise", "dice", "dice_scores", "hd95", "iou", "segmentation_metrics",
    "ATTACKS", "attack_images", "attack_metrics", "check_attacks", "check_epsilons", "fgsm", "perturbation_stats",
    "pgd", "train_adversarial", "discriminator_gap", "discriminator_scores", "membership_auc", "membership_evidence",
    "dp_leak_verdict", "membership_inference",
    "drop_near_copies", "tpr_at_fpr", "CHECKLIST", "attack_success_rate", "format_checklist", "pgd_restarts",
    "robustness_checklist",
    "paired_bootstrap", "PSNR_CAP_DB", "hallucination_fraction", "lesion_changes", "noise_level", "psnr", "ssim",
    "structured_error",
    "conv2d_flops", "count_flops", "format_cost_table", "training_cost",
    "BOOTSTRAP_METHOD", "EvidenceTable", "SelectionLog", "SelectionOnTestError", "bootstrap_contrast", "claim",
    "fast_auc", "holm", "seed_contrast", "wilson_interval", "DISEASE_CLASSES", "calibration", "diagnosis_bootstrap", "disease_class",
    "fix_threshold", "positive_scores", "sensitivity_specificity", "near_copy_clusters",
]
