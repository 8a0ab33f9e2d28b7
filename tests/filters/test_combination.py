"""All of them together: allowlist + dependencies + environments + latest + cooldown (bandersnatch#1784's area).

The chain runs in the configured order, so "latest" counts only releases that still have files
for the targets and are out of quarantine, and the closure follows only the releases kept.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta

import pytest

from mirror.errors import EXIT_CONFIG, EXIT_OK
from tests.conftest import Mirror, check_tree, page_files
from tests.fakepypi import FakePyPI

pytestmark = [pytest.mark.integration, pytest.mark.slow]

LINUX = "cp311-cp311-manylinux_2_17_x86_64"
WINDOWS = "cp311-cp311-win_amd64"


def days_ago(days: float) -> str:
    return (datetime.now(UTC) - timedelta(days=days)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def configure(mirror: Mirror, upstream: FakePyPI, enabled: str, tables: str) -> None:
    mirror.write_config(upstream.simple_url)
    with mirror.config.open("a") as handle:
        handle.write(f"[filters]\nenabled = {enabled}\n{tables}")


TABLES = """
[filters.allowlist]
projects = ["app"]
dependencies = true
[filters.environments]
targets = [{ python = "3.11", platform = "manylinux_2_28_x86_64" }]
sdists = false
[filters.cooldown]
days = 3
[filters.latest]
count = 1
"""


def test_allowlist_dependencies_platforms_cooldown_latest(upstream: FakePyPI, mirror: Mirror) -> None:
    upstream.add_release("app", "1.0", requires_dist=["native>=1"], upload_time=days_ago(30))
    upstream.add_release("app", "2.0", requires_dist=["native>=1", "fresh"], upload_time=days_ago(1))
    upstream.add_release("native", "1.0", wheel_tags=[LINUX], upload_time=days_ago(40))
    upstream.add_release("native", "1.5", wheel_tags=[LINUX], requires_dist=["old-helper"], upload_time=days_ago(20))
    upstream.add_release("native", "2.0", wheel_tags=[LINUX], requires_dist=["fresh"], upload_time=days_ago(1))
    upstream.add_release("native", "3.0", wheel_tags=[WINDOWS], requires_dist=["winlib"], upload_time=days_ago(10))
    for name in ("fresh", "old-helper", "winlib"):
        upstream.add_release(name, "1.0", upload_time=days_ago(50))
    configure(mirror, upstream, '["allowlist", "environments", "cooldown", "latest"]', TABLES)
    assert mirror.run("sync") == EXIT_OK
    check_tree(mirror.web)
    root = json.loads((mirror.web / "simple" / "index.v1_json").read_text())
    # app 2.0 is quarantined, so is native 2.0; native 3.0 has no Linux wheel: latest keeps native 1.5.
    assert {p["name"] for p in root["projects"]} == {"app", "native", "old-helper"}
    assert set(page_files(mirror.web, "app")) == {"app-1.0-py3-none-any.whl"}
    assert set(page_files(mirror.web, "native")) == {f"native-1.5-{LINUX}.whl"}


def test_unknown_plugin_and_bad_option_are_config_errors(upstream: FakePyPI, mirror: Mirror) -> None:
    upstream.add_release("app", "1.0")
    configure(mirror, upstream, '["allowlist", "shiny"]', '[filters.allowlist]\nprojects = ["app"]\n')
    result = mirror.run_process("sync")
    assert result.returncode == EXIT_CONFIG
    assert result.stderr.strip().splitlines()[-1].startswith("mirror: error: ")
    assert "unknown plugin 'shiny'" in result.stderr and "allowlist" in result.stderr

    configure(mirror, upstream, '["latest"]', "[filters.latest]\ncount = -2\n")
    result = mirror.run_process("sync")
    assert result.returncode == EXIT_CONFIG
    assert "[filters.latest] count must be at least 1, not -2" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (mirror.root / "m" / "web" / "simple").exists()


def test_cooldown_admits_a_release_once_it_expires_without_an_upstream_change(
    upstream: FakePyPI, mirror: Mirror
) -> None:
    upstream.add_release("app", "1.0", upload_time=days_ago(30))
    upstream.add_release("app", "2.0", upload_time=days_ago(1 - 2 / 86400))  # out of quarantine in 2 s
    configure(mirror, upstream, '["cooldown"]', "[filters.cooldown]\ndays = 1\n")
    assert mirror.run("sync") == EXIT_OK
    assert "app-2.0.tar.gz" not in page_files(mirror.web, "app")
    upstream.clear_requests()
    assert mirror.run("sync") == EXIT_OK  # not due yet: the one-request fast path
    assert [r.path for r in upstream.requests] == ["/simple/"]
    time.sleep(2.5)
    assert mirror.run("sync") == EXIT_OK
    assert "app-2.0.tar.gz" in page_files(mirror.web, "app")
    check_tree(mirror.web)
    upstream.clear_requests()
    assert mirror.run("sync") == EXIT_OK
    assert [r.path for r in upstream.requests] == ["/simple/"]


def test_editing_a_requirements_file_is_a_filter_change(upstream: FakePyPI, mirror: Mirror) -> None:
    upstream.add_release("app", "1.0")
    upstream.add_release("other", "1.0")
    (mirror.root / "requirements.txt").write_text("app\n")
    configure(mirror, upstream, '["allowlist"]', '[filters.allowlist]\nrequirements = ["requirements.txt"]\n')
    assert mirror.run("sync") == EXIT_OK
    (mirror.root / "requirements.txt").write_text("app\nother\n")
    assert mirror.run("sync") == EXIT_OK  # the upstream answers 304, the allowlist still grew
    root = json.loads((mirror.web / "simple" / "index.v1_json").read_text())
    assert {p["name"] for p in root["projects"]} == {"app", "other"}
