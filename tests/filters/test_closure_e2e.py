"""End to end: an allowlist of one project, its dependency closure for two target environments,
installers resolving from the served mirror alone, and reconciling when the filters change."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest

from mirror.errors import EXIT_ENVIRONMENT, EXIT_OK, EXIT_PARTIAL
from tests.conftest import Mirror, StaticServer, check_tree, clean_env, page_files
from tests.fakepypi import BuiltFile, FakePyPI, build_wheel
from tests.installers import uv_binary

pytestmark = [pytest.mark.integration, pytest.mark.slow]

X86 = "cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64"
ARM = "cp313-cp313-manylinux_2_17_aarch64.manylinux2014_aarch64"
WIN = "cp312-cp312-win_amd64"
TARGETS = (("3.11", "manylinux_2_28_x86_64"), ("3.13", "manylinux_2_28_aarch64"))


def seed(up: FakePyPI) -> None:
    up.add_release(
        "app",
        "1.0",
        requires_dist=[
            "lib>=1",
            "fast[speed]>=2",
            "winonly; sys_platform == 'win32'",
            "oldpy; python_version < '3.12'",
        ],
    )
    up.add_release("lib", "1.0")
    up.add_release("lib", "2.0", requires_dist=["helper"])
    up.add_release("helper", "1.0", wheel_tags=[X86, ARM, WIN])
    up.add_release("fast", "1.0")
    up.add_release(
        "fast",
        "2.0",
        requires_dist=["speedup; extra == 'speed'", "slowpath; extra == 'slow'"],
        wheel_tags=["cp38-abi3-manylinux_2_17_x86_64", "cp38-abi3-manylinux_2_17_aarch64", "cp38-abi3-win_amd64"],
    )
    # oldpy is needed on the 3.11 x86_64 target only: its aarch64-only dependency is needed nowhere.
    up.add_release("oldpy", "1.0", requires_dist=["armextra; platform_machine == 'aarch64'"])
    for name in ("speedup", "slowpath", "winonly", "armextra", "unrelated"):
        up.add_release(name, "1.0")


CLOSURE = {"app", "lib", "helper", "fast", "speedup", "oldpy"}


def write_config(
    mirror: Mirror,
    upstream: FakePyPI,
    *,
    projects: str = '["app"]',
    targets: tuple[tuple[str, str], ...] = TARGETS,
    sdists: bool = False,
    blocked: str = "",
    **mirror_keys: object,
) -> None:
    mirror.write_config(upstream.simple_url, **mirror_keys)
    rows = ", ".join(f'{{ python = "{p}", platform = "{pl}" }}' for p, pl in targets)
    block = f'[filters.blocklist]\nprojects = ["{blocked}"]\n' if blocked else ""
    enabled = '["allowlist", "environments", "blocklist"]' if blocked else '["allowlist", "environments"]'
    with mirror.config.open("a") as handle:
        handle.write(
            f"[filters]\nenabled = {enabled}\n"
            f"[filters.allowlist]\nprojects = {projects}\ndependencies = true\n"
            f"[filters.environments]\ntargets = [{rows}]\nsdists = {str(sdists).lower()}\n{block}"
        )


def mirrored(web: Path) -> set[str]:
    root = json.loads((web / "simple" / "index.v1_json").read_text())
    return {p["name"] for p in root["projects"]}


def all_filenames(web: Path) -> set[str]:
    return {p.name for p in (web / "packages").rglob("*") if p.is_file()}


def pip_download(index: str, python: str, platform: str, dest: Path, tmp_path: Path) -> set[str]:
    # pip takes --platform literally (a glibc 2.28 machine also runs 2.17 wheels; pip needs telling).
    older = platform.replace("_2_28_", "_2_17_")
    result = subprocess.run(
        [
            sys.executable, "-m", "pip", "download", "--only-binary=:all:", "--platform", platform,
            "--platform", older, "--python-version", python, "--index-url", index, "--dest", str(dest), "app",
        ],
        capture_output=True,
        text=True,
        env=clean_env(tmp_path),
        timeout=180,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    return {p.name for p in dest.iterdir()}


def test_closure_for_two_environments_installs_offline(upstream: FakePyPI, mirror: Mirror, tmp_path: Path) -> None:
    seed(upstream)
    write_config(mirror, upstream)
    assert mirror.run("sync") == EXIT_OK
    check_tree(mirror.web)
    assert mirrored(mirror.web) == CLOSURE
    # Only the requested range, the target platforms, no sdists.
    assert set(page_files(mirror.web, "fast")) == {
        "fast-2.0-cp38-abi3-manylinux_2_17_x86_64.whl",
        "fast-2.0-cp38-abi3-manylinux_2_17_aarch64.whl",
    }
    assert set(page_files(mirror.web, "helper")) == {f"helper-1.0-{X86}.whl", f"helper-1.0-{ARM}.whl"}
    assert not {f for f in all_filenames(mirror.web) if f.endswith(".tar.gz") or "win" in f}

    with StaticServer(mirror.web) as static:
        x86 = pip_download(static.simple_url, "3.11", "manylinux_2_28_x86_64", tmp_path / "x86", tmp_path)
        arm = pip_download(static.simple_url, "3.13", "manylinux_2_28_aarch64", tmp_path / "arm", tmp_path)
    assert x86 == {
        "app-1.0-py3-none-any.whl", "lib-2.0-py3-none-any.whl", f"helper-1.0-{X86}.whl",
        "fast-2.0-cp38-abi3-manylinux_2_17_x86_64.whl", "speedup-1.0-py3-none-any.whl", "oldpy-1.0-py3-none-any.whl",
    }  # fmt: skip
    # pip evaluates markers for the interpreter it runs on, not --python-version: it may take oldpy too.
    assert arm - {"oldpy-1.0-py3-none-any.whl"} == {
        "app-1.0-py3-none-any.whl", "lib-2.0-py3-none-any.whl", f"helper-1.0-{ARM}.whl",
        "fast-2.0-cp38-abi3-manylinux_2_17_aarch64.whl", "speedup-1.0-py3-none-any.whl",
    }  # fmt: skip

    upstream.clear_requests()
    assert mirror.run("sync") == EXIT_OK
    assert [(r.path, r.status) for r in upstream.requests] == [("/simple/", 304)]


def uv_compile(index: str, python: str, platform: str, tmp_path: Path) -> set[str]:
    """uv resolves for the target interpreter (markers included) from the mirror alone; the pinned names."""
    (tmp_path / "in.txt").write_text("app\n")
    result = subprocess.run(
        [
            uv_binary(), "pip", "compile", "--no-build", "--python", sys.executable, "--python-version", python,
            "--python-platform", platform,
            "--index-url", index, "--no-header", "--no-annotate", str(tmp_path / "in.txt"),
        ],
        capture_output=True, text=True, env={**clean_env(tmp_path), "UV_PYTHON_DOWNLOADS": "never"}, timeout=180,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    return {line.split("==")[0] for line in result.stdout.splitlines() if "==" in line}


def test_the_closure_is_exactly_what_uv_resolves_for_the_targets(
    upstream: FakePyPI, mirror: Mirror, tmp_path: Path
) -> None:
    seed(upstream)
    write_config(mirror, upstream)
    assert mirror.run("sync") == EXIT_OK
    with StaticServer(mirror.web) as static:
        x86 = uv_compile(static.simple_url, "3.11", "x86_64-manylinux_2_28", tmp_path)
        arm = uv_compile(static.simple_url, "3.13", "aarch64-manylinux_2_28", tmp_path)
    assert x86 == CLOSURE and arm == CLOSURE - {"oldpy"}
    assert x86 | arm == mirrored(mirror.web)


def test_reconcile_narrow_then_widen(upstream: FakePyPI, mirror: Mirror) -> None:
    seed(upstream)
    write_config(mirror, upstream)
    assert mirror.run("sync") == EXIT_OK
    full = all_filenames(mirror.web)

    # File-level narrowing: the aarch64 wheels go, pages first; nothing still kept is fetched again.
    write_config(mirror, upstream, targets=TARGETS[:1])
    upstream.clear_requests()
    assert mirror.run("sync") == EXIT_OK
    check_tree(mirror.web)
    assert not any(r.path.startswith("/packages/") for r in upstream.requests)
    assert not {f for f in all_filenames(mirror.web) if "aarch64" in f}
    pages = "".join(p.read_text() for p in (mirror.web / "simple").rglob("index.*"))
    assert "aarch64" not in pages

    # Project-level narrowing removes most of the mirror: intended, so the deletion guard stays quiet.
    write_config(mirror, upstream, projects='["lib<2"]')
    assert mirror.run("sync") == EXIT_OK
    check_tree(mirror.web)
    assert mirrored(mirror.web) == {"lib"}
    assert all_filenames(mirror.web) == {"lib-1.0-py3-none-any.whl", "lib-1.0-py3-none-any.whl.metadata"}

    write_config(mirror, upstream)
    assert mirror.run("sync") == EXIT_OK
    check_tree(mirror.web)
    assert mirrored(mirror.web) == CLOSURE
    assert all_filenames(mirror.web) == full


def test_upstream_changes_grow_and_shrink_the_closure(
    upstream: FakePyPI, mirror: Mirror, capsys: pytest.CaptureFixture[str]
) -> None:
    seed(upstream)
    write_config(mirror, upstream, sdists=True)
    assert mirror.run("sync") == EXIT_OK
    upstream.add_release("app", "2.0", requires_dist=["newdep", "legacy"])
    upstream.add_release("newdep", "1.0")
    upstream.add_release("legacy", "1.0", wheel_tags=[])  # sdist only: its dependencies are unknown
    upstream.remove_project("oldpy")
    assert mirror.run("sync") == EXIT_OK
    assert mirrored(mirror.web) == (CLOSURE - {"oldpy"}) | {"newdep", "legacy"}
    assert "dependencies unknown (no metadata) for 1 projects: legacy" in capsys.readouterr().err
    check_tree(mirror.web)


@pytest.mark.parametrize("explain", ["helper", "unrelated"])
def test_explain_names_the_filter_and_the_reason(
    upstream: FakePyPI, mirror: Mirror, capsys: pytest.CaptureFixture[str], explain: str
) -> None:
    seed(upstream)
    write_config(mirror, upstream)
    assert mirror.run("sync") == EXIT_OK
    before = all_filenames(mirror.web)
    capsys.readouterr()
    assert mirror.run("sync", "--explain", explain) == EXIT_OK
    out = capsys.readouterr().out
    if explain == "helper":
        assert f"kept     helper-1.0-{X86}.whl" in out
        assert f"dropped  helper-1.0-{WIN}.whl" in out and "by environments: no target environment" in out
        assert "by environments: an sdist, and sdists = false" in out
        assert "helper: 2 of 4 files kept" in out
    else:
        assert "unrelated: not mirrored, dropped by allowlist: neither in the allowlist nor in its dependency" in out
    assert all_filenames(mirror.web) == before


def test_dry_run_prints_the_plan_and_writes_nothing(
    upstream: FakePyPI, mirror: Mirror, capsys: pytest.CaptureFixture[str]
) -> None:
    seed(upstream)
    write_config(mirror, upstream)
    assert mirror.run("sync") == EXIT_OK
    write_config(mirror, upstream, targets=TARGETS[:1])
    before = all_filenames(mirror.web)
    capsys.readouterr()
    assert mirror.run("sync", "--dry-run") == EXIT_OK
    err = capsys.readouterr().err
    assert "would sync helper: +0 files (0 bytes), -2" in err
    assert "dry run:" in err and "delete 4 files/projects" in err
    assert all_filenames(mirror.web) == before


def test_named_projects_are_judged_by_the_stored_closure(upstream: FakePyPI, mirror: Mirror) -> None:
    seed(upstream)
    write_config(mirror, upstream)
    assert mirror.run("sync") == EXIT_OK
    upstream.add_release("lib", "3.0")
    assert mirror.run("sync", "lib", "unrelated") == EXIT_OK
    assert "lib-3.0-py3-none-any.whl" in page_files(mirror.web, "lib")
    assert mirrored(mirror.web) == CLOSURE
    check_tree(mirror.web)


def test_a_failing_project_keeps_the_last_closure(upstream: FakePyPI, mirror: Mirror) -> None:
    seed(upstream)
    write_config(mirror, upstream, retries=0)
    assert mirror.run("sync") == EXIT_OK
    before = all_filenames(mirror.web)
    upstream.add_release("lib", "3.0", requires_dist=["newdep"])
    upstream.add_release("newdep", "1.0")
    upstream.faults.fail("/simple/lib/", status=500, count=100)
    assert mirror.run("sync") == EXIT_PARTIAL
    check_tree(mirror.web)
    assert mirrored(mirror.web) == CLOSURE and all_filenames(mirror.web) == before
    upstream.faults.clear()
    assert mirror.run("sync") == EXIT_OK
    assert mirrored(mirror.web) == CLOSURE | {"newdep"}


def test_dry_run_of_a_new_mirror_plans_the_whole_closure(
    upstream: FakePyPI, mirror: Mirror, capsys: pytest.CaptureFixture[str]
) -> None:
    seed(upstream)
    write_config(mirror, upstream)
    assert mirror.run("sync", "--dry-run") == EXIT_OK
    err = capsys.readouterr().err
    planned = {line.split()[2].rstrip(":") for line in err.splitlines() if line.startswith("would sync ")}
    assert planned == CLOSURE
    assert not (mirror.web / "simple").exists() and not (mirror.web / "packages").exists()


def test_deletions_the_upstream_causes_still_trip_the_guard(
    upstream: FakePyPI, mirror: Mirror, capsys: pytest.CaptureFixture[str]
) -> None:
    seed(upstream)
    write_config(mirror, upstream)
    assert mirror.run("sync") == EXIT_OK
    before = all_filenames(mirror.web)
    for name in ("helper", "speedup", "oldpy"):
        upstream.remove_project(name)
    assert mirror.run("sync") == EXIT_ENVIRONMENT
    assert "refusing to delete 3 of 6 projects" in capsys.readouterr().err
    assert mirrored(mirror.web) == CLOSURE and all_filenames(mirror.web) == before


def test_a_blocked_dependency_is_not_mirrored_nor_followed(upstream: FakePyPI, mirror: Mirror) -> None:
    seed(upstream)
    write_config(mirror, upstream, blocked="lib")
    assert mirror.run("sync") == EXIT_OK
    assert mirrored(mirror.web) == CLOSURE - {"lib", "helper"}
    write_config(mirror, upstream)
    assert mirror.run("sync") == EXIT_OK
    assert mirrored(mirror.web) == CLOSURE
    write_config(mirror, upstream, blocked="lib")
    upstream.clear_requests()
    assert mirror.run("sync") == EXIT_OK
    assert mirrored(mirror.web) == CLOSURE - {"lib", "helper"}
    assert "/simple/lib/" not in {r.path for r in upstream.requests}
    check_tree(mirror.web)


def test_wheels_without_pep658_metadata_are_read_for_their_dependencies(upstream: FakePyPI, mirror: Mirror) -> None:
    def bare(built: BuiltFile) -> BuiltFile:
        return dataclasses.replace(built, metadata=None)  # the upstream offers no .metadata for it

    upstream.add_release("app", "1.0", files=[bare(build_wheel("app", "1.0", requires_dist=["lib"]))])
    upstream.add_release("lib", "1.0", files=[bare(build_wheel("lib", "1.0", requires_dist=["helper"]))])
    upstream.add_release("helper", "1.0")
    upstream.add_release("unrelated", "1.0")
    write_config(mirror, upstream, targets=TARGETS[:1], sdists=True)
    assert mirror.run("sync") == EXIT_OK
    assert mirrored(mirror.web) == {"app", "lib", "helper"}
    assert "core-metadata" not in page_files(mirror.web, "app")["app-1.0-py3-none-any.whl"]
