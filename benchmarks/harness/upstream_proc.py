"""``benchmarks/upstream.py`` as a child process: start it, read its READY line, ask for stats."""

from __future__ import annotations

import json
import selectors
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self

from .paths import REPO, UPSTREAM_SCRIPT

_READY_TIMEOUT = 600.0
_STATS_TIMEOUT = 60.0


@dataclass(frozen=True)
class Expected:
    """What the upstream serves, i.e. what a complete mirror must hold."""

    url: str
    files: int
    metadata: int
    bytes: int


class UpstreamProcess:
    """The fake upstream in its own process (it shares the cores with the tool, equally for both)."""

    def __init__(self, args: list[str], log: Path) -> None:
        self._args, self._log = args, log
        self._proc: subprocess.Popen[str] | None = None
        self.expected: Expected | None = None

    def __enter__(self) -> Self:
        self._log.parent.mkdir(parents=True, exist_ok=True)
        command = [sys.executable, str(UPSTREAM_SCRIPT), *self._args]
        with self._log.open("w") as err:
            self._proc = subprocess.Popen(
                command, cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err, text=True
            )
        line = self._readline(_READY_TIMEOUT)
        if not line.startswith("READY "):
            self.close()
            raise SystemExit(f"benchmarks: upstream did not start ({line!r}); see {self._log}")
        facts = json.loads(line.removeprefix("READY "))
        self.expected = Expected(facts["url"], facts["files"], facts["metadata"], facts["bytes"])
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def stats(self) -> dict[str, Any]:
        """Requests served (and upstream CPU spent) since the previous call; resets them."""
        stdin = self._pipe("stdin")
        stdin.write("stats\n")
        stdin.flush()
        answer: dict[str, Any] = json.loads(self._readline(_STATS_TIMEOUT))
        return answer

    def close(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.stdin is not None:
            proc.stdin.close()  # end of input stops the server
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()

    def _pipe(self, name: str) -> IO[str]:
        pipe = getattr(self._proc, name, None)
        if pipe is None:
            raise RuntimeError("upstream is not running")
        return pipe  # type: ignore[no-any-return]

    def _readline(self, timeout: float) -> str:
        stdout = self._pipe("stdout")
        deadline = time.monotonic() + timeout
        with selectors.DefaultSelector() as selector:
            selector.register(stdout, selectors.EVENT_READ)
            while not selector.select(timeout=max(0.0, deadline - time.monotonic())):
                if time.monotonic() >= deadline:
                    raise SystemExit(f"benchmarks: upstream silent for {timeout:.0f}s; see {self._log}")
        return stdout.readline().strip()
