"""The HTTP headers an object store serves each ``web/`` path with, since no web server chooses them.

A bucket served bare (an S3 website endpoint, a CDN, nginx proxying it) answers with the
``Content-Type`` and ``Cache-Control`` stored on each object. They are the ones
``examples/nginx/mirror.conf`` gives the same path on disk, so a client sees no difference
between the two backends: pages by their file name, short-lived; ``.metadata`` as text;
distribution files (named once, never rewritten) as octets, cached forever.
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


def content_type(path: str) -> str:
    """The media type of the object at ``path`` (a path under ``web/``)."""
    name = path.rpartition("/")[2]
    if path.startswith(f"{layout.SIMPLE}/"):
        return _PAGE_TYPES.get(name, _OCTETS)
    if name.endswith(layout.METADATA_SUFFIX):
        return "text/plain; charset=utf-8"
    return _OCTETS


def cache_control(path: str) -> str:
    """Files under ``packages/`` never change under their name; everything else is a page."""
    return FILE_CACHE if path.startswith(f"{layout.PACKAGES}/") else PAGE_CACHE
