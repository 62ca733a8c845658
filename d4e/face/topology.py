"""Mesh topology and UV layout of D4E's face model (fixed; neural textures depend on it).

Vertices ``0..467`` are the 468 MediaPipe face-mesh landmarks (same order), with
the 852 triangles of mediapipe's ``FACEMESH_TESSELATION`` (the edge list is turned
back into triangles: every 3-clique of the edge graph whose edges are not all
shared by two other cliques). The mesh has three holes: the two eyes and the
mouth. Vertices ``468..487`` duplicate the 20 inner-lip-loop landmarks and carry
the mouth-interior patch: 18 triangles spanning the inner lip loop as a strip
from the upper inner lip to the lower one (degenerate while the mouth is
closed), so teeth, tongue and the mouth cavity get their own UV island.

Totals: ``V = 488`` vertices, ``F = 870`` triangles (852 face + 18 mouth interior).

Winding: every triangle ``(a, b, c)`` has positive signed area
``(u_b - u_a)(v_c - v_a) - (u_c - u_a)(v_b - v_a) > 0`` in UV; for a frontal face
the same sign holds in image pixel coordinates (x right, y down) except for a
triangle or two folded at the sides (the rasterizer does not cull).

UV layout (u right, v down, both in [0, 1]; CONVENTIONS.md): the face island is a
Floater mean-value (convex-combination) parameterisation of the reference shape
(:mod:`d4e.face.reference`) with the face oval pinned to an ellipse in
``u in [0.01, 0.79], v in [0.01, 0.99]``, image-like orientation (u ~ x, v ~ y).
Eyes and mouth holes are filled with a temporary fan vertex while solving, so
the parameterisation is a Tutte embedding: no flipped or overlapping triangles
by construction (and checked by the tests). The mouth-interior island lies in
``u in [0.81, 0.99], v in [0.05, 0.95]``, rotated 90 degrees: v runs from one
mouth corner to the other, u from the upper inner lip (u = 0.81) to the lower
(u = 0.99).
"""

from __future__ import annotations

import collections
import functools
import itertools
from dataclasses import dataclass, field

import numpy as np

from d4e.face.reference import N_MESH, reference_shape

#: inner lip loop, cyclic, starting at the subject's right mouth corner, upper lip first
INNER_LIP_UPPER = (78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308)
INNER_LIP_LOWER = (78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308)
INNER_LIP_LOOP = INNER_LIP_UPPER + tuple(reversed(INNER_LIP_LOWER[1:-1]))
OUTER_LIP_LOOP = (61, 185, 40, 39, 37, 0, 267, 269, 270, 409, 291, 375, 321, 405, 314, 17, 84, 181, 91, 146)
NOSE_TIP = 1

FACE_ISLAND = (0.01, 0.01, 0.79, 0.99)  # u0, v0, u1, v1
MOUTH_ISLAND = (0.81, 0.05, 0.99, 0.95)


@dataclass(frozen=True)
class Topology:
    """The face mesh: triangles, UVs and named vertex/face sets (all numpy).

    Attributes:
        faces: ``(F, 3) int32`` vertex indices, F = 870.
        uv: ``(V, 2) float32`` in [0, 1], V = 488 (u right, v down).
        source_index: ``(V,) int64``, the MediaPipe landmark (0..467) each vertex copies.
        lips: ``(L,) int64`` vertices of the lips (outer lip loop, inner lip loop and between).
        inner_lip_loop: ``(20,) int64`` the 20 inner-lip landmarks in cyclic order.
        mouth_interior_vertices: ``(20,) int64`` the duplicated vertices 468..487.
        mouth_interior_faces: ``(18,) int64`` face indices of the mouth-interior patch.
        eyes: ``(32,) int64`` vertices of both eyelid contours.
        upper_face: vertices of eyes, brows, forehead (and the nose bridge between the eyes):
            every mesh vertex at or above the lowest eyelid point of the reference shape.
        lower_face: vertices that can move when the mouth moves: every mesh vertex below the
            nose tip's height in the reference shape (cheeks, lips, jaw, chin), plus the
            mouth interior.
        lower_face_faces: ``(Fl,) int64`` faces with at least one vertex in ``lower_face``
            (the region dubbing regenerates, mouth interior included).
        face_faces: ``(852,) int64`` the faces of the MediaPipe mesh itself.
    """

    faces: np.ndarray
    uv: np.ndarray
    source_index: np.ndarray
    lips: np.ndarray
    inner_lip_loop: np.ndarray
    mouth_interior_vertices: np.ndarray
    mouth_interior_faces: np.ndarray
    eyes: np.ndarray
    upper_face: np.ndarray
    lower_face: np.ndarray
    lower_face_faces: np.ndarray
    face_faces: np.ndarray
    reference: np.ndarray = field(repr=False)  # (V, 3) float64 reference shape on all vertices

    @property
    def n_vertices(self) -> int:
        return int(self.uv.shape[0])

    @property
    def n_faces(self) -> int:
        return int(self.faces.shape[0])


def _mediapipe_triangles() -> np.ndarray:
    from mediapipe.python.solutions.face_mesh_connections import FACEMESH_TESSELATION

    edges = {tuple(sorted(e)) for e in FACEMESH_TESSELATION}
    adj: dict[int, set[int]] = collections.defaultdict(set)
    for a, b in edges:
        adj[a].add(b)
        adj[b].add(a)
    cliques = set()
    for a, b in edges:
        for c in adj[a] & adj[b]:
            cliques.add(tuple(sorted((a, b, c))))
    count = collections.Counter(e for t in cliques for e in itertools.combinations(t, 2))
    # a clique that is not a face (a "separating" triangle) has every edge shared by two real faces
    tris = [t for t in sorted(cliques) if not all(count[e] >= 3 for e in itertools.combinations(t, 2))]
    return np.asarray(tris, np.int64)


def _orient(tris: np.ndarray, xy: np.ndarray) -> np.ndarray:
    """Give every triangle positive signed area on the 2-D positions ``xy``."""
    a, b, c = xy[tris[:, 0]], xy[tris[:, 1]], xy[tris[:, 2]]
    area = (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (c[:, 0] - a[:, 0]) * (b[:, 1] - a[:, 1])
    out = tris.copy()
    flip = area < 0
    out[flip] = out[flip][:, [0, 2, 1]]
    return out


def _boundary_loops(tris: np.ndarray) -> list[list[int]]:
    """Boundary loops of a manifold triangle mesh, each as an ordered vertex list."""
    count = collections.Counter(tuple(sorted(e)) for t in tris for e in itertools.combinations(t, 2))
    bedges = [e for e, n in count.items() if n == 1]
    nbr: dict[int, list[int]] = collections.defaultdict(list)
    for a, b in bedges:
        nbr[a].append(b)
        nbr[b].append(a)
    seen: set[int] = set()
    loops = []
    for start in sorted(nbr):
        if start in seen:
            continue
        loop = [start]
        seen.add(start)
        prev, cur = None, start
        while True:
            nxt = [v for v in nbr[cur] if v != prev]
            if not nxt or nxt[0] == start:
                break
            prev, cur = cur, nxt[0]
            if cur in seen:
                break
            loop.append(cur)
            seen.add(cur)
        loops.append(loop)
    return loops


def _mean_value_weights(tris: np.ndarray, pos: np.ndarray, n: int) -> dict[tuple[int, int], float]:
    """Floater mean-value weights w_ij (positive) from 3-D positions."""
    w: dict[tuple[int, int], float] = collections.defaultdict(float)
    for t in tris:
        for k in range(3):
            i, j, l = t[k], t[(k + 1) % 3], t[(k + 2) % 3]
            e1, e2 = pos[j] - pos[i], pos[l] - pos[i]
            n1, n2 = np.linalg.norm(e1), np.linalg.norm(e2)
            ang = np.arccos(np.clip(e1 @ e2 / (n1 * n2), -1.0, 1.0))
            tan_half = np.tan(ang / 2)
            w[(i, j)] += tan_half / n1
            w[(i, l)] += tan_half / n2
    return w


def _face_uv(tris: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Floater parameterisation of the 468-vertex mesh (holes fan-filled), normalised to FACE_ISLAND."""
    import scipy.sparse as sp
    import scipy.sparse.linalg as spla

    loops = _boundary_loops(tris)
    loops.sort(key=len, reverse=True)
    outer, holes = loops[0], loops[1:]
    pos = [ref[:N_MESH]]
    all_tris = [tris]
    n = N_MESH
    for h in holes:  # temporary fan vertex at the hole's centroid
        pos.append(ref[h].mean(0, keepdims=True))
        all_tris.append(np.asarray([(h[k], h[(k + 1) % len(h)], n) for k in range(len(h))], np.int64))
        n += 1
    pos = np.concatenate(pos)
    all_tris = np.concatenate(all_tris)
    # outer loop -> ellipse, by arc length, in the angular order of the frontal projection
    xy = pos[:, :2]
    c = xy[outer].mean(0)
    ang = np.arctan2(xy[outer, 1] - c[1], xy[outer, 0] - c[0])
    if np.sum(np.diff(np.unwrap(ang))) < 0:  # make the loop run with increasing angle
        outer = outer[::-1]
        ang = ang[::-1]
    seg = np.linalg.norm(pos[np.roll(outer, -1)] - pos[outer], axis=1)
    s = np.concatenate([[0.0], np.cumsum(seg)[:-1]]) / seg.sum()
    theta = ang[0] + 2 * np.pi * s
    bnd_uv = np.stack([np.cos(theta), np.sin(theta)], 1)

    w = _mean_value_weights(all_tris, pos, n)
    is_b = np.zeros(n, bool)
    is_b[outer] = True
    interior = np.flatnonzero(~is_b)
    idx = -np.ones(n, np.int64)
    idx[interior] = np.arange(len(interior))
    rows, cols, vals = [], [], []
    rhs = np.zeros((len(interior), 2))
    bpos = np.zeros((n, 2))
    bpos[outer] = bnd_uv
    diag = np.zeros(len(interior))
    for (i, j), wij in w.items():
        if is_b[i]:
            continue
        diag[idx[i]] += wij
        if is_b[j]:
            rhs[idx[i]] += wij * bpos[j]
        else:
            rows.append(idx[i])
            cols.append(idx[j])
            vals.append(-wij)
    A = sp.csr_matrix((vals, (rows, cols)), shape=(len(interior),) * 2) + sp.diags(diag)
    uv = bpos.copy()
    uv[interior] = np.stack([spla.spsolve(A.tocsc(), rhs[:, k]) for k in range(2)], 1)
    uv = uv[:N_MESH]
    u0, v0, u1, v1 = FACE_ISLAND
    lo, hi = uv.min(0), uv.max(0)
    return np.stack([u0 + (uv[:, 0] - lo[0]) / (hi[0] - lo[0]) * (u1 - u0),
                     v0 + (uv[:, 1] - lo[1]) / (hi[1] - lo[1]) * (v1 - v0)], 1)


def _mouth_patch(ref: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Duplicated inner-lip vertices, their UVs (mouth island) and the strip triangles."""
    loop = list(INNER_LIP_LOOP)
    dup = {lm: N_MESH + k for k, lm in enumerate(loop)}
    up = [dup[v] for v in INNER_LIP_UPPER]
    lo = [dup[v] for v in INNER_LIP_LOWER]
    tris = [(up[0], up[1], lo[1])]
    for i in range(1, len(up) - 2):
        tris += [(up[i], up[i + 1], lo[i + 1]), (up[i], lo[i + 1], lo[i])]
    tris.append((up[-2], up[-1], lo[-2]))
    # UV: position along the mouth from the reference x (monotonic), upper row / lower row
    u0, v0, u1, v1 = MOUTH_ISLAND
    x = ref[list(loop), 0]
    xmin, xmax = ref[INNER_LIP_UPPER[0], 0], ref[INNER_LIP_UPPER[-1], 0]
    uv = np.zeros((len(loop), 2))
    for k, lm in enumerate(loop):
        along = np.clip((x[k] - xmin) / (xmax - xmin), 0.0, 1.0)
        across = 0.5 if lm in (INNER_LIP_UPPER[0], INNER_LIP_UPPER[-1]) else (0.0 if lm in INNER_LIP_UPPER else 1.0)
        uv[k] = (u0 + across * (u1 - u0), v0 + along * (v1 - v0))
    return np.asarray(loop, np.int64), uv, np.asarray(tris, np.int64)


def _region_fill(tris: np.ndarray, seeds: list[int], barrier: set[int]) -> np.ndarray:
    """Vertices reachable from ``seeds`` without expanding through ``barrier`` (barrier included)."""
    adj: dict[int, set[int]] = collections.defaultdict(set)
    for t in tris:
        for a, b in itertools.combinations(t, 2):
            adj[a].add(b)
            adj[b].add(a)
    seen = set(seeds)
    stack = list(seeds)
    while stack:
        v = stack.pop()
        if v in barrier:
            continue
        for u in adj[v]:
            if u not in seen:
                seen.add(u)
                stack.append(u)
    return np.asarray(sorted(seen), np.int64)


@functools.lru_cache(maxsize=1)
def load_topology() -> Topology:
    """Build (once, then cached) the D4E face topology and UV layout. See the module docstring."""
    from mediapipe.python.solutions.face_mesh_connections import FACEMESH_LEFT_EYE, FACEMESH_RIGHT_EYE

    ref468 = reference_shape()
    tris = _orient(_mediapipe_triangles(), ref468[:, :2])
    face_uv = _face_uv(tris, ref468)
    loop, mouth_uv, mouth_tris = _mouth_patch(ref468)
    source_index = np.concatenate([np.arange(N_MESH), loop]).astype(np.int64)
    uv = np.concatenate([face_uv, mouth_uv]).astype(np.float32)
    faces = np.concatenate([tris, mouth_tris])
    faces = _orient(faces, uv.astype(np.float64)).astype(np.int32)
    ref = ref468[source_index]

    eyes = np.asarray(sorted({v for e in FACEMESH_LEFT_EYE | FACEMESH_RIGHT_EYE for v in e}), np.int64)
    lips = _region_fill(tris, list(INNER_LIP_LOOP), set(OUTER_LIP_LOOP))
    y = ref468[:, 1]
    upper = np.flatnonzero(y <= y[eyes].max())
    lower_mesh = np.flatnonzero(y > y[NOSE_TIP])
    mouth_vertices = np.arange(N_MESH, N_MESH + len(loop))
    lower = np.concatenate([lower_mesh, mouth_vertices])
    in_lower = np.zeros(len(source_index), bool)
    in_lower[lower] = True
    lower_faces = np.flatnonzero(in_lower[faces].any(1))
    n_face = len(tris)
    return Topology(
        faces=faces,
        uv=uv,
        source_index=source_index,
        lips=lips,
        inner_lip_loop=np.asarray(INNER_LIP_LOOP, np.int64),
        mouth_interior_vertices=mouth_vertices,
        mouth_interior_faces=np.arange(n_face, n_face + len(mouth_tris)),
        eyes=eyes,
        upper_face=upper,
        lower_face=lower,
        lower_face_faces=lower_faces,
        face_faces=np.arange(n_face),
        reference=ref,
    )
