"""Plot the face mesh, its UV layout and one fitted frame over the video frame (PNG, for a person to look at).

Panels: (1) the model's mean shape as a wireframe, regions coloured (lower face =
what dubbing regenerates, upper face, lips, mouth interior); (2) the UV layout with
the same colours (face island left, mouth-interior island right); (3) a video frame
with the fitted mesh and the tracked landmarks; (4) the same frame with the mouth/jaw
coefficients of the clip's most open-mouthed frame (the dubbing edit).

Usage:
    python tools/plot_face.py CLIP_DIR [--frame K] [--model FILE] [--out face.png]

``CLIP_DIR`` is one clip folder of a preprocessing cache (or a cache; its first clip
is used). The source video named in the clip's meta.json is decoded for the frame;
if it is missing, the cached face crop is shown instead.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

COLOURS = {"face": "#9a9a9a", "lower": "#d0309a", "upper": "#2a9d3a", "lips": "#d62020", "mouth": "#2050d0"}


def _face_colours(topo) -> list[str]:
    col = np.array([COLOURS["face"]] * topo.n_faces, dtype=object)
    col[np.isin(topo.faces, topo.upper_face).all(1)] = COLOURS["upper"]
    col[topo.lower_face_faces] = COLOURS["lower"]
    col[np.isin(topo.faces, topo.lips).all(1)] = COLOURS["lips"]
    col[topo.mouth_interior_faces] = COLOURS["mouth"]
    return list(col)


def _wire(ax, xy: np.ndarray, faces: np.ndarray, colours, lw: float = 0.5, alpha: float = 1.0) -> None:
    from matplotlib.collections import PolyCollection

    polys = xy[faces]
    ax.add_collection(PolyCollection(polys, facecolors="none", edgecolors=colours, linewidths=lw, alpha=alpha))


def _video_frame(clip, k: int) -> tuple[np.ndarray, bool]:
    from d4e.io.video import VideoReader

    src = Path(clip.meta.get("source", ""))
    if src.is_file():
        with VideoReader(src, fps=clip.fps) as r:
            for i, frame in enumerate(r):
                if i == k:
                    return frame, True
    return np.asarray(clip.crops[k]), False


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("clip", help="cached clip folder (or a cache: its first clip)")
    p.add_argument("--frame", type=int, default=None, help="frame to show (default: middle of the clip)")
    p.add_argument("--model", default=None, help="face model (default assets/face_model.d4e)")
    p.add_argument("--out", default="face.png", help="PNG to write")
    args = p.parse_args()

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import torch

    from d4e.core.atomic import atomic_path
    from d4e.data.preprocess import load_clip
    from d4e.errors import InputError
    from d4e.face import load_topology
    from d4e.face.config import load_face_config
    from d4e.face.fit import edit_mouth, fit_clip, load_fit, posed_vertices, split_expression
    from d4e.face.model import FaceModel, default_model_path, expand_clip_dirs

    topo = load_topology()
    model = FaceModel.load(args.model or default_model_path())
    clip_dir = expand_clip_dirs([args.clip])[0]
    clip = load_clip(clip_dir)
    try:
        fit = load_fit(clip_dir, model)
    except InputError:
        fit = fit_clip(model, np.asarray(clip.landmarks), np.asarray(clip.valid), load_face_config().fit)
    k = clip.n_frames // 2 if args.frame is None else args.frame
    if not 0 <= k < clip.n_frames:
        sys.exit(f"plot_face: --frame must be in [0, {clip.n_frames})")
    frame, full = _video_frame(clip, k)
    colours = _face_colours(topo)

    # the most open mouth of the clip: largest inner-lip gap (13 -> 14) of the fitted mesh
    verts = posed_vertices(model, fit)
    gap = (verts[:, 14, :2] - verts[:, 13, :2]).norm(dim=-1)
    k_open = int(gap.argmax())
    mouth_open, _ = split_expression(model, fit.expression[k_open : k_open + 1])
    one = fit.subset(slice(k, k + 1))
    v = verts[k].double().numpy()
    v_edit = posed_vertices(model, one, edit_mouth(model, one, mouth_open))[0].double().numpy()
    lm = np.asarray(clip.landmarks[k], np.float64)
    if not full:  # show on the crop: map full-frame pixels into crop pixels
        A = np.asarray(clip.crop_affine[k])
        v = np.concatenate([v[:, :2] @ A[:, :2].T + A[:, 2], v[:, 2:]], 1)
        v_edit = np.concatenate([v_edit[:, :2] @ A[:, :2].T + A[:, 2], v_edit[:, 2:]], 1)
        lm = np.concatenate([lm[:, :2] @ A[:, :2].T + A[:, 2], lm[:, 2:]], 1)

    fig, axes = plt.subplots(1, 4, figsize=(24, 6.5))
    ax = axes[0]
    mean = (model.mean.numpy()[topo.source_index]).astype(np.float64)
    _wire(ax, mean[:, :2], topo.faces, colours)
    ax.set_xlim(mean[:, 0].min() - 0.1, mean[:, 0].max() + 0.1)
    ax.set_ylim(mean[:, 1].max() + 0.1, mean[:, 1].min() - 0.1)
    ax.set_aspect("equal")
    ax.set_title(f"mean shape: {topo.n_vertices} vertices, {topo.n_faces} triangles")
    ax = axes[1]
    _wire(ax, topo.uv.astype(np.float64), topo.faces, colours)
    ax.set_xlim(0, 1)
    ax.set_ylim(1, 0)
    ax.set_aspect("equal")
    ax.set_title("UV layout (u right, v down): face island | mouth-interior island")
    for ax, verts_k, title in ((axes[2], v, f"frame {k}: fitted mesh (lines) + landmarks (dots)"),
                               (axes[3], v_edit, f"frame {k} with the mouth/jaw of frame {k_open}")):
        ax.imshow(frame)
        _wire(ax, verts_k[:, :2], topo.faces, colours, lw=0.6, alpha=0.8)
        if verts_k is v:
            ax.scatter(lm[:468, 0], lm[:468, 1], s=2, c="yellow")
        lo, hi = lm[:468, :2].min(0), lm[:468, :2].max(0)
        pad = 0.15 * (hi - lo).max()
        ax.set_xlim(lo[0] - pad, hi[0] + pad)
        ax.set_ylim(hi[1] + pad, lo[1] - pad)
        ax.set_title(title + ("" if full else " (on the face crop)"))
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(f"{clip_dir.name}: D4E face model on the MediaPipe mesh  (magenta = lower face, regenerated "
                 "by dubbing; green = upper face; red = lips; blue = mouth interior)", fontsize=13)
    fig.tight_layout()
    out = Path(args.out)
    with atomic_path(out) as tmp:
        fig.savefig(tmp, dpi=90, format="png")
    print(out)


if __name__ == "__main__":
    main()
