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
from .core import (CourseError, SettingError, autocast, available_devices, device_name, get_device, resolve_precision,
                   seed_everything)
from .course import (Mixture1D, Settings, class_balance, duplicates_across_splits, environment_report, explore,
                     find_duplicates, format_report, gan_diagram, image_grid, intensity_histograms, is_fast,
                     jsd_on_grid, kl_on_grid, lesion_fraction, make_discriminator, make_generator, mean_ci,
                     mode_coverage, montage_by_class, nearest_neighbours, optimal_discriminator, plot_curves,
                     record_results, results_path, ring_centers, sample_ring, setup, show_grid, show_solution,
                     show_with_masks, student_exercise, time_matmul, to_display, value_on_grid, ToyGANTrainer,
                     grade_step, toy_gan_step)
from .data import (COURSE_FILES, CorruptDataError, DataError, DataUnavailableError, ImageSet, UnknownDatasetError,
                   UnsupportedSizeError, available_datasets, dataset_info, ensure_file, file_spec, load_dataset,
                   load_splits)
from .evaluation import (INCEPTION_FID_CAVEAT, evaluate_generator, evaluation_table, extract_features,
                         fixed_feature_net, frechet_distance, kid, memorisation_audit, plot_memorisation_pairs,
                         precision_recall, train_feature_net)
from .gan import (DCGANTrainer, TrainConfig, TrainingDiverged, count_step_flops, d_loss_bce, dcgan_step,
                  g_loss_nonsaturating, g_loss_saturating, get_losses, make_step)
from .nets import Discriminator, FeatureNet, Generator, count_parameters, format_layer_table, layer_table, make_dcgan

__version__ = "0.2.0"

__all__ = [
    # core
    "CourseError", "SettingError", "autocast", "available_devices", "device_name", "get_device", "resolve_precision",
    "seed_everything",
    # course
    "Settings", "setup", "is_fast", "record_results", "results_path", "mean_ci", "explore", "student_exercise",
    "show_solution", "grade_step", "toy_gan_step", "ToyGANTrainer",
    "image_grid", "show_grid", "montage_by_class", "plot_curves", "to_display", "environment_report",
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
    "__version__",
]
