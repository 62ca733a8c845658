"""Typed configs: YAML files in ``configs/`` mapped onto dataclasses.

Unknown keys are errors (a typo must not silently fall back to a default).

Example:
    >>> from dataclasses import dataclass
    >>> @dataclass
    ... class Opt:
    ...     lr: float = 1e-3
    ...     steps: int = 10
    >>> from_dict(Opt, {"lr": 0.01}).lr
    0.01
"""

from __future__ import annotations

import dataclasses
import os
import typing
from pathlib import Path
from typing import Any, TypeVar

from d4e.errors import InputError

T = TypeVar("T")

#: the repository's (or installed package's) default config folder
CONFIG_DIR = Path(__file__).resolve().parents[2] / "configs"


def from_dict(cls: type[T], data: dict[str, Any] | None, _where: str = "") -> T:
    """Build dataclass ``cls`` from a (nested) dict, checking keys and coercing types."""
    data = dict(data or {})
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise InputError(f"unknown config key(s) {unknown} in {cls.__name__}{_where}; known: {sorted(names)}")
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name not in data:
            continue
        kwargs[f.name] = _coerce(hints[f.name], data[f.name], f"{_where}.{f.name}")
    return cls(**kwargs)


def _coerce(tp, value, where):
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise InputError(f"config {where}: expected a mapping, got {value!r}")
        return from_dict(tp, value, where)
    if origin is typing.Union or (origin is not None and str(origin) == "<class 'types.UnionType'>"):
        if value is None and type(None) in args:
            return None
        for a in args:
            if a is type(None):
                continue
            try:
                return _coerce(a, value, where)
            except (InputError, TypeError, ValueError):
                continue
        raise InputError(f"config {where}: cannot read {value!r} as {tp}")
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise InputError(f"config {where}: expected a list, got {value!r}")
        inner = args[0] if args else Any
        out = [_coerce(inner, v, where) for v in value]
        return tuple(out) if origin is tuple else out
    if origin is dict:
        return dict(value)
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise InputError(f"config {where}: expected a number, got {value!r}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not (isinstance(value, int) or (isinstance(value, float) and value.is_integer())):
            raise InputError(f"config {where}: expected an integer, got {value!r}")
        return int(value)
    if tp is bool:
        if not isinstance(value, bool):
            raise InputError(f"config {where}: expected true/false, got {value!r}")
        return value
    if tp is str:
        return str(value)
    return value


def to_dict(obj) -> dict[str, Any]:
    """Dataclass -> plain dict (for JSON checkpoint metadata and ``config.yml``)."""
    return dataclasses.asdict(obj)


def load_config(cls: type[T], path: str | os.PathLike | None = None, overrides: dict | None = None) -> T:
    """Load ``cls`` from a YAML file (or defaults when ``path`` is None), then apply overrides."""
    import yaml

    data: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise InputError(f"config file not found: {path}")
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise InputError(f"cannot parse config {path}: {exc}".splitlines()[0]) from None
        if not isinstance(data, dict):
            raise InputError(f"config {path} must be a mapping at the top level")
    if overrides:
        data = _deep_merge(data, overrides)
    return from_dict(cls, data)


def _deep_merge(a: dict, b: dict) -> dict:
    out = dict(a)
    for k, v in b.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _deep_merge(out[k], v)
        else:
            out[k] = v
    return out
