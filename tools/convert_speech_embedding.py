#!/usr/bin/env python
"""Convert Google's speech_embedding (ONNX, in the openwakeword==0.4.0 wheel) into a D4E checkpoint.

D4E's audio model can read a pretrained speech embedding beside its log-mel
(``net.features: mel+embedding`` in configs/audio.yaml; d4e/audio/embedding.py). Its
weights are not downloaded at run time: they are converted once, by this script,
from the ONNX files inside the ``openwakeword==0.4.0`` wheel on PyPI, into
``assets/speech_embedding.d4e`` (safetensors + JSON header: source files and their
SHA-256, licence notes, the front end's floor, and the conversion check). Training an
audio model copies them into the model file, so nothing here is needed to use one.

    pip install --target /tmp/owd onnx==1.16.2 onnxruntime openwakeword==0.4.0 --no-deps
    PYTHONPATH=/tmp/owd python tools/convert_speech_embedding.py [--onnx-dir DIR] [--out assets/speech_embedding.d4e]

(onnx 1.16 works with the protobuf 4 that MediaPipe needs.) With onnxruntime present
the PyTorch port is checked against the ONNX graphs on real speech from ../shared/data
(front end where above its floor, and the embedding of identical inputs) and the
largest differences are recorded in the header. Ends with one JSON line.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

LICENCE = ("Weights of Google's speech_embedding (https://tfhub.dev/google/speech_embedding/1, Apache-2.0; "
           "Lin et al. 2020, arXiv 2002.01322) as re-implemented in ONNX by openWakeWord 0.4.0 (code Apache-2.0). "
           "openWakeWord's README states that this backbone 'is provided by Google as a TFHub module under an "
           "Apache-2.0 license'; its separate statement that 'all of the included pre-trained models' are CC "
           "BY-NC-SA 4.0 gives as its reason the training data of openWakeWord's own wake-word models, which are "
           "not used here. D4E reads these weights as Apache-2.0 (attribution: Google LLC); a user who needs "
           "certainty trains an audio model with net.features: mel, which uses none of them.")


def _onnx_dir(arg: str | None) -> Path:
    if arg:
        return Path(arg)
    import importlib.util

    spec = importlib.util.find_spec("openwakeword")
    if spec is None or spec.origin is None:
        raise SystemExit("convert_speech_embedding: pass --onnx-dir, or install openwakeword==0.4.0 --no-deps "
                         "(its wheel holds the model files)")
    return Path(spec.origin).parent / "resources" / "models"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--onnx-dir", help="folder with embedding_model.onnx and melspectrogram.onnx")
    ap.add_argument("--out", default=str(REPO / "assets" / "speech_embedding.d4e"))
    ap.add_argument("--floor-db", type=float, default=20.0,
                    help="fixed floor of the front end (dB of int16-scaled power; the ONNX graph clips at its "
                         "input's maximum - 80 dB instead; the "
                         "shared clips peak at 92 .. 111 dB)")
    ap.add_argument("--check-audio", default=str(REPO.parent / "shared" / "data" / "speech_musetalk_eng.wav"))
    a = ap.parse_args(argv)
    try:
        import onnx
        from onnx import numpy_helper
    except ImportError:
        raise SystemExit("convert_speech_embedding: needs the onnx package (pip install onnx==1.16.2)") from None
    import torch

    from d4e.audio.embedding import KIND, SpeechEmbedding, load_speech_embedding
    from d4e.core.checkpoint import file_sha256, save_checkpoint

    d = _onnx_dir(a.onnx_dir)
    f_emb, f_mel = d / "embedding_model.onnx", d / "melspectrogram.onnx"
    for f in (f_emb, f_mel):
        if not f.is_file():
            raise SystemExit(f"convert_speech_embedding: {f} not found")
    mod = SpeechEmbedding(a.floor_db)
    # --- the convolution stack, in graph order
    g = onnx.load(str(f_emb)).graph
    init = {i.name: numpy_helper.to_array(i) for i in g.initializer}
    convs = [n for n in g.node if n.op_type == "Conv"]
    bns = [n for n in g.node if n.op_type == "BatchNormalization"]
    if len(convs) != len(mod.convs) or len(bns) != 1:
        raise SystemExit(f"convert_speech_embedding: unexpected graph ({len(convs)} convolutions, {len(bns)} batch norms)")
    sd = {}
    for i, n in enumerate(convs):
        w = init[n.input[1]]
        if tuple(w.shape) != tuple(mod.convs[i].weight.shape):
            raise SystemExit(f"convert_speech_embedding: conv {i} has shape {w.shape}, expected "
                             f"{tuple(mod.convs[i].weight.shape)}")
        sd[f"convs.{i}.weight"] = torch.from_numpy(w.copy())
        if mod.convs[i].bias is not None:
            sd[f"convs.{i}.bias"] = torch.from_numpy(init[n.input[2]].copy())
    scale, bias, mean, var = (init[x] for x in bns[0].input[1:5])
    sd.update({"bn0.weight": torch.from_numpy(scale.copy()), "bn0.bias": torch.from_numpy(bias.copy()),
               "bn0.running_mean": torch.from_numpy(mean.copy()), "bn0.running_var": torch.from_numpy(var.copy()),
               "bn0.num_batches_tracked": torch.tensor(0)})
    # --- the front end: mel weights, and our STFT basis checked against the graph's
    gm = onnx.load(str(f_mel)).graph
    minit = {i.name: numpy_helper.to_array(i) for i in gm.initializer}
    sd["mel_w"] = torch.from_numpy(minit["1.melW"].copy())
    dft_err = max(float(np.abs(minit["0.stft.conv_real.weight"][:, 0] - mod.dft_re.numpy()).max()),
                  float(np.abs(minit["0.stft.conv_imag.weight"][:, 0] - mod.dft_im.numpy()).max()))
    if dft_err > 1e-4:
        raise SystemExit(f"convert_speech_embedding: the STFT basis differs from the graph's by {dft_err:g}")
    mod.load_state_dict(sd)
    check = {"dft_max_abs_diff": dft_err}
    reference = {}
    try:
        import onnxruntime as ort
    except ImportError:
        ort = None
    if ort is not None and Path(a.check_audio).is_file():
        from d4e.io.audio import load_audio

        audio = load_audio(a.check_audio)[:16000 * 8]
        so = ort.SessionOptions()
        so.intra_op_num_threads = 2
        s_mel = ort.InferenceSession(str(f_mel), so, providers=["CPUExecutionProvider"])
        s_emb = ort.InferenceSession(str(f_emb), so, providers=["CPUExecutionProvider"])
        ref = s_mel.run(None, {"input": (audio * 32767).astype(np.float32)[None]})[0].squeeze() / 10 + 2
        # ONNX frame k covers samples [160 k, 160 k + 512); ours is centred on 160 k: compare on audio[256:]
        # (its first 2 frames lack the samples before 256)
        with torch.no_grad():
            ours = mod.melspec(torch.from_numpy(audio[256:].copy())[None])[0].numpy()
        ref, ours = ref[2:], ours[2:]
        n = min(len(ref), len(ours))
        # above both floors: ours (fixed) and the graph's (its input's maximum - 80 dB)
        live = ref[:n] > max(mod.silence_value, float(ref.max()) - 8.0) + 0.1
        check["melspec_max_abs_diff"] = float(np.abs(ref[:n][live] - ours[:n][live]).max())
        check["melspec_rows_compared"] = int(n)
        win = np.stack([ref[i : i + 76] for i in range(0, len(ref) - 76, 8)]).astype(np.float32)
        e_ref = s_emb.run(None, {"input_1": win[..., None]})[0].reshape(len(win), -1)
        with torch.no_grad():
            e_ours = mod.embed(torch.from_numpy(ref.astype(np.float32))[None])[0].numpy()[: len(win)]
        check["embedding_max_abs_diff"] = float(np.abs(e_ref - e_ours).max())
        check["embedding_scale"] = float(np.abs(e_ref).max())
        check["audio"] = Path(a.check_audio).name
        # references for tests/audio/test_embedding.py (no ONNX runtime there): the graph's front end on frames
        # 2 .. 201 of that audio (ONNX frame k = our frame k of audio[256:]), and its embeddings of the first
        # 16 windows of those frames
        n_ref = 200
        reference = {"reference.onnx_melspec": torch.from_numpy(ref[:n_ref].astype(np.float32).copy()),
                     "reference.onnx_embedding": torch.from_numpy(e_ref[: (n_ref - 76) // 8 + 1].copy())}
        check["reference"] = {"audio": Path(a.check_audio).name, "samples": int(len(audio)), "first_frame": 2,
                              "compare_above": float(max(mod.silence_value, float(ref.max()) - 8.0) + 0.1)}
    meta = {"source": {"package": "openwakeword==0.4.0",
                       "files": {f.name: file_sha256(f) for f in (f_emb, f_mel)}},
            "licence": LICENCE, "floor_db": a.floor_db, "conversion_check": check}
    save_checkpoint(a.out, {**mod.state_dict(), **reference}, KIND, meta)
    load_speech_embedding(a.out)  # reads back
    print(json.dumps({"out": a.out, **check}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
