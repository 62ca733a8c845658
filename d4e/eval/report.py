"""Self-contained HTML report of an evaluation (images embedded as base64 PNG; no external files).

The report opens with a verdict line and the metric table (traffic lights against the
thresholds in ``configs/eval.yaml``), then side-by-side frames (reference | result |
amplified difference), per-frame metrics over time, and the lip-sync offset curves.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
import os
from pathlib import Path

import numpy as np

from d4e.core.atomic import atomic_dir

__all__ = ["render_html", "plot_per_frame", "write_report", "grade"]

_ROWS = [
    # key, label, format, direction (+1 higher better, -1 lower better), threshold key
    ("psnr", "PSNR (dB)", "{:.2f}", +1, "psnr"),
    ("ssim", "SSIM", "{:.4f}", +1, "ssim"),
    ("lpips", "LPIPS", "{:.4f}", -1, "lpips"),
    ("fid", "FID (per video, over frames)", "{:.2f}", -1, None),
    ("lmd", "Mouth landmark distance (x inter-ocular)", "{:.4f}", -1, "lmd"),
    ("seam", "Seam score (output / input)", "{:.3f}", -1, "seam"),
    ("sync_offset_frames", "Lip-sync offset (frames, audio lag)", "{:+d}", 0, "sync_offset"),
    ("sync_lse_d", "Lip-sync distance (own model, LSE-D style)", "{:.3f}", -1, None),
    ("sync_lse_c", "Lip-sync confidence (own model, LSE-C style)", "{:.3f}", +1, "sync_conf_ratio"),
    ("reference_sync_offset_frames", "Reference: lip-sync offset", "{:+d}", 0, None),
    ("reference_sync_lse_d", "Reference: lip-sync distance", "{:.3f}", -1, None),
    ("reference_sync_lse_c", "Reference: lip-sync confidence", "{:.3f}", +1, None),
]


def _reason_key(key: str) -> str:
    if key.startswith("reference_sync"):
        return "reference_sync"
    if key.startswith("sync"):
        return "sync"
    return key


def grade(key: str, value, metrics: dict, good) -> str:
    """``"good"``, ``"bad"`` or ``""`` (no threshold) for one metric value."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return ""
    g = good if isinstance(good, dict) else good.__dict__
    if key == "psnr":
        return "good" if value >= g["psnr"] else "bad"
    if key == "ssim":
        return "good" if value >= g["ssim"] else "bad"
    if key == "lpips":
        return "good" if value <= g["lpips"] else "bad"
    if key == "lmd":
        return "good" if value <= g["lmd"] else "bad"
    if key == "seam":
        return "good" if value <= g["seam"] else "bad"
    if key == "sync_offset_frames":
        return "good" if abs(value) <= g["sync_offset"] else "bad"
    if key == "sync_lse_c":
        ref = metrics.get("reference_sync_lse_c")
        if ref is None or not ref > 0:
            return ""
        return "good" if value >= g["sync_conf_ratio"] * ref else "bad"
    return ""


def _png(fig_or_array) -> str:
    buf = io.BytesIO()
    if isinstance(fig_or_array, np.ndarray):
        import cv2

        ok, enc = cv2.imencode(".png", cv2.cvtColor(fig_or_array, cv2.COLOR_RGB2BGR))
        buf.write(enc.tobytes())
    else:
        fig_or_array.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def plot_per_frame(per_frame: dict, fps: float, sync_curves: dict | None = None):
    """Matplotlib figure: one panel per available per-frame metric over time, plus the sync-offset curves."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = {
        "psnr": "PSNR (dB)",
        "ssim": "SSIM",
        "lpips": "LPIPS",
        "lmd": "LMD (x IOD)",
        "seam": "seam (out/in)",
        "sync_dist": "sync distance @0",
    }
    keys = [k for k in labels if k in per_frame and np.isfinite(np.asarray(per_frame[k], np.float64)).any()]
    extra = 1 if sync_curves and "offsets" in sync_curves else 0
    rows = max(1, len(keys) + extra)
    fig, axes = plt.subplots(rows, 1, figsize=(9, 1.9 * rows), squeeze=False)
    for ax, k in zip(axes[:, 0], keys):
        y = np.asarray(per_frame[k], np.float64)
        t = np.arange(len(y)) / fps
        ax.plot(t, y, lw=1.2)
        ax.set_ylabel(labels[k], fontsize=8)
        ax.grid(alpha=0.3)
        ax.tick_params(labelsize=7)
    if keys:
        axes[len(keys) - 1, 0].set_xlabel("time (s)", fontsize=8)
    if extra:
        ax = axes[-1, 0]
        off = np.asarray(sync_curves["offsets"])
        for name in ("result", "reference"):
            if name in sync_curves:
                ax.plot(off, sync_curves[name], marker=".", label=name)
        ax.axvline(0, color="k", lw=0.6)
        ax.set_xlabel("audio offset (frames; > 0: audio lags)", fontsize=8)
        ax.set_ylabel("mean sync dist", fontsize=8)
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
        ax.tick_params(labelsize=7)
    fig.tight_layout()
    return fig


def _side_by_side(ref: np.ndarray, res: np.ndarray) -> np.ndarray:
    w = min(ref.shape[1], res.shape[1])
    ref, res = ref[:, :w], res[:, :w]
    diff = np.clip(np.abs(ref.astype(np.int16) - res.astype(np.int16)).max(-1) * 4, 0, 255).astype(np.uint8)
    import cv2

    heat = cv2.cvtColor(cv2.applyColorMap(diff, cv2.COLORMAP_INFERNO), cv2.COLOR_BGR2RGB)
    sep = np.full((ref.shape[0], 4, 3), 255, np.uint8)
    return np.concatenate([ref, sep, res, sep, heat], 1)


def render_html(data: dict, frames: list, plot_png: str, good) -> str:
    """The report page as one HTML string (see the module docs)."""
    m = data["metrics"]
    esc = html.escape
    rows = []
    for key, label, fmt, _, _ in _ROWS:
        if key not in m:
            continue
        v = m[key]
        g = grade(key, v, m, good)
        if v is None:
            reason = data["unavailable"].get(_reason_key(key), "")
            cell = f'<td class="na">n/a</td><td class="why">{esc(reason)}</td>'
        else:
            try:
                txt = fmt.format(int(v) if "d}" in fmt else v)
            except (ValueError, TypeError):
                txt = str(v)
            cell = f'<td class="{g}">{esc(txt)}</td><td></td>'
        rows.append(f"<tr><th>{esc(label)}</th>{cell}</tr>")
    graded = [grade(k, m.get(k), m, good) for k, *_ in _ROWS if k in m]
    n_bad, n_good = graded.count("bad"), graded.count("good")
    verdict = (
        f'<p class="verdict {"good" if n_bad == 0 and n_good else "bad"}">'
        f"{n_good} metric(s) within target, {n_bad} outside"
        + (f" (outside: {', '.join(esc(lbl) for (k, lbl, *_), gr in zip([r for r in _ROWS if r[0] in m], graded) if gr == 'bad')})" if n_bad else "")
        + "</p>"
    )
    imgs = "\n".join(
        f'<figure><img src="{_png(_side_by_side(a, b))}" alt="frame {i}"><figcaption>frame {i} '
        f"(t = {i / data['fps']:.2f} s): reference | result | |difference| x4</figcaption></figure>"
        for i, a, b in frames
    )
    notes = "".join(f"<li>{esc(n)}</li>" for n in data.get("notes", []))
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>D4E evaluation: {esc(Path(data['result']).name)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; color: #222; max-width: 1200px; }}
table {{ border-collapse: collapse; margin: 1em 0; }}
th, td {{ border-bottom: 1px solid #ddd; padding: 4px 10px; text-align: left; font-size: 14px; }}
td.good {{ background: #d8f5d0; }} td.bad {{ background: #f8d0d0; }} td.na {{ color: #888; }}
td.why {{ color: #888; font-size: 12px; max-width: 560px; }}
.verdict {{ font-size: 18px; padding: 6px 10px; display: inline-block; }}
.verdict.good {{ background: #d8f5d0; }} .verdict.bad {{ background: #f8d0d0; }}
figure {{ margin: 0.5em 0; }} figcaption {{ font-size: 12px; color: #555; }}
img {{ max-width: 100%; }}
</style></head><body>
<h1>D4E evaluation</h1>
<p><b>result</b> {esc(data['result'])}<br><b>reference</b> {esc(data['reference'])}<br>
<b>audio</b> {esc(str(data.get('audio') or "the result's own track"))}<br>
{data['frames']} frames at {data['fps']:.3f} fps, {data['size'][0]}x{data['size'][1]}</p>
{verdict}
<h2>Metrics</h2>
<table>{''.join(rows)}</table>
<ul class="notes">{notes}</ul>
<h2>Side by side</h2>
{imgs}
<h2>Per-frame metrics over time</h2>
<img src="{plot_png}" alt="per-frame metrics">
<details><summary>raw JSON</summary><pre>{esc(json.dumps({k: v for k, v in data.items() if k != 'per_frame'}, indent=1))}</pre></details>
</body></html>
"""


def write_report(result, out_dir: str | os.PathLike, good) -> Path:
    """Write ``OUT_DIR/metrics.json``, ``OUT_DIR/report.html`` and ``OUT_DIR/per_frame.png`` atomically.

    Args:
        result: an :class:`d4e.eval.evaluate.EvalResult`.
        out_dir: the report folder (replaced only once complete).
        good: :class:`d4e.eval.evaluate.GoodThresholds`.

    Returns:
        The report folder.
    """
    import matplotlib.pyplot as plt

    data = result.to_json()
    fig = plot_per_frame(result.per_frame, data["fps"], result.sync_curves)
    plot_png = _png(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    page = render_html(data, result.frames, plot_png, good)
    out_dir = Path(out_dir)
    with atomic_dir(out_dir) as tmp:
        (tmp / "metrics.json").write_text(json.dumps(data, indent=1, allow_nan=False))
        (tmp / "report.html").write_text(page, encoding="utf-8")
        (tmp / "per_frame.png").write_bytes(buf.getvalue())
    return out_dir
