"""Data: the registry of course datasets, MD5-checked downloads, image sets, loading and phantoms."""
from .download import DataFolderError, check_file, data_root, ensure_file, fetch, md5sum
from .imageset import ImageSet, to_display, to_unit_range
from .load import (BUSI_LABELS, PHANTOM_LABELS, PhantomFallbackWarning, dataset_info, datasets_used, load_dataset,
                   load_splits, reset_datasets_used)
from .phantom import make_phantom
from .registry import (COURSE_DATASETS, COURSE_FILES, PHANTOM, SPLITS, CorruptDataError, DataError,
                       DataUnavailableError, FileSpec, UnknownDatasetError, UnsupportedSizeError, available_datasets,
                       check_size, dataset_kind, file_spec, supported_sizes)

__all__ = [
    "DataFolderError", "check_file", "data_root", "ensure_file", "fetch", "md5sum",
    "ImageSet", "to_display", "to_unit_range",
    "BUSI_LABELS", "PHANTOM_LABELS", "PhantomFallbackWarning", "dataset_info", "datasets_used", "load_dataset",
    "load_splits", "reset_datasets_used", "make_phantom",
    "COURSE_DATASETS", "COURSE_FILES", "PHANTOM", "SPLITS", "CorruptDataError", "DataError", "DataUnavailableError",
    "FileSpec", "UnknownDatasetError", "UnsupportedSizeError", "available_datasets", "check_size", "dataset_kind",
    "file_spec", "supported_sizes",
]
