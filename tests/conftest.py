"""Suite-wide checks and fixtures: the shared real-data corpus in CI; the FHIR test servers of the session."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.sync.conftest import SERVERS, FhirServer, start_server, stop_server

SHARED = Path(__file__).resolve().parents[1].parent / "shared"


def pytest_sessionstart(session: object) -> None:
    if os.environ.get("CI") == "true" and not (SHARED / "data" / "real-fhir").is_dir():
        raise RuntimeError(f"CI needs the shared real-data corpus beside the repository: {SHARED} is missing")


@pytest.fixture(scope="session", params=SERVERS)
def fhir_server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[FhirServer]:
    """An open (no auth) server of each kind (tests/sync/conftest.py), shared by the whole session, so
    HAPI's JVM starts once; tests keep to their own patients."""
    kind = str(request.param)
    server = start_server(kind, tmp_path_factory.mktemp(f"{kind}-open"))
    yield server
    stop_server(server)
