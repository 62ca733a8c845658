import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from d4e.dub.timeline import plan_timeline
from d4e.dub.pipeline import output_weights
from d4e.dub.validity import crossfade_weights, select_frames, yaw_degrees


def test_yaw_from_rotation():
    r = Rotation.from_euler("y", np.array([[0.0], [25.0], [-50.0], [89.0]]), degrees=True).as_matrix()
    np.testing.assert_allclose(yaw_degrees(r), [0, 25, 50, 89], atol=1e-6)
    # pitch and roll are not yaw
    r = Rotation.from_euler("xz", np.array([[30.0, 0.0], [0.0, 60.0]]), degrees=True).as_matrix()
    np.testing.assert_allclose(yaw_degrees(r), [0, 0], atol=1e-6)
    # yaw measured after a roll is unchanged
    r = Rotation.from_euler("zy", [[20.0, 35.0]], degrees=True).as_matrix()
    assert abs(yaw_degrees(r)[0] - 35.0) < 1e-6


def test_select_frames_reasons():
    valid = np.array([1, 1, 0, 1, 1, 1], bool)
    yaw = np.array([5, 50, 0, np.nan, 10, 39.9])
    occ = np.array([0, 1, 0, 0, 1, 0], bool)
    sel = select_frames(valid, yaw, max_yaw_deg=40.0, occluded=occ)
    assert sel.dubbable.tolist() == [True, False, False, False, False, True]
    assert sel.counts() == {"dubbable": 2, "no_face": 1, "extreme_pose": 2, "occluded": 1}


def test_crossfade_ramps_on_dubbed_side():
    active = np.array([0, 1, 1, 1, 1, 1, 1, 1, 0, 0, 1, 1], bool)
    w = crossfade_weights(active, ramp=3)
    np.testing.assert_allclose(w, [0, .25, .5, .75, 1, .75, .5, .25, 0, 0, .25, .5], atol=1e-6)
    assert crossfade_weights(active, 0).tolist() == active.astype(float).tolist()
    assert crossfade_weights(np.ones(5, bool), 4).tolist() == [1.0] * 5


def test_output_weights_follow_output_order():
    # 6 source frames, frame 5 has no face; ping-pong to 12 output frames, audio covers 10
    plan = plan_timeline(6, 25.0, 12 / 25.0)
    sel = select_frames(np.array([1, 1, 1, 1, 1, 0], bool))
    w = output_weights(plan, sel, crossfade_frames=1)
    # sources: 0 1 2 3 4 5 4 3 2 1 0 1
    np.testing.assert_allclose(w, [1, 1, 1, 1, .5, 0, .5, 1, 1, 1, 1, 1])
