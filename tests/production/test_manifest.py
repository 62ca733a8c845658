"""Segment manifests: both shapes, times, speakers, refusals; frame planning with padding."""

from __future__ import annotations

import json

import pytest

from d4e.errors import InputError
from d4e.production.manifest import load_segments, parse_actor_args, parse_segments, parse_time
from d4e.production.runner import plan_segments


def test_d4e_shape_with_speakers(tmp_path):
    (tmp_path / "actors").mkdir()
    m = {"format": "d4e-segments", "version": 1,
         "speakers": {"alice": {"actor": "actors/alice.d4e", "face_index": 1}},
         "segments": [{"id": "b", "start": "00:01:02.5", "end": 64, "speaker": "bob", "text": "hi"},
                      {"id": "a", "start": 10, "end": 12.25, "speaker": "alice", "orig_start": 9.5, "orig_end": 12}]}
    p = tmp_path / "s.json"
    p.write_text(json.dumps(m))
    segs = load_segments(p)
    assert [s.id for s in segs.segments] == ["a", "b"]  # sorted by time
    a, b = segs.segments
    assert a.span == (9.5, 12.25) and b.start == 62.5 and b.end == 64.0 and b.text == "hi"
    assert segs.speakers["alice"].actor == tmp_path / "actors" / "alice.d4e"
    assert segs.speakers["alice"].face_index == 1 and segs.speakers["bob"].actor is None
    assert segs.speaker_names() == ["alice", "bob"]


def test_anim400k_flat_and_nested():
    flat = [{"clip_id": "ep1_003", "ja_start": 5.0, "ja_end": 6.5, "en_start": 5.2, "en_end": 7.0,
             "speaker_id": 3, "en_text": "Let's go!", "ja_text": "行こう!"},
            {"clip_id": "ep1_001", "ja_start": 1.0, "ja_end": 2.0, "en_start": 0.8, "en_end": 2.4, "speaker_id": 7}]
    segs = parse_segments(flat)
    assert segs.shape == "anim400k"
    first, second = segs.segments
    assert first.id == "ep1_001" and first.speaker == "7" and first.span == (0.8, 2.4)
    assert (second.start, second.end, second.orig_start, second.orig_end) == (5.2, 7.0, 5.0, 6.5)
    assert second.text == "Let's go!"
    nested = {"target_language": "ja", "segments": [
        {"ja": {"start": 3, "end": 4, "text": "はい"}, "en": {"start": 2.9, "end": 4.4}, "character": "Rin"}]}
    (s,) = parse_segments(nested).segments
    assert (s.start, s.end, s.orig_start, s.orig_end, s.speaker, s.text) == (3, 4, 2.9, 4.4, "Rin", "はい")


@pytest.mark.parametrize("bad, msg", [
    ({"segments": []}, "no segments"),
    ({"segments": [{"start": 1, "end": 0.5, "speaker": "a"}]}, "end must be after start"),
    ({"segments": [{"start": 1, "end": 2}]}, "no speaker"),
    ({"segments": [{"start": 1, "end": 3, "speaker": "a"}, {"start": 2, "end": 4, "speaker": "b"}]}, "overlap"),
    ({"segments": [{"start": -1, "end": 3, "speaker": "a"}]}, ">= 0"),
    ({"segments": [{"start": "1:xx", "end": 3, "speaker": "a"}]}, "cannot read time"),
    ({"format": "srt", "segments": [{"start": 1, "end": 3, "speaker": "a"}]}, "is not"),
    ({"version": 2, "segments": [{"start": 1, "end": 3, "speaker": "a"}]}, "version"),
    ([{"fr_start": 1, "fr_end": 2, "speaker": "a"}], "target language"),
    ([{"ja_start": 1, "ja_end": 2, "en_start": 1, "en_end": 2, "fr_start": 1, "fr_end": 2, "speaker": "a"}],
     "more than two languages"),
    ({"segments": [{"id": "x", "start": 1, "end": 2, "speaker": "a"}, {"id": "x", "start": 3, "end": 4,
                                                                        "speaker": "a"}]}, "duplicate"),
])
def test_refusals(bad, msg):
    with pytest.raises(InputError, match=msg):
        parse_segments(bad)


def test_times_and_actor_args(tmp_path):
    assert parse_time("01:00:01.5", "t") == 3601.5 and parse_time("2,25", "t") == 2.25 and parse_time(3, "t") == 3.0
    assert parse_actor_args(["a=x.d4e", "b=dir/y=z.d4e"]) == {"a": __import__("pathlib").Path("x.d4e"),
                                                              "b": __import__("pathlib").Path("dir/y=z.d4e")}
    for bad in (["x.d4e"], ["=x"], ["a=x", "a=y"]):
        with pytest.raises(InputError):
            parse_actor_args(bad)
    with pytest.raises(InputError, match="not found"):
        load_segments(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(InputError, match="not valid JSON"):
        load_segments(tmp_path / "bad.json")


def test_plan_segments_padding_split_between_neighbours():
    segs = parse_segments({"segments": [{"start": 1.0, "end": 2.0, "speaker": "a"},
                                        {"start": 2.2, "end": 3.0, "speaker": "b"},
                                        {"start": 9.9, "end": 12.0, "speaker": "a"}]})
    (a0, a1), (b0, b1), (c0, c1) = plan_segments(segs, 25.0, 250, pad_seconds=0.3)
    assert (a0, c1) == (17, 250)  # 0.7 s; the last clipped at the video's end
    assert a1 == b0 and 50 <= a1 <= 55  # the padding between the first two is split, cores kept
    assert b1 == 83 and c0 == 240  # frame 82 covers [3.28, 3.32): touched by 3.3 s
    with pytest.raises(InputError, match="after the video's end"):
        plan_segments(parse_segments({"segments": [{"start": 20, "end": 21, "speaker": "a"}]}), 25.0, 250, 0.0)
