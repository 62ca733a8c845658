"""Frame-exact media plumbing: lossless splice writer, planar composite, ranged audio reads."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from d4e.production.media import SpliceWriter, composite, iter_native, read_audio_range


def test_lossless_splice_roundtrip_and_new_audio(shared_data, tmp_path):
    from fractions import Fraction

    import av

    src = shared_data / "mimictalk_May.mp4"
    frames = list(itertools.islice(iter_native(src), 30))
    out = tmp_path / "copy.mp4"
    speech = shared_data / "speech_vretalking_audio1.wav"
    with SpliceWriter(out, Fraction(25), frames[0].width, frames[0].height, frames[0].format.name,
                      audio=speech, audio_start=0.5) as w:
        for f in frames:
            w.write(f)
    back = list(iter_native(out))
    assert len(back) == 30
    assert all(np.array_equal(a.to_ndarray(), b.to_ndarray()) for a, b in zip(frames, back))
    with av.open(str(out)) as c:
        a = c.streams.audio[0]
        assert a.codec_context.sample_rate == 44100 and abs(float(a.duration * a.time_base) - 1.2) < 0.05
    # the audio is the new track from 0.5 s on: compare envelopes at 16 kHz
    got = read_audio_range(out, 0.1, 1.1)
    want = read_audio_range(speech, 0.6, 1.6)
    env = lambda x: np.sqrt(np.convolve(x ** 2, np.ones(800) / 800, "valid"))[::160]  # noqa: E731
    assert np.corrcoef(env(got), env(want))[0, 1] > 0.9


def test_composite_keeps_pixels_outside_the_box(shared_data):
    a, b = list(itertools.islice(iter_native(shared_data / "vretalking_face2.mp4"), 2))
    c = composite(a, b, (101, 201, 300, 351))  # odd corners widen to the chroma grid
    pa, pb, pc = a.to_ndarray(), b.to_ndarray(), c.to_ndarray()
    h, w = a.height, a.width
    y = lambda p: p.reshape(-1)[: h * w].reshape(h, w)  # noqa: E731
    ya, yb, yc = y(pa), y(pb), y(pc)
    inside = np.zeros((h, w), bool)
    inside[200:352, 100:300] = True
    assert np.array_equal(yc[~inside], ya[~inside]) and np.array_equal(yc[inside], yb[inside])
    assert not np.array_equal(ya[inside], yb[inside])
    n = h * w
    assert np.array_equal(pc.reshape(-1)[n:n + n // 4].reshape(h // 2, w // 2)[:100],
                          pa.reshape(-1)[n:n + n // 4].reshape(h // 2, w // 2)[:100])


@pytest.mark.parametrize("clip", ["dfrf_french.mp4", "mimictalk_May.mp4"])
def test_read_audio_range_matches_full_decode(shared_data, clip):
    from d4e.io.audio import read_audio

    full = read_audio(shared_data / clip, 16000)
    for t0 in (0.0, 1.3, 3.0):
        part = read_audio_range(shared_data / clip, t0, t0 + 1.0)
        ref = full.samples[int(round(t0 * 16000)):int(round(t0 * 16000)) + 16000]
        assert part.shape == (16000,)
        err = np.abs(part[200:-200] - ref[200:-200]).max()
        assert err < 0.02 * max(1e-3, np.abs(ref).max()) + 1e-3, (t0, err)
    # on the container clock (the video's frame 0 is at its video_start)
    from d4e.io.video import probe

    info = probe(shared_data / clip)
    x = read_audio_range(shared_data / clip, info.video_start + 1.0, info.video_start + 2.0, container_clock=True)
    i0 = int(round((1.0 + info.video_start - full.start) * 16000))
    assert np.abs(x[200:-200] - full.samples[i0 + 200:i0 + 16000 - 200]).max() < 0.02
    assert not read_audio_range(shared_data / clip, 1e4, 1e4 + 0.5).any()  # past the end: zeros
