"""MedGAN Course helpers: data, settings, results, plotting, widgets, checkpoints.

The notebooks keep the ideas (losses, training steps, architectures) in view;
this package carries the plumbing they share.
"""
from .settings import Settings, get_device, is_fast, seed_everything, setup
from .data import ImageSet, available_datasets, dataset_info, load_dataset, load_splits
from .results import mean_ci, record_results

__version__ = "0.1.0"

__all__ = [
    "Settings", "setup", "get_device", "is_fast", "seed_everything",
    "ImageSet", "available_datasets", "dataset_info", "load_dataset", "load_splits",
    "mean_ci", "record_results", "__version__",
]
