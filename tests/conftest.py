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


class SessionServers:
    """The session's open FHIR servers (tests/sync/conftest.py), each started on first use and kept
    to the end, so that tests/sync, tests/api and tests/bulk share one HAPI JVM."""

    def __init__(self, factory: pytest.TempPathFactory) -> None:
        self.factory = factory
        self.running: dict[str, FhirServer] = {}

    def get(self, kind: str) -> FhirServer:
        if kind not in self.running:
            self.running[kind] = start_server(kind, self.factory.mktemp(f"{kind}-open"))
        return self.running[kind]


@pytest.fixture(scope="session")
def session_servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SessionServers]:
    servers = SessionServers(tmp_path_factory)
    yield servers
    for server in servers.running.values():
        stop_server(server)


@pytest.fixture(scope="session", params=SERVERS)
def fhir_server(request: pytest.FixtureRequest, session_servers: SessionServers) -> FhirServer:
    """An open (no auth) server of each kind, shared by the session; tests keep to their own patients."""
    return session_servers.get(str(request.param))
