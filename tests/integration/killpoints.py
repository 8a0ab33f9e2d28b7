"""Kill a ``mirror`` run at every rename and unlink it makes, with strace, and check what is left.

strace counts injections per traced thread and per system call: ``when=N`` hits the Nth
``rename`` of *each* process, and the file writer child renames files beside its parent. (Its
``-P`` path filter cannot single a rename out either: strace 6.1 matches only a rename's first
path, here a temporary name with a random token.) So a recorded call becomes a kill point by
who made it:

* a call of the main process: strace without ``-f`` (the child runs untraced, so uncounted) and
  ``-e inject=<syscall>:signal=KILL:when=<its index among the main process's calls of it>``;
* a call of the writer child: ``-f`` and ``when=<its index among the child's calls of it>``,
  when the main process has made fewer calls of that kind by then (else the main process would
  be hit first, and that point is the main process's own). The child dies; its parent sees a
  writer gone and stops the run, as it must.

After strace returns, what is left of the run's process group is SIGKILLed too (the child stops
at its next request when its parent dies; this makes it certain, as a kill of the group would),
and the checks run only once no process of the group is left.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from mirror.core import parse
from tests.conftest import ROOT, sha256_of, snapshot

KILLED = ("rename", "renameat", "renameat2", "unlink", "unlinkat")
_CALL = re.compile(r"^(\d+) +(rename|renameat|renameat2|unlink|unlinkat|execve)\((.*)")
_STRING = re.compile(r'"((?:[^"\\]|\\.)*)"')
# Kill runs side by side: the machine has 2 cores, and a run waits on the fake upstream part of the time.
PARALLEL = 2


def strace_binary() -> str:
    """strace, or a skip outside CI; in CI (CI=true) a missing strace is a failure, never a skip."""
    found = shutil.which("strace")
    if found:
        return found
    if os.environ.get("CI"):
        pytest.fail("strace is not installed: tests/run installs it (apt-get install strace)")
    pytest.skip("strace is not installed (tests/run installs it)")


@dataclass(frozen=True, slots=True)
class Call:
    """One recorded rename or unlink: who made it, which call, the path it published or removed."""

    main: bool
    syscall: str
    path: str


@dataclass(frozen=True, slots=True)
class KillPoint:
    syscall: str
    when: int
    child: bool
    """A call of the writer child (strace follows forks); else of the main process (it does not)."""

    def describe(self) -> str:
        return f"{self.syscall} #{self.when} of the {'writer child' if self.child else 'main process'}"


@dataclass(frozen=True, slots=True)
class Scenario:
    """A mirror directory to copy for each kill, the command to run in it, and the tree it must reach."""

    name: str
    template: Path
    """A directory holding ``mirror.toml`` and the mirror (``m/``) as the run starts."""
    args: tuple[str, ...]
    reference: dict[str, str]
    """snapshot() of ``web/`` after an uninterrupted run."""
    reference_state: dict[str, list[tuple[object, ...]]]


def mirror_command(root: Path, args: Sequence[str]) -> list[str]:
    return [sys.executable, "-m", "mirror", "--config", str(root / "mirror.toml"), "--quiet", *args]


def record(strace: str, root: Path, args: Sequence[str], log: Path) -> list[Call]:
    """Run the command once under strace, recording every rename and unlink (and exec, to tell processes)."""
    traced = ",".join((*KILLED, "execve"))
    command = [strace, "-f", "-qq", "-o", str(log), "-e", f"trace={traced}", *mirror_command(root, args)]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"recording run failed: {done.stderr[-2000:]}"
    return parse_trace(log.read_text(), root)


def parse_trace(text: str, root: Path) -> list[Call]:
    calls: list[Call] = []
    main_pid: str | None = None
    prefix = str(root) + "/"
    for line in text.splitlines():
        match = _CALL.match(line)
        if match is None or "resumed>" in line:
            continue
        pid, syscall, rest = match.groups()
        if syscall == "execve":
            main_pid = main_pid or pid
            continue
        strings = [s.encode().decode("unicode_escape") for s in _STRING.findall(rest)]
        path = strings[-1] if syscall.startswith("rename") else strings[0]
        # Relative to a directory descriptor (shutil.rmtree's unlinkat) or under the mirror's directory.
        assert path.startswith(prefix) or not path.startswith("/"), f"a call outside the mirror: {line}"
        calls.append(Call(pid == main_pid, syscall, path.removeprefix(prefix)))
    return calls


def kill_points(calls: Sequence[Call]) -> tuple[list[KillPoint], list[Call]]:
    """One kill point per recorded call, and the calls no kill point can reach (see the docstring)."""
    seen: Counter[tuple[bool, str]] = Counter()
    points, unreachable = [], []
    for call in calls:
        seen[call.main, call.syscall] += 1
        when = seen[call.main, call.syscall]
        if not call.main and seen[True, call.syscall] >= when:
            unreachable.append(call)
            continue
        points.append(KillPoint(call.syscall, when, not call.main))
    return points, unreachable


def kill_run(strace: str, root: Path, args: Sequence[str], point: KillPoint, log: Path) -> bool:
    """Run the command in ``root`` killed at ``point``; True if the kill hit the process it was meant for."""
    command = [strace, "-q", "-o", str(log), "-e", f"trace={point.syscall},execve"]
    command += ["-e", f"inject={point.syscall}:signal=KILL:when={point.when}"]
    if point.child:
        command.append("-f")
    process = subprocess.Popen(
        [*command, *mirror_command(root, args)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        process.wait(timeout=120)
    finally:
        kill_group(process.pid)
    lines = log.read_text().splitlines()
    killed = [line for line in lines if "+++ killed by SIGKILL" in line]
    if not point.child:
        return bool(killed)
    # The writer was killed; its parent stops the run (and may meet its own Nth call on the way out).
    main = next(line.split()[0] for line in lines if "execve(" in line)
    return any(line.split()[0] != main for line in killed)


def kill_group(group: int) -> None:
    """SIGKILL whatever is left of a process group, and wait until none of it runs."""
    deadline = time.monotonic() + 30
    while _group_alive(group):
        try:
            os.killpg(group, signal.SIGKILL)
        except ProcessLookupError:
            return
        assert time.monotonic() < deadline, f"process group {group} does not die"
        time.sleep(0.01)


def _group_alive(group: int) -> bool:
    with os.scandir("/proc") as entries:  # closed on the early return too (warnings are errors)
        for entry in entries:
            if not entry.name.isdigit():
                continue
            try:
                stat = Path(entry.path, "stat").read_text()
            except OSError:
                continue
            # pid (comm) state ppid pgrp ...: comm may hold spaces, so split after its closing parenthesis.
            fields = stat.rpartition(")")[2].split()
            if int(fields[2]) == group and fields[0] != "Z":
                return True
    return False


def check_served(web: Path) -> None:
    """What a client can fetch right now is whole: complete pages whose every link resolves, hash and all.

    Stricter than the root's view: every page on disk counts (a page the root no longer lists is
    still served), and every project the root lists must have its pages.
    """
    simple = web / "simple"
    if not simple.is_dir():
        return
    for root_page in ("index.v1_json", "index.v1_html", "index.html"):
        if (simple / root_page).exists():
            for name in _root_names(simple / root_page):
                for page in ("index.html", "index.v1_html", "index.v1_json"):
                    assert (simple / name / page).is_file(), f"{root_page} lists {name}, whose {page} is missing"
    for page_dir in sorted(p for p in simple.iterdir() if p.is_dir()):
        for page in ("index.html", "index.v1_html", "index.v1_json"):
            if (page_dir / page).exists():
                _check_page(web, page_dir, page)


def _root_names(path: Path) -> list[str]:
    parser = parse.IndexJsonParser() if path.name.endswith("json") else parse.IndexHtmlParser()
    names: list[str] = [entry.name for entry in parser.feed(path.read_bytes())]
    parser.close()
    return names


def _check_page(web: Path, page_dir: Path, page: str) -> None:
    body, base = (page_dir / page).read_bytes(), page_dir.as_uri() + "/"
    if page.endswith("json"):
        parsed = parse.parse_project_json(body, base)  # a half-written page would not parse
    else:
        parsed = parse.parse_project_html(body, base, page_dir.name)
    where = f"{page_dir.name}/{page}"
    for dist in parsed.files:
        target = Path(unquote(urlsplit(dist.url).path))
        assert web.resolve() in target.resolve().parents, f"{where}: {dist.url} escapes the tree"
        assert target.is_file(), f"{where}: {dist.filename} does not resolve"
        assert sha256_of(target) == dist.sha256, f"{where}: wrong sha256 for {dist.filename}"
        if dist.size is not None:
            assert target.stat().st_size == dist.size, f"{where}: wrong size for {dist.filename}"
        meta = dist.metadata_hashes
        if meta is not None:
            metadata = Path(f"{target}.metadata")
            assert metadata.is_file(), f"{where}: the .metadata of {dist.filename} does not resolve"
            if "sha256" in meta:
                assert sha256_of(metadata) == meta["sha256"], f"{where}: wrong sha256 for {dist.filename}.metadata"


def state_rows(root: Path) -> dict[str, list[tuple[object, ...]]]:
    """What state records of the tree: the files and the published projects (read-only)."""
    db = sqlite3.connect(f"{(root / 'm' / 'state' / 'mirror.sqlite3').as_uri()}?mode=ro", uri=True)
    try:
        return {
            "files": db.execute("SELECT path, project, size, sha256 FROM files ORDER BY path").fetchall(),
            "projects": db.execute("SELECT name, serial, published FROM projects ORDER BY name").fetchall(),
        }
    finally:
        db.close()


def temps_left(root: Path) -> list[Path]:
    return [p for p in (root / "m").rglob("*") if p.name.endswith(".mirror-tmp") or p.name.endswith(".tmp")]


def make_scenario(name: str, template: Path, args: tuple[str, ...], work: Path) -> Scenario:
    """Run ``args`` once uninterrupted on a copy of ``template``: the tree every kill must converge to."""
    clean = work / f"{name}-clean"
    shutil.copytree(template, clean, symlinks=True)
    done = subprocess.run(mirror_command(clean, args), cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return Scenario(name, template, args, snapshot(clean / "m" / "web"), state_rows(clean))


@dataclass
class Outcome:
    point: KillPoint
    killed: bool
    failure: str | None


def recorded_points(strace: str, scenario: Scenario, work: Path) -> list[KillPoint]:
    """The kill points of one recorded run of the scenario."""
    recorded = work / f"{scenario.name}-recorded"
    shutil.copytree(scenario.template, recorded, symlinks=True)
    points, unreachable = kill_points(record(strace, recorded, scenario.args, work / f"{scenario.name}.trace"))
    # The writer child's first rename comes after the main process's first (the root index cache).
    assert len(unreachable) <= 1, f"calls no kill point reaches: {unreachable}"
    for call in unreachable:
        print(f"{scenario.name}: no kill point reaches the writer's {call.syscall} of {call.path}")
    return points


def enumerate_kills(
    strace: str,
    scenario: Scenario,
    work: Path,
    points: Sequence[KillPoint] | None = None,
    rerun: tuple[str, ...] | None = None,
) -> list[Outcome]:
    """Kill a copy of the scenario at each point, check it, rerun, and compare with the clean run.

    ``points`` defaults to every rename and unlink of a recorded run. ``rerun`` is the command
    that must complete the work (the scenario's own by default).
    """
    if points is None:
        points = recorded_points(strace, scenario, work)

    def one(index: int, point: KillPoint) -> Outcome:
        root = work / f"{scenario.name}-{index}"
        killed = False  # until kill_run says
        shutil.copytree(scenario.template, root, symlinks=True)
        try:
            killed = kill_run(strace, root, scenario.args, point, work / f"{scenario.name}-{index}.log")
            check_served(root / "m" / "web")
            done = subprocess.run(
                mirror_command(root, rerun or scenario.args), cwd=ROOT, capture_output=True, text=True, timeout=120
            )
            assert done.returncode == 0, f"the rerun failed ({done.returncode}): {done.stderr.strip()[-500:]}"
            assert not temps_left(root), f"temporary files left: {temps_left(root)}"
            tree = snapshot(root / "m" / "web")
            assert tree == scenario.reference, _tree_diff(tree, scenario.reference)
            assert state_rows(root) == scenario.reference_state, "state differs from a clean run's"
        except AssertionError as exc:
            return Outcome(point, killed, f"{point.describe()}: {exc}".splitlines()[0][:400])
        shutil.rmtree(root, ignore_errors=True)
        return Outcome(point, killed, None)

    with ThreadPoolExecutor(PARALLEL) as pool:
        return list(pool.map(one, range(len(points)), points))


def _tree_diff(tree: dict[str, str], reference: dict[str, str]) -> str:
    missing = sorted(set(reference) - set(tree))
    extra = sorted(set(tree) - set(reference))
    changed = sorted(p for p in set(tree) & set(reference) if tree[p] != reference[p])
    return f"tree differs from a clean run's: missing {missing[:3]}, extra {extra[:3]}, changed {changed[:3]}"


def summary(name: str, outcomes: Sequence[Outcome], seconds: float) -> str:
    killed = sum(o.killed for o in outcomes)
    failed = [o.failure for o in outcomes if o.failure]
    return (
        f"{name}: {len(outcomes)} kill points, {killed} killed, "
        f"{'all converge' if not failed else f'{len(failed)} failed'} ({seconds:.1f}s)"
    )


def snapshot_of(root: Path) -> dict[str, str]:
    return snapshot(root / "m" / "web")
