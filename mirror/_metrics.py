"""What a run leaves behind for operators: a Prometheus textfile and the same facts in state.

The file follows node_exporter's textfile-collector convention: written to a temporary name in
the same directory, then renamed, so the collector never reads half a file. It is written after
every run, failed ones included; ``mirror status`` reads the same facts back from state.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mirror._state import State
from mirror.errors import EnvironmentFault

if TYPE_CHECKING:
    from mirror.sync.run import RunReport

RESULTS = ("ok", "partial", "error")
META_KEY = "last_outcome"


@dataclass(frozen=True, slots=True)
class RunFacts:
    started: float
    finished: float
    result: str
    """ok, partial (some projects failed or were deferred) or error (the run stopped)."""
    serial: int | None
    projects: int
    files: int
    bytes: int
    failures: int
    synced: int
    files_added: int
    bytes_added: int
    last_success: float | None
    error: str | None = None

    @property
    def duration(self) -> float:
        return max(self.finished - self.started, 0.0)

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> RunFacts:
        raw: dict[str, Any] = json.loads(text)
        known: dict[str, Any] = {key: raw.get(key) for key in cls.__dataclass_fields__}
        return cls(**known)


_GAUGES: tuple[tuple[str, str], ...] = (
    ("last_run_timestamp_seconds", "When the last run finished (Unix time)."),
    ("last_run_duration_seconds", "How long the last run took."),
    ("last_success_timestamp_seconds", "When the last run that synced everything finished (Unix time)."),
    ("serial", "The upstream serial the mirror is complete up to."),
    ("projects", "Projects the mirror publishes."),
    ("files", "Distribution and metadata files the mirror holds."),
    ("bytes", "Bytes of the files the mirror holds."),
    ("last_run_failures", "Projects that failed or were deferred in the last run."),
    ("last_run_projects_synced", "Projects synced by the last run."),
    ("last_run_files_added", "Files added by the last run."),
    ("last_run_bytes_added", "Bytes added by the last run."),
)


def render(facts: RunFacts) -> str:
    """The Prometheus text exposition format (version 0.0.4) of ``facts``."""
    values: dict[str, float | None] = {
        "last_run_timestamp_seconds": facts.finished,
        "last_run_duration_seconds": facts.duration,
        "last_success_timestamp_seconds": facts.last_success,
        "serial": facts.serial,
        "projects": facts.projects,
        "files": facts.files,
        "bytes": facts.bytes,
        "last_run_failures": facts.failures,
        "last_run_projects_synced": facts.synced,
        "last_run_files_added": facts.files_added,
        "last_run_bytes_added": facts.bytes_added,
    }
    lines = [
        "# HELP mirror_last_run_result The outcome of the last run: 1 for the one it had.",
        "# TYPE mirror_last_run_result gauge",
        *(f'mirror_last_run_result{{result="{r}"}} {int(r == facts.result)}' for r in RESULTS),
    ]
    for name, help_text in _GAUGES:
        value = values[name]
        if value is None:  # never known yet (no serial, no success): absent, not a fake zero
            continue
        lines += [f"# HELP mirror_{name} {help_text}", f"# TYPE mirror_{name} gauge", f"mirror_{name} {_number(value)}"]
    return "\n".join(lines) + "\n"


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.3f}"


def write_textfile(path: Path, text: str) -> None:
    """Temp + rename in the target directory, so a collector never reads a partial file."""
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        _remove_dead_temps(path)
        temp.write_text(text, encoding="utf-8")
        temp.chmod(0o644)
        temp.replace(path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            temp.unlink()
        raise EnvironmentFault(f"cannot write metrics file {path}: {exc.strerror or exc}") from None


def _remove_dead_temps(path: Path) -> None:
    """Temporary files of writers that were killed before their rename (their process is gone)."""
    pattern = re.compile(rf"^\.{re.escape(path.name)}\.(\d+)\.tmp$")
    with os.scandir(path.parent) as entries:
        dead = [e.path for e in entries if (m := pattern.match(e.name)) is not None and not _alive(int(m.group(1)))]
    for temp in dead:
        with contextlib.suppress(FileNotFoundError):
            Path(temp).unlink()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # it exists, owned by someone else
    return True


def record(state: State, path: Path, facts: RunFacts) -> None:
    """Keep ``facts`` in state (for ``mirror status``) and publish them as the metrics file."""
    state.set_meta(META_KEY, facts.to_json())
    state.commit()
    write_textfile(path, render(facts))


def facts_of(report: RunReport, state: State, *, error: str | None = None) -> RunFacts:
    """The facts of a run that ended with ``report`` (or stopped with ``error`` part way)."""
    totals = state.totals()
    previous = last_facts(state)
    result = "error" if error else report.result
    finished = report.finished or time.time()
    return RunFacts(
        started=report.started,
        finished=finished,
        result=result,
        serial=state.get_int("serial"),
        projects=totals.projects,
        files=totals.files,
        bytes=totals.bytes,
        failures=len(report.failed) + len(report.deferred),
        synced=report.synced,
        files_added=report.files_added,
        bytes_added=report.bytes_added,
        last_success=finished if result == "ok" else (previous.last_success if previous else None),
        error=error,
    )


def last_facts(state: State) -> RunFacts | None:
    text = state.get_meta(META_KEY)
    return None if text is None else RunFacts.from_json(text)


__all__ = ["RunFacts", "facts_of", "last_facts", "record", "render", "write_textfile"]
