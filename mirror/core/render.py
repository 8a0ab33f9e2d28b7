"""Render models into the simple pages pip and uv read from the mirror. Pure and deterministic.

* JSON: PEP 691 at api-version :data:`~mirror.core.models.API_VERSION`, with PEP 700 ``versions``,
  ``size`` and ``upload-time``, PEP 714 ``core-metadata``, PEP 740 ``provenance``, PEP 792 ``project-status``.
* HTML: PEP 503 with the PEP 629 version meta, PEP 592 ``data-yanked``, PEP 658/714
  ``data-core-metadata`` (+ the legacy ``data-dist-info-metadata``), PEP 740 ``data-provenance``,
  PEP 792 status metas and the ``<!--SERIAL n-->`` comment.

The same model always renders to the same bytes: hash objects are written in sorted order and
nothing depends on mapping insertion order. Files keep the model's order.

A ``quarantined`` project (PEP 792) is rendered with no files and no versions.

URLs: a file's ``url`` is taken as an already valid URL reference (relative or absolute, without
a fragment). :func:`quote_url` only percent-encodes what cannot stand literally in it, keeping
``%XX`` escapes, ``/`` and the other reserved characters, except ``+`` (some static file servers
and object stores read a literal ``+`` in a path as a space, so ``1.0+cpu`` becomes ``1.0%2Bcpu``)
and ``#`` (the URL has no fragment; ours carries the hash). The same quoting is applied in JSON
and HTML so both kinds of clients request the same path.

PEP 714: JSON carries ``core-metadata`` and PyPI's ``data-dist-info-metadata`` alias; never the
``dist-info-metadata`` key, which makes pip 22.3-23.1 fail hard.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from html import escape
from typing import Final
from urllib.parse import quote

from mirror.core.models import API_VERSION, DistFile, Hashes, IndexEntry, IndexMeta, ProjectPage, Provenance
from mirror.core.parse import derive_versions

__all__ = [
    "CHUNK_SIZE",
    "QUARANTINED",
    "is_quarantined",
    "quote_url",
    "render_index_html",
    "render_index_json",
    "render_project_html",
    "render_project_json",
]

CHUNK_SIZE: Final = 64 * 1024
"""Approximate size of each chunk the root index renderers yield."""

QUARANTINED: Final = "quarantined"

# A %XX escape is kept; any other character outside unreserved/reserved (minus "+" and "#") is quoted.
_UNSAFE_RE: Final = re.compile(r"%[0-9A-Fa-f]{2}|[^A-Za-z0-9\-._~:/?\[\]@!$&'()*,;=]")


def _dumps(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def quote_url(url: str) -> str:
    """Percent-encode what cannot stand literally in a URL (and ``+``, ``#``); idempotent."""

    def fix(match: re.Match[str]) -> str:
        text = match.group()
        return text if len(text) == 3 else quote(text, safe="")

    return _UNSAFE_RE.sub(fix, url)


def is_quarantined(page: ProjectPage) -> bool:
    """Whether PEP 792 says the index must offer no files for this project."""
    return page.status is not None and page.status.status.strip().lower() == QUARANTINED


def _sorted_hashes(hashes: Hashes) -> dict[str, str]:
    return {name: hashes[name] for name in sorted(hashes)}


def _preferred_hash(hashes: Hashes) -> tuple[str, str] | None:
    """sha256 if known, else the first hash by name."""
    if "sha256" in hashes:
        return "sha256", hashes["sha256"]
    for name in sorted(hashes):
        return name, hashes[name]
    return None


def _metadata(dist: DistFile) -> Hashes | None:
    """Hashes of the offered ``.metadata`` file ({} if unknown), or None if none is offered.

    Only a truthy ``core_metadata`` offers one: an empty mapping is treated like False.
    """
    if isinstance(dist.core_metadata, bool):
        return {} if dist.core_metadata else None
    return dist.core_metadata or None


def _yanked(dist: DistFile) -> bool | str:
    if dist.yanked is False or dist.yanked is True:
        return dist.yanked
    return dist.yanked or True  # a reason of "" still means yanked


def _visible(page: ProjectPage) -> tuple[tuple[DistFile, ...], tuple[str, ...]]:
    """The files and versions a page offers (none when quarantined)."""
    if is_quarantined(page):
        return (), ()
    versions = page.versions if page.versions is not None else derive_versions(page.files)
    return page.files, versions


# --- JSON ------------------------------------------------------------------------------------------


def _file_json(dist: DistFile) -> dict[str, object]:
    out: dict[str, object] = {
        "filename": dist.filename,
        "url": quote_url(dist.url),
        "hashes": _sorted_hashes(dist.hashes),
    }
    if dist.requires_python:
        out["requires-python"] = dist.requires_python
    if dist.size is not None:
        out["size"] = dist.size
    if dist.upload_time:
        out["upload-time"] = dist.upload_time
    out["yanked"] = _yanked(dist)
    metadata = _metadata(dist)
    if metadata is not None:
        value: bool | dict[str, str] = _sorted_hashes(metadata) if metadata else True
        out["core-metadata"] = value
        out["data-dist-info-metadata"] = value
    if dist.provenance is not None:
        out["provenance"] = _provenance_link(dist.provenance)
    return out


def _provenance_link(provenance: Provenance) -> str:
    """PEP 740's link to the provenance object; its hash rides in the fragment, as a file's does."""
    preferred = _preferred_hash(provenance.hashes)
    fragment = "" if preferred is None else f"#{preferred[0]}={preferred[1]}"
    return quote_url(provenance.url) + fragment


def render_project_json(page: ProjectPage) -> bytes:
    """The PEP 691 JSON project page (``index.v1_json``)."""
    files, versions = _visible(page)
    meta: dict[str, object] = {"api-version": API_VERSION}
    if page.last_serial is not None:
        meta["_last-serial"] = page.last_serial
    doc: dict[str, object] = {
        "meta": meta,
        "name": page.name,
        "versions": list(versions),
        "files": [_file_json(dist) for dist in files],
    }
    if page.status is not None:
        status: dict[str, str] = {"status": page.status.status}
        if page.status.reason:
            status["reason"] = page.status.reason
        doc["project-status"] = status
    return _dumps(doc).encode()


def render_index_json(entries: Iterable[IndexEntry], meta: IndexMeta) -> Iterator[bytes]:
    """The PEP 691 JSON root index, in chunks of about :data:`CHUNK_SIZE` bytes.

    ``meta.api_version`` is ignored: the mirror speaks :data:`API_VERSION`.
    """
    head: dict[str, object] = {"api-version": API_VERSION}
    if meta.last_serial is not None:
        head["_last-serial"] = meta.last_serial
    parts = [f'{{"meta":{_dumps(head)},"projects":[']
    size = len(parts[0])
    separator = ""
    for entry in entries:
        serial = "" if entry.serial is None else f',"_last-serial":{int(entry.serial)}'
        item = f'{separator}{{"name":{_dumps(entry.name)}{serial}}}'
        separator = ","
        parts.append(item)
        size += len(item)
        if size >= CHUNK_SIZE:
            yield "".join(parts).encode()
            parts, size = [], 0
    parts.append("]}")
    yield "".join(parts).encode()


# --- HTML ------------------------------------------------------------------------------------------


def _attr(name: str, value: str) -> str:
    return f'{name}="{escape(value, quote=True)}"'


def _anchor(dist: DistFile) -> str:
    href = quote_url(dist.url)
    preferred = _preferred_hash(dist.hashes)
    if preferred is not None:
        href += f"#{preferred[0]}={preferred[1]}"
    attrs = [_attr("href", href)]
    if dist.requires_python:
        attrs.append(_attr("data-requires-python", dist.requires_python))
    yanked = _yanked(dist)
    if yanked is not False:
        attrs.append(_attr("data-yanked", "" if yanked is True else str(yanked)))
    metadata = _metadata(dist)
    if metadata is not None:
        hashed = _preferred_hash(metadata)
        value = "true" if hashed is None else f"{hashed[0]}={hashed[1]}"
        attrs.append(_attr("data-core-metadata", value))
        attrs.append(_attr("data-dist-info-metadata", value))
    if dist.provenance is not None:
        attrs.append(_attr("data-provenance", _provenance_link(dist.provenance)))
    return f"<a {' '.join(attrs)}>{escape(dist.filename, quote=True)}</a><br/>"


def _status_metas(page: ProjectPage) -> list[str]:
    if page.status is None:
        return []
    metas = [f'    <meta name="pypi:project-status" {_attr("content", page.status.status)}>']
    if page.status.reason:
        metas.append(f'    <meta name="pypi:project-status-reason" {_attr("content", page.status.reason)}>')
    return metas


def render_project_html(page: ProjectPage) -> bytes:
    """The PEP 503 HTML project page (``index.html`` / ``index.v1_html``)."""
    files, _versions = _visible(page)
    name = escape(page.name, quote=True)
    lines = [
        "<!DOCTYPE html>",
        "<html>",
        "  <head>",
        f'    <meta name="pypi:repository-version" content="{API_VERSION}">',
        *_status_metas(page),
        f"    <title>Links for {name}</title>",
        "  </head>",
        "  <body>",
        f"    <h1>Links for {name}</h1>",
        *(f"    {_anchor(dist)}" for dist in files),
        "  </body>",
        "</html>",
    ]
    if page.last_serial is not None:
        lines.append(f"<!--SERIAL {int(page.last_serial)}-->")
    return ("\n".join(lines) + "\n").encode()


def render_index_html(entries: Iterable[IndexEntry], serial: int | None) -> Iterator[bytes]:
    """The PEP 503 HTML root index, in chunks of about :data:`CHUNK_SIZE` bytes."""
    head = (
        "<!DOCTYPE html>\n<html>\n  <head>\n"
        f'    <meta name="pypi:repository-version" content="{API_VERSION}">\n'
        "    <title>Simple index</title>\n  </head>\n  <body>\n"
    )
    parts = [head]
    size = len(head)
    for entry in entries:
        name = escape(entry.name, quote=True)
        item = f'    <a href="{escape(quote_url(entry.name), quote=True)}/">{name}</a><br/>\n'
        parts.append(item)
        size += len(item)
        if size >= CHUNK_SIZE:
            yield "".join(parts).encode()
            parts, size = [], 0
    parts.append("  </body>\n</html>\n")
    if serial is not None:
        parts.append(f"<!--SERIAL {int(serial)}-->\n")
    yield "".join(parts).encode()
