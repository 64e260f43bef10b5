"""The bottom layer: settings from the environment, errors, atomic I/O, devices and the precision policy.

Everything else in ``medgan_utils`` may import ``core``; ``core`` imports nothing above it.
"""
from .device import (DeviceUnavailable, available_devices, backend_flags, configure_threads, data_placement,
                     device_name, fast_kernel_flags, get_device, prefers_channels_last, seed_everything,
                     set_backend_flags, synchronize, temporary_backend_flags)
from .env import VARIABLES, EnvSettings, cache_dir, course_root, data_dir, read_env, results_dir
from .errors import CourseError, CoursePathError, SettingError, check_names, positive_int
from .io import (CheckpointError, FolderInUse, atomic_path, atomic_write_json, atomic_write_text, folder_lock,
                 load_checkpoint, remove_stale_parts, save_checkpoint)
from .precision import (PRECISIONS, autocast, grad_scaler, make_adam, native_bf16, optimizer_step,
                        resolve_precision)

__all__ = [
    "DeviceUnavailable", "available_devices", "backend_flags", "configure_threads", "data_placement", "device_name",
    "fast_kernel_flags", "get_device", "prefers_channels_last", "seed_everything", "set_backend_flags",
    "synchronize", "temporary_backend_flags",
    "VARIABLES", "EnvSettings", "cache_dir", "course_root", "data_dir", "read_env", "results_dir",
    "CourseError", "CoursePathError", "SettingError", "check_names", "positive_int",
    "CheckpointError", "FolderInUse", "atomic_path", "atomic_write_json", "atomic_write_text", "folder_lock",
    "load_checkpoint", "remove_stale_parts", "save_checkpoint",
    "PRECISIONS", "autocast", "grad_scaler", "make_adam", "native_bf16", "optimizer_step", "resolve_precision",
]
