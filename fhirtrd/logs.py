"""fhirtrd's log records as one JSON line per event on stderr, at the configured level.

Every door calls `configure(level)`: the CLI at start, the HTTP service in `create_app` (so the
records reach a handler under gunicorn too, whose own loggers are not fhirtrd's). Records carry
ids and counts only — never names, birth dates, identifiers or free text (docs/service.md, Logging).
"""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime
from typing import IO, Any

import orjson

LOGGER = "fhirtrd"
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}


class JsonLines(logging.Formatter):
    """`{"ts", "level", "logger", "event", ...extra fields}` on one line."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "event": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                line[key] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(line, default=str).decode()


class _Handler(logging.Handler):
    """The handler `configure` installs: writes to `target`, or to whatever sys.stderr is now."""

    def __init__(self, target: IO[str] | None = None) -> None:
        super().__init__()
        self.target = target

    def emit(self, record: logging.LogRecord) -> None:
        try:
            stream = self.target or sys.stderr
            stream.write(self.format(record) + "\n")
            stream.flush()
        except Exception:  # noqa: BLE001 - logging must never break the caller
            self.handleError(record)


def configure(level: str = "INFO", stream: IO[str] | None = None) -> logging.Logger:
    """Send the `fhirtrd` loggers to one JSON-lines handler at `level`; calling again re-levels.

    `stream` None means the process's stderr at the time of each record.
    """
    name = level.upper()
    if name not in LEVELS:
        raise ValueError(f"log level must be one of {', '.join(LEVELS)}, not {level!r}")
    logger = logging.getLogger(LOGGER)
    logger.setLevel(name)
    handler = next((h for h in logger.handlers if isinstance(h, _Handler)), None)
    if handler is None:
        handler = _Handler(stream)
        handler.setFormatter(JsonLines())
        logger.addHandler(handler)
    else:
        handler.target = stream
    return logger
