"""Playlist files: M3U8, XSPF and CSV (and JSON), from a ``radio.Playlist``.

- M3U8: extended M3U in UTF-8: ``#EXTM3U``, ``#PLAYLIST:`` with the title, then per track
  ``#EXTINF:<seconds>,<artist> - <title>`` and the file's absolute path.
- XSPF (https://xspf.org/spec): ``<location>`` as a ``file://`` URI, ``<title>``, ``<creator>`` (the
  artist), ``<album>``, ``<duration>`` in milliseconds, ``<trackNum>``; built with xml.etree, so that
  names with ``&``, ``<`` or quotes stay well-formed.
- CSV: position, track_id, path, artist, title, album, duration, role, similarity to the previous
  track, progress (paths).
"""

from __future__ import annotations

import csv
import io
import json
import xml.etree.ElementTree as ET
from pathlib import Path

from ..errors import UserError

__all__ = ["FORMATS", "MEDIA_TYPES", "render", "format_for"]

FORMATS = ("m3u8", "xspf", "csv", "json")
MEDIA_TYPES = {
    "m3u8": "audio/x-mpegurl; charset=utf-8",
    "xspf": "application/xspf+xml; charset=utf-8",
    "csv": "text/csv; charset=utf-8",
    "json": "application/json",
}
XSPF_NS = "http://xspf.org/ns/0/"


def format_for(fmt: str | None, target: str | Path | None) -> str:
    """The format asked for, or the one ``target``'s extension names (``.m3u``/``.m3u8``, ``.xspf``,
    ``.csv``, ``.json``); a ``UserError`` naming the option otherwise."""
    if fmt:
        f = fmt.lower()
        if f == "m3u":
            f = "m3u8"
        if f not in FORMATS:
            raise UserError(f"--format: expected one of {', '.join(FORMATS)}, got {fmt!r}")
        return f
    if target is not None:
        ext = Path(target).suffix.lower().lstrip(".")
        ext = "m3u8" if ext == "m3u" else ext
        if ext in FORMATS:
            return ext
        raise UserError(f"-o {target}: cannot tell the format from its extension; add --format "
                        f"({', '.join(FORMATS)})")
    return "json"


def _label(e) -> str:
    return f"{e.artist} - {e.name}" if e.artist else e.name


def m3u8(pl) -> str:
    lines = ["#EXTM3U", f"#PLAYLIST:{pl.title}"]
    for e in pl.entries:
        lines.append(f"#EXTINF:{max(0, round(e.duration))},{_label(e)}".replace("\n", " "))
        lines.append(e.path)
    return "\n".join(lines) + "\n"


def xspf(pl) -> str:
    ET.register_namespace("", XSPF_NS)
    q = lambda tag: f"{{{XSPF_NS}}}{tag}"  # noqa: E731
    root = ET.Element(q("playlist"), {"version": "1"})
    ET.SubElement(root, q("title")).text = pl.title
    ET.SubElement(root, q("creator")).text = "soundalike"
    tl = ET.SubElement(root, q("trackList"))
    for e in pl.entries:
        t = ET.SubElement(tl, q("track"))
        ET.SubElement(t, q("location")).text = Path(e.path).as_uri()
        ET.SubElement(t, q("title")).text = e.name
        if e.artist:
            ET.SubElement(t, q("creator")).text = e.artist
        if e.album:
            ET.SubElement(t, q("album")).text = e.album
        ET.SubElement(t, q("trackNum")).text = str(e.position)
        ET.SubElement(t, q("duration")).text = str(max(0, round(e.duration * 1000)))
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


CSV_COLUMNS = ("position", "track_id", "path", "artist", "title", "album", "duration", "role",
               "similarity_prev", "progress")


def csv_text(pl) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_COLUMNS)
    for e in pl.entries:
        w.writerow([e.position, e.track_id, e.path, e.artist or "", e.name, e.album or "", round(e.duration, 3),
                    e.role, "" if e.similarity_prev is None else e.similarity_prev,
                    "" if e.progress is None else e.progress])
    return buf.getvalue()


def render(pl, fmt: str) -> str:
    """The playlist as text in ``fmt`` (one of ``FORMATS``)."""
    if fmt == "m3u8":
        return m3u8(pl)
    if fmt == "xspf":
        return xspf(pl)
    if fmt == "csv":
        return csv_text(pl)
    if fmt == "json":
        return json.dumps(pl.to_dict(), indent=2, ensure_ascii=False) + "\n"
    raise UserError(f"format: expected one of {', '.join(FORMATS)}, got {fmt!r}")
