"""Export a library's vectors for other tools.

* ``audiovector``: one JSON file per track, AudioVector-compatible
  (``filename``, ``duration_seconds``, ``embedding``) plus our own fields.
* ``parquet``: one file for the whole library, a row per track.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

from .catalog import from_blob
from .errors import UserError

FORMATS = ("audiovector", "parquet")


def _rows(catalog) -> Iterator[dict]:
    q = (
        "SELECT t.id, f.path, f.sha256, t.duration, t.sample_rate, t.channels, t.title, t.artist, t.album, "
        "t.model_id, t.model_version, t.vector, t.tags, "
        "(SELECT count(*) FROM segments s WHERE s.track_id = t.id AND s.informative = 1) "
        "FROM tracks t JOIN files f ON f.id = t.file_id ORDER BY t.id"
    )
    for r in catalog.db.execute(q):
        vec, tags = from_blob(r[11]), from_blob(r[12])
        yield {
            "filename": os.path.basename(r[1]),
            "duration_seconds": r[3],
            "embedding": None if vec is None else [round(float(v), 6) for v in vec],
            "track_id": r[0],
            "path": r[1],
            "sha256": r[2],
            "sample_rate": r[4],
            "channels": r[5],
            "title": r[6],
            "artist": r[7],
            "album": r[8],
            "model": r[9],
            "model_version": r[10],
            "informative_segments": r[13],
            "tags": None if tags is None else [round(float(v), 5) for v in tags],
        }


def export(catalog, target: str | os.PathLike, *, format: str, tag_names: list[str]) -> Iterator[Path]:
    """Write the export; yields each file written."""
    if format not in FORMATS:
        raise UserError(f"format: expected one of {', '.join(FORMATS)}, got {format!r}")
    target = Path(target).expanduser()
    if format == "audiovector":
        if target.exists() and not target.is_dir():
            raise UserError(f"audiovector export needs a folder, and {target} is a file")
        target.mkdir(parents=True, exist_ok=True)
        for row in _rows(catalog):
            row["tags"] = None if row["tags"] is None else dict(zip(tag_names, row["tags"]))
            out = target / f"{row['track_id']:06d}-{Path(row['filename']).stem}.json"
            out.write_text(json.dumps(row, ensure_ascii=False))
            yield out
        return
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise UserError("parquet export needs pyarrow: pip install 'soundalike[parquet]'") from None
    if target.is_dir():
        target = target / "soundalike.parquet"
    target.parent.mkdir(parents=True, exist_ok=True)
    rows = list(_rows(catalog))
    table = pa.Table.from_pylist(rows)
    table = table.replace_schema_metadata({"tag_names": json.dumps(tag_names)})
    pq.write_table(table, target)
    yield target
