"""tools/pack_cache.py: a cache packed (crops as H.264, thinned) and unpacked on a real shared clip."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
CLIP = "vretalking_face5"


def _one_clip_cache(corpus_cache: Path, out: Path) -> Path:
    manifest = json.loads((corpus_cache / "manifest.json").read_text())
    cid = next(c for c in manifest["clips"] if c.startswith(CLIP + "-"))
    info = manifest["clips"][cid]
    out.mkdir(parents=True)
    shutil.copytree(corpus_cache / info.get("dir", cid), out / info.get("dir", cid))
    (out / "manifest.json").write_text(json.dumps({**manifest, "clips": {cid: info}}))
    return out / info.get("dir", cid)


def test_pack_thin_unpack_roundtrip(corpus_cache, shared_data, tmp_path, load_tool):
    src_clip = _one_clip_cache(corpus_cache, tmp_path / "cache")
    n = len(np.load(src_clip / "valid.npy"))
    res = subprocess.run([sys.executable, str(REPO / "tools" / "pack_cache.py"), "pack", str(tmp_path / "cache"),
                          str(tmp_path / "pack"), "--crf", "18", "--max-frames", str(n // 3 + 1),
                          "--drop", "mel.npy"], capture_output=True, text=True, check=True)
    figures = json.loads(res.stdout.strip().splitlines()[-1])
    assert figures["frames"] == n and figures["psnr_min"] > 35.0
    packed = tmp_path / "pack" / src_clip.name
    assert not (packed / "crops.npy").exists() and not (packed / "mel.npy").exists()
    raw = sum(f.stat().st_size for f in src_clip.iterdir())
    assert sum(f.stat().st_size for f in packed.iterdir()) < raw / 10  # crops 24 MB -> well under 1/10

    # thinning: every 3rd frame stays valid (where it was), the others are marked not valid
    valid0, valid1 = np.load(src_clip / "valid.npy"), np.load(packed / "valid.npy")
    keep = np.arange(n) % 3 == 0
    assert np.array_equal(valid1, valid0 & keep)

    tool = load_tool("pack_cache")
    out = tool.unpack(tmp_path / "pack", tmp_path / "unpacked", restamp=True)
    assert out["frames"] == n
    back = tmp_path / "unpacked" / src_clip.name
    crops0, crops1 = np.load(src_clip / "crops.npy"), np.load(back / "crops.npy")
    assert crops1.shape == crops0.shape and crops1.dtype == np.uint8
    kept = np.flatnonzero(keep)
    assert min(tool._psnr(crops1[i], crops0[i]) for i in kept) > 35.0
    # a thinned frame repeats the last kept one (up to the codec's rounding)
    assert tool._psnr(crops1[2], crops0[0]) > tool._psnr(crops1[2], crops0[2]) + 3.0
    assert (back / "crop_affine.npy").read_bytes() == (src_clip / "crop_affine.npy").read_bytes()

    # restamped: this machine's versions, and preprocessing takes the cache as current (no re-tracking)
    from d4e.data.preprocess import _is_current, config_digest, load_preprocess_config, versions

    meta = json.loads((back / "meta.json").read_text())
    assert meta["versions"] == versions()
    shutil.copy2(src_clip / "mel.npy", back / "mel.npy")  # dropped above; a dub needs every cache file
    digest = config_digest(load_preprocess_config(None))
    assert _is_current(tmp_path / "unpacked", src_clip.name, meta["sha256"], digest, versions(), None)


def test_pack_audio_only(corpus_cache, tmp_path, load_tool):
    """--drop crops.npy --landmarks audio: a cache for audio-model jobs, a sixth of the landmarks; unpacked, the
    audio model's targets and evaluation are the original ones, and every point it does not read is NaN."""
    from d4e.audio.data import clip_targets, load_clip
    from d4e.audio.model import AudioModel

    src_clip = _one_clip_cache(corpus_cache, tmp_path / "cache")
    tool = load_tool("pack_cache")
    tool.pack(tmp_path / "cache", tmp_path / "pack", 18, ["crops.npy", "mel.npy"], [], landmarks="audio")
    packed = tmp_path / "pack" / src_clip.name
    assert not (packed / "crops.npy").exists() and not (packed / tool.PACKED).exists()
    assert not (packed / "landmarks.npy").exists()
    assert (packed / tool.SUBSET).stat().st_size < (src_clip / "landmarks.npy").stat().st_size / 4
    tool.unpack(tmp_path / "pack", tmp_path / "unpacked", restamp=False)
    back = tmp_path / "unpacked" / src_clip.name
    lm0, lm1 = np.load(src_clip / "landmarks.npy"), np.load(back / "landmarks.npy")
    idx = tool.audio_points()
    assert lm1.shape == lm0.shape and np.array_equal(lm1[:, idx], lm0[:, idx])
    others = np.setdiff1d(np.arange(lm0.shape[1]), idx)
    assert len(idx) < 100 and np.isnan(lm1[:, others]).all()
    model = AudioModel.load()
    t0 = clip_targets(load_clip(src_clip), model.space)
    t1 = clip_targets(load_clip(back), model.space)
    for name in ("points", "coeffs", "opening", "neutral"):
        np.testing.assert_array_equal(getattr(t0, name), getattr(t1, name))
