"""Data: the registry of course datasets, MD5-checked downloads, image sets, loading, phantoms and own data."""
from .degrade import (ATTENUATION_K, DISPLAY_RANGE_DB, ENHANCEMENT_TASKS, MIN_COUNTS, degrade, low_dose, low_resolution,
                      speckle)
from .download import DataFolderError, check_file, data_root, ensure_file, fetch, md5sum
from .imageset import ImageSet, to_display, to_unit_range
from .masks import DEFORM_KINDS, deform_masks, deform_pairs, lesion_stats
from .load import (BUSI_LABELS, PHANTOM_LABELS, PhantomFallbackWarning, dataset_info, datasets_used, load_dataset,
                   load_splits, reset_datasets_used)
from .phantom import make_phantom
from .sampling import (AUGMENT_STRENGTHS, SealedSplit, SealedSplitReopened, augment_at, classical_augment, count_matched_indices,
                       drop_leaked_duplicates, grouped_split, image_hashes, stratified_fraction,
                       synthetic_class_counts)
from .registry import (COURSE_DATASETS, COURSE_FILES, PHANTOM, SPLITS, CorruptDataError, DataError,
                       DataUnavailableError, FileSpec, UnknownDatasetError, UnsupportedSizeError, available_datasets,
                       check_size, dataset_kind, file_spec, supported_sizes)
from .user_data import (USER_SPLIT_FRACTIONS, USER_SPLIT_SEED, UserDataError, check_user_size, dataset_kind_or_user,
                        is_user_path, read_user_dataset, resolve_user_path, user_dataset_info)
from .user_masks import (SEG_FOLDER_LAYOUT, SEG_NPZ_LAYOUT, GreyMaskWarning, binarise_mask, is_segmentation_data,
                         read_user_masks, user_masks_info)

__all__ = [
    "DataFolderError", "check_file", "data_root", "ensure_file", "fetch", "md5sum",
    "ImageSet", "to_display", "to_unit_range",
    "BUSI_LABELS", "PHANTOM_LABELS", "PhantomFallbackWarning", "dataset_info", "datasets_used", "load_dataset",
    "load_splits", "reset_datasets_used", "make_phantom",
    "COURSE_DATASETS", "COURSE_FILES", "PHANTOM", "SPLITS", "CorruptDataError", "DataError", "DataUnavailableError",
    "FileSpec", "UnknownDatasetError", "UnsupportedSizeError", "available_datasets", "check_size", "dataset_kind",
    "file_spec", "supported_sizes",
    "USER_SPLIT_FRACTIONS", "USER_SPLIT_SEED", "UserDataError", "check_user_size", "dataset_kind_or_user",
    "is_user_path", "read_user_dataset", "resolve_user_path", "user_dataset_info",
    "AUGMENT_STRENGTHS", "augment_at", "SealedSplit", "SealedSplitReopened", "classical_augment", "count_matched_indices", "drop_leaked_duplicates",
    "image_hashes", "stratified_fraction", "synthetic_class_counts", "grouped_split",
    "DEFORM_KINDS", "deform_masks", "deform_pairs", "lesion_stats",
    "SEG_FOLDER_LAYOUT", "SEG_NPZ_LAYOUT", "GreyMaskWarning", "binarise_mask", "is_segmentation_data",
    "read_user_masks", "user_masks_info",
    "ATTENUATION_K", "DISPLAY_RANGE_DB", "ENHANCEMENT_TASKS", "MIN_COUNTS", "degrade", "low_dose", "low_resolution",
    "speckle",
]
