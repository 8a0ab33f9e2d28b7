"""PEP 691 JSON project pages."""

from __future__ import annotations

from typing import Final

from mirror.core.models import DistFile, Hashes, ProjectPage, ProjectStatus
from mirror.core.parse._fields import (
    MAX_FILES,
    _api_version,
    _check_json_size,
    _hashes,
    _Invalid,
    _join,
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
    meta = data.get("meta")
    if not isinstance(meta, dict):
        raise _Invalid("meta must be an object")
    _api_version(meta.get("api-version"), "meta.api-version")
    last_serial = _serial(meta.get("_last-serial"), "meta._last-serial")
    name = _normalize(data.get("name"), "name")

    raw_files = data.get("files")
    if not isinstance(raw_files, list):
        raise _Invalid(f"files must be a list, not {type(raw_files).__name__}")
    files = tuple(_file_from_json(raw, base_url, index) for index, raw in enumerate(raw_files))

    raw_versions = data.get("versions")
    versions: tuple[str, ...] | None = None
    if raw_versions is not None:
        if not isinstance(raw_versions, list) or not all(isinstance(v, str) for v in raw_versions):
            raise _Invalid("versions must be a list of strings")
        versions = tuple(raw_versions)

    raw_status = data.get("project-status")
    status: ProjectStatus | None = None
    if raw_status is not None:
        if not isinstance(raw_status, dict):
            raise _Invalid("project-status must be an object")
        status = _status(raw_status.get("status"), raw_status.get("reason"), "project-status")

    return ProjectPage(name=name, files=files, versions=versions, last_serial=last_serial, status=status)


def _optional_text(value: object, what: str) -> str | None:
    """A string field where null and "" both mean unknown."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise _Invalid(f"{what} must be a string, not {_short(value)}")
    return value or None


def _file_from_json(raw: object, base_url: str, index: int) -> DistFile:
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

    yanked = raw.get("yanked")
    if yanked is None:
        yanked = False
    elif not isinstance(yanked, bool | str):
        raise _Invalid(f"{what}: yanked must be a boolean or a string, not {_short(yanked)}")
    elif yanked == "":
        yanked = True

    return DistFile(
        filename=filename,
        url=_join(base_url, url, what),
        hashes=hashes,
        requires_python=_optional_text(raw.get("requires-python"), f"{what}: requires-python"),
        size=size,
        upload_time=_optional_text(raw.get("upload-time"), f"{what}: upload-time"),
        yanked=yanked,
        core_metadata=_core_metadata_json(raw, what),
    )


_CORE_METADATA_KEYS: Final = ("core-metadata", "dist-info-metadata", "data-dist-info-metadata")


def _core_metadata_json(raw: dict[str, object], what: str) -> bool | Hashes:
    for key in _CORE_METADATA_KEYS:
        value = raw.get(key)
        if value is None:
            continue
        if isinstance(value, bool):
            return value
        if isinstance(value, dict):
            return _hashes(value, f"{what}: {key}") or True
        raise _Invalid(f"{what}: {key} must be a boolean or an object of hashes, not {_short(value)}")
    return False
