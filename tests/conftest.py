"""Suite-wide checks: in CI the shared real-data corpus must be present (no silent skips)."""

from __future__ import annotations

import os
from pathlib import Path

SHARED = Path(__file__).resolve().parents[1].parent / "shared"


def pytest_sessionstart(session: object) -> None:
    if os.environ.get("CI") == "true" and not (SHARED / "data" / "real-fhir").is_dir():
        raise RuntimeError(f"CI needs the shared real-data corpus beside the repository: {SHARED} is missing")
