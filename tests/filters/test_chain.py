"""FilterChain: order, reasons, resolving plugins, fingerprints and expiring drops."""

from __future__ import annotations

from packaging.utils import canonicalize_name

from mirror.core.closure import Want
from mirror.core.filters import Decision, FilterChain, Release, file_version
from mirror.testing import build, dist, page
from mirror_plugins import projects, releases

N = canonicalize_name


def test_resolving_allowlists_merge_their_roots_and_obey_the_closure() -> None:
    one = build(projects.allowlist, {"projects": ["a>=1"], "dependencies": True}, name="allowlist")
    two = build(projects.allowlist, {"projects": ["a<3", "b"], "dependencies": True}, name="second")
    chain = FilterChain((one, two))
    roots = chain.dependency_roots()
    assert roots == {N("a"): Want(frozenset({">=1", "<3"})), N("b"): Want()}
    assert not chain.keep_project(N("c"))
    grown = chain.with_closure({**roots, N("c"): Want(frozenset({"<2"}))})
    assert grown.keep_project(N("c"))
    assert [v.dropped is None for v in grown.explain(page("c", "c-1.0.tar.gz", "c-2.0.tar.gz"))] == [True, False]
    # The fingerprint follows the roots, not the closure: it is stable across the rounds of a run.
    assert grown.fingerprint() == chain.fingerprint() and "allowlist" in chain.fingerprint()
    assert FilterChain((build(releases.latest),)).dependency_roots() is None


def test_a_project_drop_explains_every_file() -> None:
    chain = FilterChain((build(projects.blocklist, {"projects": ["bad"]}, name="blocklist"),))
    verdicts = chain.explain(page("bad", "bad-1.tar.gz", "bad-1-py3-none-any.whl"))
    assert {(v.dropped.plugin, v.dropped.reason) for v in verdicts if v.dropped} == {("blocklist", "in the blocklist")}


def test_filter_page_until_reports_the_earliest_expiry() -> None:
    cooldown = build(releases.cooldown, {"days": 10}, name="cooldown")  # now: 2025-01-01
    files = [
        dist("x-1.tar.gz", upload_time="2024-12-28T00:00:00Z"),
        dist("x-2.tar.gz", upload_time="2024-12-30T00:00:00Z"),
        dist("x-0.tar.gz", upload_time="2024-01-01T00:00:00Z"),
    ]
    kept, until = FilterChain((cooldown,)).filter_page_until(page("x", *files))
    assert [f.filename for f in kept.files] == ["x-0.tar.gz"]
    assert until == "2025-01-07T00:00:00.000000Z"
    assert FilterChain(()).filter_page_until(page("x", *files)) == (page("x", *files), None)


def test_releases_group_files_by_the_version_in_their_names() -> None:
    files = [dist("p-1.0-py3-none-any.whl", size=5, upload_time="2024-02-01T00:00:00Z"), dist("p-1.0.tar.gz", size=7)]
    files.append(dist("p-setup.exe"))
    seen: list[Release] = []

    class Recorder:
        def filter_releases(self, project: str, found: list[Release]) -> dict[str, Decision]:
            seen.extend(found)
            return {}

    FilterChain((Recorder(),)).explain(page("p", *files))
    grouped = seen
    assert [(r.version, len(r.files)) for r in grouped] == [("1.0", 2), ("", 1)]
    assert grouped[0].size == 12 and grouped[0].upload_time == "2024-02-01T00:00:00Z"
    assert Release("", ()).parsed is None and file_version("P-1.0.post1.tar.gz") == "1.0.post1"


def test_wanted_projects_is_what_every_naming_plugin_allows() -> None:
    allow = build(projects.allowlist, {"projects": ["a", "b", "c"]}, name="allowlist")
    narrow = build(projects.allowlist, {"projects": ["b", "c", "d"]}, name="second")
    block = build(projects.blocklist, {"projects": ["c"]}, name="blocklist")
    assert FilterChain((allow, narrow, block)).wanted_projects() == frozenset({N("b")})
    assert FilterChain((allow,)).wanted_projects() == frozenset({N("a"), N("b"), N("c")})
    # Without a plugin that names its projects, any name may be kept: no finite set.
    assert FilterChain((block, build(releases.latest))).wanted_projects() is None
    resolving = build(projects.allowlist, {"projects": ["a"], "dependencies": True}, name="allowlist")
    grown = FilterChain((resolving,)).with_closure({N("a"): Want(), N("dep"): Want()})
    assert grown.wanted_projects() == frozenset({N("a"), N("dep")})


def test_pulled_projects_pass_a_project_set_but_not_the_other_filters() -> None:
    """Pull-through: an allowlist names what is mirrored in advance; a blocklist still refuses."""
    allow = build(projects.allowlist, {"projects": ["seed"]}, name="allowlist")
    block = build(projects.blocklist, {"projects": ["evil"]}, name="blocklist")
    chain = FilterChain((allow, block))
    assert not chain.keep_project(N("demo"))
    pulled = chain.with_pulled([N("demo"), N("evil")])
    assert pulled.keep_project(N("demo")) and pulled.keep_project(N("seed"))
    decision = pulled.project_decision(N("evil"))
    assert decision is not None and decision.plugin == "blocklist"
    assert pulled.wanted_projects() == frozenset({N("seed"), N("demo")})
    # Lazy: pulled and not named by the allowlist; naming it there makes it a mirrored project.
    assert pulled.lazy(N("demo")) and not pulled.lazy(N("seed")) and not chain.lazy(N("demo"))
    assert not chain.with_pulled([N("seed")]).lazy(N("seed"))
    # The pulled set survives the closure rounds and does not move the fingerprint (no replan of everything).
    assert pulled.with_closure({}).pulled == pulled.pulled
    assert pulled.fingerprint() == chain.fingerprint()
    # Without any project set, nothing narrows the names: a pulled project is still lazy.
    assert FilterChain((block,)).with_pulled([N("demo")]).lazy(N("demo"))
