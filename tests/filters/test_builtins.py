"""Each built-in filter, pure: built through its real factory, run on pages made in memory."""

from __future__ import annotations

from pathlib import Path

import pytest
from packaging.utils import canonicalize_name

from mirror.core.filters import FilterChain, ProjectFilter
from mirror.errors import ConfigError
from mirror.testing import build, dist, explain, kept, page
from mirror_plugins import environments, names, projects, releases, size, yanked

N = canonicalize_name


def test_allowlist_keeps_listed_projects_and_versions() -> None:
    plugin = build(projects.allowlist, {"projects": ["Django>=4.2,<6", "httpx"]}, name="allowlist")
    assert isinstance(plugin, ProjectFilter)
    assert plugin.filter_project(N("django")) is None and plugin.filter_project(N("httpx")) is None
    drop = plugin.filter_project(N("flask"))
    assert drop is not None and (drop.keep, drop.plugin, drop.reason) == (False, "allowlist", "not in the allowlist")
    files = ("django-4.1-py3-none-any.whl", "django-4.2-py3-none-any.whl", "django-5.1.tar.gz", "django-6.0.tar.gz")
    decisions = explain(plugin, page("django", *files))
    assert [f for f, d in decisions.items() if d is None] == ["django-4.2-py3-none-any.whl", "django-5.1.tar.gz"]
    assert decisions["django-6.0.tar.gz"].reason == "version 6.0 is outside <6,>=4.2"  # type: ignore[union-attr]


def test_allowlist_reads_requirements_files_and_warns_about_what_it_skips(tmp_path: Path) -> None:
    (tmp_path / "reqs").mkdir()
    (tmp_path / "reqs" / "requirements.txt").write_text(
        "# pinned\n"
        "requests==2.32.3  # http\n"
        "-r other.txt\n"
        "--index-url https://example.org/simple\n"
        "git+https://example.org/repo.git#egg=thing\n"
        "pkg @ https://example.org/pkg.whl\n"
        "./local/dir\n"
        "urllib3>=2 ; python_version >= '3.8' \\\n"
        "    and sys_platform != 'win32'\n"
        "not a requirement!!\n"
    )
    warnings: list[str] = []
    plugin = build(
        projects.allowlist, {"requirements": ["reqs/requirements.txt"]}, config_dir=tmp_path, warnings=warnings
    )
    assert kept(plugin, page("requests", "requests-2.32.3.tar.gz", "requests-2.31.0.tar.gz")) == [
        "requests-2.32.3.tar.gz"
    ]
    assert plugin.filter_project(N("urllib3")) is None  # type: ignore[attr-defined]
    assert len(warnings) == 6
    assert warnings[0].endswith(
        "requirements.txt:3: '-r other.txt' skipped: options, URLs and paths name no project on the index"
    )
    assert any(":10: 'not a requirement!!' skipped: not a requirement" in w for w in warnings)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({}, "[filters.allowlist] projects and requirements name no project"),
        ({"projects": "httpx"}, "[filters.allowlist] projects must be a list of strings"),
        ({"projects": ["httpx"], "dependencies": "yes"}, "[filters.allowlist] dependencies must be true or false"),
        ({"projects": ["httpx"], "dependancies": True}, "[filters.allowlist] dependancies is not an option"),
        ({"projects": ["a b c"]}, "[filters.allowlist] projects has an entry that is not a requirement"),
        ({"requirements": ["missing.txt"]}, "[filters.allowlist] requirements names"),
    ],
)
def test_allowlist_bad_options_name_the_plugin_and_the_key(tmp_path: Path, options: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=None) as caught:
        build(projects.allowlist, options, name="allowlist", config_dir=tmp_path)
    assert message in str(caught.value)


def test_blocklist_drops_projects_or_just_versions() -> None:
    plugin = build(projects.blocklist, {"projects": ["evil", "numpy==1.26.0"]}, name="blocklist")
    assert plugin.filter_project(N("evil")).reason == "in the blocklist"  # type: ignore[attr-defined, union-attr]
    assert kept(plugin, page("numpy", "numpy-1.26.0.tar.gz", "numpy-1.26.1.tar.gz")) == ["numpy-1.26.1.tar.gz"]


def test_environments_keep_what_a_target_can_install() -> None:
    plugin = build(
        environments.environments,
        {
            "targets": [
                {"python": "3.11", "platform": "manylinux_2_28_x86_64"},
                {"python": "3.13", "platform": "macosx_14_0_arm64"},
            ],
            "sdists": False,
        },
        name="environments",
    )
    files = [
        "x-1-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",  # older glibc: installable
        "x-1-cp311-cp311-manylinux_2_34_x86_64.whl",  # newer glibc than the target
        "x-1-cp312-cp312-manylinux_2_17_x86_64.whl",  # no 3.12 target
        "x-1-cp39-abi3-manylinux_2_17_x86_64.whl",  # abi3 from 3.9 runs on 3.11
        "x-1-cp313-cp313-macosx_11_0_arm64.whl",
        "x-1-cp313-cp313t-macosx_11_0_arm64.whl",  # free-threaded ABI: not a target
        "x-1-cp311-cp311-musllinux_1_2_x86_64.whl",
        "x-1-cp311-cp311-win_amd64.whl",
        "x-1-py3-none-any.whl",
        "x-1-py2-none-any.whl",
        "x-1.tar.gz",
        "x-1.win32.exe",
    ]
    decisions = explain(plugin, page("x", *files))
    assert [f for f, d in decisions.items() if d is None] == [files[0], files[3], files[4], files[8]]
    assert decisions["x-1.tar.gz"].reason == "an sdist, and sdists = false"  # type: ignore[union-attr]
    assert decisions["x-1.win32.exe"].reason == "neither a wheel nor an sdist"  # type: ignore[union-attr]


def test_environments_honour_requires_python() -> None:
    plugin = build(environments.environments, {"targets": [{"python": "3.11", "platform": "manylinux_2_28_x86_64"}]})
    old = dist("y-1.0-py3-none-any.whl", requires_python=">=3.12")
    new = dist("y-2.0-py3-none-any.whl", requires_python=">=3.9")
    sdist = dist("y-2.0.tar.gz", requires_python=">=3.9")
    assert kept(plugin, page("y", old, new, sdist)) == ["y-2.0-py3-none-any.whl", "y-2.0.tar.gz"]
    assert "admits none of the target Pythons" in explain(plugin, page("y", old))[old.filename].reason  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("targets", "message"),
    [
        ([], "targets must name at least one"),
        ([{"python": "3.11"}], "each target needs python"),
        ([{"python": "py311", "platform": "win_amd64"}], "python must look like"),
        ([{"python": "3.11", "platform": "amiga"}], "platform 'amiga' is not a wheel platform tag"),
        ([{"python": "3.11", "platform": "win_amd64", "abi": "x"}], "unknown key 'abi'"),
    ],
)
def test_environments_bad_targets(targets: list, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        build(environments.environments, {"targets": targets}, name="environments")
    assert "[filters.environments] targets" in str(caught.value) and message in str(caught.value)


def test_prerelease_global_and_per_project() -> None:
    files = ("p-1.0.tar.gz", "p-2.0rc1.tar.gz", "p-2.0.dev3.tar.gz")
    drop_all = build(releases.prerelease, {"keep-projects": ["P"]})
    assert kept(drop_all, page("q", *[f.replace("p-", "q-") for f in files])) == ["q-1.0.tar.gz"]
    assert kept(drop_all, page("p", *files)) == list(files)
    keep_all = build(releases.prerelease, {"keep": True, "drop-projects": ["p"]})
    assert kept(keep_all, page("p", *files)) == ["p-1.0.tar.gz"]
    assert explain(drop_all, page("q", "q-2.0rc1.tar.gz"))["q-2.0rc1.tar.gz"].reason == "2.0rc1 is a pre-release"  # type: ignore[union-attr]


def test_latest_by_version_and_by_upload_time() -> None:
    old_but_new = dist("z-9.0.tar.gz", upload_time="2020-01-01T00:00:00Z")
    files = [dist(f"z-{v}.tar.gz", upload_time=f"2024-0{v}-01T00:00:00Z") for v in ("1.0", "2.0", "3.0")]
    by_version = build(releases.latest, {"count": 2})
    assert kept(by_version, page("z", *files, old_but_new)) == ["z-3.0.tar.gz", "z-9.0.tar.gz"]
    by_time = build(releases.latest, {"count": 2, "by": "upload-time", "exempt-projects": ["other"]})
    assert kept(by_time, page("z", *files, old_but_new)) == ["z-2.0.tar.gz", "z-3.0.tar.gz"]
    assert kept(by_time, page("other", "other-1.tar.gz", "other-2.tar.gz", "other-3.tar.gz")) == [
        "other-1.tar.gz", "other-2.tar.gz", "other-3.tar.gz",
    ]  # fmt: skip
    with pytest.raises(ConfigError, match=r"\[filters.latest\] by must be one of"):
        build(releases.latest, {"by": "stars"}, name="latest")
    with pytest.raises(ConfigError, match=r"\[filters.latest\] count must be at least 1"):
        build(releases.latest, {"count": 0}, name="latest")


def test_cooldown_holds_back_young_releases() -> None:
    # NOW is 2025-01-01; a 7 day cooldown admits what was uploaded before 2024-12-25.
    plugin = build(releases.cooldown, {"days": 7})
    old = dist("c-1.0.tar.gz", upload_time="2024-12-20T00:00:00Z")
    young = dist("c-2.0.tar.gz", upload_time="2024-12-30T12:00:00.123Z")
    late_wheel = dist("c-1.0-py3-none-any.whl", upload_time="2024-12-31T00:00:00+00:00")
    unknown = dist("c-0.9.tar.gz", upload_time=None)
    assert kept(plugin, page("c", old, young, unknown)) == ["c-1.0.tar.gz", "c-0.9.tar.gz"]
    # A file added to an old release recently holds back the whole release: it is in flux.
    assert kept(plugin, page("c", old, late_wheel)) == []
    reason = explain(plugin, page("c", young))["c-2.0.tar.gz"].reason  # type: ignore[union-attr]
    assert reason == "uploaded 2024-12-30T12:00:00.123Z, less than 7 days ago (cooldown)"


def test_latest_by_upload_time_without_upload_times_ranks_by_version_and_warns_once() -> None:
    warnings: list[str] = []
    by_time = build(releases.latest, {"count": 2, "by": "upload-time"}, name="latest", warnings=warnings)
    untimed = [dist(f"u-{v}.tar.gz", upload_time=None) for v in ("1.0", "3.0", "2.0", "0.5")]
    # Never the oldest: the two newest versions stay.
    assert kept(by_time, page("u", *untimed)) == ["u-3.0.tar.gz", "u-2.0.tar.gz"]
    # One release without a time is enough to rank the whole project by version.
    mixed = [dist("m-1.0.tar.gz", upload_time="2024-09-01T00:00:00Z"), dist("m-2.0.tar.gz", upload_time=None)]
    mixed.append(dist("m-3.0.tar.gz", upload_time="2024-01-01T00:00:00Z"))
    decisions = explain(by_time, page("m", *mixed))
    assert [name for name, d in decisions.items() if d is None] == ["m-2.0.tar.gz", "m-3.0.tar.gz"]
    assert decisions["m-1.0.tar.gz"].reason == "not among the latest 2 releases by version"  # type: ignore[union-attr]
    assert len(warnings) == 1 and 'by = "upload-time"' in warnings[0] and "by version instead" in warnings[0]
    # Projects with times everywhere are ranked by time, and say so.
    timed = [dist(f"t-{v}.tar.gz", upload_time=f"2024-0{9 - i}-01T00:00:00Z") for i, v in enumerate("123")]
    assert kept(by_time, page("t", *timed)) == ["t-1.tar.gz", "t-2.tar.gz"]
    assert len(warnings) == 1


def test_cooldown_keeps_untimed_releases_by_default_and_warns_once() -> None:
    warnings: list[str] = []
    plugin = build(releases.cooldown, {"days": 7}, name="cooldown", warnings=warnings)
    untimed = [dist("n-1.0.tar.gz", upload_time=None), dist("n-2.0-py3-none-any.whl", upload_time=None)]
    assert kept(plugin, page("n", *untimed)) == ["n-1.0.tar.gz", "n-2.0-py3-none-any.whl"]
    assert kept(plugin, page("o", dist("o-1.0.tar.gz", upload_time=None))) == ["o-1.0.tar.gz"]
    assert warnings == [
        "[filters.cooldown] the upstream gives no upload time for some files; their releases are kept "
        '(without-upload-time = "keep")'
    ]


def test_cooldown_can_hold_untimed_releases() -> None:
    warnings: list[str] = []
    plugin = build(releases.cooldown, {"without-upload-time": "hold"}, name="cooldown", warnings=warnings)
    old = dist("h-1.0.tar.gz", upload_time="2020-01-01T00:00:00Z")
    decisions = explain(plugin, page("h", old, dist("h-2.0.tar.gz", upload_time=None)))
    assert decisions["h-1.0.tar.gz"] is None
    held = decisions["h-2.0.tar.gz"]
    assert held is not None and held.until is None and "no upload time" in held.reason
    assert len(warnings) == 1 and "held back" in warnings[0]
    with pytest.raises(ConfigError, match=r"\[filters.cooldown\] without-upload-time must be one of"):
        build(releases.cooldown, {"without-upload-time": "maybe"}, name="cooldown")


def test_regex_on_project_and_file_names() -> None:
    plugin = build(names.regex, {"projects": ["^test-"], "files": [r"\.exe$", "-win"]})
    assert plugin.filter_project(N("test-pkg")) is not None and plugin.filter_project(N("pkg")) is None  # type: ignore[attr-defined]
    assert kept(plugin, page("pkg", "pkg-1.exe", "pkg-1-cp311-cp311-win_amd64.whl", "pkg-1.tar.gz")) == ["pkg-1.tar.gz"]
    with pytest.raises(ConfigError, match=r"\[filters.regex\] files has an invalid regular expression"):
        build(names.regex, {"files": ["("]}, name="regex")


def test_size_per_file_and_per_project() -> None:
    mb = 1024 * 1024
    files = [
        dist("s-1.0.tar.gz", size=3 * mb),
        dist("s-2.0.tar.gz", size=3 * mb),
        dist("s-3.0.tar.gz", size=3 * mb),
        dist("s-3.0-py3-none-any.whl", size=50 * mb),
    ]
    per_file = build(size.size, {"max-file-mb": 10})
    assert kept(per_file, page("s", *files)) == ["s-1.0.tar.gz", "s-2.0.tar.gz", "s-3.0.tar.gz"]
    both = build(size.size, {"max-file-mb": 10, "max-project-mb": 7})
    assert kept(both, page("s", *files)) == ["s-2.0.tar.gz", "s-3.0.tar.gz"]


def test_yanked_files_dropped_with_the_reason() -> None:
    plugin = build(yanked.yanked)
    files = [dist("w-1.tar.gz", yanked="broken"), dist("w-2.tar.gz", yanked=True), dist("w-3.tar.gz")]
    decisions = explain(plugin, page("w", *files))
    assert [d.reason if d else None for d in decisions.values()] == ["yanked: broken", "yanked", None]
    with pytest.raises(ConfigError, match=r"\[filters.plugin\] keep is not an option"):
        build(yanked.yanked, {"keep": True})


def test_chain_order_decides_who_drops_and_what_latest_counts() -> None:
    files = [dist(f"o-{v}.tar.gz") for v in ("1.0", "2.0", "3.0b1")]
    pre = build(releases.prerelease, {}, name="prerelease")
    last = build(releases.latest, {"count": 1}, name="latest")
    # Pre-releases first, then the newest: 2.0. The other order keeps the newest, a beta, then drops it.
    assert kept(FilterChain((pre, last)), page("o", *files)) == ["o-2.0.tar.gz"]
    assert kept(FilterChain((last, pre)), page("o", *files)) == []
    decisions = explain(FilterChain((last, pre)), page("o", *files))
    assert {d.plugin for d in decisions.values() if d} == {"latest", "prerelease"}
