"""`fhirtrd sync`: assess patients on a FHIR server and write the results back (plugs into fhirtrd.cli)."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from pathlib import Path
from types import FrameType
from typing import Any, TextIO

from fhirtrd.errors import FhirtrdError
from fhirtrd.fhir.outbound import OutputSettings
from fhirtrd.server.auth import (
    DEFAULT_SCOPE,
    Auth,
    BearerToken,
    ClientSecretAuth,
    NoAuth,
    SmartBackendAuth,
    discover_token_url,
    load_signing_key,
)
from fhirtrd.server.client import FhirClient, RateLimiter, RetryPolicy
from fhirtrd.server.errors import ServerConfigError, ServerError
from fhirtrd.server.selection import Selection
from fhirtrd.server.state import SyncState, parse_instant
from fhirtrd.server.sync import FAILED, PatientOutcome, RunReport, SyncConfig, run_sync
from fhirtrd.server.cli_auth import add_auth_options

EXIT_OK, EXIT_PATIENT_FAILED, EXIT_USAGE, EXIT_FATAL, EXIT_INTERRUPTED = 0, 1, 2, 3, 130
DEFAULT_STATE = "fhirtrd-sync-state.json"


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register `fhirtrd sync` on the main parser's subparsers."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "sync",
        help="assess patients on a FHIR server and write the results back",
        description="Read patients from a FHIR R4 server, assess them, and write the assessment "
                    "Observations and Flags back (one transaction per patient). See docs/sync.md.",
    )
    p.add_argument("--server", default=os.environ.get("FHIRTRD_SERVER"),
                   help="FHIR base URL (default: $FHIRTRD_SERVER)")
    sel = p.add_mutually_exclusive_group()
    sel.add_argument("--all", action="store_true", help="every Patient on the server")
    sel.add_argument("--patient", action="append", metavar="ID", help="this patient (repeatable)")
    sel.add_argument("--group", metavar="ID", help="the members of Group/ID")
    sel.add_argument("--since", metavar="INSTANT",
                     help="patients with any relevant resource updated at or after INSTANT (ISO 8601, UTC)")
    sel.add_argument("--incremental", action="store_true",
                     help="like --since with the high-water mark of the last complete run")
    p.add_argument("--dry-run", action="store_true", help="print the plan, write nothing")
    p.add_argument("--as-of", type=date.fromisoformat, default=None, metavar="YYYY-MM-DD",
                   help="assessment date (default: today)")
    p.add_argument("--state", type=Path, default=Path(DEFAULT_STATE),
                   help=f"state file for resume and --incremental (default: ./{DEFAULT_STATE})")
    p.add_argument("--no-state", action="store_true", help="keep no state file (no resume)")
    p.add_argument("--report", metavar="FILE", help="write the JSON run report here ('-' for stdout)")
    p.add_argument("--workers", type=int, default=4, help="patients in parallel (default 4)")
    p.add_argument("--rate", type=float, default=20.0,
                   help="at most this many requests per second to the server (default 20; 0 = no limit)")
    p.add_argument("--timeout", type=float, default=120.0, help="read timeout in seconds (default 120)")
    p.add_argument("--retries", type=int, default=4, help="retries of temporary failures (default 4)")
    p.add_argument("--no-everything", action="store_true",
                   help="read patients by per-type searches even if the server offers $everything")
    p.add_argument("--canonical-base", default=OutputSettings().canonical_base,
                   help="canonical base of fhirtrd's CodeSystems and identifiers")
    add_auth_options(p, DEFAULT_SCOPE)
    p.set_defaults(run=run)
    return p


def _selection(args: argparse.Namespace, state: SyncState | None) -> Selection:
    if args.all:
        return Selection("all")
    if args.patient:
        return Selection("patients", patient_ids=tuple(dict.fromkeys(args.patient)))
    if args.group:
        return Selection("group", group_id=args.group)
    if args.since:
        try:
            since = parse_instant(args.since)
        except ValueError as exc:
            raise ServerConfigError(f"--since: {exc}") from exc
        return Selection("since", since=since)
    if args.incremental:
        mark = state.high_water_mark if state is not None else None
        if mark is None:
            raise ServerConfigError(
                "--incremental needs a state file with a complete earlier run; run with --all first"
            )
        return Selection("since", since=parse_instant(mark))
    raise ServerConfigError("choose the patients: --all, --patient ID, --group ID, --since INSTANT or --incremental")


def _env(name: str, what: str) -> str:
    value = os.environ.get(name)
    if not value:
        raise ServerConfigError(f"{what}: set the environment variable {name}")
    return value


def build_auth(args: argparse.Namespace, client: FhirClient) -> Auth:
    """The Auth for the options; token endpoint discovered from the server when not given."""
    if args.auth == "none":
        return NoAuth()
    if args.auth == "bearer":
        return BearerToken(_env(args.token_env, "--auth bearer"))
    if not args.client_id:
        raise ServerConfigError(f"--auth {args.auth} needs --client-id")
    token_url = args.token_url or discover_token_url(client.session, client.base_url, client.timeout)
    if args.auth == "smart":
        if args.key is None:
            raise ServerConfigError("--auth smart needs --key (a PEM or JWK private key file)")
        return SmartBackendAuth(args.client_id, load_signing_key(args.key, args.kid), token_url, args.scope)
    secret = _env(args.client_secret_env, "--auth client-secret")
    return ClientSecretAuth(args.client_id, secret, token_url, args.client_auth, args.scope)


class Progress:
    """One self-overwriting status line on stderr, only when stderr is a terminal."""

    def __init__(self, stream: TextIO, total: int | None,
                 done: Callable[[Any], int] = lambda report: len(report.outcomes)) -> None:
        self.stream = stream
        self.total = total
        self.done = done
        self.enabled = stream.isatty()

    def __call__(self, outcome: PatientOutcome, report: Any) -> None:
        if not self.enabled:
            return
        c = report.counts()
        done = self.done(report)
        of = f"/{self.total}" if self.total else ""
        self.stream.write(f"\r  {done}{of} patients: {c['written']} written, {c['unchanged']} unchanged, "
                          f"{c['failed']} failed   ")
        self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self.stream.write("\n")
            self.stream.flush()


@contextmanager
def sigterm_interrupts() -> Iterator[None]:
    """Let SIGTERM stop the run like Ctrl-C (the state file stays consistent)."""
    def handler(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous: Callable[[int, FrameType | None], Any] | int | None = None
    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread: leave signals alone
        previous = None
    try:
        yield
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _write_report(report: RunReport, target: str | None, stdout: TextIO) -> None:
    if not target:
        return
    text = json.dumps(report.as_json(), indent=1)
    if target == "-":
        stdout.write(text + "\n")
    else:
        Path(target).write_text(text + "\n", encoding="utf-8")


def run(args: argparse.Namespace, stdout: TextIO | None = None, stderr: TextIO | None = None) -> int:
    """Run `fhirtrd sync`; returns the exit code (0 ok, 1 a patient failed, 2 usage, 3 fatal, 130 stopped)."""
    out = stdout or sys.stdout
    err = stderr or sys.stderr
    try:
        if not args.server:
            raise ServerConfigError("--server URL is required (or set FHIRTRD_SERVER)")
        if args.workers < 1:
            raise ServerConfigError("--workers must be at least 1")
        state = None if args.no_state or args.dry_run and not args.incremental else SyncState(args.state, args.server.rstrip("/"))
        selection = _selection(args, state)
        client = FhirClient(
            args.server,
            timeout=(10.0, args.timeout),
            retry=RetryPolicy(backoff=tuple(min(2.0 ** i, 30.0) for i in range(max(0, args.retries)))),
            rate_limiter=RateLimiter(args.rate) if args.rate > 0 else None,
        )
        client.auth = build_auth(args, client)
        from fhirtrd.terminology import load_terminology

        terminology = load_terminology()
    except (ServerConfigError, FhirtrdError) as exc:
        err.write(f"fhirtrd sync: {exc}\n")
        return EXIT_USAGE
    config = SyncConfig(
        as_of=args.as_of or datetime.now(UTC).astimezone().date(),
        dry_run=args.dry_run,
        workers=args.workers,
        use_everything=not args.no_everything,
        output=OutputSettings(canonical_base=args.canonical_base),
    )
    total = len(selection.patient_ids) if selection.mode == "patients" else None
    progress = Progress(err, total)
    err.write(f"fhirtrd sync: {selection.describe()} on {client.base_url}\n")
    with sigterm_interrupts():
        try:
            report = run_sync(client, selection, terminology, config,
                              state=None if args.dry_run else state, progress=progress)
        except ServerError as exc:  # capabilities could not be read: nothing was started
            progress.close()
            err.write(f"fhirtrd sync: {exc}\n")
            return EXIT_FATAL
    progress.close()
    if args.dry_run:
        for outcome in report.outcomes:
            if outcome.plan is not None and (outcome.plan.actions or outcome.status == FAILED):
                out.write("\n".join(outcome.plan.describe()) + "\n")
    err.write(report.summary() + "\n")
    _write_report(report, args.report, out)
    if report.interrupted:
        return EXIT_INTERRUPTED
    if report.fatal:
        return EXIT_FATAL
    return EXIT_PATIENT_FAILED if report.failed else EXIT_OK


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry (`python -m fhirtrd.server.cli_sync ...`) until fhirtrd.cli registers us."""
    parser = argparse.ArgumentParser(prog="fhirtrd")
    sub = parser.add_subparsers(dest="command", required=True)
    add_parser(sub)
    args = parser.parse_args(argv)
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
