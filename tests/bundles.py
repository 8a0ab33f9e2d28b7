"""Hand-made airgap bundles: any header, any entry lines, any tar stream (for refusal tests and benchmarks).

``mirror export`` only writes well-formed bundles; an attacker writes whatever they like. These
helpers write the manifest and a single part exactly as given, computing only what a forger would
(part size and sha256, counts) unless told otherwise.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

BLOCK = 512


def tar_of(files: Iterable[tuple[str, bytes]], fmt: int = tarfile.PAX_FORMAT) -> bytes:
    """A tar stream of ``web/<path>`` members, as ``mirror export`` writes them."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=fmt) as tar:
        for path, data in files:
            info = tarfile.TarInfo(f"web/{path}")
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def raw_members(files: Iterable[tuple[str, bytes]]) -> bytes:
    """Header and data blocks of ``web/<path>`` members, without the end-of-archive blocks (to append to)."""
    out = bytearray()
    for path, data in files:
        info = tarfile.TarInfo(f"web/{path}")
        info.size, info.mode = len(data), 0o644
        out += info.tobuf(format=tarfile.PAX_FORMAT) + data + bytes(-len(data) % BLOCK)
    return bytes(out)


def member(name: str, kind: bytes, *, size: int = 0, linkname: str = "") -> bytes:
    """One raw tar header block of any type (a symlink, a device, a pax header, ...)."""
    info = tarfile.TarInfo(name)
    info.type, info.size, info.linkname = kind, size, linkname
    return info.tobuf(format=tarfile.USTAR_FORMAT)


def pax_bomb(pax_bytes: int, then: bytes) -> Iterator[bytes]:
    """A tar stream opening with one pax extended header of ``pax_bytes`` bytes (a single long record)."""
    yield member("././@PaxHeader", tarfile.XHDTYPE, size=pax_bytes)
    length = pax_bytes
    head = f"{length} comment=".encode()
    filler = length - len(head) - 1
    yield head
    chunk = b"a" * (1 << 20)
    while filler > 0:
        yield chunk[: min(filler, len(chunk))]
        filler -= min(filler, len(chunk))
    yield b"\n" + bytes(-pax_bytes % BLOCK)
    yield then


def file_entry(path: str, data: bytes, project: str | None = None) -> dict[str, Any]:
    return {"path": path, "size": len(data), "sha256": hashlib.sha256(data).hexdigest(), "project": project}


def write_bundle(
    directory: Path,
    bundle_id: str,
    stream: Iterable[bytes],
    entries: list[dict[str, Any]] | list[str],
    *,
    compression: str = "none",
    **fields: Any,
) -> Path:
    """Write ``<id>.part-0001.tar[.gz]`` from ``stream`` and the manifest; ``fields`` override header fields.

    ``entries`` are dicts (dumped as JSON) or raw lines (written as they are).
    """
    directory.mkdir(parents=True, exist_ok=True)
    part = directory / f"{bundle_id}.part-0001{'.tar.gz' if compression == 'gzip' else '.tar'}"
    digest, size = hashlib.sha256(), 0
    deflate = zlib.compressobj(9, zlib.DEFLATED, 31) if compression == "gzip" else None
    with open(part, "wb") as out:
        for chunk in stream if deflate is None else _deflated(stream, deflate):
            out.write(chunk)
            digest.update(chunk)
            size += len(chunk)
    dicts = [e for e in entries if isinstance(e, dict)]
    files = [e for e in dicts if "path" in e]
    header: dict[str, Any] = {
        "format": "mirror-bundle/1",
        "id": bundle_id,
        "origin": "0" * 32,
        "previous": None,
        "full": True,
        "seq": 1,
        "from_serial": None,
        "to_serial": 1,
        "created": "2026-03-01T02:00:00Z",
        "compression": compression,
        "parts": [{"name": part.name, "size": size, "sha256": digest.hexdigest()}],
        "files": len(files),
        "bytes": sum(e["size"] for e in files if isinstance(e.get("size"), int)),
        "deletions": sum(1 for e in dicts if "delete" in e),
    }
    header.update(fields)
    manifest = directory / f"{bundle_id}.manifest.jsonl"
    lines = [json.dumps(header)] + [e if isinstance(e, str) else json.dumps(e) for e in entries]
    manifest.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return manifest


def _deflated(stream: Iterable[bytes], deflate: Any) -> Iterator[bytes]:
    for chunk in stream:
        yield deflate.compress(chunk)
    yield deflate.flush()
