"""Reading a distribution's core metadata out of its archive, with bounded memory and effort.

The archive is untrusted (an upload): sizes in its headers may lie, so every read is capped, and
an sdist's tar stream is given up on after :data:`_MAX_MEMBERS` members or :data:`_MAX_TAR_BYTES`
of decompressed stream (a gzip bomb is refused, not expanded).
"""

from __future__ import annotations

import tarfile
import zipfile
import zlib
from pathlib import Path
from typing import IO

from mirror.core.private import MAX_METADATA_BYTES, WHEEL, Distribution
from mirror.errors import Refused

_MAX_MEMBERS = 10_000
_MAX_TAR_BYTES = 1 << 31
_ARCHIVE_ERRORS = (zipfile.BadZipFile, tarfile.TarError, zlib.error, EOFError, NotImplementedError, ValueError)


def core_metadata(path: Path, dist: Distribution) -> bytes | None:
    """A wheel's ``METADATA`` (required), or an sdist's ``PKG-INFO`` (None when it has none)."""
    try:
        if dist.kind == WHEEL:
            found = _zip_member(path, ".dist-info/METADATA")
            if found is None:
                raise Refused(f"{dist.filename}: not a wheel: no *.dist-info/METADATA at its top")
            return found
        if dist.filename.endswith(".zip"):
            return _zip_member(path, "/PKG-INFO")
        return _tar_member(path, "/PKG-INFO")
    except _ARCHIVE_ERRORS as exc:
        kind = "wheel (a zip archive)" if dist.kind == WHEEL else "sdist archive"
        raise Refused(f"{dist.filename}: not a {kind}: {exc}") from None


def _top_level(member: str, suffix: str) -> bool:
    """``<one directory>/<name>``: the member an installer reads, not one nested deeper."""
    return member.endswith(suffix) and member.count("/") == 1 and not member.startswith("/")


def _zip_member(path: Path, suffix: str) -> bytes | None:
    with zipfile.ZipFile(path) as archive:
        found = [info for info in archive.infolist() if _top_level(info.filename, suffix)]
        if len(found) > 1:
            raise Refused(f"{path.name}: {len(found)} candidate metadata files ({found[0].filename}, ...)")
        if not found:
            return None
        if found[0].file_size > MAX_METADATA_BYTES:
            raise Refused(f"{path.name}: {found[0].filename} is larger than {MAX_METADATA_BYTES} bytes")
        with archive.open(found[0]) as member:
            return _read_capped(member, found[0].filename)


def _tar_member(path: Path, suffix: str) -> bytes | None:
    # Stream mode: the archive is read once, front to back, never seeking or listing it whole.
    with tarfile.open(path, "r|*") as archive:
        for count, member in enumerate(archive):
            if count >= _MAX_MEMBERS or archive.offset > _MAX_TAR_BYTES:
                return None
            if member.isfile() and _top_level(member.name, suffix):
                if member.size > MAX_METADATA_BYTES:
                    raise Refused(f"{path.name}: {member.name} is larger than {MAX_METADATA_BYTES} bytes")
                handle = archive.extractfile(member)
                if handle is None:
                    return None
                with handle:
                    return _read_capped(handle, member.name)
    return None


def _read_capped(handle: IO[bytes], name: str) -> bytes:
    data = handle.read(MAX_METADATA_BYTES + 1)
    if len(data) > MAX_METADATA_BYTES:
        raise Refused(f"{name} is larger than {MAX_METADATA_BYTES} bytes")
    return data
