"""Several faces in one shot: the speaker's face by index, reference image or original audio; others untouched."""

from __future__ import annotations

import json

import numpy as np
import pytest

from production_helpers import CAST, SIZE, build_two_faces, tint_factory, write_actor_stub

from d4e.production.manifest import load_segments
from d4e.production.media import iter_native
from d4e.production.runner import dub_segments


@pytest.mark.slow
def test_speaker_face_by_reference_audio_and_index(shared_data, tmp_path):
    import cv2

    from d4e.io.video import VideoReader

    film = tmp_path / "two.mp4"
    build_two_faces(shared_data, film, 9.0, speaker="ben")  # anna left, ben right; ben's own voice
    with VideoReader(shared_data / dict(CAST)["anna"]) as r:  # anna's face from another moment of her clip
        ref = next(f for i, f in enumerate(r) if i == 100)
    cv2.imwrite(str(tmp_path / "anna.png"), cv2.cvtColor(ref, cv2.COLOR_RGB2BGR))
    for name, rgb in (("anna", (1, .1, .1)), ("ben", (.1, .1, 1)), ("other", (.1, 1, .1))):
        write_actor_stub(tmp_path / f"{name}.json", rgb)
    (tmp_path / "s.json").write_text(json.dumps({
        "speakers": {"anna": {"actor": "anna.json", "reference": "anna.png"}, "ben": {"actor": "ben.json"},
                     "other": {"actor": "other.json", "face_index": 1}},
        "segments": [{"id": "by-reference", "start": 0.5, "end": 2.5, "speaker": "anna"},
                     {"id": "by-audio", "start": 3.5, "end": 5.5, "speaker": "ben"},
                     {"id": "by-index", "start": 6.5, "end": 8.5, "speaker": "other"}]}))
    rep = dub_segments(film, shared_data / "speech_vretalking_audio1.wav", load_segments(tmp_path / "s.json"),
                       tmp_path / "out.mp4", post=False, make_generator=tint_factory, generator_tag="tint",
                       cache_dir=tmp_path / "cache", progress=False)
    faces = {s.id: s.face for s in rep.segments}
    assert faces["by-reference"]["how"] == "reference" and faces["by-reference"]["index"] == 0
    assert faces["by-audio"]["how"] == "audio" and faces["by-audio"]["index"] == 1
    ref_scores, audio_scores = faces["by-reference"]["scores"], faces["by-audio"]["scores"]
    assert ref_scores[0] > ref_scores[1] + 0.1 and audio_scores[1] > 2 * audio_scores[0]
    assert faces["by-index"]["how"] == "index" and faces["by-index"]["index"] == 1
    src = [f.to_ndarray() for f in iter_native(film)]
    dst = [f.to_ndarray() for f in iter_native(tmp_path / "out.mp4")]
    side = {"by-reference": 0, "by-audio": 1, "by-index": 1}
    for s in rep.segments:
        assert len(s.changed) > 0.8 * (s.stop - s.first), s.id
        for k, (x0, y0, x1, y1) in s.changed.items():
            assert (x1 <= SIZE) if side[s.id] == 0 else (x0 >= SIZE), (s.id, k, (x0, x1))
        for k in list(s.changed)[::10]:  # the other face's half: bit-identical (luma and chroma)
            h, w = 256, 2 * SIZE
            ya, yb = src[k].reshape(-1)[: h * w].reshape(h, w), dst[k].reshape(-1)[: h * w].reshape(h, w)
            other = slice(SIZE, None) if side[s.id] == 0 else slice(0, SIZE)
            mine = slice(0, SIZE) if side[s.id] == 0 else slice(SIZE, None)
            assert np.array_equal(ya[:, other], yb[:, other]) and not np.array_equal(ya[:, mine], yb[:, mine])
    inside = np.zeros(len(src), bool)
    for s in rep.segments:
        inside[s.first:s.stop] = True
    assert all(np.array_equal(src[k], dst[k]) for k in np.flatnonzero(~inside))
