"""The command line: `fhirtrd classify`, plus `serve` and `sync` from their own modules.

Exit codes (documented in the README):
  0  every input was read (data warnings allowed)
  1  at least one input could not be read at all (missing, not JSON, empty, not gzip)
  2  wrong arguments
  3  the mappings (packaged or --mappings DIR) are invalid
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import io
import os
import sys
from collections.abc import Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import IO, Any

import orjson

from fhirtrd import __version__
from fhirtrd.errors import FhirtrdError, InputError, TerminologyError

EXIT_OK, EXIT_UNREADABLE, EXIT_USAGE, EXIT_MAPPINGS = 0, 1, 2, 3
PLUGGED = ("fhirtrd.api.cli_serve", "fhirtrd.server.cli_sync", "fhirtrd.population.cli_population",
           "fhirtrd.report.cli_report", "fhirtrd.server.cli_export", "fhirtrd.api.cli_feedback",
           "fhirtrd.server.cli_popsync")


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text!r}") from None


LOCAL_ONLY = ("classify", "population")  # commands that need no HTTP door: Flask, JWT, requests not imported


def parser(command: str | None = None) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="fhirtrd", description="Treatment-resistant depression and social "
                                "anxiety disorder from FHIR R4 data.")
    p.add_argument("--version", action="version", version=f"fhirtrd {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    c = sub.add_parser("classify", help="assess every patient found in FHIR files or directories")
    c.add_argument("paths", nargs="+", type=Path, help="Bundles, resources or NDJSON (.json, .ndjson, .gz); "
                   "directories are read recursively")
    c.add_argument("--as-of", type=_date, default=None, help="assessment date, YYYY-MM-DD (default: today)")
    c.add_argument("--format", choices=("table", "json", "fhir", "summary"), default="table")
    c.add_argument("--out", type=Path, help="with --format fhir: write one Bundle per patient into this directory "
                   "(default: NDJSON of Bundles on stdout)")
    c.add_argument("--mappings", type=Path, action="append", default=[], metavar="DIR",
                   help="extra mapping tables that add to or override the packaged ones (repeatable)")
    c.add_argument("--no-progress", action="store_true", help="never show the progress bar")
    c.set_defaults(run=run_classify)
    for name in PLUGGED:
        if command in LOCAL_ONLY and not name.endswith(f".cli_{command}"):
            continue
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            continue
        module.add_parser(sub)
    return p


class Progress:
    """A one-line progress bar on stderr, shown only when stderr is a terminal."""

    def __init__(self, stream: IO[str], enabled: bool) -> None:
        self.stream, self.enabled = stream, enabled and stream.isatty()

    def __call__(self, done: int, total: int) -> None:
        if not self.enabled:
            return
        width = 30
        filled = width * done // max(total, 1)
        self.stream.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total} files")
        if done == total:
            self.stream.write("\n")
        self.stream.flush()


def run_classify(args: argparse.Namespace, stdout: IO[str], stderr: IO[str]) -> int:
    from fhirtrd.schemas import dump_result
    from fhirtrd.service import Run, classify_paths
    from fhirtrd.terminology import load_terminology

    try:
        terminology = load_terminology(args.mappings)
    except TerminologyError as exc:
        stderr.write(f"fhirtrd: mappings: {exc}\n")
        return EXIT_MAPPINGS
    as_of = args.as_of or date.today()
    run = Run(terminology, as_of)
    try:
        results = classify_paths(args.paths, terminology, as_of, run=run,
                                 progress=Progress(stderr, not args.no_progress))
        # each output is built whole, then written: an error never leaves half a document behind
        buffer = io.StringIO()
        if args.format == "json":
            _write_json((dump_result(r) for r in results), run, buffer)
        elif args.format == "fhir":
            from fhirtrd.fhir.outbound import write_bundles
            issued = datetime.now(UTC).replace(microsecond=0)  # one timestamp for the whole run
            write_bundles((dump_result(r) for r in results), args.out, None if args.out else buffer, issued=issued)
        elif args.format == "summary":
            from fhirtrd.summary import summarise, write_summary
            write_summary(summarise(results), buffer)
        else:
            _write_table(results, run, buffer)
        stdout.write(buffer.getvalue())
    except InputError as exc:
        stderr.write(f"fhirtrd: {exc}\n")
        return EXIT_UNREADABLE
    except FhirtrdError as exc:
        stderr.write(f"fhirtrd: results cannot be written: {exc}\n")
        return EXIT_UNREADABLE
    for w in run.warnings:
        if w.code in ("unreadable", "invalid-json", "empty"):
            stderr.write(f"fhirtrd: {w.source}: {w.message}\n")
    return EXIT_UNREADABLE if run.report.failed else EXIT_OK


def _write_json(results: Any, run: Any, stdout: IO[str]) -> None:
    from fhirtrd.schemas import WarningSchema

    stdout.write('{"results": [')
    for i, result in enumerate(results):
        stdout.write(("," if i else "") + "\n" + orjson.dumps(result, option=orjson.OPT_INDENT_2).decode())
    warnings = WarningSchema(many=True).dump(run.warnings)
    stdout.write('\n], "warnings": ' + orjson.dumps(warnings, option=orjson.OPT_INDENT_2).decode() + "}\n")


def _write_table(results: Any, run: Any, stdout: IO[str]) -> None:
    header = ("patient", "disorder", "dx", "stage", "status", "TR", "failed", "classes", "pseudo-resistance", "next step")
    rows: list[tuple[str, ...]] = []
    warnings = 0
    for r in results:
        warnings += len(r.warnings)
        if not r.assessments:
            rows.append((r.patient, "-", "-", "-", "not in scope", "-", "-", "-", "-", "-"))
        for a in r.assessments:
            step = a.next_step.strategy + (" +" + "+".join(a.next_step.also) if a.next_step.also else "")
            if a.next_step.suggestions:
                step += f" ({', '.join(a.next_step.suggestions)})"
            rows.append((r.patient, a.disorder.upper(), a.diagnosis, a.stage, a.status,
                         "yes" if a.treatment_resistant else "no", str(a.failed_adequate_trials),
                         ",".join(a.failed_classes) or "-", ",".join(a.pseudo_resistance) or "-", step))
    widths = [max(len(h), *(len(row[i]) for row in rows)) if rows else len(h) for i, h in enumerate(header)]
    line = "  ".join(f"{{:<{w}}}" for w in widths)
    stdout.write(line.format(*header).rstrip() + "\n")
    for row in rows:
        stdout.write(line.format(*row).rstrip() + "\n")
    patients = len({row[0] for row in rows})
    stdout.write(f"\n{patients} patient(s), {warnings + len(run.warnings)} data warning(s)"
                 f"{' - see --format json for details' if warnings + len(run.warnings) else ''}\n")


def main(argv: Sequence[str] | None = None, stdout: IO[str] | None = None, stderr: IO[str] | None = None) -> int:
    stdout = stdout or sys.stdout
    stderr = stderr or sys.stderr
    try:
        with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(stdout):
            words = list(sys.argv[1:] if argv is None else argv)
            args = parser(next((w for w in words if not w.startswith("-")), None)).parse_args(words)
    except SystemExit as exc:
        return int(exc.code) if isinstance(exc.code, int) else EXIT_USAGE
    from fhirtrd import logs  # records as JSON lines on stderr, level from FHIRTRD_LOG_LEVEL
    try:
        logs.configure(os.environ.get("FHIRTRD_LOG_LEVEL", "WARNING"), None if stderr is sys.stderr else stderr)
    except ValueError as exc:
        stderr.write(f"fhirtrd: FHIRTRD_LOG_LEVEL: {exc}\n")
        return EXIT_USAGE
    try:
        return int(args.run(args, stdout, stderr))
    except BrokenPipeError:
        return EXIT_OK


def run() -> None:  # console script
    sys.exit(main())
