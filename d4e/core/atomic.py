"""Atomic output: write to a temporary file beside the target, rename when complete.

A crash, Ctrl-C or full disk never leaves a half-written output under the
final name.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import tempfile
from pathlib import Path

from d4e.errors import OutputError


def _explain(exc: OSError, target: Path) -> str:
    if exc.errno == errno.ENOSPC:
        return f"disk full while writing {target}"
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"cannot write {target}: permission denied"
    return f"cannot write {target}: {exc.strerror or exc}"


def ensure_writable_dir(path: str | os.PathLike) -> Path:
    """Create ``path`` (and parents) if needed and check it can be written to."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".d4e-probe-"):
            pass
    except OSError as exc:
        raise OutputError(_explain(exc, path)) from None
    return path


def normal_permissions(path: str | os.PathLike) -> None:
    """Give a ``mkstemp`` file (mode 0600) the permissions a plain ``open()`` would (0666 & ~umask)."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike, suffix: str | None = None):
    """Yield a temporary path beside ``target``; rename it to ``target`` on success.

    On any exception the temporary file is removed and the target is left as it
    was. ``suffix`` defaults to the target's own suffix (some writers pick the
    format from it).
    """
    target = Path(target)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(
            dir=target.parent, prefix=f".{target.name}.", suffix=suffix if suffix is not None else ".tmp" + target.suffix
        )
        os.close(fd)
    except OSError as exc:
        raise OutputError(_explain(exc, target)) from None
    tmp = Path(tmp)
    try:
        yield tmp
        normal_permissions(tmp)  # after the writer: some (safetensors' save_file) recreate the file as 0600
        os.replace(tmp, target)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise OutputError(_explain(exc, target)) from None
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def atomic_write_bytes(target: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``target`` atomically."""
    with atomic_path(target) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())


def atomic_write_text(target: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``target`` atomically."""
    atomic_write_bytes(target, text.encode("utf-8"))


@contextlib.contextmanager
def atomic_dir(target: str | os.PathLike):
    """Yield a temporary directory beside ``target``; rename it into place on success.

    An existing ``target`` is replaced only once the new one is complete.
    """
    target = Path(target)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.tmp-"))
    except OSError as exc:
        raise OutputError(_explain(exc, target)) from None
    try:
        yield tmp
        if target.exists():
            old = target.with_name(f".{target.name}.old-{os.getpid()}")
            os.replace(target, old)
            os.replace(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, target)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise OutputError(_explain(exc, target)) from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
