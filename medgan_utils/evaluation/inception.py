"""Optional ImageNet-Inception FID, from local weights only (never downloads).

Read :data:`INCEPTION_FID_CAVEAT` before trusting the number.
"""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..core.device import get_device
from ..core.env import read_env
from .distances import frechet_distance
from .features import images_of, match_channels

#: Why ImageNet-Inception FID is a weak yardstick for medical images (Markdown, for a notebook to display).
INCEPTION_FID_CAVEAT = (
    "**Why ImageNet-Inception FID is questionable for medical images.** "
    + """\n\nThe usual FID embeds images with an Inception-v3 network trained to name the 1,000 ImageNet classes of everyday photographs. Its 2048 pooled features were shaped by colour, object parts and natural textures, not by the cues a reader of chest X-rays or breast ultrasound relies on, such as a faint patchy opacity or an irregular lesion margin. Feeding it a 28-px grayscale image means copying one channel into three identical "colours" and upsampling more than tenfold to 299 × 299 px, so the network sees a blurred, colourless picture unlike anything it was trained on, and part of what its features then measure is interpolation artefacts. Distances in that space need not follow the differences that matter for diagnosis, its label semantics (dog breeds, vehicles) have no counterpart in the medical task, and the numbers cannot be compared with FIDs published for natural-image datasets (nor even across Inception ports: torchvision's weights are not the TensorFlow graph used by the reference FID code).\n\nA classifier trained on the real training split embeds images by what separates the diagnostic labels of *this* dataset; that is why the course uses such domain features by default, with the caveat that its numbers compare only within one dataset, image size and feature net. `inception_fid` is offered for comparison, and only when the weights are already on disk: it never downloads. """
)

__all__ = ["INCEPTION_FID_CAVEAT", "InceptionWeightsUnavailable", "inception_weights_path",
           "inception_features_available", "inception_features", "inception_fid"]

INCEPTION_WEIGHTS_ENV = "MEDGAN_INCEPTION_WEIGHTS"
_INCEPTION_CACHE: dict = {}


class InceptionWeightsUnavailable(FileNotFoundError):
    """torchvision's Inception-v3 ImageNet weights are not on this machine (nothing is downloaded)."""


def _inception_filename() -> str:
    try:
        from torchvision.models import Inception_V3_Weights

        return Path(Inception_V3_Weights.IMAGENET1K_V1.url).name
    except Exception:  # pragma: no cover - older/newer torchvision
        return "inception_v3_google-0cc3c7bd.pth"


def _inception_candidates(weights_path=None) -> list[Path]:
    if weights_path is not None:
        return [Path(weights_path).expanduser()]
    cands = []
    env = read_env().inception_weights
    if env:
        cands.append(env)
    cands.append(Path(torch.hub.get_dir()) / "checkpoints" / _inception_filename())
    return cands


def inception_weights_path(weights_path=None) -> Path | None:
    """The local Inception-v3 weights file that :func:`inception_fid` would use, or ``None``.

    Looked up in order: ``weights_path``; ``$MEDGAN_INCEPTION_WEIGHTS``; torchvision's
    file in the torch hub cache (``$TORCH_HOME/hub/checkpoints/``, by default
    ``~/.cache/torch/hub/checkpoints/``). Never downloads.
    """
    for p in _inception_candidates(weights_path):
        if p.is_file():
            return p
    return None


def inception_features_available(weights_path=None) -> bool:
    """Whether ImageNet Inception-v3 weights are already on disk (see :func:`inception_weights_path`)."""
    return inception_weights_path(weights_path) is not None


def _inception_missing_message(weights_path=None) -> str:
    looked = ", ".join(str(p) for p in _inception_candidates(weights_path))
    fname = _inception_filename()
    return (
        f"ImageNet Inception-v3 weights not found (looked in: {looked}). This course never downloads them. "
        f"To enable inception_fid: on a machine with internet run "
        f"`python -c \"import torchvision; torchvision.models.inception_v3(weights='IMAGENET1K_V1')\"`, "
        f"which stores {fname} in the torch hub cache ($TORCH_HOME/hub/checkpoints/, default "
        f"~/.cache/torch/hub/checkpoints/); or copy that file there; or set {INCEPTION_WEIGHTS_ENV}=/path/to/{fname} "
        f"(or pass weights_path=...). The domain-feature metrics (frechet_distance, kid, precision_recall on "
        f"extract_features) need no download."
    )


def _load_inception(path: Path, device: torch.device) -> nn.Module:
    key = (str(path), path.stat().st_mtime_ns, str(device))
    if key not in _INCEPTION_CACHE:
        from torchvision.models import inception_v3

        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:
            raise RuntimeError(f"Inception weights {path} could not be loaded safely ({type(err).__name__}: {err}). "
                               "Delete the file and fetch it again.") from err
        model = inception_v3(weights=None, aux_logits=True, init_weights=False, transform_input=False)
        model.load_state_dict(state)
        model.fc = nn.Identity()
        model.AuxLogits = None
        model.aux_logits = False
        _INCEPTION_CACHE.clear()
        _INCEPTION_CACHE[key] = model.to(device).eval()
    return _INCEPTION_CACHE[key]


@torch.no_grad()
def inception_features(images, *, device=None, batch_size: int = 64, weights_path=None) -> torch.Tensor:
    """2048-d pooled ImageNet Inception-v3 features (float32, CPU) of [-1, 1] images; local weights only.

    Grayscale is repeated to RGB and images are resized bilinearly to 299×299.
    Google's Inception expects inputs in [-1, 1], which is the course's range, so
    no further normalisation is applied. Raises :class:`InceptionWeightsUnavailable`
    when the weights are not on disk.
    """
    path = inception_weights_path(weights_path)
    if path is None:
        raise InceptionWeightsUnavailable(_inception_missing_message(weights_path))
    device = device if isinstance(device, torch.device) else get_device(device)
    model = _load_inception(path, device)
    imgs = images_of(images)
    out = []
    for i in range(0, len(imgs), batch_size):
        x = imgs[i:i + batch_size].to(device).float()
        x = match_channels(x, 3)
        x = F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False).clamp(-1, 1)
        out.append(model(x).float().cpu())
    return torch.cat(out)


def inception_fid(images_a, images_b, *, device=None, batch_size: int = 64, weights_path=None) -> float:
    """FID with torchvision's ImageNet Inception-v3, only if its weights are already on disk.

    Never downloads: without the weights it raises
    :class:`InceptionWeightsUnavailable` explaining how to provide them (check first
    with :func:`inception_features_available`). Read :data:`INCEPTION_FID_CAVEAT`
    (the module docstring) before trusting the number: natural-image features,
    28-px grayscale upsampled to 299-px RGB, and ImageNet label semantics make it a
    weak yardstick for medical images, and torchvision's weights differ from the
    TensorFlow Inception used for published FIDs, so the values are not comparable
    with the literature.
    """
    fa = inception_features(images_a, device=device, batch_size=batch_size, weights_path=weights_path)
    fb = inception_features(images_b, device=device, batch_size=batch_size, weights_path=weights_path)
    return frechet_distance(fa, fb)
