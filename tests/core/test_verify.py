"""The pure half of verify: merge-joining sorted streams, classifying paths, checking pages."""

from __future__ import annotations

import random

from packaging.utils import NormalizedName

from mirror.core import render, verify
from mirror.core.models import DistFile, ProjectPage
from mirror.core.parse import parse_project_html, parse_project_json
from mirror.core.verify import Finding, Joined, OnDisk, Problem, Recorded, Referenced

SHA = "a" * 64


def rec(path: str, size: int = 3, project: str = "p") -> Recorded:
    return Recorded(path, project, size, SHA)


def test_join_merges_three_sorted_streams_one_row_per_path() -> None:
    rows = list(
        verify.join(
            [rec("packages/a"), rec("packages/c")],
            [Referenced("packages/a", "p"), Referenced("packages/b", "p")],
            [OnDisk("packages/a", 3), OnDisk("packages/d", 1)],
        )
    )
    assert [r.path for r in rows] == ["packages/a", "packages/b", "packages/c", "packages/d"]
    assert rows[0].recorded and rows[0].referenced and rows[0].disk
    assert rows[1].recorded is None and rows[1].referenced and rows[1].disk is None
    assert rows[2].recorded and rows[2].referenced is None and rows[2].disk is None
    assert rows[3].recorded is None and rows[3].disk == OnDisk("packages/d", 1)


def test_join_of_random_streams_covers_the_union_in_order() -> None:
    rng = random.Random(4)
    universe = [f"packages/{i:05d}" for i in range(2000)]
    sides = [sorted(p for p in universe if rng.random() < 0.5) for _ in range(3)]
    rows = list(
        verify.join(
            (rec(p) for p in sides[0]), (Referenced(p, "p") for p in sides[1]), (OnDisk(p, 3) for p in sides[2])
        )
    )
    assert [r.path for r in rows] == sorted(set().union(*sides))
    for row in rows:
        assert (row.recorded is not None) == (row.path in sides[0])
        assert (row.referenced is not None) == (row.path in sides[1])
        assert (row.disk is not None) == (row.path in sides[2])


def classify(recorded: Recorded | None, referenced: Referenced | None, disk: OnDisk | None) -> Problem | None:
    path = next(x.path for x in (recorded, referenced, disk) if x is not None)
    finding = verify.classify(Joined(path, recorded, referenced, disk))
    return None if finding is None else finding.problem


def test_classify_every_combination() -> None:
    path = "packages/x.whl"
    ref = Referenced(path, "p")
    assert classify(rec(path), ref, OnDisk(path, 3)) is None
    assert classify(rec(path), ref, None) is Problem.MISSING
    assert classify(rec(path), None, None) is Problem.MISSING
    assert classify(rec(path), ref, OnDisk(path, 4)) is Problem.WRONG_SIZE
    assert classify(None, ref, OnDisk(path, 3)) is Problem.BROKEN_LINK
    assert classify(None, ref, None) is Problem.BROKEN_LINK
    assert classify(rec(path, project="q"), ref, OnDisk(path, 3)) is Problem.FOREIGN_LINK
    assert classify(None, None, OnDisk(path, 3)) is Problem.UNTRACKED
    assert classify(rec(path), None, OnDisk(path, 3)) is Problem.UNREFERENCED
    temp = "packages/.x.whl.0a1b2c3d.mirror-tmp"
    assert classify(None, None, OnDisk(temp, 1)) is Problem.TEMP


def test_repair_and_orphan_kinds_do_not_overlap() -> None:
    for problem in Problem:
        assert not (problem.repairable and problem.orphan), problem
    assert [p for p in Problem if not (p.repairable or p.orphan)] == [Problem.BAD_NAME]


def test_check_hash() -> None:
    assert verify.check_hash(rec("packages/x"), SHA) is None
    finding = verify.check_hash(rec("packages/x"), "b" * 64)
    assert finding is not None and finding.problem is Problem.WRONG_HASH and finding.project == "p"


def test_walk_key_orders_a_depth_first_walk_like_full_paths() -> None:
    # "a-b" < "a/x" as strings ("-" < "/"), though the directory "a" sorts before "a-b" by name.
    entries = {"a": ["x", "y"], "a-b": None, "a.c": None, "b": ["z"]}
    walked: list[str] = []
    for name in sorted(entries, key=lambda n: verify.walk_key(n, entries[n] is not None)):
        children = entries[name]
        walked += [f"{name}/{c}" for c in children] if children is not None else [name]
    assert walked == sorted(walked)


def page(files: tuple[DistFile, ...], serial: int = 7) -> ProjectPage:
    return ProjectPage(name=NormalizedName("demo"), files=files, last_serial=serial)


def dist(url: str, metadata: bool = True) -> DistFile:
    return DistFile(
        filename=url.rpartition("/")[2],
        url=url,
        hashes={"sha256": SHA},
        size=3,
        core_metadata={"sha256": SHA} if metadata else False,
    )


def parsed(rendered: ProjectPage) -> tuple[ProjectPage, ProjectPage]:
    base = verify.page_base("demo")
    json_page = parse_project_json(render.render_project_json(rendered), base)
    html_page = parse_project_html(render.render_project_html(rendered), base, "demo")
    return json_page, html_page


def test_check_pages_lists_links_and_advertised_metadata() -> None:
    json_page, html_page = parsed(
        page((dist("../../packages/aa/demo-1.0.whl"), dist("../../packages/bb/demo-1.0.tar.gz", False)))
    )
    result = verify.check_pages("demo", json_page, html_page, 7, True)
    assert result.findings == ()
    assert [r.path for r in result.references] == [
        "packages/aa/demo-1.0.whl",
        "packages/aa/demo-1.0.whl.metadata",
        "packages/bb/demo-1.0.tar.gz",
    ]


def test_check_pages_finds_stale_split_and_escaping_pages() -> None:
    good = page((dist("../../packages/aa/demo-1.0.whl"),))
    json_page, html_page = parsed(good)
    stale = verify.check_pages("demo", json_page, html_page, 8, True)
    assert [f.problem for f in stale.findings] == [Problem.PAGE_STALE]
    _, other_html = parsed(page((dist("../../packages/aa/demo-2.0.whl"),)))
    split = verify.check_pages("demo", json_page, other_html, 7, False)
    assert [f.problem for f in split.findings] == [Problem.PAGE_BAD, Problem.PAGE_BAD]
    for url in ("../../../etc/demo-1.0.whl", "../../simple/demo-1.0.whl", "https://elsewhere.example/packages/x.whl"):
        escaping_json, escaping_html = parsed(page((dist(url),)))
        result = verify.check_pages("demo", escaping_json, escaping_html, 7, True)
        assert [f.problem for f in result.findings] == [Problem.PAGE_BAD], url
        assert result.references == ()


def test_diff_names_reports_missing_and_extra_projects() -> None:
    expected = [("a", False), ("b", False), ("d", False), ("f", True)]  # f is being deleted: optional
    findings = list(verify.diff_names(iter(expected), iter(["a", "c", "d", "e"])))
    assert [f.detail for f in findings] == [
        "does not list b",
        "lists c, which is not published",
        "lists e, which is not published",
    ]
    assert all(f.problem is Problem.ROOT_BAD for f in findings)
    assert list(verify.diff_names(iter([]), iter([]))) == []
    assert list(verify.diff_names(iter([("f", True)]), iter(["f"]))) == []


def test_finding_reads_as_one_line() -> None:
    assert str(Finding(Problem.MISSING, "packages/x", "p")) == "missing file: packages/x"
    assert str(Finding(Problem.WRONG_SIZE, "packages/x", "p", "1 bytes")) == "wrong size: packages/x (1 bytes)"


def test_page_link_is_the_relative_link_a_sync_writes() -> None:
    from mirror.core import layout

    for path in ("packages/aa/bb/x-1.0.whl", "packages/un hashed/p/x y+z%.tar.gz", "packages/ü/ß-1.0.whl"):
        assert verify.page_link(path) == layout.relative_link(layout.project_dir(NormalizedName("demo")), path)
