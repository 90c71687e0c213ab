"""A small reader for TensorFlow "TensorBundle" checkpoints (V2 format).

Why our own: the musicnn weights ship only as TF1 checkpoints, and importing
TensorFlow to read ~3 MB of floats would make it a dependency. The format is
simple and frozen:

* ``<prefix>.index`` is a LevelDB-style SSTable. Its footer (last 48 bytes)
  points to an index block whose entries point to data blocks; each block is a
  run of prefix-compressed ``key -> value`` entries followed by a restart
  array. Keys are tensor names; the empty key holds a ``BundleHeaderProto``,
  every other value is a ``BundleEntryProto`` (dtype, shape, shard, offset,
  size, crc32c).
* ``<prefix>.data-00000-of-00001`` holds the raw little-endian tensor bytes.

Only what musicnn needs is supported: one shard, uncompressed blocks, unsliced
tensors of plain numeric dtypes. Anything else raises ``ModelError`` instead
of being misread. Integrity is checked by the caller (sha256 of the files and
of the tensors), so the per-tensor crc32c is parsed but not recomputed.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...errors import ModelError

__all__ = ["BundleEntry", "read_index", "read_tensors"]

_TABLE_MAGIC = 0xDB4775248B80FB57
_FOOTER_LEN = 48
_BLOCK_TRAILER_LEN = 5  # 1 byte compression type + 4 bytes masked crc32c

# tensorflow/core/framework/types.proto DataType -> numpy little-endian dtype
_DTYPES: dict[int, str] = {1: "<f4", 2: "<f8", 3: "<i4", 4: "|u1", 6: "|i1", 9: "<i8", 10: "|b1", 19: "<f2"}


@dataclass(frozen=True)
class BundleEntry:
    """Where one tensor lives in the data file (a decoded ``BundleEntryProto``)."""

    name: str
    dtype: int
    shape: tuple[int, ...]
    shard_id: int
    offset: int
    size: int
    crc32c: int
    sliced: bool


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise ModelError("checkpoint index: truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7


def _proto_fields(buf: bytes) -> Iterator[tuple[int, int, int | bytes]]:
    """Yield (field number, wire type, value) of a serialized protobuf message."""
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        field, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 1:
            value, pos = struct.unpack_from("<Q", buf, pos)[0], pos + 8
        elif wire == 2:
            n, pos = _varint(buf, pos)
            value, pos = buf[pos : pos + n], pos + n
        elif wire == 5:
            value, pos = struct.unpack_from("<I", buf, pos)[0], pos + 4
        else:
            raise ModelError(f"checkpoint index: unsupported protobuf wire type {wire}")
        yield field, wire, value


def _parse_shape(buf: bytes) -> tuple[int, ...]:
    dims = []
    for field, _, value in _proto_fields(buf):
        if field == 2:  # TensorShapeProto.dim
            size = 0
            for f, _, v in _proto_fields(value):  # type: ignore[arg-type]
                if f == 1:
                    size = int(v)  # type: ignore[arg-type]
            dims.append(size)
        elif field == 3 and value:
            raise ModelError("checkpoint index: tensor of unknown rank")
    return tuple(dims)


def _parse_entry(name: str, buf: bytes) -> BundleEntry:
    fields: dict[str, object] = {"dtype": 0, "shape": (), "shard_id": 0, "offset": 0, "size": 0, "crc32c": 0}
    sliced = False
    for field, _, value in _proto_fields(buf):
        if field == 1:
            fields["dtype"] = value
        elif field == 2:
            fields["shape"] = _parse_shape(value)  # type: ignore[arg-type]
        elif field == 3:
            fields["shard_id"] = value
        elif field == 4:
            fields["offset"] = value
        elif field == 5:
            fields["size"] = value
        elif field == 6:
            fields["crc32c"] = value
        elif field == 7:
            sliced = True
    return BundleEntry(name=name, sliced=sliced, **fields)  # type: ignore[arg-type]


def _read_block(data: bytes, offset: int, size: int) -> bytes:
    if offset + size + _BLOCK_TRAILER_LEN > len(data):
        raise ModelError("checkpoint index: block past the end of the file (truncated?)")
    if data[offset + size] != 0:
        raise ModelError("checkpoint index: compressed blocks are not supported")
    return data[offset : offset + size]


def _block_entries(block: bytes) -> Iterator[tuple[bytes, bytes]]:
    """Decode the prefix-compressed entries of one SSTable block."""
    if len(block) < 4:
        raise ModelError("checkpoint index: block too short")
    (n_restarts,) = struct.unpack_from("<I", block, len(block) - 4)
    end = len(block) - 4 * (n_restarts + 1)
    if end < 0:
        raise ModelError("checkpoint index: corrupt restart array")
    pos, key = 0, b""
    while pos < end:
        shared, pos = _varint(block, pos)
        non_shared, pos = _varint(block, pos)
        value_len, pos = _varint(block, pos)
        key = key[:shared] + block[pos : pos + non_shared]
        pos += non_shared
        yield key, block[pos : pos + value_len]
        pos += value_len


def read_index(index_path: Path) -> dict[str, BundleEntry]:
    """All tensor entries of a ``.index`` file, by name."""
    data = Path(index_path).read_bytes()
    if len(data) < _FOOTER_LEN:
        raise ModelError(f"checkpoint index {index_path}: file too short")
    footer = data[-_FOOTER_LEN:]
    (magic,) = struct.unpack_from("<Q", footer, _FOOTER_LEN - 8)
    if magic != _TABLE_MAGIC:
        raise ModelError(f"checkpoint index {index_path}: not an SSTable (bad magic number)")
    _meta_off, pos = _varint(footer, 0)
    _meta_size, pos = _varint(footer, pos)
    index_off, pos = _varint(footer, pos)
    index_size, pos = _varint(footer, pos)

    entries: dict[str, BundleEntry] = {}
    for _, handle in _block_entries(_read_block(data, index_off, index_size)):
        block_off, p = _varint(handle, 0)
        block_size, _ = _varint(handle, p)
        for key, value in _block_entries(_read_block(data, block_off, block_size)):
            if key == b"":  # BundleHeaderProto: num_shards (1), endianness (2)
                for field, _, v in _proto_fields(value):
                    if field == 1 and v != 1:
                        raise ModelError(f"checkpoint index {index_path}: {v} shards, only 1 is supported")
                    if field == 2 and v != 0:
                        raise ModelError(f"checkpoint index {index_path}: big-endian checkpoints are not supported")
                continue
            name = key.decode("utf-8")
            entries[name] = _parse_entry(name, value)
    return entries


def read_tensors(prefix: Path | str, names: list[str] | None = None) -> dict[str, np.ndarray]:
    """Read tensors (all, or ``names``) of the checkpoint at ``prefix``.

    ``prefix`` is the path the files share before ``.index``; musicnn's
    checkpoints use a directory plus ``/`` as prefix (files ``dir/.index``).
    """
    prefix = str(prefix)
    entries = read_index(Path(prefix + ".index"))
    wanted = sorted(entries) if names is None else names
    data_path = Path(prefix + ".data-00000-of-00001")
    raw = data_path.read_bytes()
    out: dict[str, np.ndarray] = {}
    for name in wanted:
        if name not in entries:
            raise ModelError(f"checkpoint {prefix}: no tensor named {name!r}")
        e = entries[name]
        if e.sliced or e.shard_id != 0:
            raise ModelError(f"checkpoint {prefix}: tensor {name!r} is sliced or sharded (unsupported)")
        if e.dtype not in _DTYPES:
            raise ModelError(f"checkpoint {prefix}: tensor {name!r} has unsupported dtype {e.dtype}")
        dtype = np.dtype(_DTYPES[e.dtype])
        count = int(np.prod(e.shape, dtype=np.int64))
        if count * dtype.itemsize != e.size or e.offset + e.size > len(raw):
            raise ModelError(f"checkpoint {data_path}: tensor {name!r} does not fit its entry (truncated file?)")
        arr = np.frombuffer(raw, dtype=dtype, count=count, offset=e.offset).reshape(e.shape)
        out[name] = arr.astype(dtype.newbyteorder("="), copy=True)
    return out
