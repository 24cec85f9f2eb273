"""`fhirtrd feedback report`: CDS feedback from the store, counted per card kind, outcome and reason."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import IO, Any


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register `feedback` on the CLI's subparsers."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "feedback", help="summarise the CDS feedback clinicians gave on the cards",
        description="Read the append-only CDS feedback file of the HTTP service (setting "
        "feedback_path) and count accepted and overridden cards per card kind and override reason.",
    )
    sub = parser.add_subparsers(dest="feedback_command", required=True)
    report = sub.add_parser("report", help="accepted / overridden per card kind and reason")
    report.add_argument("--store", type=Path, default=Path("fhirtrd-feedback.sqlite"),
                        help="the feedback file (default: fhirtrd-feedback.sqlite, the service's default)")
    report.set_defaults(run=run_report)
    return parser


def run_report(args: argparse.Namespace, stdout: IO[str], stderr: IO[str]) -> int:
    from fhirtrd.api.errors import ConfigError
    from fhirtrd.api.feedback import FeedbackStore

    if not args.store.is_file():
        stderr.write(f"fhirtrd feedback: no feedback file at {args.store}\n")
        return 1
    try:
        rows = FeedbackStore(args.store).report()
    except ConfigError as exc:
        stderr.write(f"fhirtrd feedback: {exc}\n")
        return 1
    header = ("card kind", "outcome", "reason", "count")
    table = [header, *((r.kind, r.outcome, r.reason, str(r.count)) for r in rows)]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for row in table:
        stdout.write("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() + "\n")
    total = sum(r.count for r in rows)
    accepted = sum(r.count for r in rows if r.outcome == "accepted")
    stdout.write(f"\n{total} feedback item(s): {accepted} accepted, {total - accepted} overridden\n")
    return 0
