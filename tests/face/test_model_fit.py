"""Face model and fitting on the shared corpus (held-out frames), mouth transfer, file round trips."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from d4e.errors import CheckpointError, InputError, NoFaceError
from d4e.face import load_topology
from d4e.face.evaluate import mouth_transfer
from d4e.face.fit import (
    combine_expression, edit_mouth, fit_clip, landmark_error, load_fit, posed_vertices, save_fit, split_expression,
)
from d4e.face.model import FaceModel


def test_heldout_landmark_error(heldout):
    e = heldout.errors
    mean, p95 = float(e.mean()), float(np.percentile(e, 95))
    print(f"held-out landmark error: mean {mean:.4f} p95 {p95:.4f} IOD over {len(e)} frames; per clip "
          + " ".join(f"{x:.4f}" for x in heldout.per_clip))
    assert mean < 0.02
    assert p95 < 0.03
    assert max(heldout.per_clip) < 0.02


def test_explained_variance(heldout):
    rep = heldout.model.report()
    print(rep["identity_variance_explained"], rep["expression_variance_explained"])
    assert rep["identity_variance_explained"] > 0.9
    assert rep["expression_variance_explained"] > 0.95
    m = heldout.model
    for block in (m.exp_explained[: m.n_mouth], m.exp_explained[m.n_mouth:], m.id_explained):
        assert bool((block[1:] <= block[:-1] + 1e-6).all())


def test_mouth_block_moves_only_the_lower_face(heldout):
    m = heldout.model
    topo = load_topology()
    outside = torch.ones(468, dtype=torch.bool)
    outside[torch.as_tensor(topo.lower_face[topo.lower_face < 468])] = False
    assert float(m.exp_basis[: m.n_mouth][:, outside].abs().max()) == 0.0
    assert float(m.exp_basis[: m.n_mouth].abs().max()) > 0.01
    # bases are orthogonal between the blocks (so fitting separates them cleanly)
    flat = m.exp_basis.reshape(m.n_expression, -1).double()
    cross = flat[: m.n_mouth] @ flat[m.n_mouth:].T
    assert float(cross.abs().max()) < 1e-4 * float((flat * flat).sum(1).max())


def test_mouth_transfer_moves_lips_not_eyes(heldout):
    rng = np.random.default_rng(0)
    drift, before, after = [], [], []
    for fit in heldout.fits:
        n = fit.n_frames
        a = rng.integers(0, n, 30)
        b = (a + rng.integers(1, n, 30)) % n  # a != b
        t = mouth_transfer(heldout.model, fit, a, b)
        drift.append(t.upper_drift)
        before.append(t.lip_gap_before)
        after.append(t.lip_gap_after)
    drift, before, after = torch.cat(drift), torch.cat(before), torch.cat(after)
    reduction = float(1 - after.sum() / before.sum())
    print(f"mouth transfer: lip gap reduced by {reduction:.3f}, upper-face drift max {float(drift.max()):.2e} IOD")
    assert float(drift.max()) < 0.005
    assert reduction > 0.8
    moving = before > 0.01
    assert int(moving.sum()) > 50
    assert float((after[moving] < before[moving]).float().mean()) > 0.95


def test_split_combine_edit(heldout):
    m = heldout.model
    e = torch.randn(7, m.n_expression, generator=torch.Generator().manual_seed(0))
    mouth, rest = split_expression(m, e)
    assert mouth.shape == (7, m.n_mouth) and rest.shape == (7, m.n_expression - m.n_mouth)
    torch.testing.assert_close(combine_expression(m, mouth, rest), e)
    fit = heldout.fits[0].subset(slice(0, 7))
    edited = edit_mouth(m, fit, mouth)
    torch.testing.assert_close(split_expression(m, edited)[0], mouth)
    torch.testing.assert_close(split_expression(m, edited)[1], split_expression(m, fit.expression)[1])
    with pytest.raises(ValueError):
        edit_mouth(m, fit, mouth[:, :3])


def test_posed_vertices(heldout, corpus_landmarks):
    m = heldout.model
    fit = heldout.fits[3]
    topo = load_topology()
    v = posed_vertices(m, fit)
    assert v.shape == (fit.n_frames, topo.n_vertices, 3) and v.dtype == torch.float32
    # mouth-interior duplicates sit exactly on their inner-lip landmarks
    torch.testing.assert_close(v[:, topo.mouth_interior_vertices], v[:, topo.inner_lip_loop])
    # and the lips follow the tracked landmarks (pixel coordinates, not canonical units)
    lm, valid = corpus_landmarks[3]
    held = torch.as_tensor(lm[len(lm) - fit.n_frames:])
    iod = (held[:, 263] - held[:, 33]).norm(dim=-1)
    lip_err = (v[:, topo.lips, :2] - held[:, topo.lips, :2]).norm(dim=-1).mean(1) / iod
    assert float(lip_err[torch.as_tensor(valid[len(lm) - fit.n_frames:])].mean()) < 0.03


def test_temporal_smoothing_reduces_jitter(heldout, corpus_landmarks, face_config):
    import dataclasses

    lm, valid = corpus_landmarks[0]
    raw_cfg = dataclasses.replace(face_config.fit, smooth_expression=0.0, smooth_pose=0.0)
    smooth = fit_clip(heldout.model, lm, valid, face_config.fit)
    raw = fit_clip(heldout.model, lm, valid, raw_cfg)
    jitter = lambda f: float((f.expression[2:] - 2 * f.expression[1:-1] + f.expression[:-2]).norm(dim=1).mean())
    assert jitter(smooth) < 0.7 * jitter(raw)
    e_s = landmark_error(heldout.model, smooth, lm).mean()
    e_r = landmark_error(heldout.model, raw, lm).mean()
    assert float(e_s - e_r) < 0.002  # smoothing costs little accuracy


def test_untracked_frames_are_interpolated(heldout, corpus_landmarks, face_config):
    lm, valid = corpus_landmarks[1]
    lm, valid = lm[:120].copy(), valid[:120].copy()
    assert valid.all()
    ref = fit_clip(heldout.model, lm, valid, face_config.fit)
    gap = slice(40, 60)
    valid[gap] = False
    lm[gap] = lm[39]  # what the cache stores for untracked frames
    fit = fit_clip(heldout.model, lm, valid, face_config.fit)
    assert not fit.valid[gap].any() and fit.valid[:40].all()
    # identity from tracked frames only: nearly unchanged
    assert float((fit.identity - ref.identity).norm()) < 0.1 * float(ref.identity.norm()) + 0.05
    # in the gap the expression follows the line between the gap's ends, not the frozen copy
    t = torch.linspace(0, 1, 22)[1:-1, None]
    lerp = (1 - t) * fit.expression[39] + t * fit.expression[60]
    frozen = fit.expression[39].expand(20, -1)
    d_lerp = float((fit.expression[gap] - lerp).norm(dim=1).mean())
    d_frozen = float((fit.expression[gap] - frozen).norm(dim=1).mean())
    assert d_lerp < 0.5 * d_frozen


def test_no_face_and_bad_input(heldout):
    lm = np.zeros((5, 478, 3), np.float32)
    with pytest.raises(NoFaceError):
        fit_clip(heldout.model, lm, np.zeros(5, bool), FaceConfigFit())
    lm[2, 3, 0] = np.nan
    with pytest.raises(InputError):
        fit_clip(heldout.model, lm, np.ones(5, bool), FaceConfigFit())
    with pytest.raises(ValueError):
        fit_clip(heldout.model, lm[:, :10], np.ones(5, bool), FaceConfigFit())


def FaceConfigFit():
    from d4e.face.config import FitConfig

    return FitConfig()


def test_model_and_fit_files(heldout, tmp_path):
    m = heldout.model
    path = m.save(tmp_path / "face.d4e")
    m2 = FaceModel.load(path)
    for k in ("mean", "id_basis", "exp_basis", "mouth_basis", "rest_basis"):
        torch.testing.assert_close(getattr(m2, k), getattr(m, k))
    assert m2.fingerprint() == m.fingerprint()
    assert m2.meta["report"]["n_expression"] == m.n_expression
    from d4e.core.checkpoint import save_checkpoint

    other = save_checkpoint(tmp_path / "other.d4e", {"x": torch.zeros(1)}, kind="prior")
    with pytest.raises(CheckpointError):
        FaceModel.load(other)

    fit = heldout.fits[0]
    save_fit(tmp_path, fit)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp files left
    back = load_fit(tmp_path, m2)
    for k in ("identity", "expression", "rotation", "translation", "scale", "valid"):
        torch.testing.assert_close(getattr(back, k), getattr(fit, k))
    changed = FaceModel(**{**m.__dict__, "mean": m.mean + 0.01})
    with pytest.raises(InputError, match="another face model"):
        load_fit(tmp_path, changed)
    with pytest.raises(InputError):
        load_fit(tmp_path / "nowhere")


def test_unseen_actor_error(corpus_landmarks, face_config):
    """An actor the model never saw (leave one clip out) is still fitted within 2% IOD."""
    from d4e.face.model import build_face_model_from_landmarks

    k = len(corpus_landmarks) // 2
    model = build_face_model_from_landmarks(corpus_landmarks[:k] + corpus_landmarks[k + 1:], face_config.model)
    lm, valid = corpus_landmarks[k]
    fit = fit_clip(model, lm, valid, face_config.fit)
    e = landmark_error(model, fit, lm).numpy()[valid]
    print(f"unseen actor: mean {e.mean():.4f} p95 {np.percentile(e, 95):.4f}")
    assert e.mean() < 0.02 and np.percentile(e, 95) < 0.03


def test_fit_reads_a_read_only_cache_array(heldout, corpus_landmarks, face_config):
    """A cache's landmarks come memory-mapped read-only; fitting them gives the same fit and no PyTorch warning
    about non-writable arrays (it printed during d4e adapt)."""
    import warnings

    lm, valid = corpus_landmarks[1]
    lm = lm[:30].copy()
    ro = lm.view()
    ro.flags.writeable = False
    ref = fit_clip(heldout.model, lm, valid[:30], face_config.fit)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fit = fit_clip(heldout.model, ro, valid[:30], face_config.fit)
    assert torch.equal(fit.expression, ref.expression) and torch.equal(fit.identity, ref.identity)
