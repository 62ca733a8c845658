"""d4e.core.lag: correlation over lags and the parabola vertex shared by the offset cues and the sync search."""

from __future__ import annotations

import numpy as np
import pytest

from d4e.audio.data import delay_frames
from d4e.core.lag import lag_correlation, parabolic_vertex, pearson


def test_lag_correlation_finds_a_fractional_delay_and_masks_pairs():
    rng = np.random.default_rng(3)
    y = np.convolve(rng.standard_normal(400), np.hanning(9), "same")  # a smooth series like a mouth opening
    for d in (-3.0, 1.4, 4.6):
        x, ok = delay_frames(y, d)  # x[t + d] == y[t]
        offs = np.arange(-6, 7)
        r = lag_correlation(x, y, ok, offs)
        k = int(np.argmax(r))
        dx, top = parabolic_vertex(*r[k - 1 : k + 2])
        assert abs(offs[k] + dx - d) < 0.2 and top >= r[k] > 0.9, (d, offs[k] + dx, top)
    # pairs need both ends valid: with every other frame masked, odd lags have no pair at all
    valid = np.arange(400) % 2 == 0
    r = lag_correlation(y, y, valid, np.array([-1, 0, 1]))
    assert np.isnan(r[0]) and np.isnan(r[2]) and r[1] == pytest.approx(1.0)


def test_constant_series_zero_or_nan():
    y = np.r_[np.zeros(10), np.ones(10)]
    c = np.full(20, 2.0)
    assert lag_correlation(c, y, np.ones(20, bool), np.array([0]))[0] == 0.0
    with np.errstate(invalid="ignore", divide="ignore"):
        assert np.isnan(lag_correlation(c, y, np.ones(20, bool), np.array([0]), constant="nan")[0])
    assert pearson(c, y) == 0.0
    # the two modes agree on a non-constant series
    x = np.sin(np.arange(20.0))
    a = lag_correlation(x, y, np.ones(20, bool), np.arange(-2, 3))
    b = lag_correlation(x, y, np.ones(20, bool), np.arange(-2, 3), constant="nan")
    np.testing.assert_allclose(a, b, atol=1e-12)


def test_parabolic_vertex_on_sampled_parabolas():
    for x0 in (-0.4, 0.0, 0.3):
        f = lambda t: 2.0 - 1.5 * (t - x0) ** 2  # noqa: E731
        dx, top = parabolic_vertex(f(-1), f(0), f(1), kind="max")
        assert dx == pytest.approx(x0) and top == pytest.approx(2.0)
        dx, low = parabolic_vertex(-f(-1), -f(0), -f(1), kind="min")
        assert dx == pytest.approx(x0) and low == pytest.approx(-2.0)
    assert parabolic_vertex(1.0, 0.0, 1.0, kind="max") == (0.0, 0.0)  # opens the wrong way: middle sample
    assert parabolic_vertex(0.0, 1.0, np.nan) == (0.0, 1.0)
    assert parabolic_vertex(0.0, 1.0, 0.99)[0] <= 0.5  # a peak at the middle sample stays within half a sample
