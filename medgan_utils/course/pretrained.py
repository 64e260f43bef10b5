"""The workshop pack, seen from a notebook: save a run's networks, and reuse a pack's in place of training.

A notebook ends with :func:`save_run_networks`: its trained networks go, as state dicts, to
``networks/`` beside its ``results.json`` with an index ``networks.json`` (``medgan pack build`` collects
them). With a pack (the ``PRETRAINED`` parameter, else ``MEDGAN_PRETRAINED``) the notebook calls
:func:`open_pack` after it knows its data and sizes. The pack is checked there, once: the course version,
the parameters that fix the networks' shapes and data (:data:`PACK_MATCH`), every file it needs and its
SHA-256. Any mismatch prints one line naming it and the fix, and returns :class:`NoPack` (false), so the
notebook trains as usual: it never mixes the pack's networks with its own.
"""
from __future__ import annotations

import datetime as _dt
import fnmatch
import hashlib
import json
import shutil
from pathlib import Path

import torch

from ..core.env import read_env, results_dir
from ..core.errors import CourseError
from ..core.io import atomic_path, atomic_write_json, save_checkpoint

MANIFEST = "manifest.json"
INDEX = "networks.json"
PACK_FORMAT = 1

#: Per notebook: the parameters a pack's run must share with this run (they fix the networks' shapes and
#: their training data), and the networks the notebook reuses. Hooking a notebook adds one line to each.
#: A name with ``*`` is a family (05's ``segmenter_*``: one per arm and seed): at least one, and every one checked.
PACK_MATCH: dict[str, tuple[str, ...]] = {
    "03": ("DATASET", "IMAGE_SIZE", "CHANNELS", "LATENT_DIM"),
    "04": ("DATASET", "SPLIT", "SEED", "IMAGE_SIZE", "GAN_BASE", "LATENT_DIM", "CLASSIFIER"),
    "05": ("DATASET", "SPLIT", "SEED", "IMAGE_SIZE", "UNET_BASE", "CRITIC_INPUT", "PATCH_LAYERS"),
    "06": ("DATASET", "SEG_DATASET", "SPLIT", "SEG_SPLIT", "SEED", "IMAGE_SIZE", "SEG_SIZE", "UNET_BASE", "READ_NOISE",
           "SCALE", "SPECKLE_LOOKS"),
    "07": ("DATASET", "SEED", "BASE"),
    "08": ("SEED", "DCGAN_BASE", "DP_TRAIN_N"),
}
PACK_NETWORKS: dict[str, tuple[str, ...]] = {
    "03": ("generator", "discriminator", "feature_net"),
    "04": ("generator_*", "discriminator", "classifier_*", "feature_net"),
    "05": ("segmenter_*", "mask_to_image_*", "critic", "pix2pix_critic", "feature_net"),
    "06": ("enhancer_*", "critic_*", "downstream_*", "feature_net_*"),
    "07": ("stability_G_*", "stability_D_*", "ring_G_*", "scarcity_G_*", "scarcity_D_*", "diffusion_*", "feature_net"),
    "08": ("classifier_*", "cgan_generator_*", "cgan_discriminator_*", "inpainter", "inpainter_critic", "segmenter",
           "member_generator_*", "member_discriminator_*", "dp_generator_*", "dp_discriminator_*",
           "feature_net_breast", "feature_net_pneumonia"),
}

#: Per notebook: the saved networks ``medgan pack build`` stores in half precision, about half their size
#: (``--as-trained`` keeps them as trained). They are generators whose samples feed exploratory numbers (FD)
#: and figures (07's ring generators: figures only); every network behind a notebook's primary contrast stays as trained, so the primary contrast
#: re-scores to the run's own value. BENCHMARKS.md records how far the generators' FD moves.
PACK_FP16: dict[str, tuple[str, ...]] = {
    "04": ("generator_*",),
    "05": ("mask_to_image_*",),
    "07": ("ring_G_*",),
    "08": ("cgan_generator_*", "member_generator_*", "dp_generator_*"),
}


class PackError(CourseError, ValueError):
    """A workshop pack that cannot be used as it is; the message names the mismatch and the fix."""


def course_version() -> str:
    from .. import __version__

    return __version__


def torch_minor(version: str | None = None) -> str:
    """``"2.5"`` of ``"2.5.1+cpu"``: state dicts move freely between patch releases."""
    return ".".join(str(version or torch.__version__).split("+")[0].split(".")[:2])


def notebook_key(notebook: str) -> str:
    """``"03"`` of ``"03_dcgan"`` or ``"03"``."""
    key = str(notebook).strip()[:2]
    if not key.isdigit():
        raise PackError(f"notebook {notebook!r} is not a course notebook name. Fix: pass e.g. '03_dcgan' or '03'.")
    return key


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def half_state(state: dict, half: bool = True) -> dict:
    """A state dict as CPU tensors; floating tensors in fp16 with ``half`` (integers stay as they are)."""
    out = {}
    for k, v in state.items():
        v = v.detach().cpu().contiguous()
        out[k] = v.half() if half and v.is_floating_point() else v
    return out


def _state_dict(module: torch.nn.Module, half: bool) -> dict:
    return half_state(module.state_dict(), half)


def save_run_networks(notebook: str, networks: dict, *, metrics: dict | None = None, params: dict | None = None,
                      fp16=(), files: dict | None = None, device=None) -> Path:
    """Save a run's networks beside its ``results.json`` for ``medgan pack build``; returns ``networks.json``.

    Args:
        notebook: the name the notebook gives :func:`~medgan_utils.course.results.record_results`, e.g. "03_dcgan".
        networks: name → module; each is stored as its state dict (``networks/<name>.pt``, atomically).
        metrics: the run's headline numbers (the pack shows them); params: the values :data:`PACK_MATCH` names.
        fp16: names stored in half precision (floating tensors only; about half the size).
        files: name → a weights file the package wrote already (the feature net's cache file), copied as it is.
    """
    folder = results_dir(notebook)
    half = set(fp16)
    unknown = half - set(networks)
    if unknown:
        raise PackError(f"fp16 names {sorted(unknown)} are not among the networks {sorted(networks)}. "
                        "Fix: name networks that are saved.")
    entries = {}
    for name, module in networks.items():
        path = save_checkpoint(folder / "networks" / f"{name}.pt", _state_dict(module, name in half))
        entries[name] = {"path": f"networks/{name}.pt", "kind": "state_dict",
                         "dtype": "float16" if name in half else "as trained"}
    for name, src in (files or {}).items():
        if src is None:
            continue
        dest = folder / "networks" / Path(src).name
        with atomic_path(dest, role="network file", fix="choose a writable results folder") as tmp:
            shutil.copyfile(src, tmp)
        entries[name] = {"path": f"networks/{dest.name}", "kind": "cache", "cache_name": dest.name}
    for entry in entries.values():
        p = folder / entry["path"]
        entry.update(sha256=sha256_file(p), bytes=p.stat().st_size)
    if device is None:
        first = next((m for m in networks.values() if isinstance(m, torch.nn.Module)), None)
        tensor = next(iter(first.state_dict().values()), None) if first is not None else None
        device = str(tensor.device) if tensor is not None else "cpu"
    index = {"notebook": notebook, "saved_at": _now(), "course_version": course_version(),
             "torch": torch.__version__, "device": str(device), "match": dict(params or {}),
             "metrics": metrics or {}, "files": entries}
    return atomic_write_json(folder / INDEX, index, role="network index", fix="choose a writable results folder")


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def read_manifest(pack_dir: str | Path) -> tuple[dict, str]:
    """``(manifest, its SHA-256)``; a missing or unreadable one is a :class:`PackError`."""
    path = Path(pack_dir).expanduser() / MANIFEST
    if not Path(pack_dir).expanduser().is_dir():
        raise PackError(f"{pack_dir} is not a folder. Fix: point PRETRAINED / MEDGAN_PRETRAINED at the folder "
                        "`medgan pack build` wrote, or unset it to train.")
    try:
        raw = path.read_bytes()
        manifest = json.loads(raw)
    except (OSError, ValueError) as err:
        raise PackError(f"{path} is missing or unreadable ({type(err).__name__}). Fix: copy the whole pack folder "
                        "again, or rebuild it with `medgan pack build`.") from None
    if not isinstance(manifest, dict) or manifest.get("format") != PACK_FORMAT or not isinstance(
            manifest.get("notebooks"), dict):
        raise PackError(f"{path} is not a pack manifest of format {PACK_FORMAT}. Fix: rebuild it with "
                        "`medgan pack build` of this course version.")
    return manifest, hashlib.sha256(raw).hexdigest()


def check_version(manifest: dict, pack_dir) -> None:
    if manifest.get("course_version") != course_version():
        raise PackError(f"pack {pack_dir} was built by course version {manifest.get('course_version')}, this is "
                        f"{course_version()}. Fix: rebuild the pack with this version (medgan pack build).")


def check_file(pack_dir: str | Path, entry: dict, what: str) -> Path:
    """The entry's file, after its size and SHA-256 are checked (:class:`PackError` otherwise)."""
    path = Path(pack_dir).expanduser() / str(entry.get("path", ""))
    if not path.is_file():
        raise PackError(f"{what}: file {path} is missing. Fix: copy the whole pack folder again, or rebuild it.")
    if path.stat().st_size != entry.get("bytes") or sha256_file(path) != entry.get("sha256"):
        raise PackError(f"{what}: {path} does not match its SHA-256 in the manifest (changed or half-copied). "
                        "Fix: copy the pack again from the instructor's copy, or rebuild it.")
    return path


def check_notebook(manifest: dict, pack_dir, key: str, params: dict | None = None, needs=None) -> dict:
    """The manifest's entry of notebook ``key`` after its files, versions and ``params`` are checked."""
    entry = manifest["notebooks"].get(key)
    if not isinstance(entry, dict):
        have = ", ".join(sorted(manifest["notebooks"])) or "none"
        raise PackError(f"pack {pack_dir} has no networks of notebook {key} (it has {have}). Fix: rebuild it "
                        f"with {key} (medgan pack build --only {key}), or unset PRETRAINED to train.")
    files = entry.get("files") or {}
    needs = PACK_NETWORKS.get(key, ()) if needs is None else needs
    missing = [n for n in needs if not expand_names([n], files)]
    if missing:
        raise PackError(f"pack {pack_dir} lacks {', '.join(missing)} of notebook {key}. Fix: rebuild it from a run "
                        f"that saved them (medgan pack build --only {key}).")
    for name in expand_names(needs, files):
        check_file(pack_dir, files[name], f"{key} {name}")
    for name, want in (params or {}).items():
        have = (entry.get("match") or {}).get(name, "<not recorded>")
        if _norm(have) != _norm(want):
            raise PackError(f"pack {pack_dir} was trained with {name}={have!r}, this run has {name}={want!r}. Fix: "
                            f"set {name}={have!r}, or rebuild the pack with -p {name} {want!r}, or unset PRETRAINED.")
    return entry


def expand_names(names, files) -> list[str]:
    """The names of ``files`` that ``names`` ask for: a plain name if present, a ``*`` family's members (sorted)."""
    out = []
    for name in names:
        found = sorted(fnmatch.filter(files, name)) if "*" in name else [name] if name in files else []
        out += [n for n in found if n not in out]
    return out


def _norm(value):
    return json.loads(json.dumps(value, default=str))  # tuples and lists, ints and floats compare as in JSON


class NoPack:
    """No pack in use: the notebook trains. False in ``if pack:``."""

    loaded: list = []
    title_tag = ""
    metrics: dict = {}

    def __bool__(self) -> bool:
        return False

    def load(self, name: str, module: torch.nn.Module) -> bool:
        return False

    def install_cached(self, name: str, folder=None) -> bool:
        return False

    def require(self, names, echo=print) -> "NoPack":
        return self

    def install_all_cached(self, folder=None) -> list[str]:
        return []

    def record(self) -> None:
        return None


class Pack(NoPack):
    """A checked pack for one notebook (from :func:`open_pack`)."""

    def __init__(self, pack_dir: Path, key: str, entry: dict, manifest_sha: str):
        self.dir, self.key, self.entry, self.sha = pack_dir, key, entry, manifest_sha
        self.files, self.metrics, self.loaded = entry["files"], entry.get("metrics") or {}, []
        day = str(entry.get("trained_at") or "")[:10] or "?"
        self.title_tag = f"[from workshop pack, trained {day} on {entry.get('device') or '?'}]"

    def __bool__(self) -> bool:
        return True

    def load(self, name: str, module: torch.nn.Module) -> bool:
        """Load network ``name`` into ``module`` (hash checked, ``weights_only=True``, cast to its dtypes)."""
        path = check_file(self.dir, self.files[name], f"{self.key} {name}")
        state = torch.load(path, map_location="cpu", weights_only=True)
        own = module.state_dict()
        cast = {k: v.to(own[k].dtype) if k in own and v.is_floating_point() else v for k, v in state.items()}
        try:
            module.load_state_dict(cast)
        except RuntimeError as err:
            raise PackError(f"pack network {self.key} {name} does not fit this notebook's network "
                            f"({str(err).splitlines()[0][:120]}). Fix: add the parameter that changes it to "
                            f"PACK_MATCH['{self.key}'], and rebuild the pack.") from None
        self.loaded += [name] if name not in self.loaded else []
        return True

    def require(self, names, echo=print) -> "Pack | NoPack":
        """This pack if it holds every network in ``names`` (the ones its run's own records name, e.g. one
        segmenter per arm and seed); else one line naming the first missing one, and :class:`NoPack`."""
        try:
            missing = [n for n in names if n not in self.files]
            if missing:
                raise PackError(f"pack {self.dir} lacks {', '.join(missing[:3])}{' ...' if len(missing) > 3 else ''} "
                                f"of notebook {self.key}, which its run recorded. Fix: rebuild it (medgan pack build "
                                f"--only {self.key}).")
            for name in names:
                check_file(self.dir, self.files[name], f"{self.key} {name}")
        except PackError as err:
            echo(f"Workshop pack not used: {err} Training as usual.")
            return NoPack()
        return self

    def install_cached(self, name: str, folder=None) -> bool:
        """Copy a cached-network file (the fixed feature net) into the cache, where the package looks for it."""
        from ..evaluation.features import default_cache_dir

        entry = self.files[name]
        src = check_file(self.dir, entry, f"{self.key} {name}")
        dest = Path(folder or default_cache_dir()) / entry["cache_name"]
        if not (dest.is_file() and sha256_file(dest) == entry["sha256"]):
            with atomic_path(dest, role="cached network", fix="set MEDGAN_CACHE_DIR to a writable folder") as tmp:
                shutil.copyfile(src, tmp)
        self.loaded += [name] if name not in self.loaded else []
        return True

    def install_all_cached(self, folder=None) -> list[str]:
        """:meth:`install_cached` for every cached-network file of this notebook (e.g. 04's cached GANs)."""
        return [n for n, f in self.files.items() if f.get("kind") == "cache" and self.install_cached(n, folder)]

    def record(self) -> dict:
        """For ``results.json``'s ``pretrained`` key: the manifest's SHA-256 and the networks loaded."""
        return {"pack": self.sha, "networks": list(self.loaded), "trained_at": self.entry.get("trained_at"),
                "device": self.entry.get("device"), "mode": self.entry.get("mode")}


def open_pack(pack_dir, notebook: str, params: dict | None = None, needs=None, echo=print) -> Pack | NoPack:
    """The pack at ``pack_dir`` (``None``: ``MEDGAN_PRETRAINED``; unset: no pack) for ``notebook``.

    ``params``: this run's values of the names in :data:`PACK_MATCH`. Any mismatch prints one line (the
    mismatch and the fix) and returns :class:`NoPack`, so the notebook trains as usual.
    """
    key = notebook_key(notebook)
    if pack_dir is None or str(pack_dir).strip() in ("", "None"):
        pack_dir = read_env().pretrained
    if pack_dir is None:
        return NoPack()
    pack_dir = Path(str(pack_dir)).expanduser()
    unknown = set(params or {}) - set(PACK_MATCH.get(key, ()))
    if unknown:
        raise PackError(f"open_pack({key}): {sorted(unknown)} are not in PACK_MATCH['{key}']. Fix: add them there.")
    try:
        manifest, sha = read_manifest(pack_dir)
        check_version(manifest, pack_dir)
        entry = check_notebook(manifest, pack_dir, key, params, needs)
    except PackError as err:
        echo(f"Workshop pack not used: {err} Training as usual.")
        return NoPack()
    pack = Pack(pack_dir, key, entry, sha)
    if torch_minor(manifest.get("torch")) != torch_minor():
        echo(f"note: the pack was built with torch {manifest.get('torch')}, this is {torch.__version__} "
             "(state dicts load across versions; `medgan pack verify` names the fix).")
    echo(f"Workshop pack {pack_dir}: notebook {key} reuses {', '.join(needs or PACK_NETWORKS.get(key, ()))} "
         f"{pack.title_tag}")
    return pack


__all__ = ["save_run_networks", "open_pack", "Pack", "NoPack", "PackError", "PACK_MATCH", "PACK_NETWORKS",
           "PACK_FP16", "read_manifest", "half_state", "check_notebook", "check_file", "expand_names", "check_version",
           "sha256_file", "course_version", "torch_minor", "notebook_key", "MANIFEST", "INDEX", "PACK_FORMAT"]
