"""Self-describing checkpoints: tensors in safetensors, metadata as JSON.

Every learned artefact of D4E (renderer prior, actor, audio model, sync model,
face model) is one file written by :func:`save_checkpoint`:

* the tensors, stored with safetensors (loading never executes code);
* a JSON header under the safetensors metadata key ``"d4e"``::

      {"format": "d4e-checkpoint", "format_version": 1, "kind": "prior",
       "created": "...", "d4e_version": "...", "config": {...},
       "provenance": {...}, ...}

Files are written atomically (temp file + rename) and load on the CPU.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
from pathlib import Path
from typing import Any

import torch

from d4e.core.atomic import atomic_path
from d4e.errors import CheckpointError

FORMAT = "d4e-checkpoint"
FORMAT_VERSION = 1


def save_checkpoint(
    path: str | os.PathLike,
    tensors: dict[str, torch.Tensor],
    kind: str,
    meta: dict[str, Any] | None = None,
) -> Path:
    """Write ``tensors`` and JSON-serialisable ``meta`` to ``path`` atomically.

    Args:
        path: output file (conventionally ``.ckpt`` or ``.d4e``).
        tensors: name -> tensor; moved to CPU and made contiguous.
        kind: what the file holds (``"prior"``, ``"actor"``, ``"audio"``, ...);
            checked again on load.
        meta: anything JSON-serialisable (config, provenance, step, ...).
    """
    from safetensors.torch import save_file

    import d4e

    header = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "kind": kind,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "d4e_version": d4e.__version__,
        "torch_version": torch.__version__,
    }
    header.update(meta or {})
    try:
        text = json.dumps(header, sort_keys=True)
    except TypeError as exc:
        raise ValueError(f"checkpoint metadata is not JSON-serialisable: {exc}") from None
    flat = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    path = Path(path)
    with atomic_path(path) as tmp:
        save_file(flat, str(tmp), metadata={"d4e": text})
    return path


def read_header(path: str | os.PathLike) -> dict[str, Any]:
    """Read only the JSON header of a checkpoint (cheap; no tensors loaded)."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        with safe_open(str(path), framework="pt") as f:
            raw = (f.metadata() or {}).get("d4e")
    except Exception as exc:  # safetensors raises several types on garbage
        raise CheckpointError(f"{path} is not a D4E checkpoint ({type(exc).__name__}: {exc})") from None
    if raw is None:
        raise CheckpointError(f"{path} is a safetensors file but not a D4E checkpoint (no 'd4e' header)")
    header = json.loads(raw)
    if header.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a D4E checkpoint")
    if int(header.get("format_version", -1)) > FORMAT_VERSION:
        raise CheckpointError(
            f"{path} has checkpoint format version {header.get('format_version')}, "
            f"newer than this D4E understands ({FORMAT_VERSION}); upgrade d4e"
        )
    return header


def load_checkpoint(
    path: str | os.PathLike, kind: str | None = None, device: str | torch.device = "cpu"
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Load ``(tensors, header)`` from ``path``; check ``kind`` if given."""
    from safetensors.torch import load_file

    header = read_header(path)
    if kind is not None and header.get("kind") != kind:
        raise CheckpointError(f"{path} holds a '{header.get('kind')}' checkpoint, expected '{kind}'")
    try:
        tensors = load_file(str(path), device=str(device))
    except Exception as exc:
        raise CheckpointError(f"cannot read tensors from {path}: {exc}") from None
    return tensors, header


def file_sha256(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file, streamed."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            b = f.read(chunk)
            if not b:
                break
            h.update(b)
    return h.hexdigest()


def prefixed(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """``{prefix + '.' + k: v}``: helper to store several state dicts in one file."""
    return {f"{prefix}.{k}": v for k, v in tensors.items()}


def unprefixed(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """Inverse of :func:`prefixed`: the entries under ``prefix``, with it stripped."""
    p = prefix + "."
    return {k[len(p):]: v for k, v in tensors.items() if k.startswith(p)}
