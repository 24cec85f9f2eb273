"""`fhirtrd report PATH... --out DIR`: the clinician's page as static HTML per patient, plus an index."""

from __future__ import annotations

import argparse
from datetime import date
from pathlib import Path
from typing import IO, Any


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register `report` on the CLI's subparsers."""
    from fhirtrd.cli import _date

    p: argparse.ArgumentParser = subparsers.add_parser(
        "report", help="write the clinician's page (timeline, findings, evidence) as static HTML per patient",
        description="Classify FHIR files like `classify` and write one HTML page per patient plus index.html "
        "and report.css into DIR (docs/smart-app.md).")
    p.add_argument("paths", nargs="+", type=Path, help="Bundles, resources or NDJSON (.json, .ndjson, .gz)")
    p.add_argument("--out", type=Path, required=True, metavar="DIR", help="directory for the HTML pages")
    p.add_argument("--as-of", type=_date, default=None, help="assessment date, YYYY-MM-DD (default: today)")
    p.add_argument("--mappings", type=Path, action="append", default=[], metavar="DIR",
                   help="extra mapping tables that add to or override the packaged ones (repeatable)")
    p.set_defaults(run=run)
    return p


def run(args: argparse.Namespace, stdout: IO[str], stderr: IO[str]) -> int:
    from fhirtrd.cli import EXIT_MAPPINGS, EXIT_OK, EXIT_UNREADABLE
    from fhirtrd.errors import InputError, TerminologyError
    from fhirtrd.report.static import write_report
    from fhirtrd.service import Run
    from fhirtrd.terminology import load_terminology

    try:
        terminology = load_terminology(args.mappings)
    except TerminologyError as exc:
        stderr.write(f"fhirtrd: mappings: {exc}\n")
        return EXIT_MAPPINGS
    as_of = args.as_of or date.today()
    run = Run(terminology, as_of)
    try:
        pages = write_report(args.paths, args.out, terminology, as_of, run=run)
    except InputError as exc:
        stderr.write(f"fhirtrd: {exc}\n")
        return EXIT_UNREADABLE
    except OSError as exc:
        stderr.write(f"fhirtrd: cannot write the report into {args.out}: {exc.strerror}\n")
        return EXIT_UNREADABLE
    for w in run.warnings:
        if w.code in ("unreadable", "invalid-json", "empty"):
            stderr.write(f"fhirtrd: {w.source}: {w.message}\n")
    stdout.write(f"{len(pages)} patient page(s) and index.html written to {args.out}\n")
    return EXIT_UNREADABLE if run.report.failed else EXIT_OK
