"""MediaPipe face-mesh topology: landmark index groups used across D4E.

The 478-point mesh = 468 face points + 10 iris points (468-472 the subject's right
iris, image left; 473-477 the left iris). "Right"/"left" are the subject's.
"""

from __future__ import annotations

import numpy as np

N_LANDMARKS = 478
#: top of the face oval (upper forehead) and bottom of the chin
FOREHEAD = 10
CHIN = 152
#: eye corners (subject's right eye: outer 33, inner 133; left eye: inner 362, outer 263)
RIGHT_EYE_CORNERS = (33, 133)
LEFT_EYE_CORNERS = (362, 263)
#: iris centres
RIGHT_IRIS = 468
LEFT_IRIS = 473
#: mouth corners and inner-lip midpoints
MOUTH_CORNERS = (61, 291)
INNER_LIP_TOP = 13
INNER_LIP_BOTTOM = 14
#: face oval, clockwise from the forehead
FACE_OVAL = (10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400, 377, 152,
             148, 176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109)
LIPS = (0, 13, 14, 17, 37, 39, 40, 61, 78, 80, 81, 82, 84, 87, 88, 91, 95, 146, 178, 181, 185, 191, 267, 269,
        270, 291, 308, 310, 311, 312, 314, 317, 318, 321, 324, 375, 402, 405, 409, 415)


def tessellation_edges() -> np.ndarray:
    """``int64 (E, 2)`` edges of MediaPipe's face-mesh tessellation (sorted, unique)."""
    from mediapipe.python.solutions.face_mesh_connections import FACEMESH_TESSELATION

    e = np.array(sorted(tuple(sorted(p)) for p in FACEMESH_TESSELATION), dtype=np.int64)
    return np.unique(e, axis=0)


def face_height(lm: np.ndarray) -> np.ndarray:
    """Forehead-to-chin distance in the landmarks' units: ``(..., 478, 3) -> (...)``."""
    lm = np.asarray(lm)
    return np.linalg.norm(lm[..., FOREHEAD, :2] - lm[..., CHIN, :2], axis=-1)
