"""Every shared clip x every shared speech file: the output properties ``tools/dub_matrix.py`` checks.

The full matrix with the neural renderer is ~31k frames (``tools/dub_matrix.py``, run outside
the suite). Here the same properties are checked for real -- real decode, the corpus's tracking
cache, timeline, paste-back, H.264 encode and AAC mux, decoded and measured with the same
:func:`d4e.dub.checks.check_dub_output` -- with the trivial generator of ``dub_helpers`` (inverts a
lower-face box: every pasted pixel changes, so pixels leaking outside the region would show)
and post-processing off: all 17 clips with the 5 s speech, the 8 s speech on three clips (25 and
30 fps, three sizes) and the 60 s speech on one (1500 frames: a 158-frame clip ping-ponged).
"""

import dataclasses
import os
from pathlib import Path

import pytest

from dub_helpers import InvertMouthGenerator

# the shared data folder as tests/conftest.py finds it (not imported from there: with the whole suite
# collected, the module name ``conftest`` may be another folder's conftest)
_DATA = Path(os.environ.get("D4E_SHARED_DATA", Path(__file__).resolve().parents[2].parent / "shared" / "data"))
CLIPS = sorted(p.name for p in _DATA.glob("*.mp4"))
SPEECH = sorted(p.name for p in _DATA.glob("speech_*.wav"))

SHORT, MID, LONG = "speech_vretalking_audio1.wav", "speech_hdtf_RD_Radio31_000.wav", "speech_musetalk_eng.wav"
PAIRS = ([(c, SHORT) for c in CLIPS]
         + [(c, MID) for c in ("pcavs_741400163.mp4", "vretalking_face4.mp4", "hdtf_WDA_KatieHill_000.mp4")]
         + [("pcavs_00473.mp4", LONG)])


def test_matrix_covers_every_clip_and_speech_file():
    assert len(CLIPS) == 17 and set(SPEECH) == {SHORT, MID, LONG}
    assert {c for c, _ in PAIRS} == set(CLIPS) and {s for _, s in PAIRS} == set(SPEECH)


@pytest.mark.slow
@pytest.mark.parametrize("clip, speech", PAIRS, ids=[f"{c[:-4]}-{s[7:15]}" for c, s in PAIRS])
def test_dub_output_properties(shared_data, corpus_cache, tmp_path, clip, speech):
    from d4e.dub.checks import RegionRecorder, check_dub_output
    from d4e.dub.config import load_dub_config
    from d4e.dub.pipeline import ClipData
    from d4e.dub.run import dub

    video, audio, out = shared_data / clip, shared_data / speech, tmp_path / "out.mp4"
    cfg = dataclasses.replace(load_dub_config(), shorter="trim", video_preset="ultrafast", batch_size=16)
    rec = RegionRecorder()
    report = dub(video, audio, out, cache_dir=tmp_path / "cache", clip_cache=corpus_cache, config=cfg, post=False,
                 make_generator=lambda ctx: InvertMouthGenerator(), observer=rec, progress=False)
    c = ClipData.from_cache(next(corpus_cache.glob(f"{video.stem}-*")))
    chk = check_dub_output(video, audio, out, rec, c.crop_affine, c.fps, shorter="trim", every=3)
    assert chk.ok, chk.failures
    assert report.n_out == chk.n_frames == chk.expected_frames
    # the generated region was pasted (most frames have a face) and changed a real part of the frame
    assert report.n_dubbed >= 0.5 * report.n_out
    assert 0.005 < chk.changed_fraction < 0.6
