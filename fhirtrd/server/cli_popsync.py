"""`fhirtrd population-sync`: write a population run's results back to a FHIR server (docs/population.md)."""

from __future__ import annotations

import argparse
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from fhirtrd.fhir.outbound import OutputSettings
from fhirtrd.server.auth import DEFAULT_SCOPE
from fhirtrd.server.cli_auth import add_auth_options

EXIT_OK, EXIT_PATIENT_FAILED, EXIT_USAGE, EXIT_FATAL, EXIT_INTERRUPTED = 0, 1, 2, 3, 130
DEFAULT_STATE = "fhirtrd-population-sync-state.json"
DEFAULT_BATCH_SIZE = 25  # fhirtrd.server.popsync.DEFAULT_BATCH_SIZE (not imported: keeps `fhirtrd --help` light)


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register `fhirtrd population-sync` on the main parser's subparsers."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "population-sync", help="write the results of `fhirtrd population` back to a FHIR server",
        description="Read the fhirtrd outputs already on the server in bulk (_tag search), plan each patient "
                    "of RESULTS/results.ndjson with the sync's planner and write the patients that changed, "
                    "--batch-size to a transaction. Resumable through the state file. See docs/population.md.")
    p.add_argument("--server", default=os.environ.get("FHIRTRD_SERVER"),
                   help="FHIR base URL (default: $FHIRTRD_SERVER)")
    p.add_argument("--results", type=Path, required=True, metavar="DIR",
                   help="the --out directory of `fhirtrd population` (or its results.ndjson)")
    p.add_argument("--state", type=Path, default=Path(DEFAULT_STATE),
                   help=f"state file for resume (default: ./{DEFAULT_STATE})")
    p.add_argument("--report", metavar="FILE", help="write the JSON run report here ('-' for stdout)")
    p.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE, metavar="N",
                   help=f"patients per transaction (default {DEFAULT_BATCH_SIZE}; 1 = one transaction per patient)")
    p.add_argument("--rate", type=float, default=20.0,
                   help="at most this many requests per second to the server (default 20; 0 = no limit)")
    p.add_argument("--timeout", type=float, default=120.0, help="read timeout in seconds (default 120)")
    p.add_argument("--retries", type=int, default=4, help="retries of temporary failures (default 4)")
    p.add_argument("--canonical-base", default=OutputSettings().canonical_base,
                   help="canonical base of fhirtrd's CodeSystems and identifiers")
    add_auth_options(p, DEFAULT_SCOPE)
    p.set_defaults(run=run)
    return p


def run(args: argparse.Namespace, stdout: TextIO | None = None, stderr: TextIO | None = None) -> int:
    """Run `fhirtrd population-sync`; exit 0 ok, 1 a patient failed, 2 usage, 3 fatal, 130 stopped."""
    from fhirtrd.server.cli_sync import Progress, _write_report, build_auth, sigterm_interrupts
    from fhirtrd.server.client import FhirClient, RateLimiter, RetryPolicy
    from fhirtrd.server.errors import ServerConfigError, ServerError
    from fhirtrd.server.popsync import run_population_sync
    from fhirtrd.server.state import SyncState
    from fhirtrd.server.sync import SyncConfig

    out, err = stdout or sys.stdout, stderr or sys.stderr
    results = args.results / "results.ndjson" if args.results.is_dir() else args.results
    try:
        if args.batch_size < 1:
            raise ServerConfigError(f"--batch-size must be at least 1 (got {args.batch_size})")
        if not args.server:
            raise ServerConfigError("--server URL is required (or set FHIRTRD_SERVER)")
        if not results.is_file():
            raise ServerConfigError(f"--results: no results.ndjson at {results} (run `fhirtrd population` first)")
        state = SyncState(args.state, args.server.rstrip("/"))
        client = FhirClient(
            args.server, timeout=(10.0, args.timeout),
            retry=RetryPolicy(backoff=tuple(min(2.0 ** i, 30.0) for i in range(max(0, args.retries)))),
            rate_limiter=RateLimiter(args.rate) if args.rate > 0 else None)
        client.auth = build_auth(args, client)
    except ServerError as exc:
        err.write(f"fhirtrd population-sync: {exc}\n")
        return EXIT_USAGE
    config = SyncConfig(as_of=datetime.now(UTC).date(), output=OutputSettings(canonical_base=args.canonical_base))
    progress = Progress(err, None, done=lambda report: int(report.processed))  # tallies: no per-patient list
    err.write(f"fhirtrd population-sync: {results} to {client.base_url}\n")
    with sigterm_interrupts():
        try:
            report = run_population_sync(client, results, config, state=state, progress=progress,
                                         batch_size=args.batch_size)
        except ServerError as exc:
            progress.close()
            err.write(f"fhirtrd population-sync: {exc}\n")
            return EXIT_FATAL
    progress.close()
    err.write(report.summary().replace("fhirtrd sync of", "fhirtrd population-sync to", 1) + "\n")
    _write_report(report, args.report, out)
    if report.interrupted:
        return EXIT_INTERRUPTED
    if report.fatal:
        return EXIT_FATAL
    return EXIT_PATIENT_FAILED if report.failed else EXIT_OK
