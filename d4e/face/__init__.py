"""d4e.face: D4E's morphable face model on the MediaPipe face mesh.

Public API (everything else is internal):

Topology (fixed; the UV layout is what neural textures are indexed by) -- :mod:`d4e.face.topology`
    ``load_topology() -> Topology``: ``faces (870, 3) int32`` (852 MediaPipe triangles + 18
    mouth-interior), ``uv (488, 2) float32`` (u right, v down, [0, 1]; face island
    u < 0.8, mouth-interior island u > 0.8), ``n_vertices`` (488), ``source_index (488,)`` (the
    MediaPipe landmark each vertex copies; 468..487 duplicate the inner lip loop), vertex sets
    ``lips``, ``inner_lip_loop``, ``eyes``, ``upper_face``, ``lower_face``,
    ``mouth_interior_vertices`` and face sets ``mouth_interior_faces``, ``lower_face_faces``
    (what dubbing regenerates), ``face_faces``.

Model -- :mod:`d4e.face.model`
    ``FaceModel``: ``mean (468, 3)``, ``id_basis (K_id, 468, 3)``, ``exp_basis (K_exp, 468, 3)``
    (canonical frame, inter-ocular-distance units, unit-variance coefficients),
    ``mouth_basis (K_exp, K_m)`` / ``rest_basis``, ``n_identity``, ``n_expression``, ``n_mouth``,
    ``report()`` (explained variance), ``save(path)`` / ``FaceModel.load(path)`` (kind ``face_model``),
    ``fingerprint()``.
    ``load_default_model()`` (``assets/face_model.d4e``), ``build_face_model(clip_dirs, config)``.

Fitting and editing -- :mod:`d4e.face.fit`
    ``fit_clip(model, landmarks (N, 478, 3), valid (N,), config.fit, identity=None) -> FaceFit``
    (``identity (K_id,)``, ``expression (N, K_exp)``, ``rotation (N, 3, 3)``, ``translation (N, 3)``,
    ``scale (N,)``, ``valid (N,)``; ``subset(idx)``), ``save_fit(clip_dir, fit)`` /
    ``load_fit(clip_dir, model=None)`` (``face_fit.npz`` in the cache clip folder),
    ``posed_vertices(model, fit, expression=None) -> (N, 488, 3)`` full-frame pixels,
    ``split_expression(model, e) -> (mouth, rest)``, ``combine_expression(model, mouth, rest)``,
    ``edit_mouth(model, fit, new_mouth) -> expression`` (the dubbing edit),
    ``landmark_error(model, fit, landmarks) -> (N,)`` (fraction of the inter-ocular distance).

Config -- :mod:`d4e.face.config`: ``load_face_config(path=None, overrides=None) -> FaceConfig``
(``configs/face.yaml``; sections ``model`` and ``fit``).

The mouth/jaw split: the first ``n_mouth`` expression components are the PCA of the corpus'
per-frame motion of the ``lower_face`` vertices only (all others held at zero), so changing them
moves nothing outside the region dubbing regenerates (never the eyes, brows or forehead); the
remaining components are the PCA of what they leave (see :mod:`d4e.face.model`).
"""

from d4e.face.config import FaceConfig, FitConfig, ModelConfig, load_face_config
from d4e.face.fit import (
    FaceFit,
    combine_expression,
    edit_mouth,
    fit_clip,
    landmark_error,
    load_fit,
    posed_vertices,
    save_fit,
    split_expression,
)
from d4e.face.model import FaceModel, build_face_model, default_model_path, load_default_model
from d4e.face.topology import Topology, load_topology

__all__ = [
    "FaceConfig", "FitConfig", "ModelConfig", "load_face_config",
    "FaceFit", "combine_expression", "edit_mouth", "fit_clip", "landmark_error", "load_fit", "posed_vertices",
    "save_fit", "split_expression",
    "FaceModel", "build_face_model", "default_model_path", "load_default_model",
    "Topology", "load_topology",
]
