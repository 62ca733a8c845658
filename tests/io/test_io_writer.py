"""d4e.io.writer: H.264 round trips keep frame count and duration; audio muxed; atomic output."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from io_media_gen import frame_index, numbered_frames

from d4e.io.audio import read_audio
from d4e.io.video import VideoReader, iter_frames, probe
from d4e.io.writer import VideoWriter, as_fraction, write_video


@pytest.mark.parametrize("name", ["pcavs_00473.mp4", "mimictalk_May.mp4"])
def test_decode_encode_round_trip(shared_data, tmp_path, name):
    src = shared_data / name
    out = tmp_path / "rt.mp4"
    with VideoReader(src) as r:
        first = None
        with VideoWriter(out, r.info.fps_fraction, crf=18, preset="ultrafast", audio=src) as w:
            for img in r:
                first = img if first is None else first
                w.write(img)
    a, b = probe(src), probe(out)
    assert b.n_frames == a.n_frames
    assert abs(b.duration - a.duration) < 1 / a.fps  # within one frame
    assert b.fps == a.fps and b.codec == "h264" and b.pix_fmt == "yuv420p"
    again = next(iter(iter_frames(out)))
    assert np.abs(again.astype(float) - first).mean() < 3.0  # crf 18: visually lossless
    # the muxed audio lasts as long as the video (AAC pads to its 1024-sample frames)
    au = read_audio(out)
    assert abs(au.duration - b.duration) < 0.08
    ref = read_audio(src)
    n = min(len(au.samples), len(ref.samples)) - 2048
    c = np.corrcoef(au.samples[1024:n], ref.samples[1024:n])[0, 1]
    assert c > 0.9, c  # same waveform, aligned (no offset)


def test_fractional_rate_and_array_audio(tmp_path):
    out = tmp_path / "ntsc.mp4"
    tone = (0.3 * np.sin(2 * np.pi * 440 * np.arange(32000) / 16000)).astype(np.float32)  # 2 s
    write_video(out, numbered_frames(30, size=(63, 47)), fps=29.97, audio=tone, audio_sr=16000, crf=12)
    info = probe(out)
    assert info.fps_fraction == Fraction(30000, 1001) and info.n_frames == 30
    assert (info.width, info.height) == (64, 48)  # odd sizes padded for yuv420p
    assert [frame_index(f) for f in iter_frames(out)] == list(range(30))
    au = read_audio(out)
    assert abs(au.duration - 30 / (30000 / 1001)) < 0.07  # trimmed to the video
    assert as_fraction(25.0) == 25 and as_fraction(23.976) == Fraction(24000, 1001)


def test_atomic_no_partial_file(tmp_path):
    out = tmp_path / "x.mp4"
    with pytest.raises(RuntimeError):
        with VideoWriter(out, 25) as w:
            for f in numbered_frames(5):
                w.write(f)
            raise RuntimeError("crash mid-write")
    assert list(tmp_path.iterdir()) == []  # neither the target nor a temp file
    write_video(out, numbered_frames(5), 25)
    size = out.stat().st_size
    with pytest.raises(ValueError, match="frame 2 is"):
        with VideoWriter(out, 25) as w:
            w.write(numbered_frames(1)[0])
            w.write(numbered_frames(1)[0])
            w.write(np.zeros((10, 10, 3), np.uint8))  # wrong size
    assert out.stat().st_size == size and sorted(p.name for p in tmp_path.iterdir()) == ["x.mp4"]


def test_atomic_outputs_get_normal_permissions(tmp_path):
    """Files written through a temporary file get 0666 & ~umask, not mkstemp's private 0600."""
    import os
    import stat

    import torch

    from d4e.core.atomic import atomic_write_bytes
    from d4e.core.checkpoint import save_checkpoint

    umask = os.umask(0o022)
    try:
        atomic_write_bytes(tmp_path / "a.bin", b"x")
        with VideoWriter(tmp_path / "v.mp4", fps=25) as w:
            w.write(np.zeros((16, 16, 3), np.uint8))
        # safetensors' save_file recreates the temporary file as 0600: checkpoints (actors, models) were private
        save_checkpoint(tmp_path / "c.d4e", {"a": torch.zeros(2)}, "prior")
    finally:
        os.umask(umask)
    for name in ("a.bin", "v.mp4", "c.d4e"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o644
