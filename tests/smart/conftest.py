"""The SMART launch rig: sekmet loaded with the samples, oidc-provider, fhirtrd on real loopback ports."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import sqlite3
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import requests
from werkzeug.serving import make_server

from fhirtrd.api import create_app
from tests.sync.conftest import FhirServer, free_port, start_sekmet, stop_sekmet

REPO = Path(__file__).resolve().parents[2]
AUTHZ = Path(__file__).parent / "authz"
OUTPUT = REPO / "test-output" / "smart"
CLIENT_ID = "fhirtrd-smart-test"
LOADER_TOKEN = "sample-loader-" + secrets.token_urlsafe(16)
AS_OF = date(2025, 1, 15)  # the samples' assessment date (samples/README.md)
# EHR launches the test driver registers: launch id -> context the EHR hands over
LAUNCHES = {
    "launch-stage2": {"patient": "p-stage2", "appContext": json.dumps({"disorder": "mdd"})},
    "launch-trsad": {"patient": "p-trsad"},
}
STANDALONE_PATIENT = "p-nonadherent"


def require_tools() -> None:
    missing = [what for what, ok in (("/usr/bin/chromium", Path("/usr/bin/chromium").exists()),
                                     ("node", shutil.which("node") is not None),
                                     ("oidc-provider", (AUTHZ / "node_modules" / "oidc-provider").is_dir()))
               if not ok]
    if missing:
        reason = f"the browser test needs {', '.join(missing)}: run .ci/smart-browser.sh"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)


def as_transaction(bundle: dict[str, Any]) -> dict[str, Any]:
    """A sample collection Bundle as a transaction of PUTs. The samples reuse ids across files (con-001 in
    several), so every id but the Patient's gets the patient id in front, and references follow."""
    entries = bundle["entry"]
    patient = next(e["resource"]["id"] for e in entries if e["resource"]["resourceType"] == "Patient")
    renamed: dict[str, str] = {}
    for entry in entries:
        r = entry["resource"]
        full = str(entry.get("fullUrl", ""))
        old = r.get("id") or full.removeprefix("urn:uuid:")
        new = old if r["resourceType"] == "Patient" else f"{patient}-{old}"[:64]
        renamed[f"{r['resourceType']}/{old}"] = f"{r['resourceType']}/{new}"
        if full:
            renamed[full] = f"{r['resourceType']}/{new}"

    def fix(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: (renamed.get(v, next((t for o, t in renamed.items() if v.endswith("/" + o)), v))
                        if k == "reference" and isinstance(v, str) else fix(v)) for k, v in value.items()}
        if isinstance(value, list):
            return [fix(v) for v in value]
        return value

    out = []
    for entry in entries:
        r = fix(entry["resource"])
        full = str(entry.get("fullUrl", ""))
        key = full if full.startswith("urn:uuid:") else f"{r['resourceType']}/{r.get('id')}"
        r["id"] = renamed[key].split("/", 1)[1]
        out.append({"resource": r, "request": {"method": "PUT", "url": renamed[key]}})
    return {"resourceType": "Bundle", "type": "transaction", "entry": out}


@dataclass
class Rig:
    fhir: FhirServer
    authz_url: str
    app_url: str
    secret: str


def _wait(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{url} exited at start:\n{log.read_text(errors='replace')[-2000:]}")
        try:
            requests.get(url, timeout=2)
            return
        except requests.ConnectionError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer within 30 s")


@pytest.fixture(scope="session")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    require_tools()
    workdir = tmp_path_factory.mktemp("smart-rig")
    # sekmet checks SMART access tokens as HS256 JWTs signed with the secret in its store, audience = its
    # base URL, with scope enforcement; it has no setting for an outside issuer. The test gives the
    # authorization server and sekmet one shared key by putting it in sekmet's store before it starts.
    secret = secrets.token_urlsafe(48)
    (workdir / "data").mkdir()
    with sqlite3.connect(workdir / "data" / "sekmet.db") as db:
        db.execute("CREATE TABLE IF NOT EXISTS kv (k TEXT PRIMARY KEY, v TEXT)")
        db.execute("INSERT INTO kv VALUES ('jwt_secret', ?)", (secret,))
    fhir = start_sekmet(workdir, {"types": ["smart", "bearer"], "tokens": [LOADER_TOKEN], "enforce_scopes": True})
    authz = None
    server = None
    try:
        loader = fhir.session(LOADER_TOKEN)
        for path in sorted((REPO / "samples").glob("*.json")):
            bundle = json.loads(path.read_text("utf-8"))
            response = loader.post(fhir.base_url, json=as_transaction(bundle),
                                   headers={"Content-Type": "application/fhir+json"}, timeout=120)
            assert response.status_code == 200, f"{path.name}: {response.status_code} {response.text[:300]}"
        app_port, authz_port = free_port(), free_port()
        app_url = f"http://127.0.0.1:{app_port}"
        authz_url = f"http://127.0.0.1:{authz_port}"
        log = workdir / "authz.log"
        with log.open("wb") as out:
            authz = subprocess.Popen(
                ["node", str(AUTHZ / "server.mjs")], cwd=AUTHZ, stdout=out, stderr=subprocess.STDOUT,
                env={**os.environ, "PORT": str(authz_port), "FHIR_BASE": fhir.base_url, "HMAC_SECRET": secret,
                     "CLIENT_ID": CLIENT_ID, "REDIRECT_URI": f"{app_url}/smart/callback",
                     "LAUNCHES": json.dumps(LAUNCHES), "STANDALONE_PATIENT": STANDALONE_PATIENT})
        _wait(f"{authz_url}/.well-known/openid-configuration", authz, log)
        app = create_app({
            "public_url": app_url, "as_of": AS_OF.isoformat(), "docs": False,
            "smart": {"client_id": CLIENT_ID, "issuers": [
                {"iss": fhir.base_url, "name": "Sample EHR (sekmet)", "authorize_url": f"{authz_url}/auth",
                 "token_url": f"{authz_url}/token"}]},
        })
        server = make_server("127.0.0.1", app_port, app, threaded=True)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        yield Rig(fhir, authz_url, app_url, secret)
    finally:
        if server is not None:
            server.shutdown()
        if authz is not None and authz.poll() is None:
            authz.send_signal(signal.SIGTERM)
            authz.wait(timeout=10)
        stop_sekmet(fhir)
