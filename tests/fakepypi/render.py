"""Rendering of simple-index pages (PEP 503/691 and friends) and legacy JSON.

Pure functions of an immutable snapshot plus :class:`SiteOptions`, so the
results can be cached on the snapshot.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
from dataclasses import dataclass
from typing import Any, Literal

from .model import (
    FileEntry,
    Project,
    Release,
    RootSnapshot,
    format_upload_time,
    version_key,
)
from .negotiate import Format

__all__ = [
    "API_VERSION",
    "FileUrlStyle",
    "SiteOptions",
    "provenance_path",
    "render_legacy_json",
    "render_project",
    "render_provenance",
    "render_root",
]

API_VERSION = "1.4"
FileUrlStyle = Literal["pypi", "flat", "relative"]
ProvenanceMode = Literal["none", "plain", "hashed"]


@dataclass(frozen=True)
class SiteOptions:
    """How the server presents its index."""

    base_url: str
    file_url_style: FileUrlStyle = "pypi"
    hashes: bool = True
    html_only: bool = False
    provenance: ProvenanceMode = "none"
    """PEP 740: "none"; "plain" (each file links its provenance object, as PyPI does); "hashed"
    (the link also carries ``#sha256=`` of the object)."""
    serials_as_text: bool = False
    """Write ``_last-serial`` as a decimal string in JSON (as bandersnatch 8.2 and some PyPI proxies do)."""

    def file_url(self, entry: FileEntry, *, absolute: bool = False) -> str:
        """The download URL of a file as linked from a project page."""
        if self.file_url_style == "flat":
            return f"{self.base_url}/files/{entry.filename}"
        if self.file_url_style == "relative" and not absolute:
            return f"../../packages/{entry.blob_path}"
        return f"{self.base_url}/packages/{entry.blob_path}"

    def provenance_url(self, entry: FileEntry) -> str | None:
        """Where a file's PEP 740 provenance object is (PyPI's ``/integrity/...`` shape), if offered."""
        if self.provenance == "none":
            return None
        url = f"{self.base_url}{provenance_path(entry)}"
        if self.provenance == "hashed":
            url += f"#sha256={hashlib.sha256(render_provenance(entry)).hexdigest()}"
        return url

    def serial(self, value: int) -> int | str:
        return str(value) if self.serials_as_text else value

    @property
    def show_serial(self) -> bool:
        """Whether pages expose PyPI serials (not for static indexes)."""
        return not self.html_only


def _dumps(obj: object) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


# -- root index ---------------------------------------------------------------


def render_root(root: RootSnapshot, fmt: Format, opts: SiteOptions) -> bytes:
    """The ``/simple/`` page listing every project."""
    if fmt.is_json:
        return _dumps(
            {
                "meta": {"api-version": API_VERSION, "_last-serial": opts.serial(root.serial)},
                "projects": [{"name": n, "_last-serial": opts.serial(s)} for n, s in root.projects],
            }
        )
    head = _html_head("Simple index", opts)
    links = "".join(f'    <a href="/simple/{n}/">{n}</a>\n' for n, _ in root.projects)
    return _html_page(head, "", links, root.serial if opts.show_serial else None)


# -- project page -------------------------------------------------------------


def render_project(project: Project, fmt: Format, opts: SiteOptions) -> bytes:
    """The ``/simple/<name>/`` page of one project."""
    files = [] if project.quarantined else project.listing()
    if fmt.is_json:
        return _dumps(_project_json(project, files, opts))
    head = _html_head(f"Links for {project.name}", opts, project)
    anchors = "".join(f"    {_anchor(r, f, opts)}<br />\n" for r, f in files)
    h1 = f"    <h1>Links for {html.escape(project.name)}</h1>\n"
    return _html_page(head, h1, anchors, project.serial if opts.show_serial else None)


def _project_json(project: Project, files: list[tuple[Release, FileEntry]], opts: SiteOptions) -> dict[str, Any]:
    versions = [] if project.quarantined else project.sorted_versions()
    doc: dict[str, Any] = {
        "meta": {"api-version": API_VERSION, "_last-serial": opts.serial(project.serial)},
        "name": project.name,
        "versions": versions,
        "files": [_file_json(r, f, opts) for r, f in files],
    }
    if project.status is not None:
        doc["project-status"] = {"status": project.status, "reason": project.status_reason}
    return doc


def _file_json(release: Release, entry: FileEntry, opts: SiteOptions) -> dict[str, Any]:
    core = _core_metadata_value(entry, opts)
    extra = {} if (provenance := opts.provenance_url(entry)) is None else {"provenance": provenance}
    return {
        **extra,
        "filename": entry.filename,
        "url": opts.file_url(entry),
        "hashes": {"sha256": entry.built.sha256} if opts.hashes else {},
        "requires-python": entry.requires_python,
        "size": entry.built.size,
        "upload-time": format_upload_time(entry.upload_time),
        "yanked": _yanked_value(release),
        "core-metadata": core,
        "data-dist-info-metadata": core,
    }


def _core_metadata_value(entry: FileEntry, opts: SiteOptions) -> dict[str, str] | bool:
    """PEP 714 value: hashes dict, True (no hash known) or False (absent)."""
    digest = entry.built.metadata_sha256
    if digest is None:
        return False
    return {"sha256": digest} if opts.hashes else True


def _yanked_value(release: Release) -> str | bool:
    """PEP 691 ``yanked``: False, the reason, or True without a reason."""
    if not release.yanked:
        return False
    return release.yanked_reason or True


def _anchor(release: Release, entry: FileEntry, opts: SiteOptions) -> str:
    """One PEP 503/592/629/658/714 anchor."""
    href = opts.file_url(entry)
    if opts.hashes:
        href += f"#sha256={entry.built.sha256}"
    attrs = [("href", href)]
    if entry.requires_python:
        attrs.append(("data-requires-python", entry.requires_python))
    yanked = _yanked_value(release)
    if yanked is not False:
        attrs.append(("data-yanked", "" if yanked is True else str(yanked)))
    core = _core_metadata_value(entry, opts)
    if core is not False:
        value = "true" if core is True else f"sha256={core['sha256']}"
        attrs += [("data-core-metadata", value), ("data-dist-info-metadata", value)]
    if (provenance := opts.provenance_url(entry)) is not None:
        attrs.append(("data-provenance", provenance))
    rendered = " ".join(f'{k}="{html.escape(v, quote=True)}"' for k, v in attrs)
    return f"<a {rendered}>{html.escape(entry.filename)}</a>"


# -- shared HTML --------------------------------------------------------------


def _html_head(title: str, opts: SiteOptions, project: Project | None = None) -> str:
    metas = []
    if not opts.html_only:
        metas.append(f'<meta name="pypi:repository-version" content="{API_VERSION}">')
    if project is not None and project.status is not None:
        metas.append(_meta("pypi:project-status", project.status))
        if project.status_reason is not None:
            metas.append(_meta("pypi:project-status-reason", project.status_reason))
    metas.append(f"<title>{html.escape(title)}</title>")
    return "".join(f"    {m}\n" for m in metas)


def _meta(name: str, content: str) -> str:
    return f'<meta name="{name}" content="{html.escape(content, quote=True)}">'


def _html_page(head: str, h1: str, body: str, serial: int | None) -> bytes:
    trailer = f"<!--SERIAL {serial}-->\n" if serial is not None else ""
    return (
        f"<!DOCTYPE html>\n<html>\n  <head>\n{head}  </head>\n  <body>\n{h1}{body}  </body>\n</html>\n{trailer}"
    ).encode()


# -- legacy JSON API ----------------------------------------------------------


def render_legacy_json(project: Project, opts: SiteOptions) -> bytes:
    """``/pypi/<name>/json`` as consumed by bandersnatch."""
    releases = {} if project.quarantined else project.releases
    ordered = sorted(releases, key=version_key)
    rendered = {v: [_legacy_file(releases[v], f, opts) for f in releases[v].files] for v in ordered}
    latest = _latest_version(project, ordered)
    return _dumps(
        {
            "info": _legacy_info(project, latest),
            "last_serial": project.serial,
            "releases": rendered,
            "urls": rendered.get(latest, []) if latest else [],
            "vulnerabilities": [],
        }
    )


def _latest_version(project: Project, ordered: list[str]) -> str | None:
    """Highest non-yanked final release, else the highest of any kind."""
    candidates = [v for v in ordered if not project.releases[v].yanked]
    finals = [v for v in candidates if not _is_prerelease(v)]
    for pool in (finals, candidates, ordered):
        if pool:
            return pool[-1]
    return None


def _is_prerelease(version: str) -> bool:
    key = version_key(version)
    return key[0] == 0 and bool(getattr(key[1], "is_prerelease", False))


def _legacy_info(project: Project, latest: str | None) -> dict[str, Any]:
    release = project.releases.get(latest) if latest else None
    requires_python = None
    if release is not None and release.files:
        requires_python = release.files[0].requires_python
    return {
        "name": project.display_name,
        "version": latest or "",
        "summary": f"Fake package {project.display_name} built by fakepypi",
        "requires_python": requires_python,
        "requires_dist": None,
        "yanked": bool(release and release.yanked),
        "yanked_reason": release.yanked_reason if release else None,
        "author": "",
        "author_email": "",
        "license": "",
        "home_page": "",
        "project_urls": {},
        "classifiers": [],
        "description": "",
        "description_content_type": None,
        "keywords": "",
        "platform": None,
        "package_url": f"https://pypi.org/project/{project.name}/",
        "project_url": f"https://pypi.org/project/{project.name}/",
        "release_url": f"https://pypi.org/project/{project.name}/{latest or ''}/",
    }


def _legacy_file(release: Release, entry: FileEntry, opts: SiteOptions) -> dict[str, Any]:
    built = entry.built
    core = {"sha256": built.metadata_sha256} if built.metadata_sha256 else False
    upload = format_upload_time(entry.upload_time)
    return {
        "filename": entry.filename,
        "url": opts.file_url(entry, absolute=True),
        "digests": {"sha256": built.sha256, "md5": built.md5, "blake2b_256": built.blake2b_256},
        "md5_digest": built.md5,
        "size": built.size,
        "packagetype": built.packagetype,
        "python_version": built.python_version,
        "requires_python": entry.requires_python,
        "upload_time": upload[:19],
        "upload_time_iso_8601": upload,
        "yanked": release.yanked,
        "yanked_reason": release.yanked_reason,
        "has_sig": False,
        "comment_text": "",
        "downloads": -1,
        "core-metadata": core,
        "data-dist-info-metadata": core,
    }


# -- PEP 740 provenance ---------------------------------------------------------------


def provenance_path(entry: FileEntry) -> str:
    return f"/integrity/{entry.filename}/provenance"


def render_provenance(entry: FileEntry) -> bytes:
    """A PEP 740 provenance object for the file: its shape, with a statement naming the file's digest.

    The signature and certificate are placeholders (nothing here signs); a mirror carries the object
    through byte for byte, and only an installer verifies it.
    """
    statement = {
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": entry.filename, "digest": {"sha256": entry.built.sha256}}],
        "predicateType": "https://docs.pypi.org/attestations/publish/v1",
        "predicate": None,
    }
    attestation = {
        "version": 1,
        "verification_material": {
            "certificate": base64.b64encode(b"fake certificate").decode(),
            "transparency_entries": [],
        },
        "envelope": {
            "statement": base64.b64encode(_dumps(statement)).decode(),
            "signature": base64.b64encode(b"fake signature").decode(),
        },
    }
    publisher = {"kind": "GitHub", "repository": "example/fake", "workflow": "release.yml", "environment": None}
    return _dumps({"version": 1, "attestation_bundles": [{"publisher": publisher, "attestations": [attestation]}]})
