"""Shared test helpers: where the real offline datasets are, and how strictly to require them."""
import os
from pathlib import Path

import pytest

from medgan_utils.data import check_file, file_spec
from medgan_utils.core.env import read_env


def real_data_dir() -> Path:
    """The folder with real dataset files (``MEDGAN_DATA_DIR``, as CI sets it)."""
    return Path(os.environ.get("MEDGAN_DATA_DIR", "data")).resolve()


def require_real(name: str, size: int) -> Path:
    """Path of a verified real file; skip if absent, unless MEDGAN_REQUIRE_REAL_DATA=1 (then fail)."""
    spec = file_spec(name, size)
    st = check_file(spec, real_data_dir())
    if st["status"] != "verified":
        msg = f"real dataset {spec.filename} not available in {real_data_dir()} ({st['status']})"
        if read_env().require_real_data:
            pytest.fail(msg)
        pytest.skip(msg)
    return Path(st["path"])
