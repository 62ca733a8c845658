"""The real generator: audio-driven mouth -> posed mesh -> rasterized masks -> neural render.

Per batch of output frames (see :class:`d4e.dub.pipeline.Generator`):

1. **expression edit** -- the source frame's fitted pose, identity and upper-face
   expression are kept; the mouth/jaw part of its expression is replaced by the one
   predicted from the new audio (:func:`predict_mouth`, computed once for the whole
   output timeline so the fit's temporal smoothing sees the whole sequence);
2. **posed mesh in crop coordinates** -- original and edited meshes, through the
   cache's crop transform;
3. **mask rendering** -- both meshes rasterized; ``mask_orig`` / ``mask_new`` are the
   (dilated) lower-face regions under each;
4. **neural render** -- the actor's neural texture sampled at the edited mesh's UVs,
   decoded by the prior's deferred neural renderer with the real crop as context; the
   region handed to the renderer is the union of both masks, so the actor's old jaw
   line is regenerated too when the new mouth opens less.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from d4e.core.check import check, check_shape
from d4e.dub.pipeline import Generated
from d4e.dub.timeline import Timeline
from d4e.dub.validity import FrameSelection, select_frames, yaw_degrees


def selection_from_fit(valid: np.ndarray, fit, fit_error: np.ndarray | None, max_yaw_deg: float,
                       max_fit_error: float) -> FrameSelection:
    """Frames to dub from the tracker's validity, the fitted head yaw and the fit's landmark error.

    Args:
        valid: ``bool (N,)`` tracked frames.
        fit: :class:`d4e.face.fit.FaceFit` of the clip (``rotation (N, 3, 3)``).
        fit_error: ``(N,)`` landmark error (fraction of inter-ocular distance), or None;
            a face the model cannot explain (a hand over the mouth, a microphone) fits badly.
        max_yaw_deg: extreme-pose threshold.
        max_fit_error: occlusion threshold.
    """
    yaw = yaw_degrees(fit.rotation.detach().cpu().numpy())
    occluded = None if fit_error is None else np.asarray(fit_error) > max_fit_error
    return select_frames(valid, yaw, max_yaw_deg, occluded)


def predict_mouth(
    audio_model,
    face_model,
    fit_config,
    audio: np.ndarray,
    timeline: Timeline,
    landmarks: np.ndarray,
    valid: np.ndarray,
    identity: torch.Tensor,
    style=None,
    progress: bool = False,
    chunk_frames: int = 0,
    overlap_frames: int = 32,
) -> torch.Tensor:
    """Mouth/jaw expression coefficients of the face model for every output frame, from the new audio.

    The audio model predicts mouth/jaw landmark coefficients; they are placed on each
    output frame's source landmarks (keeping its pose and upper face), and the face
    model is fitted to those landmarks with the actor's identity fixed; the mouth part
    of that fit is the new mouth.

    Args:
        audio_model: :class:`d4e.audio.model.AudioModel`.
        face_model: :class:`d4e.face.model.FaceModel`.
        fit_config: :class:`d4e.face.config.FitConfig`.
        audio: ``float32 (A,)`` 16 kHz mono new audio (sample 0 = output frame 0).
        timeline: the output plan.
        landmarks: ``(N, 478, 3)`` the source clip's landmarks (full-frame pixels).
        valid: ``bool (N,)``.
        identity: ``(K_id,)`` the actor's fitted identity.
        style: the actor's mouth style (:func:`d4e.audio.style.calibrate_style` dict, from the
            actor file or the video's own footage), or None for the person-generic mouth.
        progress: progress bar over the audio chunks.
        chunk_frames: output frames per face-model fit (0: one fit over the whole timeline). The
            audio network already streams in overlapping chunks (:mod:`d4e.audio.stream`); with
            chunking the per-frame fit buffers (landmarks, canonical coordinates: ~10 kB a frame)
            stay bounded by ``chunk_frames + 2 * overlap_frames`` whatever the audio's length.
        overlap_frames: frames fitted beyond each side of a chunk and discarded: the fit's
            temporal smoothing couples frames with a weight that decays about 4x per frame, so 32
            frames of overlap make the chunked result equal the one-pass result to float precision.

    Returns:
        ``float32 (n_out, K_m)``.
    """
    from d4e.audio.model import mouth_coeffs_from_landmarks
    from d4e.face.fit import fit_clip, split_expression

    check(chunk_frames >= 0 and overlap_frames >= 0, "chunk_frames and overlap_frames must be >= 0")
    valid = np.asarray(valid, bool)
    landmarks = np.asarray(landmarks)
    _, actor_mean = mouth_coeffs_from_landmarks(audio_model, landmarks, valid)
    # (n_out, K) audio coefficients: the network runs over the audio in overlapping chunks
    coeffs = audio_model.predict(np.asarray(audio, np.float32), fps=timeline.fps, n_frames=timeline.n_out,
                                 progress=progress)
    if style is not None:
        from d4e.audio.style import apply_style

        coeffs = apply_style(coeffs, style)
    n = timeline.n_out

    def fit_window(lo: int, hi: int) -> torch.Tensor:
        src = timeline.source_index[lo:hi]
        if not valid[src].any():  # a cut-away longer than the window: these frames are not dubbed
            return torch.zeros(hi - lo, face_model.n_mouth)
        lm_new = audio_model.apply_to_landmarks(landmarks[src], coeffs[lo:hi], actor_mean)
        fit_new = fit_clip(face_model, lm_new, valid[src], fit_config, identity=identity)
        return split_expression(face_model, fit_new.expression)[0].float()

    if chunk_frames <= 0 or n <= chunk_frames:
        return fit_window(0, n)
    mouth = torch.empty(n, face_model.n_mouth)
    for a in range(0, n, chunk_frames):
        b = min(n, a + chunk_frames)
        lo, hi = max(0, a - overlap_frames), min(n, b + overlap_frames)
        mouth[a:b] = fit_window(lo, hi)[a - lo:b - lo]
    return mouth


@dataclass
class RenderSetup:
    """What the generator needs from the prior / actor: model, actor index and render settings.

    Attributes:
        model: :class:`d4e.render.prior.PriorModel` (textures + renderer), eval mode.
        actor_index: the actor's texture in ``model.textures``.
        image_size: resolution the renderer runs at (the prior's training ``image_size``).
        region_dilation: dilation (pixels at ``image_size``) of the rasterized lower-face region.
    """

    model: torch.nn.Module
    actor_index: int
    image_size: int = 256
    region_dilation: int = 4


def surface_shift(uv_orig: torch.Tensor, uv_new: torch.Tensor, mask_orig: torch.Tensor,
                  mask_new: torch.Tensor) -> torch.Tensor:
    """How far the face surface seen at each pixel moved between two rasterizations of one mesh.

    The texture coordinates seen at a pixel under the original and the new expression differ by
    ``duv``; the local texture scale of the new rasterization (``sqrt |det d(u, v) / d(x, y)|``,
    texture units per pixel) turns that into pixels. Where either rasterization shows no mesh,
    on the mesh's outline (one pixel) and where the scale is degenerate the shift is ``inf``.

    Args:
        uv_orig: ``float32 (B, H, W, 2)`` UVs under the original expression (0 off the mesh).
        uv_new: ``float32 (B, H, W, 2)`` UVs under the new expression.
        mask_orig: ``(B, 1, H, W)`` face mask of the original rasterization (1 = mesh).
        mask_new: ``(B, 1, H, W)`` face mask of the new rasterization.

    Returns:
        ``float32 (B, 1, H, W)``, pixels of the rasterization, >= 0 or ``inf``.

    Example:
        >>> uv = torch.stack(torch.meshgrid(torch.arange(8.) / 8, torch.arange(8.) / 8, indexing="xy"), -1)[None]
        >>> m = torch.ones(1, 1, 8, 8)
        >>> float(surface_shift(uv, uv + torch.tensor([1 / 8, 0.0]), m, m)[0, 0, 4, 4])
        1.0
    """
    check_shape(uv_orig, ["B", "H", "W", "2"], "uv_orig")
    check(uv_new.shape == uv_orig.shape, f"uv_new {list(uv_new.shape)} differs from uv_orig {list(uv_orig.shape)}")
    both = ((mask_orig > 0.5) & (mask_new > 0.5)).float()
    # one pixel in from the outline, so the finite differences below stay on the mesh
    inner = 1.0 - F.max_pool2d(1.0 - both, 3, stride=1, padding=1)
    uvn = uv_new.permute(0, 3, 1, 2)  # (B, 2, H, W)
    dx = F.pad(uvn[..., :, 2:] - uvn[..., :, :-2], (1, 1, 0, 0)) * 0.5
    dy = F.pad(uvn[..., 2:, :] - uvn[..., :-2, :], (0, 0, 1, 1)) * 0.5
    det = (dx[:, 0] * dy[:, 1] - dy[:, 0] * dx[:, 1]).abs()[:, None]  # (texture units / pixel)^2
    duv = (uv_new - uv_orig).norm(dim=-1)[:, None]
    ok = (inner > 0.5) & (det > 1e-12)
    shift = duv / det.clamp_min(1e-12).sqrt()
    return torch.where(ok, shift, torch.full_like(shift, float("inf")))


class NeuralGenerator:
    """The product's generator (see module docs).

    Args:
        setup: prior/actor and render settings.
        face_model: the face model the fit was made with.
        fit: :class:`d4e.face.fit.FaceFit` of the source clip (N frames).
        crop_affine: ``(N, 2, 3)`` full-frame -> crop transforms of the clip.
        crop_size: ``S`` of the clip's crops.
        new_mouth: ``(n_out, K_m)`` from :func:`predict_mouth`.
        device: where rasterization and rendering run.
        render_margin: crop pixels the region handed to the renderer extends beyond the union
            of the two masks (room for the border post-processing's feather).
        channels_last: on a CPU, run the renderer in the channels-last layout (faster, same result
            to float rounding; the prior's renderer module is converted in place).

    Attributes:
        timings: seconds spent per sub-stage (``edit``, ``raster``, ``render``).
        valid_margin: ``render_margin`` (see :class:`d4e.dub.pipeline.Generator`).
    """

    def __init__(self, setup: RenderSetup, face_model, fit, crop_affine: np.ndarray, crop_size: int,
                 new_mouth: torch.Tensor, device: str | torch.device = "cpu", render_margin: int = 0,
                 channels_last: bool = False):
        from d4e.face import load_topology
        from d4e.render.geometry import MeshRasterizer

        check(fit.n_frames == len(crop_affine), f"fit has {fit.n_frames} frames, crop_affine {len(crop_affine)}")
        check_shape(new_mouth, ["T", str(face_model.n_mouth)], "new_mouth")
        topo = load_topology()
        self.device = torch.device(device)
        self.setup = setup
        self.model = setup.model.to(self.device).eval()
        self.face_model = face_model
        self.fit = fit
        self.crop_affine = np.asarray(crop_affine, np.float64)
        self.crop_size = int(crop_size)
        self.new_mouth = new_mouth.float()
        self.raster = MeshRasterizer(topo.faces, topo.uv, topo.lower_face_faces, setup.region_dilation).to(self.device)
        self.timings = {"edit": 0.0, "raster": 0.0, "render": 0.0}
        self.valid_margin = int(render_margin)
        # channels-last convolutions are faster on a CPU (oneDNN); the renderer's result is the same
        self.memory_format = torch.channels_last if channels_last and self.device.type == "cpu" else torch.contiguous_format
        if self.memory_format is torch.channels_last:
            self.model.renderer.to(memory_format=torch.channels_last)

    def _tick(self, name: str, t0: float) -> float:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        t = time.perf_counter()
        self.timings[name] += t - t0
        return t

    @torch.no_grad()
    def __call__(self, src_index: np.ndarray, out_index: np.ndarray, crops: torch.Tensor) -> Generated:
        from d4e.face.fit import combine_expression, posed_vertices, split_expression
        from d4e.render.geometry import crop_vertices, dilate

        t0 = time.perf_counter()
        src = torch.as_tensor(np.asarray(src_index), dtype=torch.long)
        out = torch.as_tensor(np.asarray(out_index), dtype=torch.long)
        fit_b = self.fit.subset(src)
        _, rest = split_expression(self.face_model, fit_b.expression)
        expr_new = combine_expression(self.face_model, self.new_mouth[out], rest)
        r = self.setup.image_size
        scale = r / self.crop_size
        aff = self.crop_affine[np.asarray(src_index)]
        v_orig = crop_vertices(posed_vertices(self.face_model, fit_b).double().numpy(), aff, scale)
        v_new = crop_vertices(posed_vertices(self.face_model, fit_b, expr_new).double().numpy(), aff, scale)
        t0 = self._tick("edit", t0)
        verts = torch.from_numpy(np.concatenate([v_orig, v_new]).astype(np.float32)).to(self.device)
        maps = self.raster(verts, (r, r))
        b = len(src)
        region_orig, region_new = maps["region"][:b], maps["region"][b:]
        shift = surface_shift(maps["uv"][:b], maps["uv"][b:], maps["face_mask"][:b], maps["face_mask"][b:])
        t0 = self._tick("raster", t0)
        crop_r = crops if crops.shape[-1] == r else F.interpolate(crops, size=(r, r), mode="bilinear",
                                                                   align_corners=False, antialias=True)
        batch = {
            "uv": maps["uv"][b:],
            "face_mask": maps["face_mask"][b:],
            "region": dilate(torch.maximum(region_orig, region_new), int(round(self.valid_margin * scale))),
            "crop": crop_r.to(self.device).contiguous(memory_format=self.memory_format),
            "actor": torch.full((b,), self.setup.actor_index, dtype=torch.long, device=self.device),
        }
        rgb = self.model(batch)["render"].float().contiguous()
        if r != self.crop_size:
            s = (self.crop_size, self.crop_size)
            rgb = F.interpolate(rgb, size=s, mode="bilinear", align_corners=False)
            region_orig = F.interpolate(region_orig, size=s, mode="nearest")
            region_new = F.interpolate(region_new, size=s, mode="nearest")
            shift = F.interpolate(shift, size=s, mode="nearest") * (self.crop_size / r)
        self._tick("render", t0)
        return Generated(rgb=rgb.to(crops.device), mask_orig=region_orig.to(crops.device),
                         mask_new=region_new.to(crops.device), shift=shift.to(crops.device))
