"""One collection's search index on local disk: written atomically, read memory-mapped, checked.

A file holds what a :class:`~facesearch.index.collection.CollectionIndex` needs to start without
reading a vector from the store: the live faces' seqs and user seqs, and either their float32
columns (exact) or their compressed codes (the fast-scan PQ as faiss serialises it, the 8-bit
codes, and the seq of each code). The big arrays are mapped read-only, so the processes of one
machine share one copy through the page cache; what changes afterwards lives in each process's
memory until the next file.

Layout: ``MAGIC``, a CRC-32 (of the header and every section), the header's length, the header
(JSON: format, store id, collection key, face model, version, search model digest, the sections'
offsets, dtypes and shapes), then the sections, each at a page boundary. A file whose magic,
format, store, collection, face model or checksum is not the expected one is refused (None): the
caller rebuilds it from the store rather than trust it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import mmap
import os
import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

log = logging.getLogger("facesearch.index")

MAGIC = b"FSINDEX\x00"
FORMAT = 1
SUFFIX = ".index"
_PREFIX = struct.Struct("<8sII")  # magic, CRC-32, header length
_PAGE = 4096
_CRC_CHUNK = 1 << 24


@dataclass(frozen=True)
class Identity:
    """What a file must match to be used: the store, the collection (its key changes when a
    collection is re-created) and its face model (which fixes the vectors' size)."""

    store_id: str
    collection_key: int
    face_model_version: str

    @property
    def name(self) -> str:
        """The file's name in the index folder: one store's files never collide with
        another's there."""
        return f"{self.store_id}-{self.collection_key}{SUFFIX}"


@dataclass(frozen=True)
class CodesData:
    """A compressed index's codes: the serialised fast-scan PQ, the 8-bit codes' offset and
    step per dimension, and each code's seq and bytes (chunks, one after another)."""

    pq: np.ndarray  # (k,) uint8: faiss.serialize_index
    low: np.ndarray  # (d,) float32
    step: np.ndarray  # (d,) float32
    seqs: Sequence[np.ndarray]  # (m,) int64 in all
    codes: Sequence[np.ndarray]  # (m, d) uint8 in all
    model_digest: str  # of the store's search model these were made with


@dataclass(frozen=True)
class IndexData:
    """A collection index as a file holds it: its live faces at ``version``."""

    version: int
    seqs: np.ndarray  # (n,) int64, increasing
    users: np.ndarray  # (n,) int64
    vectors: np.ndarray | None  # (d, n) float32 while exact
    codes: CodesData | None  # while compressed


def model_digest(model: bytes | None) -> str:
    """What identifies a search model in a file's header ("" for none)."""
    return hashlib.sha256(model).hexdigest() if model is not None else ""


def _sections(data: IndexData) -> dict[str, Sequence[np.ndarray]]:
    sections: dict[str, Sequence[np.ndarray]] = {"seqs": [data.seqs], "users": [data.users]}
    if data.vectors is not None:
        sections["vectors"] = [data.vectors]
    if data.codes is not None:
        codes = data.codes
        sections |= {
            "pq": [codes.pq],
            "low": [codes.low],
            "step": [codes.step],
            "code_seqs": codes.seqs,
            "codes": codes.codes,
        }
    return sections


def write(directory: Path, identity: Identity, data: IndexData) -> Path:
    """Write ``data`` as the collection's file in ``directory``: to a temporary file, flushed
    to disk, then renamed over the old one, so a reader sees the old file or the new one whole.
    The caller holds :func:`lock`."""
    layout: dict[str, Any] = {}
    offset = 0
    sections = _sections(data)
    for name, chunks in sections.items():
        first = chunks[0]
        rows = sum(len(chunk) for chunk in chunks)
        shape = (rows, *first.shape[1:])
        layout[name] = {"offset": offset, "dtype": first.dtype.str, "shape": shape}
        offset += _padded(sum(chunk.nbytes for chunk in chunks))
    header = json.dumps(
        {
            "format": FORMAT,
            "store": identity.store_id,
            "collection": identity.collection_key,
            "face_model": identity.face_model_version,
            "version": data.version,
            "model": data.codes.model_digest if data.codes is not None else "",
            "sections": layout,
        }
    ).encode()
    start = _padded(_PREFIX.size + len(header))
    path = directory / identity.name
    temporary = directory / f".{identity.name}.{os.getpid()}.tmp"
    try:
        with open(temporary, "wb") as out:
            out.write(bytes(start))  # the prefix, once the checksum is known
            crc = zlib.crc32(header)
            for chunks in sections.values():
                written = 0
                for chunk in chunks:
                    view = np.ascontiguousarray(chunk).reshape(-1).view(np.uint8).data
                    crc = zlib.crc32(view, crc)
                    out.write(view)
                    written += len(view)
                padding = bytes(_padded(written) - written)
                crc = zlib.crc32(padding, crc)
                out.write(padding)
            out.seek(0)
            out.write(_PREFIX.pack(MAGIC, crc, len(header)) + header)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    return path


def read(path: Path, identity: Identity, verify: bool = True) -> IndexData | None:
    """The file at ``path`` mapped read-only, or None if there is none or it is not one made
    for ``identity`` (wrong store, collection, face model or format, truncated, or failing its
    checksum: ``verify`` False skips that, for a file this process has just written)."""
    try:
        with open(path, "rb") as file:
            mapped = mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as error:  # ValueError: an empty file cannot be mapped
        log.warning("search index %s cannot be read (%s): rebuilding it", path, error)
        return None
    try:
        return _parse(mapped, identity, verify)
    except (ValueError, KeyError, TypeError, AttributeError, struct.error) as error:
        log.warning("search index %s is not usable (%s): rebuilding it", path, error)
        return None


def _parse(mapped: mmap.mmap, identity: Identity, verify: bool) -> IndexData:
    magic, crc, length = _PREFIX.unpack_from(mapped)
    if magic != MAGIC:
        raise ValueError("not a facesearch index")
    header_bytes = mapped[_PREFIX.size : _PREFIX.size + length]
    header = json.loads(header_bytes)
    expected = {
        "format": FORMAT,
        "store": identity.store_id,
        "collection": identity.collection_key,
        "face_model": identity.face_model_version,
    }
    for field, value in expected.items():
        if header.get(field) != value:
            raise ValueError(f"{field} is {header.get(field)!r}, not {value!r}")
    start = _padded(_PREFIX.size + length)
    arrays: dict[str, np.ndarray] = {}
    for name, section in header["sections"].items():
        dtype, shape = np.dtype(section["dtype"]), tuple(section["shape"])
        count = int(np.prod(shape))
        begin = start + int(section["offset"])
        if begin + count * dtype.itemsize > len(mapped):
            raise ValueError("truncated")
        arrays[name] = np.frombuffer(mapped, dtype, count, begin).reshape(shape)
    end = start + sum(_padded(a.nbytes) for a in arrays.values())
    if end != len(mapped):
        raise ValueError(f"{len(mapped)} bytes, not {end}")
    if verify:
        found = zlib.crc32(header_bytes)
        view = memoryview(mapped)
        try:
            for at in range(start, end, _CRC_CHUNK):
                found = zlib.crc32(view[at : min(at + _CRC_CHUNK, end)], found)
        finally:
            view.release()
        if found != crc:
            raise ValueError("checksum mismatch")
    seqs, users = arrays["seqs"], arrays["users"]
    vectors = arrays.get("vectors")
    codes = None
    if "codes" in arrays:
        codes = CodesData(
            pq=arrays["pq"],
            low=arrays["low"],
            step=arrays["step"],
            seqs=[arrays["code_seqs"]],
            codes=[arrays["codes"]],
            model_digest=str(header["model"]),
        )
    if len(users) != len(seqs) or (vectors is not None and vectors.shape[1] != len(seqs)):
        raise ValueError("sections of different lengths")
    if (vectors is None) == (codes is None):
        raise ValueError("neither exact nor compressed")
    return IndexData(int(header["version"]), seqs, users, vectors, codes)


def lock(directory: Path, identity: Identity) -> BinaryIO | None:
    """The collection's file lock in ``directory``, held until the returned file is closed,
    or None if another process holds it (it is writing the file: this one need not)."""
    import fcntl

    handle = open(directory / f".{identity.name}.lock", "ab")  # noqa: SIM115 (returned)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        return None
    return handle


def remove(path: Path) -> None:
    """Remove a collection's file (and its lock file)."""
    path.unlink(missing_ok=True)
    path.with_name(f".{path.name}.lock").unlink(missing_ok=True)


def collection_keys(directory: Path, store_id: str) -> dict[int, Path]:
    """The files of ``store_id``'s collections in ``directory``, by collection key."""
    found = {}
    prefix = f"{store_id}-"
    for path in directory.glob(f"{prefix}*{SUFFIX}"):
        key = path.name[len(prefix) : -len(SUFFIX)]
        if key.isdigit():
            found[int(key)] = path
    return found


def _padded(size: int) -> int:
    return -(-size // _PAGE) * _PAGE
