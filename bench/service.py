"""Benchmark: CDS Hooks patient-view latency of the HTTP service under gunicorn on loopback.

Builds a realistic prefetch (~300 resources) from a real Synthea patient with depression and an
antidepressant in `../shared/data/real-fhir/` (Patient, Conditions, MedicationRequests,
Procedures, and the most recent Observations up to the resource budget), starts gunicorn with
`docker/gunicorn.conf.py` on a free 127.0.0.1 port (JWT auth on, as in production: every request
carries a fresh RS384 JWT), and sends patient-view calls from several concurrent clients for a
bounded time. Reports p50/p95/p99 latency, requests/s, and the ratio of the p50 to the in-process
`classify_resources` time of the same payload. The clients share the machine's cores with the
server, so the figures are an upper bound of what a separate client would see.

Run: `python -m bench.service [--duration 20] [--clients 4] [--workers 2] [--resources 300]`.
Prints a table and, last, one machine-readable JSON line. Exit 0 when the measurement ran (the
target p95 < 100 ms is reported, not enforced); 2 when the data or the server is unavailable.
"""

from __future__ import annotations

import argparse
import gzip
import http.client
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import date
from pathlib import Path
from typing import Any

import jwt
import orjson
import requests
from cryptography.hazmat.primitives.asymmetric import rsa

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED = REPO_ROOT.parent / "shared" / "data" / "real-fhir"
DEFAULT_PATIENT = "synthea-2025-qicore-exafluence/1e557b32-2239-dc72-1a82-316d22d17508.json.gz"
SERVICE_URL = "https://fhirtrd.bench.local"
ISSUER = "https://ehr.bench.local"
ENDPOINT = "/cds-services/fhirtrd-patient-view"
PREFETCH_TYPES = {"Patient", "Condition", "MedicationRequest", "MedicationStatement",
                  "MedicationDispense", "Procedure", "AllergyIntolerance", "Observation"}


def load_resources(path: Path, budget: int) -> list[dict[str, Any]]:
    """The patient's prefetch-type resources; Observations newest first, up to `budget` in all."""
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        bundle = json.load(fh)
    picked = [e["resource"] for e in bundle["entry"]
              if e["resource"]["resourceType"] in PREFETCH_TYPES]
    fixed = [r for r in picked if r["resourceType"] != "Observation"]
    observations = sorted((r for r in picked if r["resourceType"] == "Observation"),
                          key=lambda r: r.get("effectiveDateTime", ""), reverse=True)
    return fixed + observations[: max(0, budget - len(fixed))]


def prefetch(templates: dict[str, str], resources: list[dict[str, Any]]) -> dict[str, Any]:
    """Each template key filled as an EHR would: the read's resource or a searchset Bundle."""
    out: dict[str, Any] = {}
    observations_done = False
    for key, template in templates.items():
        rtype = template.split("?")[0].split("/")[0]
        matches = [r for r in resources if r["resourceType"] == rtype]
        if "?" not in template:
            out[key] = matches[0] if matches else None
            continue
        if rtype == "Observation":  # all observations once (the budget), the other key empty
            matches = [] if observations_done else matches
            observations_done = True
        out[key] = {"resourceType": "Bundle", "type": "searchset", "total": len(matches),
                    "entry": [{"resource": r} for r in matches]}
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    k = (len(ordered) - 1) * p
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=20.0, help="seconds of load (default 20)")
    parser.add_argument("--clients", type=int, default=4, help="concurrent clients (default 4)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers (default 2)")
    parser.add_argument("--threads", type=int, default=2,
                        help="threads per worker (default 2, as docker/gunicorn.conf.py)")
    parser.add_argument("--resources", type=int, default=300, help="prefetch size (default 300)")
    parser.add_argument("--patient", default=DEFAULT_PATIENT,
                        help="patient bundle under ../shared/data/real-fhir/")
    parser.add_argument("--as-of", default="2025-07-28", help="assessment date (default 2025-07-28)")
    parser.add_argument("--no-auth", action="store_true", help="switch JWT auth off")
    args = parser.parse_args(argv)

    path = SHARED / args.patient
    if not path.exists():
        print(f"bench: {path} not found (the shared real-FHIR corpus)", file=sys.stderr)
        return 2
    resources = load_resources(path, args.resources)
    as_of = date.fromisoformat(args.as_of)

    from fhirtrd.api.prefetch import prefetch_templates
    from fhirtrd.service import classify_resources
    from fhirtrd.terminology import load_terminology

    terminology = load_terminology()
    templates = prefetch_templates(terminology)
    pid = next(r["id"] for r in resources if r["resourceType"] == "Patient")
    body = {"hook": "patient-view", "hookInstance": str(uuid.uuid4()),
            "context": {"userId": "Practitioner/bench", "patientId": pid},
            "prefetch": prefetch(templates, resources)}
    payload = orjson.dumps(body)

    # in-process baseline: the service function on the same resources
    classify_resources(resources, terminology, as_of)
    runs = []
    for _ in range(30):
        t0 = time.perf_counter()
        results = classify_resources(resources, terminology, as_of)
        runs.append(time.perf_counter() - t0)
    in_process = statistics.median(runs) * 1000
    stage = next((a.stage for r in results for a in r.assessments), "none")

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)
    public.update(kid="bench", alg="RS384")
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        config = {"public_url": SERVICE_URL, "as_of": args.as_of, "cds_auth": not args.no_auth,
                  "trusted_issuers": [{"issuer": ISSUER, "jwks": {"keys": [public]}}],
                  "jti_cache_path": str(Path(tmp) / "jti.sqlite"), "log_level": "WARNING"}
        (Path(tmp) / "fhirtrd.json").write_text(json.dumps(config))
        env = {**os.environ, "FHIRTRD_CONFIG": str(Path(tmp) / "fhirtrd.json"),
               "GUNICORN_WORKERS": str(args.workers), "GUNICORN_THREADS": str(args.threads),
               "GUNICORN_LOGLEVEL": "warning"}
        proc = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", str(REPO_ROOT / "docker" / "gunicorn.conf.py"),
             "--bind", f"127.0.0.1:{port}", "--access-logfile", "/dev/null",
             "fhirtrd.api:create_app()"],
            env=env, cwd=tmp, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    if requests.get(f"{base}/healthz", timeout=1).ok:
                        break
                except requests.ConnectionError:
                    pass
                if proc.poll() is not None or time.monotonic() > deadline:
                    print("bench: gunicorn did not start", file=sys.stderr)
                    return 2
                time.sleep(0.2)
            latencies, errors = run_load(base, payload, key, args)
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    if not latencies:
        print("bench: no successful request", file=sys.stderr)
        return 2
    ms = [x * 1000 for x in latencies]
    report = {
        "resources": len(resources), "payload_bytes": len(payload), "stage": stage,
        "clients": args.clients, "workers": args.workers, "threads": args.threads,
        "auth": not args.no_auth, "duration_s": args.duration, "requests": len(ms),
        "errors": errors, "rps": round(len(ms) / args.duration, 1),
        "p50_ms": round(percentile(ms, 0.50), 1), "p95_ms": round(percentile(ms, 0.95), 1),
        "p99_ms": round(percentile(ms, 0.99), 1), "in_process_classify_ms": round(in_process, 1),
        "p50_over_in_process": round(percentile(ms, 0.50) / in_process, 2),
        "target_p95_ms": 100, "cpus": os.cpu_count(),
    }
    print(f"patient-view, {report['resources']} resources ({len(payload) / 1024:.0f} KiB), "
          f"{args.clients} clients, {args.workers} workers x {args.threads} threads, "
          f"auth {'on' if report['auth'] else 'off'}, {args.duration:g} s")
    print(f"  requests {report['requests']}  errors {errors}  throughput {report['rps']} req/s")
    print(f"  latency p50 {report['p50_ms']} ms  p95 {report['p95_ms']} ms  "
          f"p99 {report['p99_ms']} ms  (target p95 < 100 ms: "
          f"{'met' if report['p95_ms'] < 100 else 'NOT met'})")
    print(f"  in-process classify {report['in_process_classify_ms']} ms; "
          f"p50 / in-process = {report['p50_over_in_process']}")
    print(json.dumps(report))
    return 0


def run_load(base: str, payload: bytes, key: Any,
             args: argparse.Namespace) -> tuple[list[float], int]:
    host, port = base.removeprefix("http://").split(":")
    latencies: list[float] = []
    errors = 0
    lock = threading.Lock()
    stop = time.monotonic() + args.duration

    def client() -> None:
        nonlocal errors
        conn = http.client.HTTPConnection(host, port, timeout=30)  # keep-alive, lighter than requests
        mine: list[float] = []
        failed = 0
        while time.monotonic() < stop:
            headers = {"Content-Type": "application/json"}
            if not args.no_auth:  # a fresh token per call (~0.3 ms to sign, outside the timing)
                now = int(time.time())
                token = jwt.encode({"iss": ISSUER, "aud": SERVICE_URL + ENDPOINT, "iat": now,
                                    "exp": now + 300, "jti": str(uuid.uuid4())}, key,
                                   algorithm="RS384", headers={"kid": "bench"})
                headers["Authorization"] = f"Bearer {token}"
            t0 = time.perf_counter()
            conn.request("POST", ENDPOINT, body=payload, headers=headers)
            response = conn.getresponse()
            response.read()
            elapsed = time.perf_counter() - t0
            if response.status == 200:
                mine.append(elapsed)
            else:
                failed += 1
        conn.close()
        with lock:
            latencies.extend(mine)
            errors += failed

    threads = [threading.Thread(target=client) for _ in range(args.clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return latencies, errors


if __name__ == "__main__":
    sys.exit(main())
