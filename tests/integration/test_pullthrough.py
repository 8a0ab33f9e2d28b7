"""Pull-through: real nginx with examples/nginx/mirror.conf in front of ``mirror serve``, real pip and uv.

The mirror's allowlist names only ``seed``; everything else a client asks for is pulled through
on request (its page), its files on first use, and ``mirror sync`` keeps it fresh afterwards.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.error import HTTPError
from urllib.parse import urljoin, urlsplit
from urllib.request import Request, urlopen

import pytest

from mirror._config import load
from mirror._state import Lock
from mirror.errors import EXIT_CONFIG, EXIT_OK
from mirror.serve.pullthrough import LOCK_WAIT, PullThrough
from tests.conftest import Mirror, check_tree, clean_env
from tests.fakepypi import FakePyPI
from tests.installers import installed, uv_install
from tests.servers import Nginx, Serve

pytestmark = pytest.mark.integration


@dataclass
class Team:
    upstream: FakePyPI
    mirror: Mirror
    serve: Serve
    nginx: Nginx
    log: list[str]

    @property
    def index(self) -> str:
        return self.nginx.url + "simple/"

    def upstream_asks(self, path: str) -> int:
        return sum(1 for r in self.upstream.requests if urlsplit(r.path).path == path)

    def settle(self) -> None:
        """Wait until the server gave the lock back (it keeps it LINGER seconds after its last pull)."""
        pull = self.serve.server.pull
        assert pull is not None
        # Idle for a while, not just once: the root write that follows a burst of pulls (50 ms later)
        # takes the lock again after a pull gave it back.
        deadline = time.monotonic() + 10
        idle_since: float | None = None
        while idle_since is None or time.monotonic() - idle_since < 0.5:
            assert time.monotonic() < deadline
            if not pull.idle:
                idle_since = None
            elif idle_since is None:
                idle_since = time.monotonic()
            time.sleep(0.02)

    def run(self, *args: str) -> int:
        self.settle()
        return self.mirror.run(*args)

    def pulled(self) -> set[str]:
        return set(_query(self.mirror, "SELECT name FROM pulled"))

    def lazy(self) -> set[str]:
        return set(_query(self.mirror, "SELECT path FROM lazy"))


def _query(mirror: Mirror, sql: str) -> list[str]:
    db = sqlite3.connect(mirror.root / "m" / "state" / "mirror.sqlite3")
    try:
        return [row[0] for row in db.execute(sql)]
    finally:
        db.close()


@contextmanager
def team_index(
    upstream: FakePyPI, mirror: Mirror, tmp_path: Path, max_age: int = 600, lock_wait: float = LOCK_WAIT
) -> Iterator[Team]:
    upstream.add_release("seed", "1.0")
    upstream.add_release("dep", "1.0")
    upstream.add_release("dep", "2.0")
    upstream.add_release("demo", "1.0", requires_dist=["dep>=2"])
    upstream.add_release("evil", "1.0")
    mirror.write_config(upstream.simple_url)
    with open(mirror.config, "a") as config:
        config.write(
            '[filters]\nenabled = ["allowlist", "blocklist"]\n'
            '[filters.allowlist]\nprojects = ["seed"]\n[filters.blocklist]\nprojects = ["evil"]\n'
            f"[serve]\npull-through = true\npull-through-max-age = {max_age}\n"
        )
    assert mirror.run("--quiet", "sync") == EXIT_OK
    log: list[str] = []
    pull = PullThrough(load(mirror.config), log=log.append, lock_wait=lock_wait)
    with Serve(mirror.web, pull=pull) as serve:
        backend = urlsplit(serve.url).netloc
        with Nginx(mirror.web, tmp_path / "nginx-dir", backend) as nginx:
            yield Team(upstream, mirror, serve, nginx, log)


@pytest.fixture
def team(upstream: FakePyPI, mirror: Mirror, tmp_path: Path) -> Iterator[Team]:
    (tmp_path / "nginx-dir").mkdir()
    with team_index(upstream, mirror, tmp_path) as found:
        yield found


def pip_install(index: str, requirement: str, tmp_path: Path) -> set[str]:
    target = tmp_path / "site"
    result = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--index-url", index, "--target", str(target), requirement],
        capture_output=True,
        text=True,
        env=clean_env(tmp_path),
        timeout=180,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return installed(target)


JSON = "application/vnd.pypi.simple.v1+json"


def get(url: str, accept: str = JSON) -> tuple[int, bytes]:
    try:
        with urlopen(Request(url, headers={"Accept": accept}), timeout=30) as response:
            return int(response.status), bytes(response.read())
    except OSError as exc:  # HTTPError is one
        status = getattr(exc, "code", None)
        if status is None:
            raise
        return int(status), b""


def page(team: Team, name: str) -> dict[str, object]:
    status, body = get(f"{team.index}{name}/")
    assert status == 200
    found = json.loads(body)
    assert isinstance(found, dict)
    return found


def filenames(found: dict[str, object]) -> set[str]:
    files = found["files"]
    assert isinstance(files, list)
    return {f["filename"] for f in files}


def test_pip_then_uv_install_a_project_never_mirrored(team: Team, tmp_path: Path) -> None:
    assert not (team.mirror.web / "simple" / "demo").exists()
    assert pip_install(team.index, "demo", tmp_path / "pip") == {"demo-1.0.dist-info", "dep-2.0.dist-info"}
    assert team.pulled() == {"demo", "dep"}
    # Files on first use: what pip took is on disk; dep 1.0, which nobody asked for, is not.
    web = team.mirror.web
    assert list(web.glob("packages/**/demo-1.0-py3-none-any.whl"))
    assert list(web.glob("packages/**/dep-2.0-py3-none-any.whl"))
    assert not list(web.glob("packages/**/dep-1.0*"))
    assert any(path.endswith("dep-1.0-py3-none-any.whl") for path in team.lazy())
    # The root lists them (written just after the pages); the pages link every file; verify
    # expects the lazy ones missing.
    team.settle()
    root = json.loads((web / "simple" / "index.v1_json").read_bytes())
    assert {"demo", "dep", "seed"} <= {p["name"] for p in root["projects"]}
    every = {"dep-1.0-py3-none-any.whl", "dep-1.0.tar.gz", "dep-2.0-py3-none-any.whl", "dep-2.0.tar.gz"}
    assert filenames(page(team, "dep")) == every
    assert team.run("verify") == EXIT_OK
    # uv, through the same index, now mostly from the tree.
    team.upstream.clear_requests()
    assert uv_install(team.index, "demo", tmp_path / "uv") == {"demo-1.0.dist-info", "dep-2.0.dist-info"}
    assert team.upstream_asks("/simple/demo/") == 0


def test_sync_keeps_a_pulled_project_fresh(team: Team, tmp_path: Path) -> None:
    assert pip_install(team.index, "demo", tmp_path / "one") == {"demo-1.0.dist-info", "dep-2.0.dist-info"}
    team.upstream.add_release("demo", "2.0", requires_dist=["dep>=2"])
    assert team.run("--quiet", "sync") == EXIT_OK
    # The page the tree holds (nginx serves it) now offers 2.0; its files stay lazy until asked for.
    assert "demo-2.0-py3-none-any.whl" in filenames(page(team, "demo"))
    assert not list(team.mirror.web.glob("packages/**/demo-2.0*"))
    assert team.run("verify") == EXIT_OK
    assert pip_install(team.index, "demo", tmp_path / "two") == {"demo-2.0.dist-info", "dep-2.0.dist-info"}
    assert list(team.mirror.web.glob("packages/**/demo-2.0-py3-none-any.whl"))
    assert team.run("verify", "--hashes") == EXIT_OK
    check_tree_with_lazy(team)


def check_tree_with_lazy(team: Team) -> None:
    """Every link of every page resolves, or is a lazy file state knows where to fetch."""
    lazy = team.lazy()
    web = team.mirror.web
    for json_page in web.glob("simple/*/index.v1_json"):
        for file in json.loads(json_page.read_bytes())["files"]:
            target = (json_page.parent / file["url"].split("#")[0]).resolve()
            rel = target.relative_to(web.resolve()).as_posix()
            assert target.is_file() or rel in lazy, rel


def test_concurrent_requests_make_one_upstream_fetch(team: Team) -> None:
    team.upstream.clear_requests()
    barrier = threading.Barrier(16)
    answers: list[int] = []

    def ask(url: str) -> None:
        barrier.wait()
        answers.append(get(url)[0])

    def race(url: str) -> None:
        threads = [threading.Thread(target=ask, args=(url,)) for _ in range(16)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    race(team.serve.url + "simple/demo/")
    assert answers == [200] * 16
    assert team.upstream_asks("/simple/demo/") == 1
    files = page(team, "demo")["files"]
    assert isinstance(files, list)
    wheel_url = next(str(f["url"]) for f in files if f["filename"].endswith(".whl"))
    absolute = urljoin(team.serve.url + "simple/demo/", wheel_url.split("#")[0])
    upstream_path = urlsplit(team.upstream.file_url("demo-1.0-py3-none-any.whl")).path
    answers.clear()
    barrier.reset()
    race(absolute)
    assert answers == [200] * 16
    assert team.upstream_asks(upstream_path) == 1


def test_filters_refuse_and_unknown_names_are_404(team: Team) -> None:
    team.upstream.clear_requests()
    assert get(team.index + "evil/")[0] == 404
    assert team.upstream_asks("/simple/evil/") == 0
    assert get(team.index + "no-such-project/")[0] == 404
    assert get(team.index + "Demo_Thing/")[0] == 404  # redirected to demo-thing/, which upstream lacks
    assert get(team.index + "..%2f..%2fetc/")[0] in (400, 404)  # nginx refuses it itself
    assert get(team.serve.url + "simple/..%2f..%2fetc/")[0] == 404
    assert get(team.nginx.url + "packages/aa/bb/nothing-1.0.tar.gz")[0] == 404
    assert team.pulled() == set()
    assert team.run("verify") == EXIT_OK


def test_stale_page_is_refreshed_or_served_when_upstream_is_down(
    upstream: FakePyPI, mirror: Mirror, tmp_path: Path
) -> None:
    (tmp_path / "nginx-dir").mkdir()
    with team_index(upstream, mirror, tmp_path, max_age=0) as team:
        direct = team.serve.url + "simple/demo/"
        assert get(direct)[0] == 200
        upstream.add_release("demo", "3.0")
        upstream.clear_requests()
        status, body = get(direct)
        assert status == 200 and "demo-3.0.tar.gz" in filenames(json.loads(body))
        # Refreshed with a conditional request (the engine's validators).
        assert team.upstream_asks("/simple/demo/") == 1
        upstream.stop()
        team.serve.server.pull._down_until = 0.0  # type: ignore[union-attr]  # no backoff from an earlier failure
        status, body = get(direct)
        assert status == 200 and "demo-3.0.tar.gz" in filenames(json.loads(body))
        down = [line for line in team.log if "upstream unreachable" in line]
        assert len(down) == 1 and "demo" in down[0]
        # Something never pulled cannot be served: a clear 502, one line.
        assert get(team.serve.url + "simple/dep/")[0] == 502


def test_airgap_export_carries_pulled_projects(team: Team, tmp_path: Path) -> None:
    assert pip_install(team.index, "demo", tmp_path / "pip") == {"demo-1.0.dist-info", "dep-2.0.dist-info"}
    assert team.lazy()
    bundles = tmp_path / "usb"
    # The offline side cannot fetch on first use: the export fills the lazy files in first.
    assert team.run("export", str(bundles)) == EXIT_OK
    assert team.lazy() == set()
    assert list(team.mirror.web.glob("packages/**/dep-1.0.tar.gz"))
    offline = tmp_path / "offline"
    offline.mkdir()
    (offline / "mirror.toml").write_text('[mirror]\ndirectory = "m"\n')
    assert (
        subprocess.run(
            [sys.executable, "-m", "mirror", "--config", str(offline / "mirror.toml"), "import", str(bundles)],
            capture_output=True,
            text=True,
            timeout=120,
        ).returncode
        == EXIT_OK
    )
    web = offline / "m" / "web"
    assert (web / "simple" / "demo" / "index.v1_json").is_file()
    check_tree(web)


def test_while_a_sync_holds_the_lock(upstream: FakePyPI, mirror: Mirror, tmp_path: Path) -> None:
    """A missing page waits for the lock, then 503 with Retry-After; a stale page is served as it is."""
    (tmp_path / "nginx-dir").mkdir()
    with team_index(upstream, mirror, tmp_path, max_age=0, lock_wait=0.3) as team:
        direct = team.serve.url + "simple/"
        assert get(direct + "demo/")[0] == 200
        team.settle()
        upstream.clear_requests()
        with Lock(mirror.root / "m" / "state" / "lock"):
            request = Request(direct + "dep/", headers={"Accept": JSON})
            with pytest.raises(HTTPError) as caught:
                urlopen(request, timeout=30)
            with caught.value:  # an HTTPError holds the response (and its socket) until closed
                assert caught.value.code == 503
                assert caught.value.headers["Retry-After"] == "30"
            status, body = get(direct + "demo/")
            assert status == 200 and "demo-1.0.tar.gz" in filenames(json.loads(body))
        assert team.upstream_asks("/simple/dep/") == 0
        assert get(direct + "dep/")[0] == 200  # the lock is back: pulled now


def test_pull_through_needs_the_local_tree(
    upstream: FakePyPI, mirror: Mirror, capsys: pytest.CaptureFixture[str]
) -> None:
    """It answers from and publishes into the web/ tree nginx serves: an object-store backend is refused."""
    upstream.add_release("seed", "1.0")
    mirror.write_config(upstream.simple_url)
    assert mirror.run("--quiet", "sync") == EXIT_OK
    with open(mirror.config, "a") as config:
        config.write('[storage]\nbackend = "s3"\nbucket = "pypi"\n[serve]\npull-through = true\n')
    assert mirror.run("serve", "--port", "0") == EXIT_CONFIG
    assert 'pull-through needs [storage] backend = "filesystem"' in capsys.readouterr().err
