"""Network-based metrics: LPIPS (through the ``lpips`` package) and FID (Inception v3 features).

Their ImageNet backbones cannot be downloaded by D4E. Put the files in one folder
and pass it as ``--weights DIR`` (or set ``D4E_WEIGHTS_DIR``); the file names are
torchvision's own, so a torchvision cache folder (``~/.cache/torch/hub/checkpoints``)
works as is:

=========  ================================  ==========================================
metric     file                              what
=========  ================================  ==========================================
LPIPS      ``alexnet-owt-7be5be79.pth``      torchvision AlexNet (``net="alex"``, default)
LPIPS      ``vgg16-397923af.pth``            torchvision VGG16 (``net="vgg"``)
LPIPS      ``squeezenet1_1-b8a52dc0.pth``    torchvision SqueezeNet 1.1 (``net="squeeze"``)
FID        ``inception_v3_google-0cc3c7bd.pth``  torchvision Inception v3 (IMAGENET1K_V1)
=========  ================================  ==========================================

LPIPS's calibrated linear layers ship inside the ``lpips`` package (no download).
FID here uses torchvision's Inception v3 weights (pool3, 2048-d), which differ slightly
from the TF-ported weights of pytorch-fid: compare FIDs computed by D4E with each
other, not with published figures.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from d4e.core.check import check, check_shape
from d4e.errors import CheckpointError

__all__ = [
    "WEIGHTS_ENV",
    "LPIPS_FILES",
    "INCEPTION_FILE",
    "resolve_weights_file",
    "LPIPSMetric",
    "lpips_distance",
    "InceptionFeatures",
    "fid",
    "FID",
]

WEIGHTS_ENV = "D4E_WEIGHTS_DIR"
LPIPS_FILES = {
    "alex": "alexnet-owt-7be5be79.pth",
    "vgg": "vgg16-397923af.pth",
    "squeeze": "squeezenet1_1-b8a52dc0.pth",
}
INCEPTION_FILE = "inception_v3_google-0cc3c7bd.pth"


def resolve_weights_file(filename: str, weights_dir: str | os.PathLike | None, what: str) -> Path:
    """Find ``filename`` in ``weights_dir`` (or ``$D4E_WEIGHTS_DIR``).

    Raises:
        CheckpointError: naming the missing file and where it was looked for.
    """
    d = weights_dir if weights_dir is not None else os.environ.get(WEIGHTS_ENV)
    if not d:
        raise CheckpointError(
            f"{what} needs the weights file {filename}, which D4E cannot download; "
            f"put it in a folder and pass --weights DIR (or set {WEIGHTS_ENV})"
        )
    p = Path(d) / filename
    if not p.is_file():
        raise CheckpointError(f"{what} needs the weights file {filename}, not found in {Path(d)} (missing {p})")
    return p


def _load_state_dict(path: Path, what: str) -> dict[str, torch.Tensor]:
    try:
        sd = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt / not a torch file
        raise CheckpointError(f"{what}: cannot read weights {path}: {type(exc).__name__}: {exc}") from None
    if isinstance(sd, dict) and "state_dict" in sd and isinstance(sd["state_dict"], dict):
        sd = sd["state_dict"]
    if not isinstance(sd, dict):
        raise CheckpointError(f"{what}: {path} does not hold a state dict")
    return sd


# ----------------------------------------------------------------------------------------------- LPIPS
class LPIPSMetric(nn.Module):
    """LPIPS distance (Zhang et al. 2018) with its backbone loaded from a local file.

    Args:
        net: ``"alex"`` (default, the usual choice for evaluation), ``"vgg"`` or ``"squeeze"``.
        weights_dir: folder holding the backbone file (see the module docs); None: ``$D4E_WEIGHTS_DIR``.

    Shapes:
        - inputs: :math:`(B, 3, H, W)` in ``[0, 1]`` (H, W >= 32).
        - output: :math:`(B,)`, 0 for identical images, higher = more different.

    Raises:
        CheckpointError: the backbone file is missing or does not fit.
    """

    def __init__(self, net: str = "alex", weights_dir: str | os.PathLike | None = None) -> None:
        super().__init__()
        import warnings

        import lpips

        check(net in LPIPS_FILES, f"LPIPS net must be one of {sorted(LPIPS_FILES)}, got {net!r}")
        what = f"LPIPS ({net})"
        path = resolve_weights_file(LPIPS_FILES[net], weights_dir, what)
        sd = _load_state_dict(path, what)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = lpips.LPIPS(net=net, pnet_rand=True, verbose=False)  # linear layers: bundled with lpips
        # torchvision keys 'features.<i>.<param>' -> lpips trunk 'slice<s>.<i>.<param>'
        trunk = model.net
        where = {}
        for sname, mod in trunk.named_children():
            for idx, _ in mod.named_children():
                where[idx] = sname
        mapped = {}
        for k, v in sd.items():
            parts = k.split(".")
            if parts[0] != "features" or len(parts) != 3:
                continue  # classifier layers are not used by LPIPS
            if parts[1] not in where:
                continue
            mapped[f"{where[parts[1]]}.{parts[1]}.{parts[2]}"] = v
        expected = set(trunk.state_dict().keys())
        missing = sorted(expected - set(mapped))
        if missing:
            raise CheckpointError(f"{what}: {path} is not a torchvision {net} state dict (missing e.g. {missing[0]})")
        try:
            trunk.load_state_dict(mapped, strict=True)
        except RuntimeError as exc:
            raise CheckpointError(f"{what}: {path} does not fit the {net} backbone: {str(exc).splitlines()[0]}") from None
        self.model = model.eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.net = net
        self.weights_file = str(path)

    def forward(self, image1: torch.Tensor, image2: torch.Tensor) -> torch.Tensor:
        check_shape(image1, ["B", "3", "H", "W"], "image1")
        check_shape(image2, ["B", "3", "H", "W"], "image2")
        check(image1.shape == image2.shape, "LPIPS: images must have the same shape")
        return self.model(image1 * 2 - 1, image2 * 2 - 1).flatten()


def lpips_distance(
    image1: torch.Tensor, image2: torch.Tensor, net: str = "alex", weights_dir: str | os.PathLike | None = None
) -> torch.Tensor:
    """Functional LPIPS; builds :class:`LPIPSMetric` (load once and reuse it for many images)."""
    return LPIPSMetric(net, weights_dir).to(image1.device)(image1, image2)


# ------------------------------------------------------------------------------------------------- FID
class InceptionFeatures(nn.Module):
    """Inception v3 pool3 features (2048-d) from torchvision's architecture and a local weights file.

    Args:
        weights_dir: folder holding ``inception_v3_google-0cc3c7bd.pth``; None: ``$D4E_WEIGHTS_DIR``.

    Shapes:
        - input: :math:`(B, 3, H, W)` in ``[0, 1]``; resized to 299x299 (bilinear, antialiased).
        - output: :math:`(B, 2048)` float32.
    """

    def __init__(self, weights_dir: str | os.PathLike | None = None) -> None:
        super().__init__()
        from torchvision.models import inception_v3

        path = resolve_weights_file(INCEPTION_FILE, weights_dir, "FID (Inception v3)")
        sd = _load_state_dict(path, "FID (Inception v3)")
        net = inception_v3(weights=None, aux_logits=True, init_weights=False, transform_input=False)
        try:
            net.load_state_dict(sd, strict=True)
        except RuntimeError as exc:
            raise CheckpointError(
                f"FID (Inception v3): {path} is not a torchvision inception_v3 state dict: {str(exc).splitlines()[0]}"
            ) from None
        net.fc = nn.Identity()
        net.AuxLogits = None
        net.aux_logits = False
        self.net = net.eval()
        for p in self.net.parameters():
            p.requires_grad_(False)
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1), persistent=False)
        self.weights_file = str(path)

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        check_shape(images, ["B", "3", "H", "W"], "images")
        x = F.interpolate(images.float(), size=(299, 299), mode="bilinear", align_corners=False, antialias=True)
        return self.net((x - self.mean) / self.std).float()


def fid(features1: np.ndarray | torch.Tensor, features2: np.ndarray | torch.Tensor) -> float:
    """FID between two sets of Inception features ``(N, 2048)`` and ``(M, 2048)`` (N, M >= 2).

    With few samples (e.g. the frames of one video) the covariances are rank-deficient;
    the value is still well defined (the matrix square root is regularised when needed)
    but biased upwards: compare per-video FIDs computed over the same number of frames.
    """
    from d4e.eval.metrics import fid_from_features

    return fid_from_features(features1, features2)


class FID(nn.Module):
    """Accumulates Inception features of two image streams and reports their FID.

    Example:
        >>> m = FID(weights_dir)                 # doctest: +SKIP
        >>> for a, b in batches: m.update(a, b)  # doctest: +SKIP
        >>> m.compute()                          # doctest: +SKIP
    """

    def __init__(self, weights_dir: str | os.PathLike | None = None, features: InceptionFeatures | None = None) -> None:
        super().__init__()
        self.features = features or InceptionFeatures(weights_dir)
        self._a: list[torch.Tensor] = []
        self._b: list[torch.Tensor] = []

    def update(self, images1: torch.Tensor | None, images2: torch.Tensor | None) -> None:
        if images1 is not None:
            self._a.append(self.features(images1).cpu())
        if images2 is not None:
            self._b.append(self.features(images2).cpu())

    def compute(self) -> float:
        check(self._a and self._b, "FID: no images accumulated")
        return fid(torch.cat(self._a), torch.cat(self._b))

    def forward(self, images1: torch.Tensor, images2: torch.Tensor) -> float:
        return fid(self.features(images1), self.features(images2))
