"""The HTTP headers an object store serves each ``web/`` path with, since no web server chooses them.

A bucket served bare (an S3 website endpoint, a CDN, nginx proxying it) answers with the
``Content-Type`` and ``Cache-Control`` stored on each object. Pages get the types and the short
cache life ``examples/nginx/mirror.conf`` gives them on disk; ``.metadata`` is text; distribution
files (named once, never rewritten, cached forever) get the type of their format. Not the
``application/octet-stream`` nginx falls back to: S3 servers take that as "no type given" and
some (SeaweedFS) store a type sniffed from the first bytes instead, so a bucket's headers
would depend on its server.
"""

from __future__ import annotations

from mirror.core import layout

PAGE_CACHE = "max-age=60, public"
FILE_CACHE = "max-age=31536000, public, immutable"

_PAGE_TYPES = {
    "index.html": "text/html; charset=utf-8",
    "index.v1_html": "application/vnd.pypi.simple.v1+html; charset=utf-8",
    "index.v1_json": "application/vnd.pypi.simple.v1+json",
}
_OCTETS = "application/octet-stream"
# Longest suffix first: ``.tar.gz`` before ``.gz``.
_FILE_TYPES = (
    (layout.METADATA_SUFFIX, "text/plain; charset=utf-8"),
    (layout.PROVENANCE_SUFFIX, "application/json"),
    (".whl", "application/zip"),  # a wheel is a zip archive (PEP 427)
    (".zip", "application/zip"),
    (".egg", "application/zip"),
    (".tar.gz", "application/gzip"),
    (".tgz", "application/gzip"),
    (".tar.bz2", "application/x-bzip2"),
    (".tar.xz", "application/x-xz"),
    (".tar", "application/x-tar"),
    (".exe", "application/vnd.microsoft.portable-executable"),
    (".msi", "application/x-msi"),
    (".rpm", "application/x-rpm"),
    (".dmg", "application/x-apple-diskimage"),
    (".deb", "application/vnd.debian.binary-package"),
)


def content_type(path: str) -> str:
    """The media type of the object at ``path`` (a path under ``web/``)."""
    name = path.rpartition("/")[2]
    if path.startswith(f"{layout.SIMPLE}/"):
        return _PAGE_TYPES.get(name, _OCTETS)
    lowered = name.lower()
    for suffix, media_type in _FILE_TYPES:
        if lowered.endswith(suffix):
            return media_type
    return _OCTETS


def cache_control(path: str) -> str:
    """Files under ``packages/`` never change under their name; everything else is a page."""
    return FILE_CACHE if path.startswith(f"{layout.PACKAGES}/") else PAGE_CACHE
