"""The server-side session store: tokens and pending authorizations never leave the server.

The browser holds only a random session id in an HttpOnly cookie. Entries expire; a pending
authorization is taken once (`pop`), so a `state` cannot be replayed.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable
from typing import Any


class SessionStore:
    """Expiring JSON values by random key, in SQLite: ":memory:" (one process) or a file that the
    worker processes of one host share (WAL mode)."""

    def __init__(self, path: str = ":memory:", clock: Callable[[], float] = time.time) -> None:
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=10)
        if path != ":memory:":
            self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS entries (k TEXT PRIMARY KEY, v TEXT, expires REAL)")
        self._lock = threading.Lock()
        self._clock = clock

    @staticmethod
    def new_key() -> str:
        return secrets.token_urlsafe(32)

    def put(self, key: str, value: dict[str, Any], seconds: float) -> None:
        with self._lock:
            now = self._clock()
            self._db.execute("DELETE FROM entries WHERE expires < ?", (now,))
            self._db.execute("INSERT OR REPLACE INTO entries VALUES (?, ?, ?)", (key, json.dumps(value), now + seconds))

    def get(self, key: str) -> dict[str, Any] | None:
        with self._lock:
            row = self._db.execute("SELECT v, expires FROM entries WHERE k = ?", (key,)).fetchone()
        if row is None or row[1] < self._clock():
            return None
        value: dict[str, Any] = json.loads(row[0])
        return value

    def pop(self, key: str) -> dict[str, Any] | None:
        with self._lock:
            row = self._db.execute("SELECT v, expires FROM entries WHERE k = ?", (key,)).fetchone()
            self._db.execute("DELETE FROM entries WHERE k = ?", (key,))
        if row is None or row[1] < self._clock():
            return None
        value: dict[str, Any] = json.loads(row[0])
        return value

    def delete(self, key: str) -> None:
        with self._lock:
            self._db.execute("DELETE FROM entries WHERE k = ?", (key,))
