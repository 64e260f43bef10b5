"""The course layer: setup and cfg, results, widgets, exercises and their graders, plotting, the data tour and
the toys of 02.

It uses every layer below it (core, data, nets, gan, evaluation) and is used only by
notebooks and by :mod:`medgan_utils.tools`.
"""
from .augmentation import (ARMS, SYNTHETIC_ARMS, arm_training_set, cached_conditional_gan, check_arms,
                           draw_synthetic, gan_cache_key, synthetic_counts_for)
from .enhancement import (CLASSICAL_METHODS, anscombe, classical_restore, image_scores, inverse_anscombe, noise_domain,
                          tune_classical)
from .challenges import (DIVERGENCE_RULES, LAB_NAMES, ON_MODE_LEVEL, RING_OUTCOMES, check_labs, divergence_signature,
                         diversity_ratio, failure_signature, generator_grad_norm, ring_outcome, train_image_gan,
                         train_ring_gan)
from .envinfo import environment_report, format_report
from .checking import check_exercise
from .exercises import show_solution, skip_exercise, student_exercise
from .graders import ToyGANTrainer, grade_step, toy_gan_step
from .plotting import (animation_html, image_grid, montage_by_class, plot_curves, plot_reliability, show_grid,
                       to_display)
from .pretrained import NoPack, Pack, PackError, open_pack, save_run_networks
from .real_or_synthetic import (feature_detector_accuracy, real_or_synthetic_quiz, real_or_synthetic_widget,
                                score_guesses, scripted_guesses)
from .results import mean_ci, record_results, results_path
from .settings import Settings, is_fast, setup
from .splits import SPLIT_MODES, CourseSplits, leak_free_splits, lookup_baseline
from .budget import fast_budget, measure_speed, trainer_fast_budget, units_for_budget
from .tampering import (BLEND_MODES, TAMPER_KINDS, dilate, inject_lesions, inpainting_input, inpainting_pairs,
                        paired_detector_auc, paste, place_lesion, region_recall, remove_lesions, residual_features)
from .tour import (class_balance, duplicates_across_splits, find_duplicates, gan_diagram, intensity_histograms,
                   intensity_stats, lesion_fraction, nearest_neighbours, show_with_masks, time_matmul)
from .toy import (Mixture1D, gaussian_pdf, jsd_on_grid, kl_on_grid, make_discriminator, make_generator, mlp,
                  mode_coverage, optimal_discriminator, ring_centers, sample_ring, value_on_grid)
from .widgets import explore, frontend_available

__all__ = [
    "feature_detector_accuracy", "real_or_synthetic_quiz", "real_or_synthetic_widget", "score_guesses",
    "scripted_guesses",
    "environment_report", "format_report", "student_exercise", "show_solution", "skip_exercise", "check_exercise",
    "grade_step", "toy_gan_step", "ToyGANTrainer",
    "animation_html", "image_grid", "montage_by_class", "plot_curves", "plot_reliability", "show_grid", "to_display",
    "SPLIT_MODES", "CourseSplits", "leak_free_splits", "lookup_baseline",
    "fast_budget", "measure_speed", "trainer_fast_budget", "units_for_budget",
    "mean_ci", "record_results", "results_path", "Settings", "is_fast", "setup",
    "class_balance", "duplicates_across_splits", "find_duplicates", "gan_diagram", "intensity_histograms",
    "intensity_stats", "lesion_fraction", "nearest_neighbours", "show_with_masks", "time_matmul",
    "Mixture1D", "gaussian_pdf", "jsd_on_grid", "kl_on_grid", "make_discriminator", "make_generator", "mlp",
    "mode_coverage", "optimal_discriminator", "ring_centers", "sample_ring", "value_on_grid",
    "explore", "frontend_available",
    "ARMS", "SYNTHETIC_ARMS", "arm_training_set", "cached_conditional_gan", "check_arms", "draw_synthetic",
    "gan_cache_key", "synthetic_counts_for",
    "CLASSICAL_METHODS", "anscombe", "classical_restore", "image_scores", "inverse_anscombe", "noise_domain",
    "tune_classical",
    "BLEND_MODES", "TAMPER_KINDS", "dilate", "inject_lesions", "paste", "place_lesion", "region_recall",
    "remove_lesions", "residual_features", "inpainting_input", "inpainting_pairs", "paired_detector_auc",
    "LAB_NAMES", "check_labs", "diversity_ratio", "failure_signature", "generator_grad_norm", "train_image_gan",
    "train_ring_gan", "DIVERGENCE_RULES", "ON_MODE_LEVEL", "RING_OUTCOMES", "divergence_signature", "ring_outcome",
    "NoPack", "Pack", "PackError", "open_pack", "save_run_networks",
]
