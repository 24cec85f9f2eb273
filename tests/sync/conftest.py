"""Fixtures for the sync tests: real FHIR R4 servers (sekmet-fhir, HAPI FHIR JPA) on free loopback ports.

``fhir_server`` (defined in tests/conftest.py, so that tests/sync, tests/api and tests/bulk share one
JVM) is parametrised over both servers, so every test that takes it runs on each; a test
that needs one server's feature takes ``sekmet_server`` or ``hapi_server``. The HAPI jar is built by
.ci/hapi.sh from tests/hapi (Maven Central); its JVM starts once per session (about a minute or
two), H2 in files under its temporary working directory, ``-Xmx1g``.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import pytest
import requests
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from fhirtrd.server.auth import load_signing_key, public_jwk

REPO_ROOT = Path(__file__).resolve().parents[2]
SHARED = REPO_ROOT.parent / "shared"
SEKMET_ENV = "FHIRTRD_SEKMET"
HAPI_ENV = "FHIRTRD_HAPI_JAR"
STARTUP_SECONDS = 60.0
HAPI_STARTUP_SECONDS = 600.0  # a cold JVM, Hibernate and HAPI's registries on a busy 2-core machine
SERVERS = ("sekmet", "hapi")


def _missing(reason: str) -> NoReturn:
    """Skip outside CI; fail in CI (CI=true), which installs the servers itself and must not skip."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)


def sekmet_executable() -> Path:
    """The sekmet executable: $FHIRTRD_SEKMET, else .venv-sekmet/bin/sekmet under the repo root.

    Outside CI a missing server skips the server tests with the reason; in CI (CI=true) it fails,
    because CI installs the server itself (.ci/sekmet.sh) and must not silently skip them.
    """
    configured = os.environ.get(SEKMET_ENV)
    candidate = Path(configured) if configured else REPO_ROOT / ".venv-sekmet" / "bin" / "sekmet"
    if candidate.is_file() and os.access(candidate, os.X_OK):
        return candidate
    _missing(
        f"the FHIR test server is not installed: no executable at {candidate} "
        f"(run .ci/sekmet.sh, or set {SEKMET_ENV} to a sekmet-fhir==0.1.1 'sekmet' executable)"
    )


def hapi_jar() -> Path:
    """The HAPI test server jar: $FHIRTRD_HAPI_JAR, else tests/hapi/target/fhirtrd-hapi.jar."""
    configured = os.environ.get(HAPI_ENV)
    candidate = Path(configured) if configured else REPO_ROOT / "tests" / "hapi" / "target" / "fhirtrd-hapi.jar"
    if candidate.is_file():
        return candidate
    _missing(f"the HAPI FHIR test server is not built: no jar at {candidate} (run .ci/hapi.sh)")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class FhirServer:
    """A running FHIR server: where it listens and how to talk to it without fhirtrd."""

    base_url: str
    root_url: str
    workdir: Path
    process: subprocess.Popen[bytes]
    log_path: Path
    kind: str = "sekmet"  # sekmet | hapi

    @property
    def searches_risk_assessment(self) -> bool:
        """sekmet cannot search RiskAssessment by patient, so fhirtrd does not write them there."""
        return self.kind != "sekmet"

    def session(self, token: str | None = None) -> requests.Session:
        s = requests.Session()
        s.headers.update({"Accept": "application/fhir+json"})
        if token:
            s.headers["Authorization"] = f"Bearer {token}"
        return s

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


def start_sekmet(workdir: Path, server_auth: dict[str, Any] | None = None) -> FhirServer:
    """Write a config, start `sekmet serve`, wait until GET /fhir/metadata answers."""
    executable = sekmet_executable()
    port = free_port()
    root = f"http://127.0.0.1:{port}"
    config: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": port,
        "base_url": f"{root}/fhir",
        "data_dir": str(workdir / "data"),
        "own_private_key_path": str(workdir / "keys" / "sekmet_private.pem"),
        "simulator": {"enabled": False, "delay_seconds": 0},
        "log_inbound": False,
    }
    if server_auth:
        config["server_auth"] = server_auth
    config_path = workdir / "sekmet.yaml"
    config_path.write_text(yaml.safe_dump(config))
    log_path = workdir / "sekmet.log"
    log = log_path.open("wb")
    process = subprocess.Popen(
        [str(executable), "serve", "--config", str(config_path)],
        cwd=workdir,
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "SEKMET_CONFIG": str(config_path)},
    )
    log.close()
    server = FhirServer(f"{root}/fhir", root, workdir, process, log_path)
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"sekmet exited with {process.returncode} at start:\n{server.log_tail()}")
        try:
            if requests.get(f"{root}/fhir/metadata", timeout=2).status_code == 200:
                return server
        except requests.ConnectionError:
            pass
        time.sleep(0.1)
    stop_server(server)
    raise RuntimeError(f"sekmet did not answer GET /fhir/metadata within {STARTUP_SECONDS}s:\n{server.log_tail()}")


def start_hapi(workdir: Path) -> FhirServer:
    """Start the HAPI jar on a free loopback port; wait until GET /fhir/metadata answers.

    $FHIRTRD_HAPI_URL (a loopback base URL of a HAPI test server already started from the same
    jar) is used instead, to save the JVM start while developing; it is never stopped here.
    """
    reuse = os.environ.get("FHIRTRD_HAPI_URL")
    if reuse:
        idle = subprocess.Popen(["sleep", "infinity"])
        return FhirServer(reuse.rstrip("/"), reuse.rstrip("/").removesuffix("/fhir"), workdir, idle,
                          workdir / "hapi.log", kind="hapi")
    jar = hapi_jar()
    port = free_port()
    root = f"http://127.0.0.1:{port}"
    log_path = workdir / "hapi.log"
    log = log_path.open("wb")
    process = subprocess.Popen(
        ["java", "-Xmx1g", "-XX:+UseSerialGC", "-jar", str(jar),
         f"--server.port={port}", "--server.address=127.0.0.1"],
        cwd=workdir, stdout=log, stderr=subprocess.STDOUT,
    )
    log.close()
    server = FhirServer(f"{root}/fhir", root, workdir, process, log_path, kind="hapi")
    deadline = time.monotonic() + HAPI_STARTUP_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"HAPI exited with {process.returncode} at start:\n{server.log_tail()}")
        try:
            if requests.get(f"{root}/fhir/metadata", timeout=5).status_code == 200:
                return server
        except requests.RequestException:
            pass
        time.sleep(0.5)
    stop_server(server)
    raise RuntimeError(f"HAPI did not answer GET /fhir/metadata within {HAPI_STARTUP_SECONDS}s:\n{server.log_tail()}")


def start_server(kind: str, workdir: Path) -> FhirServer:
    return start_hapi(workdir) if kind == "hapi" else start_sekmet(workdir)


def stop_server(server: FhirServer) -> None:
    """SIGTERM, then SIGKILL after 15 s."""
    if server.process.poll() is None:
        server.process.send_signal(signal.SIGTERM)
        try:
            server.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait(timeout=5)


stop_sekmet = stop_server


@dataclass
class SmartSetup:
    server: FhirServer
    client_id: str
    key_path: Path
    token_url: str
    token_lifetime: int


SMART_TOKEN_LIFETIME = 3  # seconds: short, so a test sees the client renew its token


@pytest.fixture(scope="session")
def smart_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SmartSetup]:
    """A sekmet server that only accepts SMART Backend Services tokens, with our client registered."""
    workdir = tmp_path_factory.mktemp("sekmet-smart")
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    key_path = workdir / "fhirtrd-client.pem"
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    jwk = public_jwk(load_signing_key(key_path))
    server_auth = {
        "types": ["smart"],
        "token_lifetime": SMART_TOKEN_LIFETIME,
        "smart_clients": [{"client_id": "fhirtrd", "jwks": {"keys": [jwk]}, "scopes": "system/*.*"}],
    }
    server = start_sekmet(workdir, server_auth)
    yield SmartSetup(server, "fhirtrd", key_path, f"{server.root_url}/auth/token", SMART_TOKEN_LIFETIME)
    stop_server(server)


@pytest.fixture()
def state_dir(tmp_path: Path) -> Path:
    d = tmp_path / "state"
    d.mkdir()
    return d


def read_json(path: Path) -> Any:
    return json.loads(path.read_text())

