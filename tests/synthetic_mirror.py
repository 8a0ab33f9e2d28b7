"""A synthetic, consistent mirror built directly on disk and in state (no upstream, no HTTP).

For verify's tests and benchmark: tiny files, real pages rendered by ``mirror.core.render``,
state rows inserted in bulk, so a 200,000-file mirror takes seconds to build, not hours to sync.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
from pathlib import Path

from packaging.utils import NormalizedName

from mirror._state import State
from mirror.core import layout, render
from mirror.core.models import DistFile, IndexEntry, IndexMeta, ProjectPage

SERIAL = 1000


def build(directory: Path, files: int, per_project: int = 10) -> int:
    """Build ``files`` distribution files (plus one ``.metadata`` per project); returns the project count."""
    web, db = directory / "web", directory / "state" / "mirror.sqlite3"
    State(db).close()  # the schema
    projects = (files + per_project - 1) // per_project
    conn = sqlite3.connect(db)
    with conn:
        for p in range(projects):
            name = f"proj{p:06d}"
            count = min(per_project, files - p * per_project)
            rows = _write_project(web, NormalizedName(name), count)
            conn.executemany("INSERT INTO files (path, project, size, sha256) VALUES (?, ?, ?, ?)", rows)
            conn.execute("INSERT INTO projects (name, serial, published) VALUES (?, ?, 1)", (name, SERIAL))
        conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('serial', ?)", (str(SERIAL),))
    entries = [IndexEntry(NormalizedName(f"proj{p:06d}"), SERIAL) for p in range(projects)]
    html, v1_html, v1_json = (web / p for p in layout.root_paths())
    v1_json.write_bytes(b"".join(render.render_index_json(entries, IndexMeta(last_serial=SERIAL))))
    html.write_bytes(b"".join(render.render_index_html(entries, SERIAL)))
    v1_html.write_bytes(html.read_bytes())
    conn.close()
    return projects


def _write_project(web: Path, name: NormalizedName, count: int) -> list[tuple[str, str, int, str]]:
    rows: list[tuple[str, str, int, str]] = []
    dists: list[DistFile] = []
    for i in range(count):
        content = f"{name}-{i}".encode()
        sha = hashlib.sha256(content).hexdigest()
        filename = f"{name}-{i}.0-py3-none-any.whl"
        path = f"{layout.PACKAGES}/{sha[:2]}/{sha[2:4]}/{sha[4:]}/{filename}"
        _write(web / path, content)
        rows.append((path, name, len(content), sha))
        metadata: bool | dict[str, str] = False
        if i == 0:
            meta = f"Metadata-Version: 2.1\nName: {name}\n".encode()
            meta_sha = hashlib.sha256(meta).hexdigest()
            _write(web / layout.metadata_path(path), meta)
            rows.append((layout.metadata_path(path), name, len(meta), meta_sha))
            metadata = {"sha256": meta_sha}
        url = layout.relative_link(layout.project_dir(name), path)
        dists.append(DistFile(filename, url, {"sha256": sha}, size=len(content), core_metadata=metadata))
    page = ProjectPage(name=name, files=tuple(dists), last_serial=SERIAL)
    html, v1_html, v1_json = layout.page_paths(name)
    _write(web / v1_json, render.render_project_json(page))
    _write(web / html, render.render_project_html(page))
    _write(web / v1_html, render.render_project_html(page))
    return rows


def _write(path: Path, content: bytes) -> None:
    try:
        path.write_bytes(content)
    except FileNotFoundError:
        os.makedirs(path.parent, exist_ok=True)
        path.write_bytes(content)
