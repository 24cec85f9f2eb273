"""Sync benchmark: synthetic patients on local FHIR servers (sekmet, HAPI), a first run and a re-run.

Measures throughput (patients per minute) and HTTP round trips per patient (leaving out the
once-per-run requests: metadata, server clock, patient selection). Targets: <= 3 round trips per
patient on a first run, <= 2 on a no-change re-run.

Run: `python -m bench.sync --patients 1000` (needs sekmet-fhir: $FHIRTRD_SEKMET or
.venv-sekmet/bin/sekmet, see .ci/sekmet.sh; and the HAPI jar of .ci/hapi.sh). `--server` picks
sekmet, hapi or both (default: both, the same population on each, sekmet as the baseline). Writes
the figures as JSON to stdout, with HAPI's ratios to sekmet.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import requests
import yaml

from bench.population import DEFAULT_AS_OF, iter_population, load_vocabulary
from fhirtrd.server.client import FhirClient
from fhirtrd.server.selection import Selection
from fhirtrd.server.sync import RunReport, SyncConfig, run_sync
from fhirtrd.terminology import load_terminology

REPO_ROOT = Path(__file__).resolve().parents[1]


def sekmet_executable() -> Path:
    configured = os.environ.get("FHIRTRD_SEKMET")
    path = Path(configured) if configured else REPO_ROOT / ".venv-sekmet" / "bin" / "sekmet"
    if not path.is_file():
        raise SystemExit(f"sekmet not found at {path}: run .ci/sekmet.sh or set FHIRTRD_SEKMET")
    return path


def start_server(workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    base = f"http://127.0.0.1:{port}/fhir"
    config = {"host": "127.0.0.1", "port": port, "base_url": base, "data_dir": str(workdir / "data"),
              "own_private_key_path": str(workdir / "keys" / "sekmet.pem"),
              "simulator": {"enabled": False, "delay_seconds": 0}, "log_inbound": False,
              # loading 1,000 patients is the slow part; the server's own validation is not measured
              "validation": {"inbound": "off"}}
    (workdir / "sekmet.yaml").write_text(yaml.safe_dump(config))
    log = (workdir / "sekmet.log").open("wb")
    proc = subprocess.Popen([str(sekmet_executable()), "serve", "--config", str(workdir / "sekmet.yaml")],
                            cwd=workdir, stdout=log, stderr=subprocess.STDOUT)
    for _ in range(600):
        try:
            if requests.get(f"{base}/metadata", timeout=2).status_code == 200:
                return proc, base
        except requests.ConnectionError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("sekmet did not start")


def start_hapi(workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    jar = Path(os.environ.get("FHIRTRD_HAPI_JAR") or REPO_ROOT / "tests" / "hapi" / "target" / "fhirtrd-hapi.jar")
    if not jar.is_file():
        raise SystemExit(f"the HAPI jar is not built at {jar}: run .ci/hapi.sh")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    base = f"http://127.0.0.1:{port}/fhir"
    log = (workdir / "hapi.log").open("wb")
    proc = subprocess.Popen(["java", "-Xmx1g", "-XX:+UseSerialGC", "-jar", str(jar), f"--server.port={port}"],
                            cwd=workdir, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 900
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if requests.get(f"{base}/metadata", timeout=5).status_code == 200:
                return proc, base
        except requests.RequestException:
            pass
        time.sleep(1)
    proc.kill()
    raise SystemExit("HAPI did not start")


SERVERS = {"sekmet": ("sekmet-fhir 0.1.1 (SQLite, local)", start_server),
           "hapi": ("HAPI FHIR JPA 8.8.0 (H2 file database, -Xmx1g)", start_hapi)}


def _drop_conditional_references(node: Any) -> None:
    """The population points at practitioners/organisations by conditional reference
    (Practitioner?identifier=...), which a server resolves only if they exist: keep the display."""
    if isinstance(node, dict):
        ref = node.get("reference")
        if isinstance(ref, str) and "?" in ref:
            node.pop("reference")
            node.setdefault("display", ref.split("?", 1)[0])
        for value in node.values():
            _drop_conditional_references(value)
    elif isinstance(node, list):
        for value in node:
            _drop_conditional_references(value)


def load_population(base: str, patients: int, seed: int, per_bundle: int = 10) -> dict[str, Any]:
    vocab = load_vocabulary()
    session = requests.Session()
    began, resources, mh = time.perf_counter(), 0, 0
    entries: list[dict[str, Any]] = []

    def flush() -> None:
        if entries:
            r = session.post(base, json={"resourceType": "Bundle", "type": "transaction", "entry": entries},
                             headers={"Content-Type": "application/fhir+json"}, timeout=600)
            if r.status_code != 200:
                raise SystemExit(f"loading failed: {r.status_code} {r.text[:300]}")
            entries.clear()

    for n, (found, plan) in enumerate(iter_population(patients, seed, vocab), start=1):
        mh += bool(plan.mdd or plan.sad)
        for res in found:
            _drop_conditional_references(res)
            entries.append({"resource": res, "request": {"method": "PUT", "url": f"{res['resourceType']}/{res['id']}"}})
            resources += 1
        if n % per_bundle == 0:
            flush()
    flush()
    return {"patients": patients, "resources": resources, "mental_health_patients": mh,
            "load_s": round(time.perf_counter() - began, 1)}


def figures(report: RunReport, seconds: float) -> dict[str, Any]:
    n = len(report.outcomes)
    return {
        "patients": n,
        "seconds": round(seconds, 1),
        "patients_per_minute": round(n / seconds * 60, 1),
        "round_trips_per_patient": round(report.requests_per_patient() or 0, 2),
        "requests": report.requests,
        "counts": report.counts(),
        "outputs": report.action_counts(),
        "failures": [(o.patient_id, o.reason) for o in report.failed][:5],
    }


def bench_server(kind: str, patients: int, seed: int, workers: int) -> dict[str, Any]:
    """Start one server, load the population, time a first run and a no-change re-run."""
    label, start = SERVERS[kind]
    with tempfile.TemporaryDirectory(prefix=f"fhirtrd-bench-sync-{kind}-") as tmp:
        began = time.perf_counter()
        proc, base = start(Path(tmp))
        started_s = round(time.perf_counter() - began, 1)
        try:
            loaded = load_population(base, patients, seed)
            terminology = load_terminology()
            config = SyncConfig(as_of=DEFAULT_AS_OF, workers=workers)
            runs = {}
            for name in ("first_run", "no_change_rerun"):
                client = FhirClient(base)
                began = time.perf_counter()
                report = run_sync(client, Selection("all"), terminology, config)
                runs[name] = figures(report, time.perf_counter() - began)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=60)
    return {"server": label, "startup_s": started_s, "loaded": loaded, **runs}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--server", choices=("sekmet", "hapi", "both"), default="both")
    args = parser.parse_args(argv)
    kinds = ("sekmet", "hapi") if args.server == "both" else (args.server,)
    out: dict[str, Any] = {"workers": args.workers, "machine_cpus": os.cpu_count()}
    for kind in kinds:
        out[kind] = bench_server(kind, args.patients, args.seed, args.workers)
    if len(kinds) == 2:
        out["hapi_vs_sekmet"] = {
            run: {"patients_per_minute": round(out["hapi"][run]["patients_per_minute"]
                                               / out["sekmet"][run]["patients_per_minute"], 2),
                  "round_trips_per_patient": round(out["hapi"][run]["round_trips_per_patient"]
                                                   / out["sekmet"][run]["round_trips_per_patient"], 2)}
            for run in ("first_run", "no_change_rerun")}
    json.dump(out, sys.stdout, indent=1)
    sys.stdout.write("\n")
    return 0

if __name__ == "__main__":
    sys.exit(main())
