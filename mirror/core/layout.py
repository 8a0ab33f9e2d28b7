"""Where things live under ``web/``: pure mapping from upstream URLs and names to safe relative paths.

Every path this module returns is relative to ``web/``, uses ``/`` separators, and is built only
from segments that passed :func:`safe_segment`, so no upstream input can escape the tree.
"""

from __future__ import annotations

import posixpath
import re
from urllib.parse import quote, unquote, urlsplit

from packaging.utils import NormalizedName, canonicalize_name

from mirror.errors import UnsafeName

SIMPLE = "simple"
PACKAGES = "packages"
METADATA_SUFFIX = ".metadata"
PROVENANCE_SUFFIX = ".provenance"
"""PEP 740: a file's provenance object lies beside it under this suffix."""
# Temporary files carry this suffix and a leading dot, so no page ever links one
# and a scan for leftovers is a suffix match.
TEMP_SUFFIX = ".mirror-tmp"
PAGE_FILES = ("index.html", "index.v1_html", "index.v1_json")

_MAX_SEGMENT = 255
# The metadata or provenance sibling and the temp name must still fit in one directory entry.
_MAX_FILENAME = _MAX_SEGMENT - max(len(METADATA_SUFFIX), len(PROVENANCE_SUFFIX)) - len(TEMP_SUFFIX) - 12
_MAX_DEPTH = 16
_UNSAFE_CHARS = re.compile(r"[\x00-\x1f\x7f/\\]")
_PROJECT_NAME = re.compile(r"^[a-z0-9](?:[a-z0-9._-]*[a-z0-9])?$")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


def safe_segment(segment: str, *, what: str = "path segment", limit: int = _MAX_SEGMENT) -> str:
    """Return ``segment`` if it is a harmless single directory entry, else raise :class:`UnsafeName`."""
    if not segment or segment in {".", ".."}:
        raise UnsafeName(f"refusing empty or relative {what} {segment!r}")
    if _UNSAFE_CHARS.search(segment):
        raise UnsafeName(f"refusing {what} with a separator or control character: {segment!r}")
    if segment.startswith("."):
        raise UnsafeName(f"refusing hidden {what} {segment!r}")
    if len(segment.encode("utf-8", "surrogatepass")) > limit:
        raise UnsafeName(f"refusing {what} longer than {limit} bytes: {segment[:40]!r}...")
    if ":" in segment and segment.split(":", 1)[0].isalpha() and len(segment.split(":", 1)[0]) == 1:
        raise UnsafeName(f"refusing {what} that looks like a drive: {segment!r}")
    return segment


def safe_filename(filename: str) -> str:
    """A distribution file name we are willing to write."""
    return safe_segment(filename, what="file name", limit=_MAX_FILENAME)


def project_name(name: str) -> NormalizedName:
    """Normalize a project name and make sure it is usable as a directory name."""
    normalized = canonicalize_name(name)
    if not _PROJECT_NAME.match(normalized) or len(normalized) > _MAX_SEGMENT:
        raise UnsafeName(f"refusing project name {name[:80]!r}")
    return normalized


def project_dir(name: NormalizedName) -> str:
    return f"{SIMPLE}/{name}"


def page_paths(name: NormalizedName) -> tuple[str, str, str]:
    """The three files of a project page: HTML, the same HTML for negotiation, PEP 691 JSON."""
    base = project_dir(name)
    html, v1_html, v1_json = PAGE_FILES
    return f"{base}/{html}", f"{base}/{v1_html}", f"{base}/{v1_json}"


def root_paths() -> tuple[str, str, str]:
    html, v1_html, v1_json = PAGE_FILES
    return f"{SIMPLE}/{html}", f"{SIMPLE}/{v1_html}", f"{SIMPLE}/{v1_json}"


def file_path(url: str, filename: str, sha256: str | None, project: NormalizedName) -> str:
    """Map an upstream file URL to its path under ``web/``.

    PyPI-style URLs keep the path after ``/packages/`` (so existing bandersnatch trees and nginx
    configs carry over). Anything else gets a content-addressed path from the sha256, so two
    upstream hosts can never collide and the mapping does not depend on upstream URL shapes.
    """
    name = safe_filename(filename)
    segments = _packages_segments(url)
    if segments is not None and segments[-1] == name:
        return "/".join([PACKAGES, *segments])
    if sha256 is not None and _HEX64.match(sha256):
        return f"{PACKAGES}/{sha256[:2]}/{sha256[2:4]}/{sha256[4:]}/{name}"
    # Only reachable with require-hashes = false: the name is all we can key on.
    return f"{PACKAGES}/unhashed/{project_name(project)}/{name}"


def _packages_segments(url: str) -> list[str] | None:
    """The safe, decoded path segments after the last ``/packages/`` in ``url``, if any."""
    path = urlsplit(url).path
    marker = f"/{PACKAGES}/"
    index = path.rfind(marker)
    if index < 0:
        return None
    raw = path[index + len(marker) :].split("/")
    if len(raw) > _MAX_DEPTH:
        raise UnsafeName(f"refusing file URL nested {len(raw)} levels deep: {url[:120]!r}")
    return [safe_segment(unquote(part)) for part in raw]


def metadata_path(path: str) -> str:
    return path + METADATA_SUFFIX


def provenance_path(path: str) -> str:
    return path + PROVENANCE_SUFFIX


def relative_link(from_dir: str, path: str) -> str:
    """A percent-quoted relative URL from a page directory to a file, both relative to ``web/``."""
    top = from_dir.partition("/")[0]
    if not path.startswith(top + "/"):  # the usual case, simple/<name>/ to packages/...: no relpath needed
        return "../" * (from_dir.count("/") + 1) + quote(path, safe="/")
    return quote(posixpath.relpath(path, from_dir), safe="/")


def temp_name(path: str, token: str) -> str:
    """A temporary sibling of ``path``: hidden, and recognisable by its suffix."""
    directory, _, base = path.rpartition("/")
    temp = f".{base}.{token}{TEMP_SUFFIX}"
    return f"{directory}/{temp}" if directory else temp


def is_temp_name(filename: str) -> bool:
    return filename.startswith(".") and filename.endswith(TEMP_SUFFIX)
