"""Where a command computes: one rule for ``--device`` everywhere (``d4e adapt``, ``d4e dub``, ``d4e train-audio``)."""

from __future__ import annotations

import torch

from d4e.errors import InputError

__all__ = ["resolve_device"]


def resolve_device(device: str | torch.device | None, what: str) -> torch.device:
    """``device`` as a :class:`torch.device`; ``None`` or ``"auto"``: CUDA when PyTorch sees a GPU, else the CPU.

    Raises :class:`~d4e.errors.InputError` (a one-line message naming ``what``) for a device string PyTorch
    does not know, for CUDA without a GPU, and for a CUDA index beyond the GPUs present.

    Example:
        >>> resolve_device("cpu", "dub")
        device(type='cpu')
    """
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise InputError(f"{what}: unknown device {str(device)!r} (cpu, cuda, cuda:N)") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"{what}: device {str(device)!r} requested, but PyTorch sees no CUDA GPU")
    if dev.type == "cuda" and (dev.index or 0) >= torch.cuda.device_count():
        raise InputError(f"{what}: no device {dev} (PyTorch sees {torch.cuda.device_count()} CUDA GPUs)")
    return dev
