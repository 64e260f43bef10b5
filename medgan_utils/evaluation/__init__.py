"""Evaluation of generators: a fixed domain feature net, FD/KID/precision-recall, memorisation, Inception FID.

Nothing here imports :mod:`medgan_utils.gan`: metrics never depend on how a model was trained.
"""
from .distances import frechet_distance, frechet_distance_from_stats, kid, knn_radii, precision_recall
from .features import FIXED_RECIPE, default_cache_dir, extract_features, fixed_feature_net, train_feature_net
from .generator_report import evaluate_generator, evaluation_table
from .inception import (INCEPTION_FID_CAVEAT, InceptionWeightsUnavailable, inception_features,
                        inception_features_available, inception_fid, inception_weights_path)
from .memorisation import memorisation_audit, plot_memorisation_pairs
from .neighbours import nearest_neighbours

__all__ = [
    "frechet_distance", "frechet_distance_from_stats", "kid", "knn_radii", "precision_recall",
    "FIXED_RECIPE", "default_cache_dir", "extract_features", "fixed_feature_net", "train_feature_net", "evaluate_generator", "evaluation_table",
    "INCEPTION_FID_CAVEAT", "InceptionWeightsUnavailable", "inception_features", "inception_features_available",
    "inception_fid", "inception_weights_path", "memorisation_audit", "plot_memorisation_pairs",
    "nearest_neighbours",
]
