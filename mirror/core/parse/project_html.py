"""PEP 503 HTML project pages."""

from __future__ import annotations

from urllib.parse import unquote, urldefrag, urljoin, urlsplit

from mirror.core.models import DistFile, Hashes, ProjectPage
from mirror.core.parse._fields import (
    _DIGEST_HEX_LENGTHS,
    MAX_FILES,
    _digest,
    _Invalid,
    _join,
    _normalize,
    _short,
    _status,
    _too_many_files,
)
from mirror.core.parse._html import Attrs, _feed_html, _html_api_version, _SimpleHTML
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
    _html_api_version(parser.api_version)
    base = base_url if parser.base_href is None else _join(base_url, parser.base_href, "<base href>")
    files = tuple(dist for attrs in anchors if (dist := _file_from_anchor(attrs, base)) is not None)
    status = None
    if parser.status is not None:
        status = _status(parser.status, parser.status_reason, "pypi:project-status")
    return ProjectPage(name=project, files=files, versions=None, last_serial=parser.serial, status=status)


def _file_from_anchor(attrs: Attrs, base_url: str) -> DistFile | None:
    href = attrs.get("href")
    if href is None:
        return None
    try:
        url, fragment = urldefrag(urljoin(base_url, href.strip()))
        path = urlsplit(url).path
    except ValueError:
        raise _Invalid(f"unusable link {_short(href)}") from None
    # PEP 503: the filename is the last path segment of the URL (pip reads it the same way).
    filename = unquote(path.rpartition("/")[2])
    if not filename:
        return None  # not a file link (e.g. a link to a directory or to this page)
    what = f"link {_short(filename)}"
    hashes: dict[str, str] = {}
    for part in fragment.split("&"):
        key, sep, value = part.partition("=")
        algorithm = key.strip().lower()
        if sep and algorithm in _DIGEST_HEX_LENGTHS and algorithm not in hashes:
            hashes[algorithm] = _digest(algorithm, value.strip(), what)
    yanked: bool | str = False
    if "data-yanked" in attrs:
        yanked = attrs["data-yanked"] or True
    return DistFile(
        filename=filename,
        url=url,
        hashes=hashes,
        requires_python=attrs.get("data-requires-python") or None,
        yanked=yanked,
        core_metadata=_core_metadata_html(attrs, what),
    )


def _core_metadata_html(attrs: Attrs, what: str) -> bool | Hashes:
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
        if not sep or not algorithm:
            raise _Invalid(f"{what}: {key} must be 'true' or '<hash>=<hex>', not {_short(value)}")
        return {algorithm: _digest(algorithm, digest.strip(), f"{what}: {key}")}
    return False
