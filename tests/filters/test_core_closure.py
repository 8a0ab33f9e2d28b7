"""The pure parts of dependency closure and target environments."""

from __future__ import annotations

import pytest
from packaging.markers import Marker
from packaging.utils import canonicalize_name

from mirror.core.closure import Want, applies, dependencies, grow, requires_dist
from mirror.core.environments import TargetEnvironment, default_targets, expand_platform

N = canonicalize_name
LINUX_311 = TargetEnvironment.parse("3.11", "manylinux_2_28_x86_64")
MAC_313 = TargetEnvironment.parse("3.13", "macosx_14_0_arm64")
WIN_312 = TargetEnvironment.parse("3.12", "win_amd64")

METADATA = b"""Metadata-Version: 2.1
Name: app
Version: 1.0
Provides-Extra: socks
Requires-Dist: idna>=2
Requires-Dist: certifi
Requires-Dist: colorama; sys_platform == "win32"
Requires-Dist: tomli>=1.1; python_version < "3.11"
Requires-Dist: uvloop; platform_machine == "arm64" and sys_platform == "darwin"
Requires-Dist: PySocks!=1.5.7,>=1.5.6; extra == "socks"
Requires-Dist: Broken Requirement Here (
Requires-Dist: idna<4

"""


def test_requires_dist_skips_what_does_not_parse() -> None:
    assert [r.name for r in requires_dist(METADATA)] == [
        "idna", "certifi", "colorama", "tomli", "uvloop", "PySocks", "idna",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("targets", "extras", "expected"),
    [
        ((LINUX_311,), (), {"idna", "certifi"}),
        ((LINUX_311,), ("socks",), {"idna", "certifi", "pysocks"}),
        ((LINUX_311, MAC_313), (), {"idna", "certifi", "uvloop"}),
        ((WIN_312,), (), {"idna", "certifi", "colorama"}),
        ((TargetEnvironment.parse("3.10", "manylinux_2_28_aarch64"),), (), {"idna", "certifi", "tomli"}),
    ],
)
def test_dependencies_follow_markers_per_target_and_requested_extras(
    targets: tuple[TargetEnvironment, ...], extras: tuple[str, ...], expected: set[str]
) -> None:
    found = dependencies([METADATA], Want(extras=frozenset(extras)), targets)
    assert set(found) == expected
    assert found[N("idna")].specifiers == frozenset({">=2", "<4"})


def test_grow_merges_needs_but_roots_keep_their_versions() -> None:
    roots = {N("django"): Want(frozenset({">=4.2,<6"}))}
    wants = dict(roots)
    found = {N("django"): Want(frozenset({">=3.2"}), frozenset({"argon2"})), N("asgiref"): Want(frozenset({">=3.7"}))}
    grown = grow(wants, found, roots)
    assert grown[N("django")] == Want(frozenset({">=4.2,<6"}), frozenset({"argon2"}))
    grown = grow(grown, {N("asgiref"): Want(frozenset({"<4"}))}, roots)
    assert grown[N("asgiref")].specifiers == frozenset({">=3.7", "<4"})
    assert grow(grown, {N("asgiref"): Want()}, roots)[N("asgiref")].specifiers == frozenset({""})


def test_want_allows_any_of_its_specifiers() -> None:
    want = Want(frozenset({"<2", ">=3"}))
    assert [want.allows(v) for v in ("1.5", "2.5", "3.0", "4.0rc1", "not-a-version")] == [
        True, False, True, True, False,
    ]  # fmt: skip
    assert Want().allows("anything") and Want.from_key(want.key()) == want
    assert want.describe() == "<2 or >=3"


def test_marker_environment_of_a_target() -> None:
    env = MAC_313.markers()
    assert (env["sys_platform"], env["platform_machine"], env["python_version"]) == ("darwin", "arm64", "3.13")
    assert WIN_312.markers()["os_name"] == "nt" and WIN_312.markers()["platform_machine"] == "AMD64"
    assert LINUX_311.markers()["platform_machine"] == "x86_64"
    assert applies(Marker('platform_machine == "x86_64"'), (LINUX_311,), ())
    assert not applies(Marker('extra == "test"'), (LINUX_311,), ("docs",))


def test_platform_expansion_follows_installers() -> None:
    linux = expand_platform("manylinux_2_28_x86_64")
    assert linux[0] == "manylinux_2_28_x86_64" and linux[-3:] == [
        "manylinux1_x86_64",
        "manylinux2010_x86_64",
        "manylinux2014_x86_64",
    ]
    assert "manylinux_2_29_x86_64" not in linux
    assert expand_platform("manylinux2014_aarch64")[0] == "manylinux_2_17_aarch64"
    assert expand_platform("musllinux_1_2_aarch64") == [
        "musllinux_1_2_aarch64",
        "musllinux_1_1_aarch64",
        "musllinux_1_0_aarch64",
    ]
    assert "macosx_11_0_universal2" in expand_platform("macosx_14_0_arm64")
    assert len(default_targets()) == 20


def test_wheel_support_and_requires_python() -> None:
    assert LINUX_311.supports_wheel("a-1-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl")
    assert LINUX_311.supports_wheel("a-1-cp37-abi3-manylinux_2_17_x86_64.whl")
    assert not LINUX_311.supports_wheel("a-1-cp312-abi3-manylinux_2_17_x86_64.whl")
    assert not LINUX_311.supports_wheel("not-a-wheel.whl")
    assert LINUX_311.allows_python(">=3.8,<3.12") and not LINUX_311.allows_python(">=3.12")
    assert LINUX_311.allows_python(None) and LINUX_311.allows_python("garbage>>")


def test_dependencies_are_judged_only_for_the_targets_that_need_the_project() -> None:
    targets = (LINUX_311, WIN_312)
    everywhere = dependencies([METADATA], Want(), targets)
    assert everywhere[N("colorama")].targets == frozenset({1}) and everywhere[N("idna")].targets == frozenset({0, 1})
    linux_only = dependencies([METADATA], Want(targets=frozenset({0})), targets)
    assert set(linux_only) == {"idna", "certifi"}
    merged = Want(targets=frozenset({0})).merge(Want(targets=frozenset({1})))
    assert merged.targets == frozenset({0, 1}) and Want().merge(merged).targets is None
    assert Want.from_key(merged.key()) == merged
    assert Want.from_key('[[""], []]') == Want()  # a closure stored before targets were recorded
