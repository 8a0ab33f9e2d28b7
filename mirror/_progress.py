"""What a run tells a person: rich progress on a terminal, plain lines everywhere else."""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING, Protocol, TextIO

from rich.filesize import decimal

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import TaskID


class Reporter(Protocol):
    def start(self, projects: int, deletions: int) -> None: ...

    def project_done(self, name: str, outcome: str, message: str | None) -> None:
        """``outcome`` is synced, unchanged, planned, deferred, failed or deleted."""

    def file_done(self, path: str, size: int) -> None: ...

    def info(self, message: str) -> None: ...

    def detail(self, message: str) -> None:
        """Shown with ``--verbose`` only (e.g. a field of an upstream page that was left out)."""

    def close(self) -> None: ...


class PlainReporter:
    """One line per event worth keeping (for cron and journald); quiet keeps only problems."""

    def __init__(self, stream: TextIO | None = None, *, quiet: bool = False, verbose: bool = False) -> None:
        self._out, self._quiet, self._verbose = stream or sys.stderr, quiet, verbose

    def _line(self, text: str) -> None:
        print(text, file=self._out, flush=True)

    def start(self, projects: int, deletions: int) -> None:
        if not self._quiet:
            self._line(f"plan: {projects} projects to check, {deletions} to delete")

    def project_done(self, name: str, outcome: str, message: str | None) -> None:
        if outcome in {"failed", "deferred"}:
            self._line(f"{outcome}: {message}")
        elif (outcome in {"synced", "deleted"} and not self._quiet) or self._verbose:
            self._line(f"{outcome} {name}")

    def file_done(self, path: str, size: int) -> None:
        if self._verbose:
            self._line(f"fetched {path} ({size} bytes)")

    def info(self, message: str) -> None:
        if not self._quiet:
            self._line(message)

    def detail(self, message: str) -> None:
        if self._verbose:
            self._line(message)

    def close(self) -> None:
        pass


class RichReporter:
    """Two bars (projects; files and bytes) that stay readable however many downloads run at once."""

    def __init__(self, console: Console | None = None, *, verbose: bool = False) -> None:
        # Imported here: only a terminal shows bars, and rich's console and progress cost ~20 ms
        # of every cron or timer run's start otherwise.
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        self._console = console or Console(stderr=True)
        self._verbose = verbose
        self._progress = Progress(
            TextColumn("[bold]{task.description:<9}"),
            BarColumn(),
            TextColumn("{task.fields[detail]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=self._console,
        )
        self._projects: TaskID | None = None
        self._files: TaskID | None = None
        self._done = self._failed = self._file_count = self._bytes = 0
        self._total = 0
        self._clock = time.monotonic()

    def start(self, projects: int, deletions: int) -> None:
        self._total = projects
        self._clock = time.monotonic()
        self._progress.start()
        self._projects = self._progress.add_task("projects", total=projects or None, detail="")
        self._files = self._progress.add_task("files", total=None, detail="")

    def project_done(self, name: str, outcome: str, message: str | None) -> None:
        if outcome in {"failed", "deferred"}:
            self._failed += 1
            self._console.print(f"[red]{outcome}[/]: {message}", highlight=False)
        if self._projects is None or outcome == "deleted":
            return
        self._done += 1
        failed = f" [red]{self._failed} failed[/]" if self._failed else ""
        self._progress.update(self._projects, advance=1, detail=f"{self._done}/{self._total}{failed}")

    def file_done(self, path: str, size: int) -> None:
        self._file_count += 1
        self._bytes += size
        if self._files is not None:
            rate = self._bytes / max(time.monotonic() - self._clock, 1e-3)
            detail = f"{self._file_count} files, {decimal(self._bytes)} at {decimal(int(rate))}/s"
            self._progress.update(self._files, detail=detail)

    def info(self, message: str) -> None:
        self._console.print(message, highlight=False)

    def detail(self, message: str) -> None:
        if self._verbose:
            self._console.print(message, highlight=False)

    def close(self) -> None:
        self._progress.stop()


def make_reporter(*, quiet: bool, verbose: bool, stream: TextIO | None = None) -> Reporter:
    stream = stream or sys.stderr
    if stream.isatty() and not quiet:
        from rich.console import Console

        return RichReporter(Console(file=stream), verbose=verbose)
    return PlainReporter(stream, quiet=quiet, verbose=verbose)
