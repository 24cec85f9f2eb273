"""`fhirtrd export`: a Bulk Data export of what the classifier reads, into a directory (docs/population.md)."""

from __future__ import annotations

import argparse
import json
import os
from fhirtrd.server.cli_auth import add_auth_options
from pathlib import Path
from typing import IO, Any

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
# Reading, plus deleting the export job when done (servers check that against the token's scopes);
# the same default as the sync's (fhirtrd.server.auth.DEFAULT_SCOPE, not imported: it pulls in JWT).
EXPORT_SCOPE = "system/*.read system/*.write"


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register `fhirtrd export` on the main parser's subparsers."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "export", help="Bulk Data $export of the resources the classifier reads, into a directory",
        description="Kick off a FHIR Bulk Data export (system, Patient or Group level), follow it, download "
                    "its NDJSON files (with resume), keep the manifest, error and deleted files, delete the job.")
    p.add_argument("--server", default=os.environ.get("FHIRTRD_SERVER"), help="FHIR base URL (default: $FHIRTRD_SERVER)")
    p.add_argument("--out", type=Path, required=True, help="directory for the NDJSON files and the state file")
    level = p.add_mutually_exclusive_group()
    level.add_argument("--group", metavar="ID", help="Group/ID/$export (the group's members)")
    level.add_argument("--patients", action="store_true", help="Patient/$export (every patient's compartment)")
    since = p.add_mutually_exclusive_group()
    since.add_argument("--since", metavar="INSTANT", help="only resources changed since INSTANT (_since)")
    since.add_argument("--incremental", action="store_true",
                       help="_since = the transactionTime of the last complete export into --out")
    p.add_argument("--no-type-filter", action="store_true", help="do not ask for _typeFilter on Observation codes")
    p.add_argument("--max-wait", type=float, default=60.0, help="longest wait between polls, seconds (default 60)")
    p.add_argument("--timeout", type=float, default=120.0, help="read timeout in seconds (default 120)")
    add_auth_options(p, EXPORT_SCOPE)
    p.set_defaults(run=run_export)
    return p


def run_export(args: argparse.Namespace, stdout: IO[str], stderr: IO[str]) -> int:
    from fhirtrd.errors import FhirtrdError
    from fhirtrd.server.bulk import BulkExport, default_request, last_transaction_time
    from fhirtrd.server.cli_sync import build_auth
    from fhirtrd.server.client import FhirClient
    from fhirtrd.terminology import load_terminology

    if not args.server:
        stderr.write("fhirtrd export: --server URL (or $FHIRTRD_SERVER) is required\n")
        return EXIT_USAGE
    since = args.since
    if args.incremental:
        since = last_transaction_time(args.out)
        if since is None:
            stderr.write(f"fhirtrd export: --incremental needs a complete earlier export in {args.out}\n")
            return EXIT_USAGE
    tty = stderr.isatty()

    def progress(text: str) -> None:
        if tty:
            stderr.write(f"\rexport: {text[:60]:<60}")
            stderr.flush()

    try:
        client = FhirClient(args.server, timeout=(10.0, args.timeout))
        client.auth = build_auth(args, client)
        level = "group" if args.group else "patient" if args.patients else "system"
        request = default_request(load_terminology(), level, args.group, since, type_filter=not args.no_type_filter)
        report = BulkExport(client, args.out, max_wait=args.max_wait, progress=progress).run(request)
    except FhirtrdError as exc:
        stderr.write(f"{chr(10) if tty else ''}fhirtrd export: {exc}\n")
        return EXIT_FAILED
    if tty:
        stderr.write("\n")
    for message in report.errors:
        stderr.write(f"fhirtrd export: the server reported: {message}\n")
    stdout.write(json.dumps(report.as_dict(), indent=2) + "\n")
    return EXIT_OK
