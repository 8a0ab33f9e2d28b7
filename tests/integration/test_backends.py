"""The engine, verify, export and import against each storage backend, through the protocol only.

The sync runs in process (``Syncer`` with a real ``Upstream``) against the fake PyPI on
127.0.0.1; the same assertions hold for FileStorage, MemoryStorage and S3Storage (on the
session's real SeaweedFS), and the trees they end with are byte for byte the same.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
from collections.abc import Iterator
from pathlib import Path
from types import MappingProxyType
from urllib.parse import unquote

import anyio
import pytest

from mirror._config import Config, FiltersConfig
from mirror._http import Upstream
from mirror._plugins import load_chain
from mirror._progress import PlainReporter
from mirror.airgap.export import ExportOptions, export
from mirror.airgap.importer import import_bundles
from mirror.core import layout
from mirror.core.verify import Problem
from mirror.storage import FileStorage, MemoryStorage, Storage
from mirror.storage.base import walk_files
from mirror.sync.engine import Options, RunReport, Syncer
from mirror.verify import engine as verify_engine
from mirror.verify.engine import VerifyOptions
from mirror.verify.store import VerifyState
from tests.fakepypi import BuiltFile, FakePyPI, build_wheel
from tests.s3server import SeaweedFS

BACKENDS = ["file", "memory", "s3"]


@dataclasses.dataclass
class Site:
    """One mirror: its config, its state and its storage (the backend under test)."""

    config: Config
    state: VerifyState
    storage: Storage
    memory: MemoryStorage | None

    def sync(self, *, force_check: bool = False) -> RunReport:
        filters = load_chain(self.config.filters, str(self.config.source))

        async def run() -> RunReport:
            async with Upstream(self.config) as upstream, self.storage.publishing():
                options = Options(force_check=force_check)
                return await Syncer(self.config, self.state, self.storage, upstream, filters, _quiet(), options).run()

        return anyio.run(run, backend="asyncio")

    def verify(self, **options: bool) -> verify_engine.VerifyReport:
        report = verify_engine.run(self.config, self.state, self.storage, _quiet(), VerifyOptions(**options))
        self.state.finish_pass()
        return report


def _quiet() -> PlainReporter:
    return PlainReporter(io.StringIO())


def make_site(
    tmp_path: Path,
    backend: str,
    upstream: FakePyPI | None,
    filters: FiltersConfig | None = None,
    s3: SeaweedFS | None = None,
) -> Site:
    config = Config(
        source=tmp_path / "mirror.toml",
        directory=tmp_path / "m",
        upstream=None if upstream is None else upstream.simple_url,
        workers=4,
        timeout=5,
        filters=filters or FiltersConfig(),
    )
    state = VerifyState(config.state_dir / "state.sqlite3")
    memory = MemoryStorage(on_change=state.record_change) if backend == "memory" else None
    storage: Storage = memory or FileStorage(config.web, on_change=state.record_change)
    if backend == "s3":
        assert s3 is not None, "the S3 backend needs the seaweedfs fixture"
        storage = s3.storage(on_change=state.record_change)
        config = dataclasses.replace(config, storage=s3.config(storage.where.removeprefix("s3://")))
    return Site(config, state, storage, memory)


def server_for(request: pytest.FixtureRequest, backend: str) -> SeaweedFS | None:
    """The session's SeaweedFS when ``backend`` needs it (started only then)."""
    return request.getfixturevalue("seaweedfs") if backend == "s3" else None


@pytest.fixture(params=BACKENDS)
def site(request: pytest.FixtureRequest, tmp_path: Path, upstream: FakePyPI) -> Iterator[Site]:
    made = make_site(tmp_path, request.param, upstream, s3=server_for(request, request.param))
    yield made
    made.state.close()


def tree(storage: Storage) -> dict[str, bytes]:
    return {path: b"".join(storage.read(path)) for path in walk_files(storage)}


def check_consistent(storage: Storage) -> set[str]:
    """What a client sees, read through the protocol: every link resolves to its bytes. Returns the projects."""
    files = tree(storage)
    root = json.loads(files["simple/index.v1_json"])
    assert files["simple/index.html"] == files["simple/index.v1_html"]
    listed = {p["name"] for p in root["projects"]}
    for name in listed:
        html, v1_html, v1_json = layout.page_paths(layout.project_name(name))
        assert files[html] == files[v1_html]
        for entry in json.loads(files[v1_json])["files"]:
            target = _resolve(f"simple/{name}", unquote(entry["url"]))
            assert hashlib.sha256(files[target]).hexdigest() == entry["hashes"]["sha256"], target
            if entry.get("core-metadata"):
                meta = files[target + layout.METADATA_SUFFIX]
                assert hashlib.sha256(meta).hexdigest() == entry["core-metadata"]["sha256"]
    assert not any(layout.is_temp_name(p.rpartition("/")[2]) for p in files)
    return listed


def _resolve(base: str, link: str) -> str:
    parts = base.split("/")
    for part in link.split("/"):
        if part == "..":
            parts.pop()
        elif part != ".":
            parts.append(part)
    return "/".join(parts)


def seed(up: FakePyPI) -> None:
    up.add_release("demo", "1.0", requires_dist=["dep>=1"])
    up.add_release("demo", "1.1", requires_python=">=3.8")
    up.add_release("dep", "2.0")
    up.add_release("Other_Pkg", "0.1")


def test_a_sync_publishes_a_consistent_tree_and_follows_changes(site: Site, upstream: FakePyPI) -> None:
    seed(upstream)
    report = site.sync()
    assert report.result == "ok" and report.synced == 3
    assert check_consistent(site.storage) == {"demo", "dep", "other-pkg"}
    if site.memory is not None:
        assert site.memory.publishing_runs == 1
    upstream.add_release("demo", "1.2")
    upstream.remove_file("dep", "dep-2.0.tar.gz")
    upstream.remove_project("other-pkg")
    report = site.sync()
    assert (report.result, report.synced, report.deleted) == ("ok", 2, 1)
    files = tree(site.storage)
    assert check_consistent(site.storage) == {"demo", "dep"}
    assert not any("other" in path.lower() for path in files)
    assert not any(path.endswith("dep-2.0.tar.gz") for path in files)
    assert site.verify(hashes=True).counts == {}


def test_every_backend_ends_with_the_same_bytes(
    request: pytest.FixtureRequest, tmp_path: Path, upstream: FakePyPI
) -> None:
    seed(upstream)
    trees = []
    for backend in BACKENDS:
        made = make_site(tmp_path / backend, backend, upstream, s3=server_for(request, backend))
        assert made.sync().result == "ok"
        trees.append(tree(made.storage))
        made.state.close()
    assert trees[0] == trees[1] == trees[2]


def test_an_interrupted_runs_leftovers_are_cleaned_by_the_next(site: Site, upstream: FakePyPI) -> None:
    seed(upstream)
    site.sync()
    leftover = site.storage.open_async_writer("packages/zz/stray.whl")
    anyio.run(leftover.write, b"z" * 300_000, backend="asyncio")  # a temp file a killed run left
    if site.storage.temp_names:  # an object store shows nothing of a write in flight
        assert [layout.is_temp_name(e.name) for e in site.storage.scan("packages/zz")] == [True]
    # A file a killed run published but never recorded, that no page links.
    site.storage.write_atomic("packages/zy/unrecorded.whl", [b"u" * 1000])
    (site.config.state_dir / "temp-dirs.journal").write_text("packages/zz\npackages/zy\n")  # as the killed run noted
    site.sync(force_check=True)
    assert list(walk_files(site.storage, "packages/zz")) == list(walk_files(site.storage, "packages/zy")) == []
    assert check_consistent(site.storage) == {"demo", "dep", "other-pkg"}


def test_verify_finds_damage_and_repair_fixes_it(site: Site, upstream: FakePyPI) -> None:
    seed(upstream)
    site.sync()
    wheel = next(p for p in walk_files(site.storage) if p.endswith("demo-1.0-py3-none-any.whl"))
    sdist = next(p for p in walk_files(site.storage) if p.endswith("dep-2.0.tar.gz"))
    site.storage.write_atomic(wheel, [b"not the wheel"])
    site.storage.delete(sdist)
    site.storage.write_atomic("packages/orphan.whl", [b"nobody links me"])
    found = site.verify(hashes=True).counts
    assert found[Problem.WRONG_SIZE] == 1 and found[Problem.MISSING] == 1 and found[Problem.UNTRACKED] == 1
    repaired = site.verify(hashes=True, repair=True, delete_orphans=True)
    assert repaired.repaired == 2 and repaired.orphans_removed == 1
    assert site.verify(hashes=True).counts == {}
    check_consistent(site.storage)


def test_the_dependency_closure_reads_wheels_through_the_storage(site: Site, upstream: FakePyPI) -> None:
    def bare(built: BuiltFile) -> BuiltFile:
        return dataclasses.replace(built, metadata=None)  # no .metadata: the wheel itself is read

    upstream.add_release("app", "1.0", files=[bare(build_wheel("app", "1.0", requires_dist=["lib"]))])
    upstream.add_release("lib", "1.0", files=[bare(build_wheel("lib", "1.0", requires_dist=["helper"]))])
    upstream.add_release("helper", "1.0")
    upstream.add_release("unrelated", "1.0")
    options = {"allowlist": MappingProxyType({"projects": ["app"], "dependencies": True})}
    site = dataclasses.replace(
        site, config=dataclasses.replace(site.config, filters=FiltersConfig(("allowlist",), MappingProxyType(options)))
    )
    report = site.sync()
    assert report.result == "ok" and report.unresolved == []
    assert check_consistent(site.storage) == {"app", "lib", "helper"}


@pytest.mark.parametrize(("source", "target"), [("memory", "file"), ("file", "memory"), ("s3", "file"), ("file", "s3")])
def test_a_bundle_exported_from_one_backend_imports_into_the_other(
    request: pytest.FixtureRequest, tmp_path: Path, upstream: FakePyPI, source: str, target: str
) -> None:
    seed(upstream)
    online = make_site(tmp_path / "online", source, upstream, s3=server_for(request, source))
    online.sync()
    done = export(online.config, online.state, online.storage, ExportOptions(tmp_path / "usb"))
    assert done is not None
    offline = make_site(tmp_path / "offline", target, None, s3=server_for(request, target))
    report = import_bundles(offline.config, offline.state, offline.storage, [tmp_path / "usb"])
    assert [h.id for h in report.applied] == [done[0].id]
    assert tree(offline.storage) == tree(online.storage)
    assert offline.verify(hashes=True).counts == {}
    online.state.close()
    offline.state.close()
