"""Test helpers for the dub pipeline: a shared clip in an HD canvas, a trivial generator."""

from __future__ import annotations

import numpy as np
import torch

from d4e.dub.paste import crop_frame, similarity_affine
from d4e.dub.pipeline import ClipData, Generated

CANVAS = (1080, 1920)
PLACE = (200, 900, 720)  # top, left, side of the clip inside the canvas
FACE_BOX = (1260.0, 600.0, 480.0)  # crop centre x, y and side in canvas pixels (about a tenth of the frame)


def hd_frames(path, limit: int | None = None):
    """Iterator over the clip's frames pasted into a 1920x1080 canvas."""
    import cv2

    from d4e.io.video import VideoReader

    top, left, side = PLACE
    with VideoReader(path) as r:
        for i, img in enumerate(r):
            if limit is not None and i >= limit:
                return
            canvas = np.full(CANVAS + (3,), 40, np.uint8)
            canvas[top:top + side, left:left + side] = cv2.resize(img, (side, side), interpolation=cv2.INTER_AREA)
            yield canvas


def hd_clip(path, n: int, crop_size: int = 256, invalid=()) -> ClipData:
    """In-memory :class:`ClipData` for the HD canvas (fixed crop box, frames in ``invalid`` untracked)."""
    cx, cy, side = FACE_BOX
    affine = similarity_affine((cx, cy), side, crop_size)
    crops = np.stack([crop_frame(f, affine, crop_size) for f in hd_frames(path, n)])
    valid = np.ones(n, bool)
    valid[list(invalid)] = False
    return ClipData(crops=crops, crop_affine=np.repeat(affine[None], n, 0), valid=valid, fps=25.0,
                    width=CANVAS[1], height=CANVAS[0])


class InvertMouthGenerator:
    """Trivial stage through the real interface: 'renders' the inverted crop, masks a fixed lower-face box.

    ``mask_new`` is a taller box on odd output frames (the new mouth opens wider), so
    the union of the two masks matters.
    """

    def __init__(self, box=(150, 215, 80, 176)):
        self.box = box
        self.calls = []
        self.timings = {"render": 0.0}

    def __call__(self, src_index, out_index, crops):
        self.calls.append((np.asarray(src_index).copy(), np.asarray(out_index).copy()))
        b, _, s, _ = crops.shape
        y0, y1, x0, x1 = self.box
        m = torch.zeros(b, 1, s, s)
        m[:, :, y0:y1, x0:x1] = 1
        m2 = m.clone()
        odd = torch.as_tensor(np.asarray(out_index) % 2 == 1)
        m2[odd, :, y1:y1 + 12, x0:x1] = 1
        return Generated(rgb=1.0 - crops, mask_orig=m, mask_new=m2)


class IdentityGenerator(InvertMouthGenerator):
    """Returns the original crop unchanged (for outside-region PSNR through the whole chain)."""

    def __call__(self, src_index, out_index, crops):
        g = super().__call__(src_index, out_index, crops)
        return Generated(rgb=crops.clone(), mask_orig=g.mask_orig, mask_new=g.mask_new)
