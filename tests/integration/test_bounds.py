"""Bounded inputs: a root that expands without end, a root download killed half way, pages of too many links."""

from __future__ import annotations

import signal
import time

import pytest

from mirror.errors import EXIT_ENVIRONMENT, EXIT_OK, EXIT_PARTIAL
from tests.conftest import Mirror, check_tree, snapshot
from tests.oversized import (
    JSON_TYPE,
    SDIST,
    Answers,
    OversizedServer,
    gzip_of_spaces,
    html_links_page,
    json_links_page,
    sdist_page,
    simple_root,
)

ROOT_TEMP = "root-index.body.mirror-tmp"


def healthy() -> Answers:
    return Answers(root=simple_root(["good"]), pages={"good": sdist_page("good")}, files={"good-1.0.tar.gz": SDIST})


def test_a_root_that_expands_past_max_root_mb_stops_the_run_and_leaves_the_mirror(
    mirror: Mirror, capsys: pytest.CaptureFixture[str]
) -> None:
    with OversizedServer(healthy()) as server:
        mirror.write_config(server.simple_url, **{"max-root-mb": 1, "retries": 0})
        assert mirror.run("sync") == EXIT_OK
        before = snapshot(mirror.web)
        server.answers.root, server.answers.root_encoding = gzip_of_spaces(8 << 20), "gzip"
        server.answers.root_etag = '"bomb"'
        assert len(server.answers.root) < 64 << 10  # 8 MiB expanded from a few KiB
        capsys.readouterr()
        assert mirror.run("sync") == EXIT_ENVIRONMENT
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("mirror: error: ") and "max-root-mb" in err[0], err
    assert snapshot(mirror.web) == before
    check_tree(mirror.web)
    assert not list((mirror.root / "m" / "state").glob("root-index.body*"))


def test_the_temp_file_of_a_killed_root_download_is_removed_by_the_next_run(mirror: Mirror) -> None:
    with OversizedServer(healthy()) as server:
        mirror.write_config(server.simple_url, retries=0)
        assert mirror.run("sync") == EXIT_OK
        # The upstream changes its root; the run downloading it is killed half way.
        server.answers.root = simple_root(["good"]) + b"<!--" + b"x" * (4 << 20) + b"-->"
        server.answers.root_etag, server.answers.stall_root_after = '"v2"', 1 << 20
        temp = mirror.root / "m" / "state" / ROOT_TEMP
        process = mirror.start_process("sync")
        try:
            deadline = time.monotonic() + 30
            while not (temp.exists() and temp.stat().st_size >= 1 << 20):
                assert time.monotonic() < deadline, "the root download never started"
                assert process.poll() is None
                time.sleep(0.05)
        finally:
            process.send_signal(signal.SIGKILL)
            process.wait()
        assert temp.exists()
        # The next run's upstream says "not modified": nothing would ever have touched the temp file.
        server.answers.root_etag, server.answers.stall_root_after = '"v1"', None
        assert mirror.run("sync") == EXIT_OK
    assert not temp.exists()
    check_tree(mirror.web)


@pytest.mark.parametrize("kind", ["json", "html"])
def test_a_page_of_too_many_links_fails_its_project_only(
    mirror: Mirror, kind: str, capsys: pytest.CaptureFixture[str]
) -> None:
    answers = healthy()
    answers.root = simple_root(["good", "many"])
    body = json_links_page("many", 1001) if kind == "json" else html_links_page("many", 1001)
    answers.pages["many"] = (JSON_TYPE if kind == "json" else "text/html", body)
    with OversizedServer(answers) as server:
        mirror.write_config(server.simple_url, **{"max-page-files": 1000, "retries": 0})
        assert mirror.run("sync") == EXIT_PARTIAL
    err = capsys.readouterr().err
    assert "failed: many: " in err and "more than 1000 files (max-page-files)" in err, err
    assert sorted(p.name for p in (mirror.web / "simple").iterdir() if p.is_dir()) == ["good"]
    check_tree(mirror.web)
