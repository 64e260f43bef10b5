"""Shared test helpers: where the real offline datasets are, how strictly to require them, and a notebook's code
cells (for the tests that tie a notebook's visible step to the package's copy)."""
import json
import os
import shutil
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


NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


def notebook_cell(notebook: str, prefix: str) -> str:
    """The source of the first code cell of ``notebooks/<notebook>.ipynb`` that starts with ``prefix``."""
    for cell in json.loads((NOTEBOOKS / f"{notebook}.ipynb").read_text())["cells"]:
        src = "".join(cell["source"])
        if cell["cell_type"] == "code" and src.startswith(prefix):
            return src
    raise AssertionError(f"notebook {notebook} has no code cell starting with {prefix!r}")


def one_line_error(capsys) -> str:
    """The CLI's error for bad input: one line, no traceback."""
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("medgan: error:")
    return lines[0]


def notebook_text(executed: Path) -> str:
    """Everything an executed notebook's code cells printed."""
    cells = json.loads(Path(executed).read_text())["cells"]
    return "\n".join(o.get("text", "") if isinstance(o.get("text"), str) else "".join(o.get("text", []))
                     for c in cells if c["cell_type"] == "code" for o in c.get("outputs", []))


def fast_run(notebook: str, out_dir: Path, params: dict | None = None) -> dict:
    """A fast-mode run of ``notebooks/<notebook>.ipynb`` into ``out_dir/<notebook>/``: ``{"results", "text", "folder"}``.

    CI executes each notebook once: nbval's run (kept in ``MEDGAN_NBVAL_RUN_DIR/<notebook>/`` with its saved
    networks) is the default fast run, so a default run (no ``params``) is copied from there when nbval ran that
    notebook to the end in this session; otherwise (a test file run alone, or other parameters) it is executed.
    """
    import shutil

    from medgan_utils.tools.runner import run_notebook, temporary_environ

    out = Path(out_dir) / notebook
    kept = Path(os.environ.get("MEDGAN_NBVAL_RUN_DIR") or "/nonexistent") / notebook
    reusable = (kept / f"{notebook}.ipynb").is_file() and (kept / "results.json").is_file() and (
        kept / "networks.json").is_file()
    if not params and reusable:
        record = json.loads((kept / "results.json").read_text())
        if record.get("mode") == "fast" and not record.get("pretrained"):
            shutil.copytree(kept, out, ignore=shutil.ignore_patterns("checkpoints*", "*.lock"))
            return {"results": record, "text": notebook_text(out / f"{notebook}.ipynb"), "folder": out,
                    "reused": True}
    with temporary_environ(unset=["MEDGAN_PRETRAINED"]):
        row = run_notebook(NOTEBOOKS / f"{notebook}.ipynb", out_dir, params, fast=True)
    assert row["status"] == "ok", row["error"]
    return {"results": json.loads(Path(row["results"]).read_text()), "text": notebook_text(Path(row["output"])),
            "folder": Path(row["results"]).parent, "reused": False}


def fast_run_and_pack(notebook: str, root: Path) -> dict:
    """One fast run of ``notebook`` (nbval's, in CI) under ``root/run`` and the pack built from it in ``root/pack``:
    ``{"root", "pack", "run"}`` (``run`` as :func:`fast_run` returns it)."""
    from medgan_utils.tools.pack import build_pack

    run = fast_run(notebook, root / "run")
    build_pack(root / "run", root / "pack", echo=lambda *a, **k: None)
    return {"root": root, "pack": root / "pack", "run": run}


def tiny_net(seed: int):
    """A tiny seeded network with a batch norm (float and integer buffers), for pack and checkpoint tests."""
    import torch
    from torch import nn

    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.Linear(8, 2))


def flip_byte(path: Path, offset: int = -20) -> Path:
    """Change one byte of ``path``: a tampered or half-copied file, whose SHA-256 no longer matches."""
    data = bytearray(Path(path).read_bytes())
    data[offset] ^= 0xFF
    Path(path).write_bytes(bytes(data))
    return Path(path)


def tampered_copy(pack: Path, dest: Path, member: str, offset: int = -100) -> Path:
    """A copy of the pack at ``dest`` with one byte of ``member`` (a path inside the pack) changed."""
    shutil.copytree(pack, dest)
    flip_byte(Path(dest) / member, offset)
    return Path(dest)
