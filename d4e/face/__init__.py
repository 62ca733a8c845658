"""d4e.face: D4E's morphable face model on the MediaPipe face mesh.

Public API (everything else is internal):

Topology (fixed; the UV layout is what neural textures are indexed by)
    ``load_topology() -> Topology``: ``faces (870, 3) int32``, ``uv (488, 2) float32``
    (u right, v down, [0, 1]), ``n_vertices`` (488), ``source_index (488,)`` (the MediaPipe
    landmark each vertex copies), vertex sets ``lips``, ``inner_lip_loop``, ``eyes``,
    ``upper_face``, ``lower_face``, ``mouth_interior_vertices`` and face sets
    ``mouth_interior_faces``, ``lower_face_faces``, ``face_faces``. See :mod:`d4e.face.topology`.

Model, fitting and editing: see :mod:`d4e.face.model` and :mod:`d4e.face.fit`.
"""

from d4e.face.topology import Topology, load_topology

__all__ = ["Topology", "load_topology"]
