"""Per-clip settings keyed by a short clip name (``configs/*.yaml``: measured audio offsets and the like).

A preprocessing-cache clip is named ``<video stem>-<first 8 hex of sha256>``; configs key clips by a name
that need not carry the hash. One rule matches them everywhere (``d4e.audio.data``, ``d4e.eval.sync``).
"""

from __future__ import annotations

from typing import Mapping, TypeVar

from d4e.errors import InputError

__all__ = ["clip_entry"]

T = TypeVar("T")


def clip_entry(clip_id: str, table: Mapping[str, T]) -> T | None:
    """The entry of ``table`` for clip ``clip_id``, or None.

    Rule: a key equal to ``clip_id`` wins, then a key equal to its stem (``clip_id`` without the last
    ``-<hash>`` part); otherwise the one key contained in ``clip_id``. Two or more contained keys,
    neither exact, are an error (ambiguous config).

    Raises:
        InputError: more than one key is contained in ``clip_id`` and none is exact.

    Example:
        >>> offs = {"mimictalk_May": 2.3, "face5": -1.0, "vretalking_face5": -2.0}
        >>> clip_entry("mimictalk_May-947610a5", offs), clip_entry("vretalking_face5-f664ca85", offs)
        (2.3, -2.0)
        >>> clip_entry("dfrf_cnn2-9c18a049", offs) is None
        True
    """
    if clip_id in table:
        return table[clip_id]
    stem = clip_id.rsplit("-", 1)[0] if "-" in clip_id else clip_id
    if stem in table:
        return table[stem]
    hits = [k for k in table if k in clip_id]
    if len(hits) > 1:
        raise InputError(f"{clip_id}: more than one clip entry matches ({', '.join(sorted(hits))})")
    return table[hits[0]] if hits else None
