"""``medgan pack build`` and ``medgan pack verify``: the workshop pack, a folder that travels on a USB stick.

``build`` collects the networks each notebook saved in a ``medgan run`` (or sweep) output folder
(``networks.json`` beside ``results.json``, from :func:`~medgan_utils.course.pretrained.save_run_networks`),
copies them into ``PACK/NN/`` and writes ``PACK/manifest.json``: each file's SHA-256 and size, the notebook,
its parameters and metrics (from ``results.json``), the course and torch versions, the device and the date.
``--with-data`` adds the MD5-checked dataset files the runs used (``PACK/data/``; point ``MEDGAN_DATA_DIR``
there). Networks named in :data:`~medgan_utils.course.pretrained.PACK_FP16` are stored in half precision
(``--as-trained`` keeps them as trained). The pack is built in a temporary folder beside ``PACK`` and renamed
into place when complete.
"""
from __future__ import annotations

import contextlib
import fnmatch
import json
import os
import shutil
import tempfile
from pathlib import Path

import torch

from ..core.env import data_dir
from ..core.errors import CourseError
from ..core.io import atomic_write_json, umask_mode
from ..core.io import load_checkpoint, save_checkpoint
from ..course.pretrained import (MANIFEST, INDEX, PACK_FORMAT, PACK_FP16, PACK_NETWORKS, PackError, check_file,
                                 check_notebook, check_version, course_version, expand_names, half_state,
                                 read_manifest, sha256_file, torch_minor)
from .untrusted import UnreadableRecord, read_record


def find_runs(run_dir: Path, only=None) -> dict[str, Path]:
    """Notebook key → the run folder that saved its networks, under ``run_dir`` (a run or a sweep folder)."""
    run_dir = Path(run_dir).expanduser()
    if not run_dir.is_dir():
        raise PackError(f"--from {run_dir} is not a folder. Fix: pass the --out folder of a `medgan run`.")
    found: dict[str, list[Path]] = {}
    for index in sorted(run_dir.rglob(INDEX)):
        key = index.parent.name[:2] if index.parent.name[:2].isdigit() else None
        with contextlib.suppress(UnreadableRecord):
            key = str(read_record(index, "network index", fix="rerun the notebook").get("notebook", ""))[:2] or key
        if key and (not only or key in only):
            found.setdefault(key, []).append(index.parent)
    several = {k: v for k, v in found.items() if len(v) > 1}
    if several:
        k, folders = next(iter(several.items()))
        raise PackError(f"{run_dir} holds {len(folders)} runs of notebook {k} ({folders[0].name}, {folders[1].name}"
                        "...). Fix: pass one run's folder with --from, or --only the other notebooks.")
    missing = sorted(set(only or ()) - set(found))
    if missing or not found:
        raise PackError(f"no saved networks of notebook(s) {', '.join(missing) or 'any'} under {run_dir}. Fix: run "
                        f"them first (medgan run {' '.join(missing) or '03'} --out {run_dir}), with this course version.")
    return {k: v[0] for k, v in sorted(found.items())}


def _read_run(folder: Path) -> tuple[dict, dict]:
    fix = "rerun the notebook with `medgan run`"
    index = read_record(folder / INDEX, "network index", fix=fix)
    if not (folder / "results.json").is_file():
        raise PackError(f"{folder} has saved networks but no results.json (the run did not finish). Fix: {fix}.")
    results = read_record(folder / "results.json", "results file", fix=fix)
    if str(results.get("notebook")) != str(index.get("notebook")):
        raise PackError(f"{folder}: results.json and {INDEX} name different notebooks. Fix: {fix}.")
    return index, results


def _device_of(results: dict) -> str:
    gpu = (results.get("machine") or {}).get("gpu")
    return str(gpu or results.get("device") or "?")


def _copy(src: Path, dest: Path) -> dict:
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dest)
    os.chmod(dest, umask_mode())
    return {"sha256": sha256_file(dest), "bytes": dest.stat().st_size}


def names_summary(names, patterns=()) -> str:
    """``names`` for one line: a ``*`` family of more than 3 members as ``segmenter_* (17: segmenter_0 ... )``."""
    names, parts, done = list(names), [], set()
    for pattern in patterns:
        members = [n for n in names if fnmatch.fnmatch(n, pattern) and n not in done] if "*" in pattern else []
        if len(members) > 3:
            parts.append((names.index(members[0]), f"{pattern} ({len(members)}: {members[0]} ... {members[-1]})"))
            done.update(members)
    parts += [(i, n) for i, n in enumerate(names) if n not in done]
    return ", ".join(text for _, text in sorted(parts))


def _copy_half(src: Path, dest: Path) -> dict:
    """``src``'s state dict with its floating tensors in fp16, saved at ``dest`` (loads with ``weights_only``)."""
    save_checkpoint(dest, half_state(load_checkpoint(src)))
    os.chmod(dest, umask_mode())
    return {"sha256": sha256_file(dest), "bytes": dest.stat().st_size, "dtype": "float16 (halved by pack build)",
            "trained_sha256": sha256_file(src)}


def _notebook_entry(key: str, folder: Path, stage: Path, halve: bool = True) -> dict:
    index, results = _read_run(folder)
    if index.get("course_version") != course_version():
        raise PackError(f"{folder} was run by course version {index.get('course_version')}, this is "
                        f"{course_version()}. Fix: rerun notebook {key} with this version.")
    files = {}
    halved = set(expand_names(PACK_FP16.get(key, ()), index.get("files") or {})) if halve else set()
    for name, entry in (index.get("files") or {}).items():
        src = folder / str(entry.get("path", ""))
        if not src.is_file() or sha256_file(src) != entry.get("sha256"):
            raise PackError(f"{src} is missing or changed since the run saved it. Fix: rerun notebook {key}.")
        rel = f"{key}/{Path(src).name}"
        half = name in halved and entry.get("kind") == "state_dict" and entry.get("dtype") == "as trained"
        files[name] = {**{k: v for k, v in entry.items() if k not in ("path",)}, "path": rel,
                       **(_copy_half if half else _copy)(src, stage / rel)}
    return {"notebook": results.get("notebook"), "mode": results.get("mode"), "device": _device_of(results),
            "trained_at": results.get("finished_at"), "torch": (results.get("versions") or {}).get("torch"),
            "course_version": index.get("course_version"), "match": index.get("match") or {},
            "params": results.get("params") or {}, "metrics": results.get("metrics") or {},
            "datasets": results.get("datasets") or {}, "files": files}


def _data_entries(notebooks: dict, stage: Path) -> dict:
    """The real dataset files the runs used, MD5-checked in ``MEDGAN_DATA_DIR``, copied to ``stage/data``."""
    from ..data.download import check_file as check_data_file
    from ..data.registry import file_spec

    out = {}
    for entry in notebooks.values():
        for name, used in entry["datasets"].items():
            if not isinstance(used, dict) or used.get("source") in (None, "phantom", "user"):
                continue
            try:
                spec = file_spec(str(used.get("used") or name), int(used.get("size") or 28))
            except (CourseError, ValueError):  # a phantom or a name that has no file
                continue
            state = check_data_file(spec, data_dir())
            if not state["verified"]:
                raise PackError(f"--with-data: {state['path']} is {state['status']} (MD5). Fix: medgan data fetch "
                                f"{spec.name} --size {spec.size}, then build again.")
            if spec.filename not in out:
                out[spec.filename] = {"path": f"data/{spec.filename}", "dataset": spec.name, "size": spec.size,
                                      "md5": state["md5"], **_copy(Path(state["path"]), stage / "data" / spec.filename)}
    return out


def build_pack(run_dir, out, only=None, with_data: bool = False, as_trained: bool = False, echo=print) -> Path:
    """Build the pack at ``out`` from ``run_dir``; returns the manifest's path.

    ``as_trained``: keep :data:`PACK_FP16`'s networks in the precision they were trained in (a larger pack).
    """
    only = [str(o)[:2] for o in only] if only else None
    runs = find_runs(Path(run_dir), only)
    out = Path(out).expanduser().resolve()
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / MANIFEST).is_file())):
        raise PackError(f"--out {out} exists and is not a pack. Fix: choose a new or empty folder.")
    out.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{out.name}.{os.getpid()}.", suffix=".part", dir=out.parent))
    try:  # built beside --out, renamed into place when complete: a crash leaves no half pack under the name
        os.chmod(stage, umask_mode(0o777))
        notebooks = {key: _notebook_entry(key, folder, stage, not as_trained) for key, folder in runs.items()}
        manifest = {"format": PACK_FORMAT, "course_version": course_version(), "torch": torch.__version__,
                    "built_at": _now(), "built_from": str(Path(run_dir).resolve()), "notebooks": notebooks,
                    "data": _data_entries(notebooks, stage) if with_data else {}}
        atomic_write_json(stage / MANIFEST, manifest, role="pack manifest", fix="choose a writable --out")
        _swap_into_place(stage, out)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    for key, entry in notebooks.items():
        halves = sum(str(f.get("dtype", "")).startswith("float16 (halved") for f in entry["files"].values())
        echo(f"{key}: {names_summary(entry['files'], PACK_NETWORKS.get(key, ()))} ({entry['mode']} mode, {entry['device']}, {entry['trained_at']}"
             f"{f'; {halves} stored in fp16' if halves else ''})")
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    echo(f"pack {out}: {len(notebooks)} notebook(s), {size / 1e6:.1f} MB; next: medgan pack verify {out}")
    return out / MANIFEST


def _now() -> str:
    import datetime as _dt

    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def _swap_into_place(stage: Path, out: Path) -> None:
    """Rename the finished ``stage`` to ``out``; an older pack there is moved aside first, then removed."""
    old = None
    if out.exists():
        old = out.with_name(f".{out.name}.{os.getpid()}.old")
        os.replace(out, old)
    try:
        os.replace(stage, out)
    except OSError:
        if old is not None:
            os.replace(old, out)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _primary_line(primary) -> str:
    """``primary contrast -0.003 [-0.051, 0.043]`` of a run's recorded primary contrast (04–08), else ``""``."""
    if not isinstance(primary, dict) or not isinstance(primary.get("estimate"), (int, float)):
        return ""
    ci = primary.get("ci") or []
    tail = f" [{ci[0]:.3g}, {ci[1]:.3g}]" if len(ci) == 2 and all(isinstance(v, (int, float)) for v in ci) else ""
    return f"primary contrast {primary['estimate']:.3g}{tail}"


def verify_pack(pack_dir, echo=print) -> dict:
    """Check a pack's manifest, versions, hashes and completeness; print what each notebook reuses.

    Raises :class:`PackError` (one line: the mismatch and the fix) at the first problem.
    """
    pack_dir = Path(pack_dir).expanduser()
    manifest, sha = read_manifest(pack_dir)
    check_version(manifest, pack_dir)
    if torch_minor(manifest.get("torch")) != torch_minor():
        raise PackError(f"pack {pack_dir} was built with torch {manifest.get('torch')}, this is torch "
                        f"{torch.__version__}. Fix: install torch {torch_minor(manifest.get('torch'))}.x, or "
                        "rebuild the pack here (medgan pack build).")
    if not manifest["notebooks"]:
        raise PackError(f"pack {pack_dir} holds no notebook. Fix: rebuild it from a run of 03-08.")
    for key in sorted(manifest["notebooks"]):
        entry = check_notebook(manifest, pack_dir, key)
        for name, f in entry["files"].items():
            check_file(pack_dir, f, f"{key} {name}")
        known = PACK_NETWORKS.get(key)
        reuse = list(entry["files"]) if known is None else expand_names(known, entry["files"])
        more = [n for n in entry["files"] if n not in reuse]  # optional ones the run recorded (07's long runs)
        reuse_text = names_summary(reuse, known or ()) + (f" and {len(more)} more its run recorded ({more[0]} ...)"
                                                          if more else "")
        shown = {k: entry["metrics"][k] for k in ("fd", "fd_ratio_val", "auc", "dice") if k in entry["metrics"]}
        numbers = ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in shown.items())
        numbers = numbers or _primary_line(entry["metrics"].get("primary"))
        echo(f"{key} {entry.get('notebook')}: will reuse {reuse_text} (trained {str(entry.get('trained_at'))[:10]} "
             f"on {entry.get('device')}, {entry.get('mode')} mode{'; ' + numbers if numbers else ''}; "
             f"must match {json.dumps(entry.get('match') or {})})")
    for name, f in (manifest.get("data") or {}).items():
        check_file(pack_dir, f, f"data {name}")
        echo(f"data {name}: verified ({f['bytes'] / 1e6:.1f} MB); use it with MEDGAN_DATA_DIR={pack_dir / 'data'}")
    echo(f"pack {pack_dir} OK: course {manifest['course_version']}, torch {manifest['torch']}, manifest sha256 "
         f"{sha[:12]}...; use it with MEDGAN_PRETRAINED={pack_dir.resolve()}")
    return manifest


__all__ = ["build_pack", "verify_pack", "find_runs"]
