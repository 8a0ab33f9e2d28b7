"""Deterministic builders for small but real wheels and sdists.

Every archive entry carries a fixed timestamp and fixed permissions, so the
same inputs always produce byte-identical files (and therefore stable hashes
across test runs).  The wheels are installable by pip and uv; the sdists carry
a setuptools ``pyproject.toml`` and can be built into wheels.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import itertools
import random
import re
import tarfile
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from email.parser import BytesHeaderParser
from functools import cached_property
from pathlib import Path

from packaging.utils import canonicalize_name
from packaging.version import Version

__all__ = [
    "BuiltFile",
    "build_sdist",
    "build_wheel",
    "escape_name",
    "expand_tags",
    "read_core_metadata",
]

#: Timestamp stamped on every zip entry (zip cannot represent dates < 1980).
ZIP_DATE_TIME = (2024, 1, 1, 0, 0, 0)
#: Timestamp stamped on every tar entry (2024-01-01T00:00:00Z).
TAR_MTIME = 1704067200
GENERATOR = "fakepypi (1.0)"


@dataclass(frozen=True)
class BuiltFile:
    """A distribution file: its name, bytes and (for wheels) core metadata."""

    filename: str
    content: bytes
    metadata: bytes | None = None

    @cached_property
    def sha256(self) -> str:
        """Hex SHA-256 of the file content."""
        return hashlib.sha256(self.content).hexdigest()

    @cached_property
    def md5(self) -> str:
        """Hex MD5 of the file content (legacy JSON API only)."""
        return hashlib.md5(self.content, usedforsecurity=False).hexdigest()

    @cached_property
    def blake2b_256(self) -> str:
        """Hex BLAKE2b-256 of the content; PyPI derives file paths from it."""
        return hashlib.blake2b(self.content, digest_size=32).hexdigest()

    @cached_property
    def metadata_sha256(self) -> str | None:
        """Hex SHA-256 of the ``.metadata`` file, or None without one."""
        if self.metadata is None:
            return None
        return hashlib.sha256(self.metadata).hexdigest()

    @property
    def size(self) -> int:
        """Length of the content in bytes."""
        return len(self.content)

    @property
    def is_wheel(self) -> bool:
        """True for ``.whl`` files."""
        return self.filename.endswith(".whl")

    @property
    def packagetype(self) -> str:
        """The legacy JSON API ``packagetype``: bdist_wheel or sdist."""
        return "bdist_wheel" if self.is_wheel else "sdist"

    @property
    def python_version(self) -> str:
        """The legacy JSON API ``python_version``: wheel python tag or 'source'."""
        if not self.is_wheel:
            return "source"
        return self.filename[: -len(".whl")].split("-")[-3]

    @classmethod
    def from_path(cls, path: str | Path) -> BuiltFile:
        """Load a wheel or sdist from disk, extracting a wheel's METADATA."""
        path = Path(path)
        content = path.read_bytes()
        metadata = _wheel_metadata(content) if path.name.endswith(".whl") else None
        return cls(filename=path.name, content=content, metadata=metadata)


def escape_name(name: str) -> str:
    """Normalize a project name for use in wheel/sdist filenames."""
    return re.sub(r"[-_.]+", "_", name).lower()


def expand_tags(tag: str) -> list[str]:
    """Expand a compressed tag set such as ``py2.py3-none-any`` into tags."""
    parts = tag.split("-")
    if len(parts) != 3:
        raise ValueError(f"invalid wheel tag {tag!r}")
    pythons, abis, platforms = (part.split(".") for part in parts)
    return ["-".join(t) for t in itertools.product(pythons, abis, platforms)]


def read_core_metadata(built: BuiltFile) -> bytes | None:
    """Return core metadata: METADATA for wheels, PKG-INFO for sdists."""
    if built.metadata is not None:
        return built.metadata
    if built.filename.endswith(".tar.gz"):
        return _sdist_pkg_info(built.content)
    return None


def metadata_field(metadata: bytes | None, field: str) -> str | None:
    """Return one header field of a core metadata document, if present."""
    if metadata is None:
        return None
    value = BytesHeaderParser().parsebytes(metadata).get(field)
    return None if value is None else str(value)


def build_wheel(
    name: str,
    version: str,
    *,
    requires_dist: Sequence[str] = (),
    requires_python: str | None = None,
    tag: str = "py3-none-any",
    payload_size: int = 0,
    extra_files: Mapping[str, bytes] | None = None,
) -> BuiltFile:
    """Build a small, installable wheel for ``name==version``.

    ``payload_size`` adds ``<pkg>/_payload.bin`` with that many deterministic
    pseudo-random bytes (seeded by name and version) to control the size.
    ``extra_files`` maps archive paths to contents added verbatim.
    """
    dist = f"{escape_name(name)}-{_escape_version(version)}"
    dist_info = f"{dist}.dist-info"
    metadata = _core_metadata(name, version, requires_dist, requires_python)
    files = _package_files(name, version, payload_size)
    files.update(extra_files or {})
    files[f"{dist_info}/METADATA"] = metadata
    files[f"{dist_info}/WHEEL"] = _wheel_file(tag)
    files[f"{dist_info}/RECORD"] = _record(files, f"{dist_info}/RECORD")
    return BuiltFile(f"{dist}-{tag}.whl", _zip(files.items()), metadata)


def build_sdist(
    name: str,
    version: str,
    *,
    requires_dist: Sequence[str] = (),
    requires_python: str | None = None,
) -> BuiltFile:
    """Build a real setuptools-based sdist (``.tar.gz``) for ``name==version``."""
    base = f"{escape_name(name)}-{_escape_version(version)}"
    pkg = _import_name(name)
    files = {
        "PKG-INFO": _core_metadata(name, version, requires_dist, requires_python),
        "pyproject.toml": _pyproject(name, version, requires_dist, requires_python),
        f"{pkg}/__init__.py": _init_py(version),
    }
    members = ((f"{base}/{path}", data) for path, data in files.items())
    return BuiltFile(f"{base}.tar.gz", _targz(members), None)


def _escape_version(version: str) -> str:
    """Normalize a version for filenames (``1.0-rc1`` -> ``1.0rc1``)."""
    return str(Version(version)).replace("-", "_")


def _import_name(name: str) -> str:
    """A valid Python package name derived from the project name."""
    pkg = escape_name(canonicalize_name(name))
    return pkg if pkg.isidentifier() else f"p_{pkg}"


def _init_py(version: str) -> bytes:
    return f'"""Generated by fakepypi."""\n\n__version__ = "{version}"\n'.encode()


def _package_files(name: str, version: str, payload_size: int) -> dict[str, bytes]:
    """The importable package: ``__init__.py`` plus an optional payload."""
    pkg = _import_name(name)
    files = {f"{pkg}/__init__.py": _init_py(version)}
    if payload_size > 0:
        rng = random.Random(f"{name}=={version}")
        files[f"{pkg}/_payload.bin"] = rng.randbytes(payload_size)
    return files


def _core_metadata(
    name: str,
    version: str,
    requires_dist: Sequence[str],
    requires_python: str | None,
) -> bytes:
    """A Metadata-Version 2.1 document (METADATA / PKG-INFO)."""
    lines = [
        "Metadata-Version: 2.1",
        f"Name: {name}",
        f"Version: {version}",
        f"Summary: Fake package {name} built by fakepypi",
    ]
    extras = dict.fromkeys(m for req in requires_dist for m in re.findall(r"extra\s*==\s*['\"]([^'\"]+)['\"]", req))
    lines += [f"Provides-Extra: {extra}" for extra in extras]
    lines += [f"Requires-Dist: {req}" for req in requires_dist]
    if requires_python is not None:
        lines.append(f"Requires-Python: {requires_python}")
    return ("\n".join(lines) + "\n\n").encode()


def _wheel_file(tag: str) -> bytes:
    """The ``WHEEL`` file, one ``Tag:`` line per expanded tag."""
    purelib = tag.endswith("-none-any")
    lines = [
        "Wheel-Version: 1.0",
        f"Generator: {GENERATOR}",
        f"Root-Is-Purelib: {'true' if purelib else 'false'}",
    ]
    lines += [f"Tag: {t}" for t in expand_tags(tag)]
    return ("\n".join(lines) + "\n").encode()


def _record(files: Mapping[str, bytes], record_path: str) -> bytes:
    """The ``RECORD`` file with urlsafe-b64 sha256 hashes and sizes."""
    rows = []
    for path, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest())
        rows.append(f"{path},sha256={digest.rstrip(b'=').decode()},{len(data)}")
    rows.append(f"{record_path},,")
    return ("\n".join(rows) + "\n").encode()


def _pyproject(
    name: str,
    version: str,
    requires_dist: Sequence[str],
    requires_python: str | None,
) -> bytes:
    """A minimal setuptools ``pyproject.toml``."""
    deps = ", ".join(_toml_str(req) for req in requires_dist)
    lines = [
        "[build-system]",
        'requires = ["setuptools>=61"]',
        'build-backend = "setuptools.build_meta"',
        "",
        "[project]",
        f"name = {_toml_str(name)}",
        f"version = {_toml_str(version)}",
        f"dependencies = [{deps}]",
    ]
    if requires_python is not None:
        lines.append(f"requires-python = {_toml_str(requires_python)}")
    lines += ["", "[tool.setuptools]", f"packages = [{_toml_str(_import_name(name))}]"]
    return ("\n".join(lines) + "\n").encode()


def _toml_str(value: str) -> str:
    """A TOML basic string (JSON string escaping is a valid subset)."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _zip(entries: Iterable[tuple[str, bytes]]) -> bytes:
    """A zip archive with fixed timestamps and permissions."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for path, data in entries:
            info = zipfile.ZipInfo(path, date_time=ZIP_DATE_TIME)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, data)
    return buf.getvalue()


def _targz(entries: Iterable[tuple[str, bytes]]) -> bytes:
    """A gzipped tar archive with fixed mtimes, owners and permissions."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for path, data in entries:
            info = tarfile.TarInfo(path)
            info.size, info.mtime, info.mode = len(data), TAR_MTIME, 0o644
            tf.addfile(info, io.BytesIO(data))
    return _gzip(raw.getvalue())


def _gzip(data: bytes) -> bytes:
    """Gzip with a zero mtime and no embedded filename (deterministic)."""
    out = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=out, mtime=0) as gz:
        gz.write(data)
    return out.getvalue()


def _wheel_metadata(content: bytes) -> bytes | None:
    """Read ``*.dist-info/METADATA`` out of wheel bytes."""
    with zipfile.ZipFile(io.BytesIO(content)) as zf:
        for entry in zf.namelist():
            top, _, rest = entry.partition("/")
            if top.endswith(".dist-info") and rest == "METADATA":
                return zf.read(entry)
    return None


def _sdist_pkg_info(content: bytes) -> bytes | None:
    """Read the top-level ``PKG-INFO`` out of sdist bytes."""
    with tarfile.open(fileobj=io.BytesIO(content), mode="r:gz") as tf:
        for member in tf.getmembers():
            if member.name.count("/") == 1 and member.name.endswith("/PKG-INFO"):
                extracted = tf.extractfile(member)
                return extracted.read() if extracted else None
    return None
