"""``d4e build-face-model`` and ``d4e fit`` end to end on cached corpus clips."""

from __future__ import annotations

import numpy as np

from d4e.cli import entrypoint


def _clip_copy(src, dst):
    """A private clip folder (links to the cached arrays) so the fit does not touch the shared cache."""
    dst.mkdir()
    for f in src.iterdir():
        if f.is_file() and f.name != "face_fit.npz":
            (dst / f.name).symlink_to(f)
    return dst


def test_build_and_fit_commands(corpus_cache, tmp_path, capsys):
    from d4e.data.preprocess import list_clips
    from d4e.face.fit import load_fit
    from d4e.face.model import FaceModel

    clips = list_clips(corpus_cache)
    a = _clip_copy(clips[0], tmp_path / "a")
    b = _clip_copy(clips[-1], tmp_path / "b")
    out = tmp_path / "m.d4e"
    rc = entrypoint(["build-face-model", str(a), str(b), "--out", str(out), "--no-progress",
                     "--n-expression", "12", "--n-mouth", "6"])
    assert rc == 0
    model = FaceModel.load(out)
    assert model.n_identity == 1 and model.n_expression == 12 and model.n_mouth == 6
    assert model.meta["n_actors"] == 2
    assert len(model.meta["clips"]) == 2

    rc = entrypoint(["fit", str(a), "--model", str(out), "--no-progress"])
    assert rc == 0
    fit = load_fit(a, model)
    assert fit.n_frames == len(np.load(a / "landmarks.npy"))
    assert not (clips[0] / "face_fit.npz").is_symlink()


def test_command_errors_are_one_line(tmp_path, capsys):
    out = tmp_path / "m.d4e"
    rc = entrypoint(["build-face-model", str(tmp_path / "missing"), "--out", str(out), "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and err[0].startswith("d4e: error:")
    assert not out.exists()
    rc = entrypoint(["fit", str(tmp_path), "--model", str(tmp_path / "nope.d4e"), "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "nope.d4e" in err[0]
    (tmp_path / "bad.yaml").write_text("model:\n  n_mouth: 99\n")
    rc = entrypoint(["build-face-model", str(tmp_path), "--out", str(out), "--config", str(tmp_path / "bad.yaml")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and "n_mouth" in err[0]
    assert not out.exists()
