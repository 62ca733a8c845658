#!/usr/bin/env python
"""Does a pretrained speech embedding know more about the mouth than log-mel? A linear probe.

Model weights cannot be downloaded from hubs here, but one small pretrained speech model
ships inside a PyPI wheel: Google's ``speech_embedding`` (96 values per 760 ms of audio,
trained on a large speech corpus for keyword spotting), as ONNX files in the
``openwakeword==0.4.0`` wheel (``openwakeword/resources/models/melspectrogram.onnx`` and
``embedding_model.onnx``). Licence, to settle before shipping anything built on it: the
openWakeWord README says Google provides that model under Apache-2.0 (TF Hub), and also
that all pre-trained models included in openWakeWord are CC BY-NC-SA 4.0 (D4E's reading: NOTICE).
This probe measured whether the embedding was worth building into the audio model; it now
is (``net.features: mel+embedding``, d4e/audio/embedding.py, a PyTorch port that needs no
ONNX runtime). The probe still runs the ONNX graphs, as a cross-check.

For every clip of a preprocessing cache (the audio model's splits: training frames, the
validation slice, the held-out 20%), each video frame gets

* ``mel``: 20 log-mel bands at 7 time offsets (-200 .. +200 ms) around the frame;
* ``emb``: the speech embedding of the 760 ms centred on the frame, at 5 offsets (+-80 ms);
* ``both``: the two side by side;

and a ridge regression from features to the tracked mouth opening is fitted on the
training frames (audio offsets corrected, as ``d4e train-audio`` trains), its strength
chosen on the validation slice. Scores: frame-weighted per-clip correlation on the
validation slice and the held-out frames, with the trained (offset-corrected) audio and
with the files' own audio (what ``tools/bench_audio.py`` calls ``corr``).

``--phones`` adds ``phones``: the phone recognised at each 10 ms by PocketSphinx's all-phone
decoder (``pocketsphinx`` wheel, BSD licence, en-us acoustic model inside; one-hot at 7 time
offsets, -100 .. +100 ms), a licence-clean alternative.

With ``--net MODEL`` (an audio model trained with a validation slice, e.g. by
``tools/sweep_audio.py``), the ``emb`` probe (and ``phones`` with ``--phones``) is also fused
with that network's predicted opening: ``z(net) + beta * z(probe)`` per clip, ``beta``
chosen on the validation slice.

    pip install onnxruntime openwakeword==0.4.0 --no-deps   # only for this probe
    python tools/probe_speech_embedding.py --data .test-cache/corpus [--net v1.d4e]

Ends with one JSON line.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

ALPHAS = (1e-3, 1e-2, 1e-1, 1.0, 10.0)
BETAS = (0.0, 0.25, 0.5, 0.75, 1.0, 1.5)
MEL_TAPS = (-20, -10, -5, 0, 5, 10, 20)  # 10 ms mel rows
EMB_TAPS = (-2, -1, 0, 1, 2)  # video frames


def _sessions(onnx_dir: str | None):
    try:
        import onnxruntime as ort
    except ImportError:
        raise SystemExit("probe_speech_embedding: needs onnxruntime (pip install onnxruntime)") from None
    if onnx_dir is None:
        try:
            import importlib.util

            spec = importlib.util.find_spec("openwakeword")
        except (ImportError, ValueError):
            spec = None
        if spec is None or spec.origin is None:
            raise SystemExit("probe_speech_embedding: pass --onnx-dir, or pip install openwakeword==0.4.0 --no-deps "
                             "(its wheel holds the model files)")
        onnx_dir = str(Path(spec.origin).parent / "resources" / "models")
    files = [Path(onnx_dir) / n for n in ("melspectrogram.onnx", "embedding_model.onnx")]
    for f in files:
        if not f.is_file():
            raise SystemExit(f"probe_speech_embedding: {f} not found")
    so = ort.SessionOptions()
    so.intra_op_num_threads = 2
    return [ort.InferenceSession(str(f), so, providers=["CPUExecutionProvider"]) for f in files]


def speech_embedding(audio: np.ndarray, fps: float, n: int, sessions) -> np.ndarray:
    """``(n, 96)``: the embedding of the 76 mel frames (760 ms) centred on each video frame."""
    mel_s, emb_s = sessions
    x = (np.clip(audio, -1, 1) * 32767).astype(np.float32)[None]  # the models take int16-scaled samples
    m = mel_s.run(None, {"input": x})[0].squeeze() / 10 + 2  # (T, 32) at 100 Hz, openwakeword's scaling
    pad = np.full((38, m.shape[1]), m.min(), np.float32)
    mp = np.concatenate([pad, m, pad])
    centres = np.clip(np.round(np.arange(n) / fps * 100).astype(int), 0, len(m) - 1)
    wins = np.stack([mp[c : c + 76] for c in centres])[..., None].astype(np.float32)
    return np.concatenate([emb_s.run(None, {"input_1": wins[i : i + 512]})[0].reshape(-1, 96)
                           for i in range(0, len(wins), 512)])


PHONE_TAPS = (-10, -5, -2, 0, 2, 5, 10)  # 10 ms rows


class Phones:
    """PocketSphinx all-phone decoding -> one phone label per 10 ms."""

    def __init__(self):
        import os

        try:
            from pocketsphinx import Decoder, get_model_path
        except ImportError:
            raise SystemExit("probe_speech_embedding: --phones needs pocketsphinx (pip install pocketsphinx)") from None
        mp = get_model_path()
        self.dec = Decoder(hmm=os.path.join(mp, "en-us", "en-us"), allphone=os.path.join(mp, "en-us", "en-us-phone.lm.bin"),
                           lw=2.0, beam=1e-20, pbeam=1e-20, samprate=16000, logfn=os.devnull)

    def labels(self, audio: np.ndarray) -> np.ndarray:
        d = self.dec
        d.start_utt()
        d.process_raw((np.clip(audio, -1, 1) * 32767).astype(np.int16).tobytes(), full_utt=True)
        d.end_utt()
        lab = np.full(len(audio) // 160 + 1, "SIL", object)
        for s in d.seg():
            lab[s.start_frame : s.end_frame + 1] = s.word.split("(")[0].strip("+")
        return lab


def _taps(x: np.ndarray, centres: np.ndarray, taps) -> np.ndarray:
    return np.concatenate([x[np.clip(centres + k, 0, len(x) - 1)] for k in taps], 1)


def features(audio: np.ndarray, fps: float, n: int, sessions) -> dict[str, np.ndarray]:
    from d4e.io.audio import log_mel

    m = log_mel(audio)
    m = m[:, : (m.shape[1] // 4) * 4].reshape(len(m), -1, 4).mean(-1)  # 20 bands
    mel = _taps(m, np.round(np.arange(n) / fps * 100).astype(int), MEL_TAPS)
    emb = _taps(speech_embedding(audio, fps, n, sessions), np.arange(n), EMB_TAPS)
    return {"mel": mel, "emb": emb, "both": np.concatenate([mel, emb], 1)}


def main() -> int:
    from d4e.audio.config import load_audio_config
    from d4e.audio.model import AudioModel
    from d4e.audio.targets import opening_of_points
    from d4e.audio.train import prepare_corpus
    from d4e.core.lag import pearson

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(REPO / ".test-cache" / "corpus"), help="preprocessing cache")
    ap.add_argument("--onnx-dir", default=None, help="folder with melspectrogram.onnx and embedding_model.onnx "
                                                     "(default: the installed openwakeword package's)")
    ap.add_argument("--net", default=None, help="audio model trained with a validation slice, to fuse with")
    ap.add_argument("--val-fraction", type=float, default=0.1)
    ap.add_argument("--phones", action="store_true", help="also probe PocketSphinx phone labels (needs pocketsphinx)")
    args = ap.parse_args()
    sessions = _sessions(args.onnx_dir)
    phones = Phones() if args.phones else None
    space_model = AudioModel.load(args.net) if args.net else AudioModel.load()
    cfg = load_audio_config(None, {"train": {"val_fraction": args.val_fraction}})
    _, prep, _ = prepare_corpus([args.data], cfg, space=space_model.space)
    feats: dict[str, dict[str, dict[str, np.ndarray]]] = {}
    for p in prep:
        c = p.clip
        feats[c.clip_id] = {al: features(a, c.fps, c.n_frames, sessions)
                            for al, a in (("trained", c.audio), ("file", c.file_audio))}
        if args.net:
            for al, a in (("trained", c.audio), ("file", c.file_audio)):
                g = space_model.predict(a, c.fps, c.n_frames)
                feats[c.clip_id][al]["net"] = opening_of_points(space_model.mouth_points(g, p.tg.actor_mean))
        if phones is not None:
            for al, a in (("trained", c.audio), ("file", c.file_audio)):
                feats[c.clip_id][al]["phones"] = phones.labels(a)  # labels now, one-hot once the set is known
        print(f"{c.clip_id}: {c.n_frames} frames", file=sys.stderr, flush=True)
    kinds = ["mel", "emb", "both"]
    if phones is not None:
        vocab = sorted({x for d in feats.values() for al in d.values() for x in set(al["phones"])})
        index = {v: i for i, v in enumerate(vocab)}
        for p in prep:
            c = p.clip
            for al in ("trained", "file"):
                lab = feats[c.clip_id][al]["phones"]
                oh = np.zeros((len(lab), len(vocab)), np.float32)
                oh[np.arange(len(lab)), [index[x] for x in lab]] = 1.0
                feats[c.clip_id][al]["phones"] = _taps(oh, np.round(np.arange(c.n_frames) / c.fps * 100).astype(int),
                                                       PHONE_TAPS)
        kinds.append("phones")

    def fit(kind: str, alpha: float):
        X, y = [], []
        for p in prep:
            if p.clip.train:
                sel = p.clip.frames("train")
                X.append(feats[p.clip.clip_id]["trained"][kind][sel])
                y.append(p.tg.opening[sel] - p.tg.opening[sel].mean())
        X, y = np.concatenate(X), np.concatenate(y)
        mu, sd = X.mean(0), X.std(0) + 1e-6
        Z = (X - mu) / sd
        w = np.linalg.solve(Z.T @ Z + alpha * len(Z) * np.eye(Z.shape[1]), Z.T @ y)
        return lambda f: ((f - mu) / sd) @ w

    def score(predict, part: str, al: str) -> float:
        cs, ws = [], []
        for p in prep:
            sel = p.clip.frames(part)
            if sel.sum() >= 3:
                cs.append(pearson(predict(p, al)[sel], p.tg.opening[sel]))
                ws.append(sel.sum())
        return float(np.dot(cs, ws) / np.sum(ws))

    out: dict[str, float] = {}
    probes = {}
    print(f"{'features':12s} {'alpha':>4s} | {'val':>6s} {'file':>6s} | {'heldout':>7s} {'file':>6s}")
    for kind in kinds:
        fits = {a: fit(kind, a) for a in ALPHAS}
        val = {a: score(lambda p, al, f=fits[a]: f(feats[p.clip.clip_id][al][kind]), "val", "trained") for a in ALPHAS}
        a = max(val, key=val.get)
        probes[kind] = fits[a]
        pr = lambda p, al, f=fits[a], k=kind: f(feats[p.clip.clip_id][al][k])  # noqa: E731
        r = {f"{part}{'_file' if al == 'file' else ''}": score(pr, part, al)
             for part in ("val", "heldout") for al in ("trained", "file")}
        print(f"{kind:12s} {a:4g} | {r['val']:6.3f} {r['val_file']:6.3f} | {r['heldout']:7.3f} {r['heldout_file']:6.3f}")
        out.update({f"{kind}_{k}": round(v, 4) for k, v in r.items()})
    if args.net:
        def zs(x, sel):
            return (x - x[sel].mean()) / (x[sel].std() + 1e-9)

        def fused(beta, kind="emb"):
            def pr(p, al):
                f = feats[p.clip.clip_id][al]
                sel = p.clip.frames("val") | p.clip.frames("heldout")
                return zs(f["net"], sel) + beta * zs(probes[kind](f[kind]), sel)
            return pr

        rows = [("net", "emb", 0.0)]
        for kind, name in (("emb", "fused"), ("phones", "fused_phones")):
            if kind in probes:
                val = {b: score(fused(b, kind), "val", "trained") for b in BETAS}
                rows.append((name, kind, max(val, key=val.get)))
        for name, kind, beta in rows:
            r = {f"{part}{'_file' if al == 'file' else ''}": score(fused(beta, kind), part, al)
                 for part in ("val", "heldout") for al in ("trained", "file")}
            print(f"{name:12s} {beta:4g} | {r['val']:6.3f} {r['val_file']:6.3f} | {r['heldout']:7.3f} "
                  f"{r['heldout_file']:6.3f}")
            out.update({f"{name}_{k}": round(v, 4) for k, v in r.items()})
            if name != "net":
                out[f"{name}_beta"] = beta
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
