"""Metadata: tags embedded in audio files (mutagen), and user metadata from CSV.

``read_tags(path)`` reads title, artist, album, genre, year, BPM, key and
comment from ID3 (MP3, AIFF, WAV), Vorbis comments (FLAC, Ogg Vorbis, Opus)
and MP4 atoms (M4A/AAC/ALAC). Tags are a nicety: a file whose tags cannot be
read still indexes, with none.

User metadata ("labels") are any columns a CSV brings, keyed by ``path`` or
``track_id``; ``import_labels`` merges them into the catalogue and reports the
rows that match no track, ``export_labels`` writes them back out.
"""

from __future__ import annotations

import csv
import io
import logging
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

from .errors import UserError

__all__ = ["read_tags", "import_labels", "export_labels", "LabelImport", "check_label_name", "TAG_FIELDS"]

log = logging.getLogger(__name__)

TAG_FIELDS = ("title", "artist", "album", "genre", "year", "tag_bpm", "tag_key", "comment")

# -- embedded tags ---------------------------------------------------------------

_ID3 = {"title": "TIT2", "artist": "TPE1", "album": "TALB", "tag_bpm": "TBPM", "tag_key": "TKEY"}
_VORBIS = {
    "title": ("title",), "artist": ("artist",), "album": ("album",), "genre": ("genre",),
    "year": ("date", "year", "originaldate"), "tag_bpm": ("bpm", "tempo"),
    "tag_key": ("initialkey", "key"), "comment": ("comment", "description"),
}
_MP4 = {
    "title": ("\xa9nam",), "artist": ("\xa9ART", "aART"), "album": ("\xa9alb",), "genre": ("\xa9gen", "gnre"),
    "year": ("\xa9day",), "tag_bpm": ("tmpo", "----:com.apple.iTunes:BPM"),
    "tag_key": ("----:com.apple.iTunes:initialkey", "----:com.apple.iTunes:KEY"), "comment": ("\xa9cmt",),
}


def _text(value) -> str | None:
    if value is None:
        return None
    if isinstance(value, (list, tuple)):
        value = next((v for v in value if v not in (None, "")), None)
        if value is None:
            return None
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    text = str(value).strip().strip("\x00")
    return text or None


def _year(text: str | None) -> int | None:
    m = re.search(r"\b(\d{4})\b", text or "")
    return int(m.group(1)) if m else None


def _number(text: str | None) -> float | None:
    try:
        return float(str(text).replace(",", ".")) if text is not None else None
    except ValueError:
        return None


def _from_id3(tags) -> dict:
    out = {}
    for name, frame_id in _ID3.items():
        frame = tags.get(frame_id)
        if frame is not None:
            out[name] = _text(frame.text)
    tcon = tags.get("TCON")
    if tcon is not None:
        out["genre"] = _text(tcon.genres)  # resolves ID3v1 numeric genres like "(13)"
    for frame_id in ("TDRC", "TYER", "TDOR"):
        frame = tags.get(frame_id)
        if frame is not None and (y := _year(_text([str(t) for t in frame.text]))):
            out["year"] = y
            break
    comments = [f for f in tags.getall("COMM") if _text(f.text)]
    if comments:  # prefer a comment without a special description (iTunes keeps data in others)
        comments.sort(key=lambda f: bool(f.desc))
        out["comment"] = _text(comments[0].text)
    # user-defined text frames: what FFmpeg and some taggers write for keys ID3 has no frame for
    txxx = {"comment": ("comment", "description"), "tag_key": ("initialkey", "key"), "tag_bpm": ("bpm", "tempo")}
    for name, descs in txxx.items():
        if out.get(name) is None:
            for f in tags.getall("TXXX"):
                if f.desc.lower() in descs and _text(f.text):
                    out[name] = _text(f.text)
                    break
    return out


def _from_mapping(tags, names: dict[str, tuple[str, ...]]) -> dict:
    out = {}
    for name, keys in names.items():
        for key in keys:
            try:
                value = tags.get(key)
            except (KeyError, ValueError):
                value = None
            if isinstance(value, list) and value and isinstance(value[0], tuple):  # MP4 track/disk pairs
                value = None
            text = _text(value)
            if text is not None:
                out[name] = _year(text) if name == "year" else text
                break
    return out


def read_tags(path: str | os.PathLike) -> dict:
    """The tags of an audio file as {title, artist, album, genre, year, tag_bpm, tag_key, comment}.

    Missing tags are left out; unreadable tags give {} (and a debug log line).
    """
    try:
        import mutagen
        from mutagen.id3 import ID3
        from mutagen.mp4 import MP4Tags

        mf = mutagen.File(path)
    except Exception as exc:  # a damaged tag block must never fail the file
        log.debug("%s: tags not readable: %s", path, exc)
        return {}
    if mf is None or not mf.tags:
        return {}
    tags = mf.tags
    if isinstance(tags, ID3):
        out = _from_id3(tags)
    elif isinstance(tags, MP4Tags):
        out = _from_mapping(tags, _MP4)
    elif hasattr(tags, "get") and hasattr(tags, "keys"):  # Vorbis comments (FLAC, Ogg), APEv2
        out = _from_mapping(_Caseless(tags), _VORBIS)
    else:
        return {}
    if "tag_bpm" in out:
        out["tag_bpm"] = _number(out["tag_bpm"])
    if isinstance(out.get("year"), str):
        out["year"] = _year(out["year"])
    return {k: v for k, v in out.items() if v is not None}


class _Caseless:
    """Case-insensitive ``get`` over a tag mapping (APEv2 keys keep their case)."""

    def __init__(self, tags) -> None:
        self.tags = tags
        self.lower = {str(k).lower(): k for k in tags.keys()}

    def get(self, key: str):
        real = self.lower.get(key.lower())
        if real is None:
            return None
        value = self.tags[real]
        if hasattr(value, "value") and not isinstance(value, (list, str)):  # APEv2 value objects
            return str(value)
        return value


# -- user metadata -------------------------------------------------------------------

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
KEY_COLUMNS = ("path", "track_id", "id")


def check_label_name(name: str) -> str:
    if not _NAME.match(name or "") or name.lower() in KEY_COLUMNS:
        raise UserError(
            f"metadata column {name!r}: use letters, digits and _, not starting with a digit, "
            f"and not one of {', '.join(KEY_COLUMNS)}"
        )
    return name


def _column_name(header: str) -> str:
    return re.sub(r"\W+", "_", header.strip()).strip("_").lower()


def parse_value(text: str) -> object:
    """A CSV cell as stored: an int or float when it reads as one, else the stripped text."""
    text = text.strip()
    if re.fullmatch(r"[-+]?\d+", text):
        return int(text)
    if re.fullmatch(r"[-+]?(\d+\.\d*|\.\d+|\d+)([eE][-+]?\d+)?", text):
        return float(text)
    return text


@dataclass
class LabelImport:
    """What ``import_labels`` did. ``unmatched``: (CSV line number, key) of rows matching no track."""

    rows: int = 0
    matched: int = 0
    values: int = 0
    columns: list[str] = field(default_factory=list)
    key: str = "path"
    unmatched: list[tuple[int, str]] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"rows": self.rows, "matched": self.matched, "values": self.values, "columns": self.columns,
                "key": self.key, "unmatched": [{"line": n, "key": k} for n, k in self.unmatched]}


def import_labels(lib, source: str | os.PathLike, *, key: str | None = None) -> LabelImport:
    """Merge a CSV file of user metadata into ``lib``'s catalogue.

    The header names the columns. The key column is ``path`` (absolute, or
    relative to the CSV's folder, the working directory or one of the
    library's roots) or ``track_id``
    (``id``); ``key`` picks one when both are present. Every other column
    becomes a user metadata field (its header lowercased, non-word characters
    turned into ``_``); an empty cell leaves the field as it was, and the
    value ``-`` removes it. Numbers are stored as numbers.
    """
    path = Path(source).expanduser()
    if not path.is_file():
        raise UserError(f"no such file: {path}")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: cannot read as UTF-8 text: {exc}") from exc
    try:
        dialect = csv.Sniffer().sniff(text[:4096], delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel
    reader = csv.reader(io.StringIO(text), dialect)
    header = next(reader, None)
    if not header or not any(h.strip() for h in header):
        raise UserError(f"{path}: the CSV is empty (it needs a header row)")
    names = [_column_name(h) for h in header]
    keys = [n for n in names if n in KEY_COLUMNS]
    if key is not None:
        key = _column_name(key)
        if key not in names:
            raise UserError(f"{path}: no key column {key!r} in the header ({', '.join(header)})")
    elif keys:
        key = keys[0]
    else:
        raise UserError(f"{path}: the header needs a 'path' or 'track_id' column to match rows to tracks")
    key_col = names.index(key)
    columns = []
    for i, n in enumerate(names):
        if i == key_col or n in KEY_COLUMNS:
            continue
        if not n or not _NAME.match(n):
            raise UserError(f"{path}: column {i + 1} header {header[i]!r} is not a usable name")
        if n in (c for _, c in columns):
            raise UserError(f"{path}: column {n!r} appears twice")
        columns.append((i, n))
    report = LabelImport(columns=[n for _, n in columns], key=key)
    cat = lib.catalog
    by_id = key in ("track_id", "id")
    items = []
    for line_no, row in enumerate(reader, start=2):
        if not any(c.strip() for c in row):
            continue
        report.rows += 1
        ref = row[key_col].strip() if key_col < len(row) else ""
        track = None
        if by_id:
            if ref.isdigit():
                track = cat.track(int(ref))
        elif ref:
            p = Path(ref).expanduser()
            # relative: to the CSV, the working directory, or a root (a CSV written on another machine)
            candidates = [p] if p.is_absolute() else [path.parent / p, Path.cwd() / p,
                                                      *(Path(r) / p for r in cat.roots())]
            for c in candidates:
                track = cat.track_by_path(str(c.resolve()))
                if track is not None:
                    break
        if track is None:
            report.unmatched.append((line_no, ref))
            continue
        report.matched += 1
        values = {}
        for i, n in columns:
            cell = row[i].strip() if i < len(row) else ""
            if cell == "":
                continue
            values[n] = None if cell == "-" else parse_value(cell)
        items.append((track.path, values))
    report.values = cat.set_labels(items)
    return report


def export_labels(lib, target=None) -> int:
    """Write every track's user metadata as CSV: path, track_id, then one column per name. Predicted values
    (``soundalike classify``) are left out, so that importing the file back never makes them user values."""
    cat = lib.catalog
    labels = cat.all_labels(user_only=True)  # predictions (soundalike classify) would come back as user values
    present = {n for values in labels.values() for n in values}
    names = [n for n in cat.label_names() if n in present]
    ids = dict(cat.db.execute("SELECT f.path, t.id FROM tracks t JOIN files f ON f.id = t.file_id"))
    own = False
    if target is None:
        fh = sys.stdout
    elif hasattr(target, "write"):
        fh = target
    else:
        fh = open(Path(target).expanduser(), "w", newline="", encoding="utf-8")  # noqa: SIM115
        own = True
    try:
        w = csv.writer(fh)
        w.writerow(["path", "track_id", *names])
        n = 0
        for path in sorted(labels):
            values = labels[path]
            w.writerow([path, ids.get(path, ""), *("" if values.get(c) is None else values[c] for c in names)])
            n += 1
    finally:
        if own:
            fh.close()
    return n
