"""Segment manifests: which time ranges of a video to re-render, and for which speaker.

Two shapes are accepted (documented by ``configs/segments.schema.json``):

* the D4E shape::

      {"format": "d4e-segments", "version": 1,
       "speakers": {"alice": {"actor": "actors/alice.d4e", "face_index": 0}},
       "segments": [{"id": "l1", "start": 1.0, "end": 3.5, "speaker": "alice", "text": "..."}]}

  ``start``/``end`` are seconds on the video's timeline (numbers or ``"HH:MM:SS.mmm"``);
  optional ``orig_start``/``orig_end`` give the original line's timing when it differs;
* Anim-400K-shaped segment metadata: a list (or ``{"segments": [...]}``) of aligned lines, each
  with per-language start/end times and a speaker id, either flat (``"ja_start"``,
  ``"ja_end"``, ``"en_start"``, ``"en_end"``, ``"speaker_id"``, ``"en_text"``) or nested
  (``{"ja": {"start", "end", "text"}, "en": {...}, "speaker": ...}``). The dubbed language is
  ``target_language`` (default ``en``); the other language is the original.

A segment's re-rendered range is the union of its original and dubbed time ranges: the
original mouth moves during the first, the new speech plays during the second.
Paths in a manifest are relative to the manifest's folder.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from d4e.errors import InputError

FORMAT = "d4e-segments"
VERSION = 1
_LANG_KEY = re.compile(r"^([a-z]{2,3})_(start|end)$")
_SPEAKER_KEYS = ("speaker", "speaker_id", "character", "spk")


@dataclass(frozen=True)
class Segment:
    """One line to re-render.

    Attributes:
        index: position in the manifest (0-based), after sorting by time.
        id: the manifest's id for the line (default ``"seg<index>"``).
        start, end: seconds of the dubbed line on the video timeline (``end > start``).
        speaker: speaker id (maps to an actor via ``--actor SPEAKER=FILE`` or the manifest).
        orig_start, orig_end: the original line's timing (default: ``start``/``end``).
        text: transcript of the dubbed line (informational).
        face_index: face track of this segment, overriding the speaker's (None: inherit).
    """

    index: int
    id: str
    start: float
    end: float
    speaker: str
    orig_start: float
    orig_end: float
    text: str = ""
    face_index: int | None = None

    @property
    def span(self) -> tuple[float, float]:
        """``(t0, t1)`` seconds: union of the original and dubbed ranges."""
        return min(self.start, self.orig_start), max(self.end, self.orig_end)


@dataclass
class Speaker:
    """How one speaker is rendered: an actor file, a face track, a reference image (all optional)."""

    name: str
    actor: Path | None = None
    face_index: int | None = None
    reference: Path | None = None


@dataclass
class SegmentList:
    """A parsed manifest: segments sorted by time plus the speakers it names."""

    segments: list[Segment]
    speakers: dict[str, Speaker] = field(default_factory=dict)
    source: str = ""
    shape: str = FORMAT

    def speaker_names(self) -> list[str]:
        return sorted({s.speaker for s in self.segments})


def parse_time(value, where: str) -> float:
    """Seconds from a number or ``"[HH:]MM:SS[.fff]"`` (``"00:01:02.5"`` -> 62.5)."""
    if isinstance(value, bool):
        raise InputError(f"{where}: expected a time, got {value!r}")
    if isinstance(value, (int, float)):
        t = float(value)
    elif isinstance(value, str):
        parts = value.strip().replace(",", ".").split(":")
        try:
            nums = [float(p) for p in parts]
        except ValueError:
            raise InputError(f"{where}: cannot read time {value!r} (seconds or HH:MM:SS.mmm)") from None
        if not 1 <= len(nums) <= 3:
            raise InputError(f"{where}: cannot read time {value!r} (seconds or HH:MM:SS.mmm)")
        t = 0.0
        for n in nums:
            t = t * 60.0 + n
    else:
        raise InputError(f"{where}: expected a time, got {value!r}")
    if not t >= 0 or t != t or t == float("inf"):
        raise InputError(f"{where}: time must be finite and >= 0, got {value!r}")
    return t


def _speaker_of(entry: dict, where: str) -> str:
    for k in _SPEAKER_KEYS:
        if k in entry and entry[k] is not None and str(entry[k]) != "":
            return str(entry[k])
    raise InputError(f"{where}: no speaker (one of {list(_SPEAKER_KEYS)})")


def _languages(entry: dict) -> dict[str, dict]:
    """Per-language ``{"start", "end", "text"}`` of an Anim-400K-shaped entry (flat or nested)."""
    langs: dict[str, dict] = {}
    for k, v in entry.items():
        m = _LANG_KEY.match(k)
        if m:
            langs.setdefault(m.group(1), {})[m.group(2)] = v
        elif isinstance(v, dict) and re.fullmatch(r"[a-z]{2,3}", k) and ("start" in v or "end" in v):
            langs.setdefault(k, {}).update({kk: v[kk] for kk in ("start", "end", "text", "transcript") if kk in v})
    for lang, d in langs.items():
        for tk in (f"{lang}_text", f"{lang}_transcript"):
            if tk in entry and "text" not in d:
                d["text"] = entry[tk]
        if "transcript" in d and "text" not in d:
            d["text"] = d.pop("transcript")
    return langs


def _entry(i: int, entry, target_language: str, where: str) -> dict:
    if not isinstance(entry, dict):
        raise InputError(f"{where}: segment {i} is not an object")
    w = f"{where}: segment {i}"
    speaker = _speaker_of(entry, w)
    face = entry.get("face_index")
    if face is not None and (not isinstance(face, int) or isinstance(face, bool) or face < 0):
        raise InputError(f"{w}: face_index must be an integer >= 0, got {face!r}")
    if "start" in entry or "end" in entry:  # the D4E shape
        if "start" not in entry or "end" not in entry:
            raise InputError(f"{w}: needs both 'start' and 'end'")
        start, end = parse_time(entry["start"], f"{w} start"), parse_time(entry["end"], f"{w} end")
        o0 = parse_time(entry["orig_start"], f"{w} orig_start") if "orig_start" in entry else start
        o1 = parse_time(entry["orig_end"], f"{w} orig_end") if "orig_end" in entry else end
        text = str(entry.get("text", ""))
        shape = FORMAT
    else:  # Anim-400K shape
        langs = _languages(entry)
        if target_language not in langs:
            raise InputError(f"{w}: no '{target_language}_start'/'{target_language}_end' (target language "
                             f"{target_language!r}; found languages {sorted(langs)})")
        others = [lang for lang in sorted(langs) if lang != target_language]
        if len(others) > 1:
            raise InputError(f"{w}: more than two languages {sorted(langs)}; cannot tell the original")
        tgt = langs[target_language]
        org = langs[others[0]] if others else tgt
        for lang, d in ((target_language, tgt), (others[0] if others else target_language, org)):
            if "start" not in d or "end" not in d:
                raise InputError(f"{w}: language {lang!r} needs both start and end")
        start, end = parse_time(tgt["start"], f"{w} {target_language}_start"), parse_time(tgt["end"], f"{w} end")
        o0, o1 = parse_time(org["start"], f"{w} original start"), parse_time(org["end"], f"{w} original end")
        text = str(tgt.get("text", ""))
        shape = "anim400k"
    if not end > start or not o1 > o0:
        raise InputError(f"{w}: end must be after start (got {start}..{end}, original {o0}..{o1})")
    sid = str(entry.get("id", entry.get("segment_id", entry.get("clip_id", ""))))
    return dict(id=sid, start=start, end=end, speaker=speaker, orig_start=o0, orig_end=o1, text=text,
                face_index=face, shape=shape)


def _path(base: Path, value, where: str) -> Path | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise InputError(f"{where}: expected a file path, got {value!r}")
    p = Path(value).expanduser()
    return p if p.is_absolute() else base / p


def parse_segments(data, base_dir: str | os.PathLike = ".", target_language: str = "en",
                   source: str = "<manifest>") -> SegmentList:
    """Parse a manifest already loaded from JSON (either shape, see module docs).

    Raises:
        InputError: malformed manifest, unknown format/version, bad times, overlapping segments.
    """
    base = Path(base_dir)
    speakers: dict[str, Speaker] = {}
    if isinstance(data, dict):
        fmt = data.get("format")
        if fmt is not None and fmt != FORMAT:
            raise InputError(f"{source}: format {fmt!r} is not {FORMAT!r}")
        ver = data.get("version", VERSION)
        if ver != VERSION:
            raise InputError(f"{source}: manifest version {ver!r} is not supported (expected {VERSION})")
        target_language = str(data.get("target_language", target_language))
        raw_speakers = data.get("speakers") or {}
        if not isinstance(raw_speakers, dict):
            raise InputError(f"{source}: 'speakers' must map speaker ids to objects")
        for name, spec in raw_speakers.items():
            if not isinstance(spec, dict):
                raise InputError(f"{source}: speaker {name!r} must be an object")
            unknown = sorted(set(spec) - {"actor", "face_index", "reference"})
            if unknown:
                raise InputError(f"{source}: speaker {name!r}: unknown key(s) {unknown}")
            fi = spec.get("face_index")
            if fi is not None and (not isinstance(fi, int) or isinstance(fi, bool) or fi < 0):
                raise InputError(f"{source}: speaker {name!r}: face_index must be an integer >= 0")
            speakers[str(name)] = Speaker(str(name), _path(base, spec.get("actor"), f"{source}: speaker {name}"),
                                          fi, _path(base, spec.get("reference"), f"{source}: speaker {name}"))
        entries = data.get("segments", data.get("clips"))
        if entries is None:
            raise InputError(f"{source}: no 'segments' list")
    elif isinstance(data, list):
        entries = data
    else:
        raise InputError(f"{source}: expected a JSON object or list of segments")
    if not isinstance(entries, list):
        raise InputError(f"{source}: 'segments' must be a list")
    if not entries:
        raise InputError(f"{source}: the manifest lists no segments")
    parsed = [_entry(i, e, target_language, source) for i, e in enumerate(entries)]
    parsed.sort(key=lambda d: (min(d["start"], d["orig_start"]), d["end"]))
    segs = []
    for i, d in enumerate(parsed):
        shape = d.pop("shape")
        if not d["id"]:
            d["id"] = f"seg{i:04d}"
        segs.append(Segment(index=i, **d))
    ids = [s.id for s in segs]
    if len(set(ids)) != len(ids):
        dup = sorted({x for x in ids if ids.count(x) > 1})
        raise InputError(f"{source}: duplicate segment id(s) {dup}")
    for a, b in zip(segs, segs[1:]):
        if b.span[0] < a.span[1]:
            raise InputError(f"{source}: segments {a.id!r} ({a.span[0]:.3f}-{a.span[1]:.3f}s) and {b.id!r} "
                             f"({b.span[0]:.3f}-{b.span[1]:.3f}s) overlap")
    for name in {s.speaker for s in segs} - set(speakers):
        speakers[name] = Speaker(name)
    return SegmentList(segments=segs, speakers=speakers, source=source, shape=shape)


def load_segments(path: str | os.PathLike, target_language: str = "en") -> SegmentList:
    """Read a segment manifest file (JSON, either shape); see :func:`parse_segments`."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"segment manifest not found: {path}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{path}: not valid JSON ({exc})") from None
    return parse_segments(data, path.parent, target_language, source=str(path))


def parse_actor_args(values: list[str] | None) -> dict[str, Path]:
    """``["alice=actors/a.d4e", ...]`` (``--actor SPEAKER=FILE``, repeatable) -> ``{speaker: path}``."""
    out: dict[str, Path] = {}
    for v in values or []:
        if "=" not in v:
            raise InputError(f"--actor {v!r}: with --segments use SPEAKER=FILE")
        name, file = v.split("=", 1)
        if not name or not file:
            raise InputError(f"--actor {v!r}: with --segments use SPEAKER=FILE")
        if name in out:
            raise InputError(f"--actor: speaker {name!r} given twice")
        out[name] = Path(file)
    return out
