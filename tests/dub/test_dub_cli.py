"""``d4e dub`` bad input: one-line error, exit status 2, no output file."""

import wave
from pathlib import Path

import numpy as np
import pytest

from d4e.cli import entrypoint
from d4e.core.checkpoint import save_checkpoint


def _run(capsys, *argv):
    rc = entrypoint(["dub", "--no-progress", *map(str, argv)])
    err = capsys.readouterr().err.strip().splitlines()
    return rc, err


def _no_outputs(d: Path, name: str):
    assert not (d / name).exists()
    assert not [p for p in d.iterdir() if p.name.startswith("." + name)]  # no temp leftovers


@pytest.fixture()
def ckpts(tmp_path):
    import torch

    prior = save_checkpoint(tmp_path / "prior.ckpt", {"x": torch.zeros(1)}, kind="prior")
    audio = save_checkpoint(tmp_path / "audio.d4e", {"x": torch.zeros(1)}, kind="audio")
    return prior, audio


def test_output_equal_to_input(shared_data, tmp_path, capsys):
    video = shared_data / "mimictalk_May.mp4"
    rc, err = _run(capsys, video, shared_data / "speech_vretalking_audio1.wav", "-o", video)
    assert rc == 2 and len(err) == 1 and "is the input video" in err[0]
    speech = shared_data / "speech_vretalking_audio1.wav"
    rc, err = _run(capsys, video, speech, "-o", speech)
    assert rc == 2 and len(err) == 1 and "is the input audio" in err[0]


def test_audio_that_is_not_audio(shared_data, tmp_path, capsys):
    bad = tmp_path / "speech.wav"
    bad.write_text("this is not audio\n" * 20)
    rc, err = _run(capsys, shared_data / "mimictalk_May.mp4", bad, "-o", tmp_path / "out.mp4")
    assert rc == 2 and len(err) == 1 and err[0].startswith("d4e: error:") and "speech.wav" in err[0]
    _no_outputs(tmp_path, "out.mp4")


@pytest.mark.parametrize("kind", ["header_only", "empty_file"])
def test_zero_length_audio(shared_data, tmp_path, capsys, kind):
    path = tmp_path / "silence.wav"
    if kind == "header_only":
        with wave.open(str(path), "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(16000)
            w.writeframes(b"")
    else:
        path.write_bytes(b"")
    rc, err = _run(capsys, shared_data / "mimictalk_May.mp4", path, "-o", tmp_path / "out.mp4")
    assert rc == 2 and len(err) == 1 and "silence.wav" in err[0]
    _no_outputs(tmp_path, "out.mp4")


def test_missing_checkpoint(shared_data, tmp_path, capsys):
    args = [shared_data / "mimictalk_May.mp4", shared_data / "speech_vretalking_audio1.wav", "-o", tmp_path / "out.mp4"]
    rc, err = _run(capsys, *args, "--prior", tmp_path / "nope.ckpt")
    assert rc == 2 and len(err) == 1 and "checkpoint not found" in err[0]
    rc, err = _run(capsys, *args)
    assert rc == 2 and len(err) == 1 and "--prior" in err[0]
    garbage = tmp_path / "garbage.ckpt"
    garbage.write_bytes(b"\x00" * 100)
    rc, err = _run(capsys, *args, "--prior", garbage)
    assert rc == 2 and len(err) == 1 and "not a D4E checkpoint" in err[0]
    _no_outputs(tmp_path, "out.mp4")


def test_video_without_a_face(shared_data, tmp_path, capsys, ckpts):
    import av

    video = tmp_path / "noface.mp4"
    with av.open(str(video), "w") as c:
        s = c.add_stream("libx264", rate=25)
        s.width, s.height, s.pix_fmt = 128, 128, "yuv420p"
        yy, xx = np.mgrid[0:128, 0:128]
        for i in range(25):
            img = np.stack([(xx + 3 * i) % 256, yy, np.full_like(xx, 90)], -1).astype(np.uint8)
            for p in s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    prior, audio = ckpts
    rc, err = _run(capsys, video, shared_data / "speech_vretalking_audio1.wav", "-o", tmp_path / "out.mp4",
                   "--prior", prior, "--audio-model", audio, "--cache", tmp_path / "cache")
    assert rc == 2 and len(err) == 1 and "face" in err[0].lower()
    _no_outputs(tmp_path, "out.mp4")
