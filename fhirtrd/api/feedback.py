"""CDS Hooks feedback kept in an append-only SQLite file: what clinicians did with each card.

Two tables: `cards` (each card issued: its uuid, service and kind — no patient data) and
`feedback` (each feedback item as received, the clinician's free-text comment included). Triggers
refuse every UPDATE and DELETE, so the file only grows. The comment is stored, never logged.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fhirtrd.api.errors import ConfigError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS cards (
    uuid TEXT PRIMARY KEY, service_id TEXT NOT NULL, kind TEXT NOT NULL, issued_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS feedback (
    id INTEGER PRIMARY KEY AUTOINCREMENT, received_at TEXT NOT NULL, service_id TEXT NOT NULL,
    card TEXT NOT NULL, outcome TEXT NOT NULL, outcome_timestamp TEXT NOT NULL,
    accepted_suggestions TEXT NOT NULL, reason_system TEXT, reason_code TEXT, user_comment TEXT);
CREATE TRIGGER IF NOT EXISTS feedback_no_update BEFORE UPDATE ON feedback
    BEGIN SELECT RAISE(ABORT, 'feedback is append-only'); END;
CREATE TRIGGER IF NOT EXISTS feedback_no_delete BEFORE DELETE ON feedback
    BEGIN SELECT RAISE(ABORT, 'feedback is append-only'); END;
CREATE TRIGGER IF NOT EXISTS cards_no_update BEFORE UPDATE ON cards
    BEGIN SELECT RAISE(ABORT, 'cards are append-only'); END;
CREATE TRIGGER IF NOT EXISTS cards_no_delete BEFORE DELETE ON cards
    BEGIN SELECT RAISE(ABORT, 'cards are append-only'); END;
"""


@dataclass(frozen=True, slots=True)
class ReportRow:
    """How often cards of one kind were accepted or overridden, and for which reason."""

    kind: str
    outcome: str
    reason: str
    count: int


class FeedbackStore:
    """The feedback file; one SQLite connection per thread, opened on first use."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self._local = threading.local()
        try:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            with sqlite3.connect(self.path, timeout=5.0) as conn:
                conn.execute("PRAGMA journal_mode=WAL")
                conn.executescript(_SCHEMA)
            conn.close()
        except (OSError, sqlite3.Error) as exc:
            raise ConfigError("feedback_path", f"cannot open {self.path}: {exc}") from exc

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=5.0, isolation_level=None)
            self._local.conn = conn
        return conn

    def record_cards(self, service_id: str, kinds: Mapping[str, str]) -> None:
        """Remember the kind of each card issued (uuid → kind), so feedback can be reported by kind."""
        if not kinds:
            return
        now = _now()
        self._conn().executemany(
            "INSERT OR IGNORE INTO cards (uuid, service_id, kind, issued_at) VALUES (?, ?, ?, ?)",
            [(uuid, service_id, kind, now) for uuid, kind in kinds.items()],
        )

    def append(self, service_id: str, items: Iterable[Mapping[str, Any]]) -> int:
        """Store validated CDS Hooks feedback items in one transaction; the number stored."""
        rows = []
        now = _now()
        for item in items:
            override = item.get("overrideReason")
            reason = override.get("reason") if isinstance(override, dict) else None
            comment = override.get("userComment") if isinstance(override, dict) else None
            suggestions = [s.get("id") for s in item.get("acceptedSuggestions") or []
                           if isinstance(s, dict) and isinstance(s.get("id"), str)]
            rows.append((
                now, service_id, item["card"], item["outcome"], item["outcomeTimestamp"],
                json.dumps(suggestions),
                _text(reason.get("system")) if isinstance(reason, dict) else None,
                _text(reason.get("code")) if isinstance(reason, dict) else None,
                _text(comment),
            ))
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.executemany(
                "INSERT INTO feedback (received_at, service_id, card, outcome, outcome_timestamp, "
                "accepted_suggestions, reason_system, reason_code, user_comment) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        return len(rows)

    def report(self) -> list[ReportRow]:
        """Feedback counted per card kind, outcome and override reason."""
        query = (
            "SELECT COALESCE(c.kind, 'unknown'), f.outcome, COALESCE(f.reason_code, '-'), COUNT(*) "
            "FROM feedback f LEFT JOIN cards c ON c.uuid = f.card "
            "GROUP BY 1, 2, 3 ORDER BY 1, 2, 3"
        )
        return [ReportRow(*row) for row in self._conn().execute(query)]


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
