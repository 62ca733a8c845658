"""No frame changes (no face in any segment): the video stream is copied packet for packet, the new audio added."""

from __future__ import annotations

import json

import numpy as np
import pytest

from production_helpers import tint_factory, write_actor_stub

from d4e.production.manifest import parse_segments
from d4e.production.runner import dub_segments


@pytest.mark.slow
def test_faceless_segment_stream_copies_the_video(shared_data, tmp_path):
    import av

    from d4e.io.writer import VideoWriter

    yy, xx = np.mgrid[0:128, 0:128]
    with VideoWriter(tmp_path / "sky.mp4", 25, crf=20, preset="ultrafast") as w:
        for k in range(75):  # 3 s of a drifting gradient: no face anywhere
            w.write(np.stack([(xx + 2 * k) % 256, (yy + k) % 256, np.full_like(xx, 128)], -1).astype(np.uint8))
    write_actor_stub(tmp_path / "a.json", (1, 0, 0))
    segs = parse_segments({"segments": [{"id": "l1", "start": 1.0, "end": 2.0, "speaker": "a"}]})
    rep = dub_segments(tmp_path / "sky.mp4", shared_data / "speech_vretalking_audio1.wav", segs, tmp_path / "o.mp4",
                       actors={"a": tmp_path / "a.json"}, post=False, make_generator=tint_factory,
                       generator_tag="tint", cache_dir=tmp_path / "c", progress=False)
    assert rep.stream_copied and rep.n_changed == 0
    assert rep.segments[0].error and "no face" in rep.segments[0].error
    assert "l1" in rep.summary() and "stream copied" in rep.summary()

    def packets(path):
        with av.open(str(path)) as c:
            return [bytes(p) for p in c.demux(c.streams.video[0]) if p.size]

    assert packets(tmp_path / "o.mp4") == packets(tmp_path / "sky.mp4")
    with av.open(str(tmp_path / "o.mp4")) as c:
        a = c.streams.audio[0]
        assert abs(float(a.duration * a.time_base) - 3.0) < 0.06
    assert json.loads(json.dumps(rep.segments[0].face)) is None
