"""Private projects (``mirror add``, uploads): what a distribution's name and metadata must say, and
the page a private project publishes. Pure: the engine (:mod:`mirror.private`) reads the archives.

A private distribution is refused unless its file name is a valid wheel or sdist name, safe to
write, and its core metadata (a wheel's ``METADATA``, an sdist's ``PKG-INFO`` when it has one)
names the same project and version: a file that says it is ``foo`` must not land in ``bar``'s page.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from email.parser import BytesHeaderParser
from email.policy import compat32

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    NormalizedName,
    canonicalize_name,
    parse_sdist_filename,
    parse_wheel_filename,
)
from packaging.version import InvalidVersion, Version

from mirror.core import layout, parse, render
from mirror.core.models import DistFile, ProjectPage
from mirror.core.plan import LocalFile
from mirror.errors import Refused, UnsafeName

WHEEL = "bdist_wheel"
SDIST = "sdist"
MAX_METADATA_BYTES = 4 * 1024 * 1024
"""Largest core metadata document read from an archive (PyPI's largest are a few hundred KiB)."""


@dataclass(frozen=True, slots=True)
class Distribution:
    """What a distribution's file name says."""

    filename: str
    name: NormalizedName
    version: Version
    kind: str
    """:data:`WHEEL` or :data:`SDIST` (the upload API's ``filetype``)."""


@dataclass(frozen=True, slots=True)
class PrivateFile:
    """One file of a private project, as its page shows it (size and sha256 are in the files table)."""

    path: str
    filename: str
    version: str
    requires_python: str | None
    upload_time: str
    """ISO 8601 UTC, as PEP 700 writes it ("": unknown, after a rebuilt state)."""
    metadata_path: str | None
    """The ``.metadata`` file beside it (wheels), or None."""


def parse_distribution(filename: str) -> Distribution:
    """The project, version and kind a file name says; Refused for anything but a wheel or an sdist."""
    if "/" in filename or "\\" in filename or filename in ("", ".", ".."):
        raise Refused(f"refusing a path-like file name {filename[:120]!r}: give the bare file name")
    try:
        layout.safe_filename(filename)
    except UnsafeName as exc:
        raise Refused(str(exc)) from None
    try:
        if filename.endswith(".whl"):
            name, version, _build, _tags = parse_wheel_filename(filename)
            kind = WHEEL
        elif filename.endswith((".tar.gz", ".zip")):
            name, version = parse_sdist_filename(filename)
            kind = SDIST
        else:
            raise Refused(f"{filename}: not a distribution (a wheel .whl or an sdist .tar.gz or .zip)")
    except (InvalidWheelFilename, InvalidSdistFilename, InvalidVersion) as exc:
        raise Refused(f"{filename}: not a valid distribution file name ({exc})") from None
    try:
        layout.project_name(name)
    except UnsafeName as exc:
        raise Refused(f"{filename}: {exc}") from None
    return Distribution(filename, name, version, kind)


def check_metadata(dist: Distribution, metadata: bytes) -> str | None:
    """Check that the core metadata names ``dist``'s project and version; returns its Requires-Python."""
    if len(metadata) > MAX_METADATA_BYTES:
        raise Refused(f"{dist.filename}: core metadata larger than {MAX_METADATA_BYTES} bytes")
    headers = BytesHeaderParser(policy=compat32).parsebytes(metadata)
    name, version = headers.get("Name"), headers.get("Version")
    if not name or not version:
        raise Refused(f"{dist.filename}: its core metadata has no Name or Version")
    if canonicalize_name(str(name).strip()) != dist.name:
        raise Refused(f"{dist.filename}: the file name says {dist.name}, its metadata says {str(name).strip()!r}")
    try:
        same = Version(str(version).strip()) == dist.version
    except InvalidVersion:
        same = False
    if not same:
        raise Refused(
            f"{dist.filename}: the file name says version {dist.version}, its metadata says {str(version).strip()!r}"
        )
    requires = headers.get("Requires-Python")
    if requires is None or not str(requires).strip():
        return None
    try:
        return str(SpecifierSet(str(requires).strip()))
    except InvalidSpecifier:
        raise Refused(f"{dist.filename}: invalid Requires-Python {str(requires)[:80]!r}") from None


def check_form(dist: Distribution, name: str | None, version: str | None, filetype: str | None) -> None:
    """The upload form's ``name``, ``version`` and ``filetype`` must agree with the file name when given."""
    if name is not None and canonicalize_name(name) != dist.name:
        raise Refused(f"{dist.filename}: the form says project {name[:80]!r}, the file name says {dist.name}")
    if version is not None:
        try:
            same = Version(version) == dist.version
        except InvalidVersion:
            same = False
        if not same:
            raise Refused(f"{dist.filename}: the form says version {version[:40]!r}, the file name {dist.version}")
    if filetype is not None and filetype != dist.kind:
        raise Refused(f"{dist.filename}: the form says filetype {filetype[:40]!r}, the file name says {dist.kind}")


def file_path(filename: str, sha256: str) -> str:
    """Where a private file lives: content-addressed under ``packages/``, like files of hosts without /packages/."""
    return layout.file_path("", filename, sha256, NormalizedName(""))


def private_page(
    name: NormalizedName, files: Iterable[PrivateFile], held: Mapping[str, LocalFile], serial: int | None
) -> ProjectPage:
    """A private project's page, linking only the files ``held`` (what is on disk and verified)."""
    page_dir = layout.project_dir(name)
    dists = []
    for item in files:
        stored = held.get(item.path)
        if stored is None:
            continue  # lost or damaged (verify dropped its row): never linked
        meta = held.get(item.metadata_path) if item.metadata_path is not None else None
        dists.append(
            DistFile(
                filename=item.filename,
                url=layout.relative_link(page_dir, item.path),
                hashes={"sha256": stored.sha256},
                requires_python=item.requires_python,
                size=stored.size,
                upload_time=item.upload_time or None,
                core_metadata={"sha256": meta.sha256} if meta is not None else False,
            )
        )
    dists.sort(key=lambda d: d.filename)
    return ProjectPage(name, tuple(dists), parse.derive_versions(dists), serial)


def page_bodies(page: ProjectPage) -> list[tuple[str, bytes]]:
    """The three page files, JSON first (the publication order of a sync)."""
    html, v1_html, v1_json = layout.page_paths(page.name)
    html_bytes = render.render_project_html(page)
    return [(v1_json, render.render_project_json(page)), (v1_html, html_bytes), (html, html_bytes)]
