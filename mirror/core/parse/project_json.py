"""PEP 691 JSON project pages.

Strict where safety needs it (name, filenames, URLs, hashes, sizes) and liberal elsewhere: a
serial as integer or decimal string, a missing ``meta`` or api-version (read as 1.0), and an
optional field of the wrong type (requires-python, upload-time, yanked, core-metadata, versions,
project-status, provenance) is dropped with a note in :attr:`ProjectPage.dropped`.
"""

from __future__ import annotations

from typing import Final

from mirror.core.models import DistFile, Hashes, ProjectPage, ProjectStatus, Provenance
from mirror.core.parse._fields import (
    MAX_FILES,
    Skipped,
    _check_json_size,
    _hashed_link,
    _hashes,
    _Invalid,
    _join,
    _liberal_api_version,
    _load_json,
    _normalize,
    _serial,
    _short,
    _status,
    _too_many_files,
)
from mirror.errors import UpstreamError


def parse_project_json(body: bytes, base_url: str, *, max_files: int = MAX_FILES) -> ProjectPage:
    """Parse a PEP 691 JSON project page (any api-version 1.x) fetched from ``base_url``.

    A page listing more than ``max_files`` files is refused, before parsing where possible.
    """
    try:
        _check_json_size(body, max_files)
        page = _project_from_json(_load_json(body), base_url)
        if len(page.files) > max_files:
            raise _too_many_files(max_files)
        return page
    except _Invalid as exc:
        raise UpstreamError(f"invalid JSON project page {base_url}: {exc}") from None


def _project_from_json(data: object, base_url: str) -> ProjectPage:
    if not isinstance(data, dict):
        raise _Invalid(f"top level must be an object, not {type(data).__name__}")
    dropped = Skipped()
    meta = data.get("meta")
    if not isinstance(meta, dict):
        if meta is not None:
            dropped.note(f"meta is not an object: {_short(meta)}")
        meta = {}
    _liberal_api_version(meta.get("api-version"), "meta.api-version", dropped)
    last_serial = _serial(meta.get("_last-serial"), "meta._last-serial", dropped)
    name = _normalize(data.get("name"), "name")

    raw_files = data.get("files")
    if not isinstance(raw_files, list):
        raise _Invalid(f"files must be a list, not {type(raw_files).__name__}")
    files = tuple(_file_from_json(raw, base_url, index, dropped) for index, raw in enumerate(raw_files))

    return ProjectPage(
        name=name,
        files=files,
        versions=_versions(data.get("versions"), dropped),
        last_serial=last_serial,
        status=_project_status(data.get("project-status"), dropped),
        dropped=dropped.lines(),
    )


def _versions(raw: object, dropped: Skipped) -> tuple[str, ...] | None:
    if raw is None:
        return None
    if not isinstance(raw, list) or not all(isinstance(v, str) for v in raw):
        dropped.note("versions is not a list of strings")
        return None
    return tuple(raw)


def _project_status(raw: object, dropped: Skipped) -> ProjectStatus | None:
    if raw is None:
        return None
    try:
        if not isinstance(raw, dict):
            raise _Invalid("project-status must be an object")
        return _status(raw.get("status"), raw.get("reason"), "project-status")
    except _Invalid as exc:
        dropped.note(str(exc))
        return None


def _optional_text(value: object, what: str, dropped: Skipped) -> str | None:
    """A string field where null and "" both mean unknown; another type is dropped."""
    if value is None:
        return None
    if not isinstance(value, str):
        dropped.note(f"{what} is not a string: {_short(value)}")
        return None
    return value or None


def _file_from_json(raw: object, base_url: str, index: int, dropped: Skipped) -> DistFile:
    what = f"files[{index}]"
    if not isinstance(raw, dict):
        raise _Invalid(f"{what} must be an object, not {type(raw).__name__}")
    filename = raw.get("filename")
    if not isinstance(filename, str) or not filename:
        raise _Invalid(f"{what}.filename must be a non-empty string")
    what = f"file {_short(filename)}"
    url = raw.get("url")
    if not isinstance(url, str) or not url.strip():
        raise _Invalid(f"{what}: url must be a non-empty string")
    if "hashes" not in raw:
        raise _Invalid(f"{what}: hashes missing")
    hashes = _hashes(raw["hashes"], f"{what}: hashes")

    size = raw.get("size")
    if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 0):
        raise _Invalid(f"{what}: size must be a non-negative integer, not {_short(size)}")

    return DistFile(
        filename=filename,
        url=_join(base_url, url, what),
        hashes=hashes,
        requires_python=_optional_text(raw.get("requires-python"), f"{what}: requires-python", dropped),
        size=size,
        upload_time=_optional_text(raw.get("upload-time"), f"{what}: upload-time", dropped),
        yanked=_yanked(raw.get("yanked"), what, dropped),
        core_metadata=_core_metadata_json(raw, what, dropped),
        provenance=_provenance(raw.get("provenance"), base_url, what, dropped),
    )


def _yanked(value: object, what: str, dropped: Skipped) -> bool | str:
    if value is None or value is False:
        return False
    if value is True or value == "":
        return True
    if isinstance(value, str):
        return value
    dropped.note(f"{what}: yanked is not a boolean or a string: {_short(value)}")
    return False


def _provenance(value: object, base_url: str, what: str, dropped: Skipped) -> Provenance | None:
    """PEP 740: the URL of the file's provenance object; a ``#sha256=`` fragment is its hash."""
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        dropped.note(f"{what}: provenance is not a URL: {_short(value)}")
        return None
    try:
        url, hashes = _hashed_link(base_url, value, f"{what}: provenance")
    except _Invalid as exc:
        dropped.note(f"{exc} (provenance not mirrored)")
        return None
    return Provenance(url, hashes)


_CORE_METADATA_KEYS: Final = ("core-metadata", "dist-info-metadata", "data-dist-info-metadata")


def _core_metadata_json(raw: dict[str, object], what: str, dropped: Skipped) -> bool | Hashes:
    for key in _CORE_METADATA_KEYS:
        value = raw.get(key)
        if value is None:
            continue
        if isinstance(value, bool):
            return value
        if isinstance(value, dict):
            try:
                return _hashes(value, f"{what}: {key}") or True
            except _Invalid as exc:
                dropped.note(f"{exc} (metadata not mirrored)")
                return False
        dropped.note(f"{what}: {key} is not a boolean or an object of hashes: {_short(value)}")
        return False
    return False
