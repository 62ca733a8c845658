"""PSNR, SSIM (against scikit-image), Frechet distance (closed form), LMD and seam score."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from d4e.eval.metrics import (
    MOUTH_INDICES,
    PSNR,
    SSIM,
    LandmarkDistance,
    SeamScore,
    fid_from_features,
    frechet_distance,
    landmark_distance,
    psnr,
    seam_score,
    ssim,
)


def _real_frames(shared_data, n=4, size=None):
    import av

    frames = []
    with av.open(str(shared_data / "hdtf_RD_Radio34_000.mp4")) as c:
        for i, f in enumerate(c.decode(video=0)):
            if i % 10 == 0:
                frames.append(f.to_ndarray(format="rgb24"))
            if len(frames) == n:
                break
    x = torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).float() / 255
    if size:
        x = F.interpolate(x, size=size, mode="area")
    return x


def _blur(x, k=5):
    return F.avg_pool2d(F.pad(x, (k // 2,) * 4, mode="replicate"), k, stride=1)


def test_psnr_known_value_and_degradations(shared_data):
    x = _real_frames(shared_data, 2, (128, 128))
    assert torch.isinf(psnr(x, x)).all()
    y = (x + 0.1).clamp(0, 1)
    mse = ((x - y) ** 2).flatten(1).mean(1)
    assert torch.allclose(psnr(x, y), 10 * torch.log10(1 / mse), atol=1e-4)
    g = torch.Generator().manual_seed(0)
    low = psnr(x, (x + 0.02 * torch.randn(x.shape, generator=g)).clamp(0, 1))
    high = psnr(x, (x + 0.10 * torch.randn(x.shape, generator=g)).clamp(0, 1))
    assert (low > high + 10).all()  # more noise, lower PSNR (~14 dB apart)
    assert torch.allclose(PSNR()(x, y), psnr(x, y))
    with pytest.raises(ValueError, match="shape"):
        psnr(x, x[:, :, :64])


@pytest.mark.parametrize("gaussian", [False, True])
def test_ssim_matches_skimage(shared_data, gaussian):
    from skimage.metrics import structural_similarity

    x = _real_frames(shared_data, 3, (96, 120))
    g = torch.Generator().manual_seed(1)
    ys = [(x + 0.05 * torch.randn(x.shape, generator=g)).clamp(0, 1), _blur(x)]
    kw = dict(gaussian_weights=True, win_size=11, use_sample_covariance=False) if gaussian else {}
    for y in ys:
        ours = ssim(x, y, **kw)
        for i in range(x.shape[0]):
            a = (x[i].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
            b = (y[i].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
            ref = structural_similarity(
                a, b, data_range=255, channel_axis=-1, gaussian_weights=gaussian, use_sample_covariance=not gaussian,
                **({"sigma": 1.5} if gaussian else {})
            )
            xa = torch.from_numpy(a).permute(2, 0, 1)[None].float() / 255
            xb = torch.from_numpy(b).permute(2, 0, 1)[None].float() / 255
            mine = float(ssim(xa, xb, **kw))
            assert abs(mine - ref) < 1e-3, (mine, ref)
            assert abs(float(ours[i]) - ref) < 5e-3  # same images before 8-bit rounding
            assert ref < 0.99  # the degradation is visible


def test_ssim_perfect_and_ordering(shared_data):
    x = _real_frames(shared_data, 2, (96, 96))
    assert torch.allclose(ssim(x, x), torch.ones(2), atol=1e-6)
    assert (ssim(x, _blur(x, 3)) > ssim(x, _blur(x, 9))).all()
    g = torch.Generator().manual_seed(2)
    assert (ssim(x, (x + 0.02 * torch.randn(x.shape, generator=g)).clamp(0, 1)) > ssim(x, (x + 0.2 * torch.randn(x.shape, generator=g)).clamp(0, 1))).all()
    assert torch.allclose(SSIM()(x, _blur(x)), ssim(x, _blur(x)))


def test_frechet_closed_form_diagonal_and_rotated():
    rng = np.random.default_rng(0)
    d = 6
    mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
    a, b = rng.uniform(0.2, 3.0, size=d), rng.uniform(0.2, 3.0, size=d)
    expected = float(((mu1 - mu2) ** 2).sum() + ((np.sqrt(a) - np.sqrt(b)) ** 2).sum())
    assert frechet_distance(mu1, np.diag(a), mu2, np.diag(b)) == pytest.approx(expected, rel=1e-9)
    # a common rotation of both Gaussians leaves the distance unchanged (non-diagonal, commuting covariances)
    q, _ = np.linalg.qr(rng.normal(size=(d, d)))
    got = frechet_distance(q @ mu1, q @ np.diag(a) @ q.T, q @ mu2, q @ np.diag(b) @ q.T)
    assert got == pytest.approx(expected, rel=1e-6)
    # 1-D: (m1-m2)^2 + (s1-s2)^2
    assert frechet_distance(np.array([1.0]), np.array([[4.0]]), np.array([-2.0]), np.array([[1.0]])) == pytest.approx(9 + 1)
    assert frechet_distance(mu1, np.diag(a), mu1, np.diag(a)) == pytest.approx(0.0, abs=1e-9)


def test_frechet_non_commuting_against_brute_force():
    # W2 between Gaussians equals min over couplings; check against the alternative formula
    # Tr(S1 + S2 - 2 (S1^1/2 S2 S1^1/2)^1/2), computed by eigendecompositions only.
    rng = np.random.default_rng(3)
    d = 5
    A, B = rng.normal(size=(d, d)), rng.normal(size=(d, d))
    s1, s2 = A @ A.T + 0.1 * np.eye(d), B @ B.T + 0.1 * np.eye(d)

    def psd_sqrt(m):
        w, v = np.linalg.eigh(m)
        return v @ np.diag(np.sqrt(np.clip(w, 0, None))) @ v.T

    r = psd_sqrt(s1)
    expected = np.trace(s1 + s2 - 2 * psd_sqrt(r @ s2 @ r))
    assert frechet_distance(np.zeros(d), s1, np.zeros(d), s2) == pytest.approx(expected, rel=1e-6)


def test_fid_from_samples_approaches_closed_form():
    rng = np.random.default_rng(1)
    n, d = 20000, 4
    a, b = np.array([1.0, 2.0, 0.5, 1.5]), np.array([2.0, 0.5, 0.5, 1.0])
    f1 = rng.normal(size=(n, d)) * np.sqrt(a)
    f2 = rng.normal(size=(n, d)) * np.sqrt(b) + 0.5
    expected = d * 0.25 + ((np.sqrt(a) - np.sqrt(b)) ** 2).sum()
    assert fid_from_features(f1, f2) == pytest.approx(expected, abs=0.05)
    assert fid_from_features(f1, f1) == pytest.approx(0.0, abs=1e-6)


def test_landmark_distance():
    g = torch.Generator().manual_seed(0)
    ref = torch.rand(5, 478, 3, generator=g) * 200
    ref[:, 33, :2] = torch.tensor([50.0, 80.0])
    ref[:, 263, :2] = torch.tensor([150.0, 80.0])  # inter-ocular distance 100 px
    assert torch.equal(landmark_distance(ref, ref), torch.zeros(5))
    moved = ref.clone()
    moved[:, list(MOUTH_INDICES), 1] += 3.0  # the whole mouth 3 px down
    assert torch.allclose(landmark_distance(moved, ref), torch.full((5,), 0.03), atol=1e-6)
    more = ref.clone()
    more[:, list(MOUTH_INDICES), 1] += 6.0
    assert (landmark_distance(more, ref) > landmark_distance(moved, ref)).all()
    other = ref.clone()
    other[:, 1, :] += 50  # nose tip is not a mouth point
    assert torch.equal(LandmarkDistance()(other, ref), torch.zeros(5))


def test_seam_score_identity_and_pasted_box(shared_data):
    """The dub issue's seam score (d4e.post.metrics.seam_score): 1 on identity, above the 1.10 goal on a pasted box."""
    from d4e.post.metrics import seam_score as post_seam_score

    x = _real_frames(shared_data, 3, (128, 128))
    mask = torch.zeros(1, 1, 128, 128)
    mask[..., 70:110, 40:90] = 1.0
    assert float(seam_score(x, x, mask)) == pytest.approx(1.0)

    def paste(step):
        y = x.clone()
        y[..., 70:110, 40:90] = (y[..., 70:110, 40:90] + step).clamp(0, 1)  # a brighter box: a step at its border
        return y

    pasted = paste(0.1)
    s_box = float(seam_score(pasted, x, mask))
    assert s_box == float(post_seam_score(pasted, x, mask))  # one definition for eval and post
    assert s_box > 1.10  # a visible seam fails the dub issue's goal (measured 1.35)
    # a smaller step at the border scores between the two (measured 1.04)
    assert 1.0 < float(seam_score(paste(0.02), x, mask)) < s_box
    # a change well inside the mask (away from the seam) does not move it
    inner = x.clone()
    inner[..., 80:100, 55:75] = 0.5
    assert float(SeamScore()(inner, x, mask)) == pytest.approx(1.0, abs=1e-6)
    per = seam_score(pasted, x, mask.expand(3, -1, -1, -1), per_frame=True)
    assert per.shape == (3,) and (per > 1.10).all()  # measured 1.47, 1.36, 1.23
    for i in range(3):
        assert float(per[i]) == pytest.approx(post_seam_score(pasted[i : i + 1], x[i : i + 1], mask), rel=1e-6)
    # no mask edge: undefined
    assert math.isnan(float(seam_score(pasted, x, torch.zeros(1, 1, 128, 128))))


def test_fid_low_rank_path_equals_matrix_root():
    rng = np.random.default_rng(4)
    d = 40
    x = rng.normal(size=(12, d)) @ rng.normal(size=(d, d)) * 0.3
    y = rng.normal(size=(9, d)) @ rng.normal(size=(d, d)) * 0.3 + 0.2
    from d4e.eval.metrics import gaussian_stats

    mu1, s1 = gaussian_stats(x)
    mu2, s2 = gaussian_stats(y)

    def psd_sqrt(m):
        w, v = np.linalg.eigh(m)
        return v @ np.diag(np.sqrt(np.clip(w, 0, None))) @ v.T

    r = psd_sqrt(s1)
    expected = float(((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * psd_sqrt(r @ s2 @ r)))
    assert fid_from_features(x, y) == pytest.approx(expected, rel=1e-6)
    assert fid_from_features(x, x) == pytest.approx(0.0, abs=1e-8)
