from dataclasses import replace

import pytest
from packaging.utils import NormalizedName

from mirror.core.models import DistFile, IndexEntry, ProjectPage, ProjectStatus, Provenance
from mirror.core.plan import (
    Action,
    IndexChange,
    LocalFile,
    LocalProject,
    check_deletion_guard,
    check_serial,
    plan_index,
    plan_project,
    published_page,
)
from mirror.errors import DeletionGuardTripped, IntegrityError

N = NormalizedName


def entries(*pairs):
    return [IndexEntry(N(n), s) for n, s in pairs]


def local(*pairs):
    return [LocalProject(N(n), s) for n, s in pairs]


def test_plan_index_merges_sorted_streams():
    changes = list(
        plan_index(
            entries(("a", 5), ("b", 7), ("d", 1), ("e", None)),
            local(("a", 5), ("b", 6), ("c", 3), ("e", 2)),
        )
    )
    assert changes == [
        IndexChange(Action.SYNC, N("b"), 7),
        IndexChange(Action.DELETE, N("c")),
        IndexChange(Action.SYNC, N("d"), 1),
        IndexChange(Action.SYNC, N("e"), None),
    ]


def test_plan_index_syncs_projects_whose_last_sync_did_not_complete():
    assert list(plan_index(entries(("a", 5)), local(("a", None)))) == [IndexChange(Action.SYNC, N("a"), 5)]


def test_plan_index_on_empty_sides():
    assert list(plan_index([], local(("a", 1)))) == [IndexChange(Action.DELETE, N("a"))]
    assert list(plan_index(entries(("a", 1)), [])) == [IndexChange(Action.SYNC, N("a"), 1)]
    assert list(plan_index([], [])) == []


def test_deletion_guard():
    check_deletion_guard(1, 1, 0.2)  # a single project may always go
    check_deletion_guard(2, 10, 0.2)
    with pytest.raises(DeletionGuardTripped, match="refusing to delete 9 of 10"):
        check_deletion_guard(9, 10, 0.2)
    check_deletion_guard(9, 10, 1.0)


def test_check_serial():
    assert check_serial("a", None, None)
    assert check_serial("a", 5, 5) and check_serial("a", 5, 6)
    assert not check_serial("a", 5, 4) and not check_serial("a", 5, None)


SHA1, SHA2, MSHA = "1" * 64, "2" * 64, "3" * 64


def dist(name, sha=SHA1, size=10, meta=True, url=None):
    return DistFile(
        filename=name,
        url=url or f"https://files.example/packages/aa/bb/{name[:4]}/{name}",
        hashes={"sha256": sha},
        size=size,
        core_metadata={"sha256": MSHA} if meta else False,
    )


def test_plan_project_downloads_new_files_then_metadata_and_deletes_gone_ones():
    page = ProjectPage(N("demo"), (dist("demo-1.0-py3-none-any.whl"), dist("demo-1.0.tar.gz", SHA2, meta=False)))
    gone = "packages/aa/bb/old/demo-0.9.tar.gz"
    held = {gone: LocalFile(gone, 3, SHA1)}
    plan = plan_project(page, held)
    assert [d.path for d in plan.downloads] == [
        "packages/aa/bb/demo/demo-1.0-py3-none-any.whl",
        "packages/aa/bb/demo/demo-1.0.tar.gz",
    ]
    assert [d.path for d in plan.metadata] == ["packages/aa/bb/demo/demo-1.0-py3-none-any.whl.metadata"]
    assert plan.metadata[0].url.endswith(".whl.metadata")
    assert plan.metadata[0].hashes == {"sha256": MSHA}
    assert plan.deletes == (gone,)


def test_plan_project_keeps_files_it_already_holds():
    whl = dist("demo-1.0-py3-none-any.whl")
    path = "packages/aa/bb/demo/demo-1.0-py3-none-any.whl"
    held = {path: LocalFile(path, 10, SHA1), path + ".metadata": LocalFile(path + ".metadata", 4, MSHA)}
    plan = plan_project(ProjectPage(N("demo"), (whl,)), held)
    assert plan.downloads == () and plan.metadata == () and plan.deletes == ()


def test_plan_project_refetches_a_file_whose_hash_changed():
    path = "packages/aa/bb/demo/demo-1.0-py3-none-any.whl"
    plan = plan_project(
        ProjectPage(N("demo"), (dist("demo-1.0-py3-none-any.whl", meta=False),)),
        {path: LocalFile(path, 10, SHA2)},
    )
    assert [d.path for d in plan.downloads] == [path]


def test_quarantined_project_offers_nothing_and_loses_its_files():
    path = "packages/aa/bb/demo/demo-1.0-py3-none-any.whl"
    page = ProjectPage(N("demo"), (dist("demo-1.0-py3-none-any.whl", meta=False),), status=ProjectStatus("quarantined"))
    plan = plan_project(page, {path: LocalFile(path, 10, SHA1)})
    assert plan.files == () and plan.downloads == () and plan.deletes == (path,)


def test_missing_sha256_is_refused_unless_allowed():
    unhashed = DistFile("demo-1.0.tar.gz", "http://h/f/demo-1.0.tar.gz", {})
    with pytest.raises(IntegrityError, match="no sha256"):
        plan_project(ProjectPage(N("demo"), (unhashed,)), {})
    plan = plan_project(ProjectPage(N("demo"), (unhashed,)), {}, require_hashes=False)
    assert plan.downloads[0].path == "packages/unhashed/demo/demo-1.0.tar.gz"


def test_metadata_without_hash_is_not_mirrored():
    whl = DistFile(
        "demo-1.0-py3-none-any.whl",
        "https://h/packages/a/demo-1.0-py3-none-any.whl",
        {"sha256": SHA1},
        core_metadata=True,
    )
    plan = plan_project(ProjectPage(N("demo"), (whl,)), {})
    assert plan.files[0].metadata is None


def test_published_page_links_relatively_and_advertises_only_metadata_on_disk():
    whl, sdist = dist("demo-1.0-py3-none-any.whl"), dist("demo-1.0.tar.gz", SHA2)
    page = ProjectPage(N("demo"), (whl, sdist), versions=("1.0",), last_serial=7)
    plan = plan_project(page, {})
    base = "packages/aa/bb/demo/"
    on_disk = {
        base + whl.filename: LocalFile(base + whl.filename, 10, SHA1),
        base + sdist.filename: LocalFile(base + sdist.filename, 10, SHA2),
        base + whl.filename + ".metadata": LocalFile(base + whl.filename + ".metadata", 4, MSHA),
    }
    out = published_page(plan, on_disk, ("1.0",))
    assert out.files[0].url == "../../packages/aa/bb/demo/demo-1.0-py3-none-any.whl"
    assert out.files[0].core_metadata == {"sha256": MSHA}
    assert out.files[1].core_metadata is False  # offered upstream, but not on disk
    assert out.last_serial == 7 and out.versions == ("1.0",)
    with pytest.raises(KeyError):
        published_page(plan, {}, ("1.0",))


def test_metadata_path_that_collides_with_a_distribution_is_not_mirrored():
    whl = dist("demo-1.0-py3-none-any.whl")
    clash = dist("demo-1.0-py3-none-any.whl.metadata", SHA2, meta=False)
    plan = plan_project(ProjectPage(N("demo"), (whl, clash)), {})
    assert plan.files[0].metadata is None and plan.metadata == ()
    assert [d.path.rsplit("/", 1)[1] for d in plan.downloads] == [whl.filename, clash.filename]


def test_plan_project_fetches_provenance_after_files_keeps_it_and_drops_it_with_its_file():
    whl = replace(
        dist("demo-1.0-py3-none-any.whl"),
        provenance=Provenance("https://pypi.example/integrity/demo-1.0-py3-none-any.whl/provenance", {"sha256": SHA2}),
    )
    path = "packages/aa/bb/demo/demo-1.0-py3-none-any.whl"
    plan = plan_project(ProjectPage(N("demo"), (whl,)), {})
    assert [(d.path, d.url, d.hashes) for d in plan.provenance] == [
        (path + ".provenance", whl.provenance.url, {"sha256": SHA2})
    ]
    assert plan.fetches[-1] == plan.provenance[0]  # after the file and its metadata
    held = {
        path: LocalFile(path, 10, SHA1),
        path + ".metadata": LocalFile(path + ".metadata", 4, MSHA),
        path + ".provenance": LocalFile(path + ".provenance", 7, SHA2),
    }
    again = plan_project(ProjectPage(N("demo"), (whl,)), held)
    assert again.fetches == () and again.deletes == ()
    published = published_page(again, held, ("1.0",)).files[0]
    assert published.provenance == Provenance(
        "../../packages/aa/bb/demo/demo-1.0-py3-none-any.whl.provenance", {"sha256": SHA2}
    )
    # The upstream stops offering it: it goes (and its file stays).
    dropped = plan_project(ProjectPage(N("demo"), (replace(whl, provenance=None),)), held)
    assert dropped.deletes == (path + ".provenance",)
    assert published_page(dropped, held, ("1.0",)).files[0].provenance is None
