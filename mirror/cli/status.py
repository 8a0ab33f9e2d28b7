"""``mirror status``: what the mirror holds and how the last run went."""

from __future__ import annotations

import json
import time

from rich.filesize import decimal

from mirror import _metrics as metrics
from mirror._config import Config
from mirror._state import State, open_state
from mirror.errors import EXIT_OK


def status(config: Config, *, as_json: bool) -> int:
    # No lock: status must answer while a run holds it (SQLite's WAL gives a consistent read).
    with open_state(config.state_dir, State, lock=False) as state:
        totals = state.totals()
        last = json.loads(state.get_meta("last_run") or "null")
        outcome = metrics.last_facts(state)
        facts = {
            "directory": str(config.directory),
            "upstream": config.upstream,
            "serial": state.get_int("serial"),
            "projects": totals.projects,
            "files": totals.files,
            "bytes": totals.bytes,
            "last_run": last,
            "last_outcome": None if outcome is None else json.loads(outcome.to_json()),
            "metrics_file": str(config.metrics_path),
        }
    if as_json:
        print(json.dumps(facts, indent=2))
        return EXIT_OK
    print(f"directory  {facts['directory']}")
    print(f"upstream   {facts['upstream']}")
    print(f"serial     {facts['serial']}")
    print(f"projects   {totals.projects}")
    print(f"files      {totals.files} ({decimal(totals.bytes)})")
    if outcome is not None:
        print(f"last run   {_when(outcome.finished)}: {_outcome_line(outcome)}")
        print(f"last ok    {_when(outcome.last_success) if outcome.last_success else 'never'}")
    print(f"metrics    {facts['metrics_file']}")
    return EXIT_OK


def _when(stamp: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(stamp))


def _outcome_line(outcome: metrics.RunFacts) -> str:
    text = (
        f"{outcome.result} in {outcome.duration:.1f}s, {outcome.synced} projects synced, "
        f"{outcome.files_added} files added ({decimal(outcome.bytes_added)}), {outcome.failures} failures"
    )
    return text + (f" ({outcome.error})" if outcome.error else "")
