"""The sync state file: the high-water mark of the last complete run and the progress of the current one.

Layout (JSON, version 1)::

    {"version": 1,
     "server": "https://fhir.example.org/R4",
     "last_complete": {"high_water_mark": "2024-06-01T02:00:00.000Z", "finished": "...", "run_id": "..."},
     "current": {"run_id": "...", "started": "...", "selection": {...}, "high_water_mark": "...",
                 "done": {"<patient id>": "written" | "unchanged" | "not-assessed"},
                 "failed": {"<patient id>": "<reason>"},
                 "through_line": 1250}}   # population-sync only, instead of "done"

A run records each finished patient as soon as it is done (the file is replaced atomically, so a
crash leaves either the old or the new state). A later run with the same selection resumes: the
patients in ``done`` are skipped, the failed ones are tried again. A run that ends with every
patient done moves its high-water mark (the server's clock when the run started) to
``last_complete``; ``--incremental`` uses that mark as ``--since``. A population-sync run, which
goes through ``results.ndjson`` in order, records a line mark instead of its done patients, so the
file stays small whatever the population.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fhirtrd.server.errors import StateFileError

STATE_VERSION = 1


def fhir_instant(moment: datetime) -> str:
    """UTC instant with milliseconds (2024-06-01T00:00:00.000Z); some servers compare it as text."""
    if moment.tzinfo is None:
        raise ValueError("a FHIR instant needs a time zone")
    utc = moment.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def parse_instant(text: str) -> datetime:
    """Parse an ISO 8601 date-time with a zone (Z or ±hh:mm); a bare date means midnight UTC."""
    value = text.strip()
    try:
        if len(value) == 10:
            return datetime.fromisoformat(value).replace(tzinfo=UTC)
        moment = datetime.fromisoformat(value)
    except ValueError as exc:
        raise ValueError(f"not an ISO 8601 date-time: {text!r}") from exc
    if moment.tzinfo is None:
        raise ValueError(f"{text!r} has no time zone; add Z for UTC")
    return moment


@dataclass
class CurrentRun:
    run_id: str
    started: str
    selection: dict[str, Any]
    high_water_mark: str
    done: dict[str, str] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    through_line: int = 0  # a population run: every line of its results up to here is done or failed


class SyncState:
    """Load, update and save the state file; safe to call from several worker threads."""

    def __init__(self, path: Path, server: str) -> None:
        self.path = path
        self.server = server
        self._lock = threading.Lock()
        self.last_complete: dict[str, str] | None = None
        self.current: CurrentRun | None = None
        self.retry: frozenset[str] = frozenset()  # failed in the run being resumed: tried again
        self._load()

    def _load(self) -> None:
        if not self.path.exists():
            return
        try:
            doc = json.loads(self.path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise StateFileError(f"cannot read the state file {self.path}: {exc.strerror}") from exc
        except ValueError as exc:
            raise StateFileError(f"the state file {self.path} is not valid JSON: {exc}") from exc
        if not isinstance(doc, dict) or doc.get("version") != STATE_VERSION:
            raise StateFileError(
                f"the state file {self.path} is not a fhirtrd sync state (version {STATE_VERSION})"
            )
        if doc.get("server") != self.server:
            raise StateFileError(
                f"the state file {self.path} belongs to {doc.get('server')!r}, not {self.server!r}; "
                "use one state file per server"
            )
        last = doc.get("last_complete")
        self.last_complete = dict(last) if isinstance(last, dict) else None
        cur = doc.get("current")
        if isinstance(cur, dict):
            try:
                self.current = CurrentRun(
                    run_id=str(cur["run_id"]),
                    started=str(cur["started"]),
                    selection=dict(cur["selection"]),
                    high_water_mark=str(cur["high_water_mark"]),
                    done={str(k): str(v) for k, v in (cur.get("done") or {}).items()},
                    failed={str(k): str(v) for k, v in (cur.get("failed") or {}).items()},
                    through_line=int(cur.get("through_line") or 0),
                )
            except (KeyError, TypeError, AttributeError) as exc:
                raise StateFileError(f"the state file {self.path} has a malformed 'current' run: {exc}") from exc

    @property
    def high_water_mark(self) -> str | None:
        """The mark of the last complete run (for --incremental)."""
        return (self.last_complete or {}).get("high_water_mark")

    def begin(self, run_id: str, started: str, selection: Mapping[str, Any], high_water_mark: str) -> bool:
        """Start a run, or resume the unfinished one with the same selection. True when resuming."""
        with self._lock:
            if self.current is not None and self.current.selection == dict(selection):
                self.retry = frozenset(self.current.failed)
                self.current.failed.clear()  # failed patients are tried again
                self._save()
                return True
            self.current = CurrentRun(run_id, started, dict(selection), high_water_mark)
            self._save()
            return False

    def is_done(self, patient_id: str) -> bool:
        with self._lock:
            return self.current is not None and patient_id in self.current.done

    def record(self, patient_id: str, outcome: str, failure: str | None = None) -> None:
        """Remember one finished patient (outcome 'failed' goes to the failed list)."""
        with self._lock:
            if self.current is None:
                raise StateFileError("record() before begin()")
            if failure is not None:
                self.current.failed[patient_id] = failure
            else:
                self.current.failed.pop(patient_id, None)
                self.current.done[patient_id] = outcome
            self._save()

    def is_done_through(self, line: int, patient_id: str) -> bool:
        """A population run: the results line was done in the run being resumed (and did not fail)."""
        with self._lock:
            return self.current is not None and line <= self.current.through_line and patient_id not in self.retry

    def record_through(self, line: int | None, failures: Sequence[tuple[str, str]]) -> None:
        """A population run: every results line up to `line` is done, these (id, reason) failed; the
        file stays small whatever the population (the done patients are not listed)."""
        with self._lock:
            if self.current is None:
                raise StateFileError("record_through() before begin()")
            for patient_id, failure in failures:
                self.current.failed[patient_id] = failure
            if line is not None:
                self.current.through_line = max(self.current.through_line, line)
            self._save()

    def finish(self, finished: str) -> bool:
        """End the run; if nothing failed, its mark becomes the last complete one. True if complete."""
        with self._lock:
            if self.current is None:
                return False
            if self.current.failed:
                self._save()
                return False
            self.last_complete = {
                "high_water_mark": self.current.high_water_mark,
                "finished": finished,
                "run_id": self.current.run_id,
            }
            self.current = None
            self._save()
            return True

    def _save(self) -> None:
        doc: dict[str, Any] = {"version": STATE_VERSION, "server": self.server,
                               "last_complete": self.last_complete}
        if self.current is not None:
            c = self.current
            doc["current"] = {"run_id": c.run_id, "started": c.started, "selection": c.selection,
                              "high_water_mark": c.high_water_mark, "done": c.done, "failed": c.failed}
            if c.through_line:
                doc["current"]["through_line"] = c.through_line
        text = json.dumps(doc, indent=1, sort_keys=True)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".fhirtrd-state-", dir=self.path.parent)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(text)
            os.replace(tmp, self.path)
        except OSError as exc:
            raise StateFileError(f"cannot write the state file {self.path}: {exc.strerror}") from exc
