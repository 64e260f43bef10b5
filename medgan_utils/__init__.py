"""MedGAN Course helpers: the one facade notebooks import from.

Notebooks keep the ideas in view (the losses, the training step with its
``backward()``, the layers); this package carries the plumbing they share.
The layers, bottom to top (each imports only those below it):

* ``core``: MEDGAN_* settings, errors, atomic I/O, devices and backend flags, the precision policy;
* ``data``: dataset registry, MD5-checked downloads, image sets, loading, phantoms;
* ``nets``: the DCGAN networks, the feature net, layer tables;
* ``gan``: losses, the training step, the trainer and its checkpoints;
* ``evaluation``: the feature net's training and embeddings, FD/KID/PR, memorisation, Inception FID
  (never imports ``gan``);
* ``course``: setup/cfg, results, widgets, exercises and graders, plotting, the data tour, the toys of 02;
* ``tools``: the ``medgan`` command (runner, benchmarks, checks); notebooks never import it.

Every name below is also importable from its subpackage, e.g. ``medgan_utils.gan.DCGANTrainer``.
"""
from .core import (autocast, available_devices, CourseError, device_name, get_device, positive_int, resolve_precision,
                   seed_everything, SettingError)
from .course import (animation_html, arm_training_set, ARMS, cached_conditional_gan, check_arms, class_balance,
                     draw_synthetic, duplicates_across_splits, environment_report, explore, find_duplicates, format_report, gan_diagram,
                     grade_step, image_grid, intensity_histograms, is_fast, jsd_on_grid, kl_on_grid, lesion_fraction,
                     make_discriminator, make_generator, mean_ci, Mixture1D, mode_coverage, montage_by_class,
                     nearest_neighbours, optimal_discriminator, plot_curves, record_results, results_path, ring_centers,
                     sample_ring, Settings, setup, show_grid, show_solution, skip_exercise, check_exercise, show_with_masks, student_exercise,
                     SYNTHETIC_ARMS, synthetic_counts_for, time_matmul, to_display, toy_gan_step, ToyGANTrainer,
                     value_on_grid)
from .data import (available_datasets, classical_augment, CorruptDataError, count_matched_indices, COURSE_FILES,
                   DataError, dataset_info, DataUnavailableError, deform_masks, deform_pairs, drop_leaked_duplicates, ensure_file,
                   file_spec, image_hashes, ImageSet, lesion_stats, load_dataset, load_splits, SealedSplit,
                   stratified_fraction, synthetic_class_counts, UnknownDatasetError, UnsupportedSizeError,
                   UserDataError)
from .evaluation import (binarise, conclusions, diagnosis_metrics, dice, dice_scores, evaluate_generator,
                         evaluation_table, extract_features, fixed_feature_net, frechet_distance, hd95,
                         INCEPTION_FID_CAVEAT, interval, iou, kid, memorisation_audit, minority_class,
                         near_duplicate_pairs, official_test_metrics, paired_difference, plot_memorisation_pairs,
                         precision_recall, predict_proba, segmentation_metrics, summarise_runs, task_of,
                         train_classifier, train_feature_net, verdict)
from .gan import (adversarial_segmentation_step, cgan_step, count_step_flops, d_loss_bce, dcgan_step, DCGANTrainer,
                  dice_bce_loss, g_loss_nonsaturating, g_loss_saturating, get_losses, make_step, PairTrainer,
                  pix2pix_step, segmentation_step, TrainConfig, TrainingDiverged)
from .nets import (CompactCNN, ConditionalGenerator, count_parameters, Discriminator, FeatureNet, format_layer_table,
                   Generator, layer_table, make_classifier, make_conditional_gan, make_dcgan, make_patch_discriminator,
                   make_segmentation_nets, make_unet, MaskedPatchDiscriminator, PatchDiscriminator, patch_layers_for,
                   patch_receptive_field, ProjectionDiscriminator, SoftLabelPatchDiscriminator, UNet)
# notebook 06: degradations, enhancer, image quality and hallucination measures
from .course import (CLASSICAL_METHODS, anscombe, classical_restore, image_scores, inverse_anscombe, noise_domain,
                     tune_classical)
from .data import (ATTENUATION_K, degrade, DISPLAY_RANGE_DB, ENHANCEMENT_TASKS, low_dose, low_resolution, MIN_COUNTS,
                   speckle)
from .evaluation import (hallucination_fraction, lesion_changes, noise_level, paired_bootstrap, psnr, PSNR_CAP_DB,
                         ssim, structured_error)
from .gan import enhancement_step
# notebook 08: attacks, tampering, membership inference, differential privacy
from .course import (BLEND_MODES, dilate, inject_lesions, inpainting_input, inpainting_pairs, paired_detector_auc,
                     paste, place_lesion, region_recall, remove_lesions, residual_features, TAMPER_KINDS)
from .evaluation import (attack_images, attack_metrics, attack_success_rate, ATTACKS, check_attacks, check_epsilons,
                         discriminator_scores, drop_near_copies, fgsm, format_checklist, membership_auc,
                         membership_evidence, dp_leak_verdict, membership_inference, perturbation_stats, pgd, pgd_restarts, robustness_checklist,
                         tpr_at_fpr, train_adversarial)
from .gan import epsilon_spent, noise_for_epsilon, PrivateGANResult, train_private_gan
# notebook 07: stability, data scarcity, cost, GANs against diffusion
from .course import (check_labs, divergence_signature, DIVERGENCE_RULES, diversity_ratio, failure_signature,
                     generator_grad_norm, LAB_NAMES, ON_MODE_LEVEL, ring_outcome, RING_OUTCOMES, train_image_gan,
                     train_ring_gan)
from .evaluation import conv2d_flops, count_flops, discriminator_gap, format_cost_table, training_cost
from .gan import (AdaptiveAugment, check_variants, d_loss_wgan, ddpm_sample, ddpm_step, diff_augment,
                  DIFFAUGMENT_POLICY, ema_decay_at, gradient_penalty, make_diff_augment, make_generator_ema,
                  make_stable_step, PAPER_RECIPES, r1_penalty, STABILITY_VARIANTS, variant_options, variant_recipe)
from .nets import DDPMSchedule, make_noise_predictor, NoisePredictor
# the evidence standard (notebooks 04-08): intervals over seeds and test images, operating points, selection, splits
from .course import (CourseSplits, fast_budget, leak_free_splits, lookup_baseline, plot_reliability, SPLIT_MODES,
                     trainer_fast_budget)
from .data import grouped_split
# notebook 04: classical strengths, the GAN gate, the "real or synthetic?" exercise
from .course import (feature_detector_accuracy, real_or_synthetic_quiz, real_or_synthetic_widget, score_guesses,
                     scripted_guesses)
from .data import AUGMENT_STRENGTHS, augment_at
from .evaluation import gan_gate, gate_verdict, kid_interval, kid_unbiased
from .evaluation import (bootstrap_contrast, calibration, claim, diagnosis_bootstrap, disease_class, DISEASE_CLASSES,
                         EvidenceTable, fast_auc, fix_threshold, holm, near_copy_clusters, positive_scores,
                         seed_contrast, SelectionLog, SelectionOnTestError, sensitivity_specificity, wilson_interval)

# the workshop pack: save a run's networks; reuse a pack's in place of training
from .course import NoPack, open_pack, Pack, PackError, save_run_networks

__version__ = "0.2.0"

__all__ = [
    # core
    "CourseError", "SettingError", "autocast", "available_devices", "device_name", "get_device", "positive_int",
    "resolve_precision",
    "seed_everything",
    # course
    "Settings", "setup", "is_fast", "record_results", "results_path", "mean_ci", "explore", "student_exercise",
    "show_solution", "skip_exercise", "check_exercise", "grade_step", "toy_gan_step", "ToyGANTrainer",
    "animation_html", "image_grid", "show_grid", "montage_by_class", "plot_curves", "to_display",
    "environment_report",
    "format_report", "class_balance", "duplicates_across_splits", "find_duplicates", "gan_diagram",
    "intensity_histograms", "lesion_fraction", "nearest_neighbours", "show_with_masks", "time_matmul",
    "Mixture1D", "jsd_on_grid", "kl_on_grid", "make_discriminator", "make_generator", "mode_coverage",
    "optimal_discriminator", "ring_centers", "sample_ring", "value_on_grid",
    # data
    "ImageSet", "available_datasets", "dataset_info", "load_dataset", "load_splits", "ensure_file", "COURSE_FILES",
    "DataError", "CorruptDataError", "DataUnavailableError", "UnknownDatasetError", "UnsupportedSizeError", "file_spec",
    # nets
    "Generator", "Discriminator", "make_dcgan", "FeatureNet", "count_parameters", "layer_table",
    "format_layer_table",
    # gan
    "DCGANTrainer", "TrainConfig", "TrainingDiverged", "count_step_flops", "dcgan_step", "make_step", "get_losses", "d_loss_bce",
    "g_loss_nonsaturating", "g_loss_saturating",
    # evaluation
    "train_feature_net", "fixed_feature_net", "extract_features", "evaluate_generator", "evaluation_table", "frechet_distance", "kid",
    "precision_recall", "memorisation_audit", "plot_memorisation_pairs", "INCEPTION_FID_CAVEAT",
    # notebook 04: conditional GAN, diagnosis classifier, arms, statistics, strengths, the gate, the quiz
    "AUGMENT_STRENGTHS", "augment_at", "gan_gate", "gate_verdict", "kid_interval", "kid_unbiased",
    "feature_detector_accuracy", "real_or_synthetic_quiz", "real_or_synthetic_widget", "score_guesses",
    "scripted_guesses",
    "ARMS", "SYNTHETIC_ARMS", "arm_training_set", "cached_conditional_gan", "check_arms", "draw_synthetic",
    "synthetic_counts_for", "SealedSplit", "UserDataError", "classical_augment", "count_matched_indices",
    "drop_leaked_duplicates", "image_hashes", "stratified_fraction", "synthetic_class_counts", "conclusions",
    "diagnosis_metrics", "interval", "minority_class", "official_test_metrics", "paired_difference", "predict_proba",
    "summarise_runs", "task_of", "train_classifier", "verdict", "cgan_step", "CompactCNN", "ConditionalGenerator",
    "ProjectionDiscriminator", "make_classifier", "make_conditional_gan", "near_duplicate_pairs",
    # notebooks 05-06: segmentation nets, metrics and masks
    "PatchDiscriminator", "MaskedPatchDiscriminator", "SoftLabelPatchDiscriminator", "patch_layers_for",
    "patch_receptive_field", "UNet",
    "make_patch_discriminator", "make_segmentation_nets", "make_unet", "binarise", "dice", "dice_scores",
    "hd95", "iou", "segmentation_metrics", "deform_masks", "deform_pairs", "lesion_stats", "PairTrainer",
    "adversarial_segmentation_step", "dice_bce_loss", "pix2pix_step", "segmentation_step",
    # notebook 06: enhancement
    "CLASSICAL_METHODS", "anscombe", "classical_restore", "image_scores", "inverse_anscombe", "noise_domain",
    "tune_classical", "ENHANCEMENT_TASKS", "degrade",
    "low_dose", "low_resolution", "speckle", "ATTENUATION_K", "DISPLAY_RANGE_DB", "MIN_COUNTS", "PSNR_CAP_DB",
    "hallucination_fraction", "structured_error", "lesion_changes",
    "noise_level", "paired_bootstrap", "psnr", "ssim", "enhancement_step",
    # notebook 08: attacks, tampering, membership inference, differential privacy
    "BLEND_MODES", "TAMPER_KINDS", "dilate", "inject_lesions", "paste", "place_lesion", "region_recall",
    "remove_lesions", "residual_features", "ATTACKS", "attack_images", "attack_metrics", "check_attacks",
    "check_epsilons", "discriminator_scores", "fgsm", "membership_auc", "membership_evidence", "dp_leak_verdict",
    "membership_inference", "perturbation_stats",
    "pgd", "train_adversarial", "PrivateGANResult", "epsilon_spent", "noise_for_epsilon", "train_private_gan",
    "inpainting_input", "inpainting_pairs", "paired_detector_auc", "attack_success_rate", "drop_near_copies",
    "format_checklist", "pgd_restarts", "robustness_checklist", "tpr_at_fpr",
    # notebook 07: stability, data scarcity, cost, GANs against diffusion
    "LAB_NAMES", "check_labs", "diversity_ratio", "failure_signature", "generator_grad_norm", "train_image_gan",
    "train_ring_gan", "conv2d_flops", "count_flops", "discriminator_gap", "format_cost_table", "training_cost", "STABILITY_VARIANTS", "check_variants",
    "d_loss_wgan", "ddpm_sample", "ddpm_step", "DIFFAUGMENT_POLICY", "diff_augment", "gradient_penalty",
    "AdaptiveAugment", "make_diff_augment", "make_stable_step", "r1_penalty", "variant_options", "DDPMSchedule",
    "divergence_signature", "DIVERGENCE_RULES", "ON_MODE_LEVEL", "ring_outcome", "RING_OUTCOMES", "ema_decay_at",
    "make_generator_ema", "PAPER_RECIPES", "variant_recipe",
    "NoisePredictor",
    "make_noise_predictor",
    # the evidence standard
    "CourseSplits", "leak_free_splits", "lookup_baseline", "plot_reliability", "SPLIT_MODES", "grouped_split",
    "fast_budget", "trainer_fast_budget",
    "bootstrap_contrast", "calibration", "claim", "diagnosis_bootstrap", "disease_class", "DISEASE_CLASSES",
    "EvidenceTable", "fast_auc", "fix_threshold", "holm", "near_copy_clusters", "positive_scores", "seed_contrast",
    "SelectionLog",
    "SelectionOnTestError", "sensitivity_specificity", "wilson_interval",
    # the workshop pack
    "NoPack", "open_pack", "Pack", "PackError", "save_run_networks",
    "__version__",
]
