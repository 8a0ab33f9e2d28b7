"""PEP 503 HTML project pages."""

from __future__ import annotations

from urllib.parse import unquote, urljoin, urlsplit

from mirror.core.models import DistFile, Hashes, ProjectPage, Provenance
from mirror.core.parse._fields import (
    MAX_FILES,
    Skipped,
    _digest,
    _hashed_link,
    _Invalid,
    _join,
    _liberal_api_version,
    _normalize,
    _short,
    _status,
    _too_many_files,
)
from mirror.core.parse._html import Attrs, _feed_html, _SimpleHTML
from mirror.errors import UpstreamError


def parse_project_html(body: bytes, base_url: str, name: str, *, max_files: int = MAX_FILES) -> ProjectPage:
    """Parse a PEP 503 HTML project page fetched from ``base_url`` for project ``name``.

    A page with more than ``max_files`` links is refused as soon as the parser meets one more.
    """
    try:
        return _project_from_html(body, base_url, name, max_files)
    except _Invalid as exc:
        raise UpstreamError(f"invalid HTML project page {base_url}: {exc}") from None


def _project_from_html(body: bytes, base_url: str, name: str, max_files: int) -> ProjectPage:
    project = _normalize(name, "project name")
    anchors: list[Attrs] = []

    def on_anchor(attrs: Attrs, _text: str) -> None:
        if len(anchors) >= max_files:
            raise _too_many_files(max_files)
        anchors.append(attrs)

    parser = _SimpleHTML(on_anchor, collect_text=False)
    _feed_html(parser, body)
    parser.finish()
    dropped = Skipped()
    _liberal_api_version(parser.api_version, "pypi:repository-version", dropped)
    base = base_url if parser.base_href is None else _join(base_url, parser.base_href, "<base href>")
    files = tuple(dist for attrs in anchors if (dist := _file_from_anchor(attrs, base, dropped)) is not None)
    status = None
    if parser.status is not None:
        try:
            status = _status(parser.status, parser.status_reason, "pypi:project-status")
        except _Invalid as exc:
            dropped.note(str(exc))
    return ProjectPage(
        name=project, files=files, versions=None, last_serial=parser.serial, status=status, dropped=dropped.lines()
    )


def _file_from_anchor(attrs: Attrs, base_url: str, dropped: Skipped) -> DistFile | None:
    href = attrs.get("href")
    if href is None:
        return None
    try:
        path = urlsplit(urljoin(base_url, href.strip())).path
    except ValueError:
        raise _Invalid(f"unusable link {_short(href)}") from None
    # PEP 503: the filename is the last path segment of the URL (pip reads it the same way).
    filename = unquote(path.rpartition("/")[2])
    if not filename:
        return None  # not a file link (e.g. a link to a directory or to this page)
    what = f"link {_short(filename)}"
    url, hashes = _hashed_link(base_url, href, what)
    yanked: bool | str = False
    if "data-yanked" in attrs:
        yanked = attrs["data-yanked"] or True
    return DistFile(
        filename=filename,
        url=url,
        hashes=hashes,
        requires_python=attrs.get("data-requires-python") or None,
        yanked=yanked,
        core_metadata=_core_metadata_html(attrs, what, dropped),
        provenance=_provenance_html(attrs.get("data-provenance"), base_url, what, dropped),
    )


def _provenance_html(value: str | None, base_url: str, what: str, dropped: Skipped) -> Provenance | None:
    """PEP 740's ``data-provenance``: the URL of the file's provenance object."""
    if value is None or not value.strip():
        return None
    try:
        url, hashes = _hashed_link(base_url, value, f"{what}: data-provenance")
    except _Invalid as exc:
        dropped.note(f"{exc} (provenance not mirrored)")
        return None
    return Provenance(url, hashes)


def _core_metadata_html(attrs: Attrs, what: str, dropped: Skipped) -> bool | Hashes:
    for key in ("data-core-metadata", "data-dist-info-metadata"):
        value = (attrs.get(key) or "").strip()
        if not value:
            continue  # absent, or present without a value: as if absent
        if value.lower() == "true":
            return True
        if value.lower() == "false":
            return False
        algorithm, sep, digest = value.partition("=")
        algorithm = algorithm.strip().lower()
        try:
            if not sep or not algorithm:
                raise _Invalid(f"{what}: {key} must be 'true' or '<hash>=<hex>', not {_short(value)}")
            return {algorithm: _digest(algorithm, digest.strip(), f"{what}: {key}")}
        except _Invalid as exc:
            dropped.note(f"{exc} (metadata not mirrored)")
            return False
    return False
