"""Full-resolution frames by index, streamed with a bounded cache.

The output timeline visits source frames mostly in order, but ping-pong runs them
backwards and loop jumps back to 0. :class:`FrameSource` serves any index from a
forward decoder plus a bounded cache of recent frames; a request behind the cache
restarts the decoder and refills a window ending at that index, so memory stays
bounded by ``cache_frames`` full frames whatever the video's length.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Callable, Iterator

import numpy as np

from d4e.core.check import check


class FrameSource:
    """Random access to a video's constant-rate frames with bounded memory.

    Args:
        open_frames: callable returning a fresh iterator over all frames from frame 0
            (``uint8 (H, W, 3)``), e.g. ``lambda: iter(VideoReader(path))``.
        n_frames: number of frames the iterator yields.
        cache_frames: frames kept in memory (>= 1).

    Attributes:
        decoded: frames decoded so far (counts re-decodes; for tests and timings).
    """

    def __init__(self, open_frames: Callable[[], Iterator[np.ndarray]], n_frames: int, cache_frames: int = 64):
        check(n_frames >= 1, f"n_frames must be >= 1, got {n_frames}")
        check(cache_frames >= 1, f"cache_frames must be >= 1, got {cache_frames}")
        self._open = open_frames
        self.n_frames = int(n_frames)
        self.cache_frames = int(cache_frames)
        self._it: Iterator[np.ndarray] | None = None
        self._pos = 0  # index of the next frame the iterator yields
        self._cache: OrderedDict[int, np.ndarray] = OrderedDict()
        self.decoded = 0

    def _restart(self) -> None:
        self.close()
        self._it = self._open()
        self._pos = 0

    def close(self) -> None:
        it, self._it = self._it, None
        if it is not None and hasattr(it, "close"):
            it.close()

    def _advance_to(self, idx: int, keep_from: int) -> None:
        """Decode up to and including ``idx``, caching frames with index >= ``keep_from``."""
        if self._it is None:
            self._restart()
        while self._pos <= idx:
            try:
                img = next(self._it)
            except StopIteration:
                raise IndexError(f"video ended at frame {self._pos}, expected {self.n_frames} frames") from None
            self.decoded += 1
            if self._pos >= keep_from:
                self._cache[self._pos] = img
                self._cache.move_to_end(self._pos)
                while len(self._cache) > self.cache_frames:
                    self._cache.popitem(last=False)
            self._pos += 1

    def __getitem__(self, idx: int) -> np.ndarray:
        """Frame ``idx`` as ``uint8 (H, W, 3)`` (do not modify it: it may be served again)."""
        idx = int(idx)
        if not 0 <= idx < self.n_frames:
            raise IndexError(f"frame {idx} out of range [0, {self.n_frames})")
        if idx in self._cache:
            self._cache.move_to_end(idx)
            return self._cache[idx]
        if idx < self._pos:
            # behind the decoder: restart and keep the window that ends at idx (ping-pong goes backwards)
            self._restart()
            self._cache.clear()
            self._advance_to(idx, keep_from=max(0, idx - self.cache_frames + 1))
        else:
            self._advance_to(idx, keep_from=max(self._pos, idx - self.cache_frames + 1))
        return self._cache[idx]

    def __enter__(self) -> "FrameSource":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
