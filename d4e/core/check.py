"""Tensor shape and value checks in the style of kornia's ``KORNIA_CHECK_SHAPE``.

Example:
    >>> import torch
    >>> check_shape(torch.zeros(2, 3, 8, 8), ["B", "3", "H", "W"])
"""

from __future__ import annotations

from typing import Sequence


class D4EShapeError(ValueError):
    """A tensor does not have the expected shape; carries expected and actual."""

    def __init__(self, name: str, expected: Sequence[str], actual: Sequence[int]):
        self.expected = list(expected)
        self.actual = list(actual)
        super().__init__(f"{name}: expected shape {self.expected}, got {self.actual}")


def check(cond: bool, msg: str) -> None:
    """Raise ``ValueError(msg)`` unless ``cond`` holds."""
    if not cond:
        raise ValueError(msg)


def check_shape(x, dims: Sequence[str], name: str = "tensor") -> None:
    """Check ``x.shape`` against ``dims``.

    Each entry of ``dims`` is a number (exact size), a letter (any size, but
    the same letter must have the same size throughout one call) or ``"*"``
    (any number of leading dimensions, only as the first entry).
    """
    shape = list(x.shape)
    dims = list(dims)
    if dims and dims[0] == "*":
        rest = dims[1:]
        if len(shape) < len(rest):
            raise D4EShapeError(name, dims, shape)
        shape_tail = shape[len(shape) - len(rest):] if rest else []
        _match(name, dims, rest, shape_tail, shape)
        return
    if len(shape) != len(dims):
        raise D4EShapeError(name, dims, shape)
    _match(name, dims, dims, shape, shape)


def _match(name, dims_all, dims, shape, shape_all):
    bound = {}
    for d, s in zip(dims, shape):
        if d.isdigit():
            if int(d) != s:
                raise D4EShapeError(name, dims_all, shape_all)
        else:
            if d in bound and bound[d] != s:
                raise D4EShapeError(name, dims_all, shape_all)
            bound[d] = s
