"""`fhirtrd population`: classify a whole export with flat memory on every core (docs/population.md)."""

from __future__ import annotations

import argparse
from datetime import UTC, date, datetime
from pathlib import Path
from typing import IO, Any

import orjson

EXIT_OK, EXIT_UNREADABLE, EXIT_USAGE, EXIT_MAPPINGS = 0, 1, 2, 3


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register `fhirtrd population` on the main parser's subparsers."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "population", help="classify a whole population (a Bulk Data export) into NDJSON outputs",
        description="Stream FHIR inputs into patient-hash buckets on disk, classify the buckets in parallel "
                    "and write results.ndjson, warnings.ndjson, summary.json (and fhir/<Type>.ndjson).")
    p.add_argument("paths", nargs="+", type=Path, help="NDJSON, Bundles or resources (.gz too); directories recursively")
    p.add_argument("--out", type=Path, required=True, help="output directory")
    p.add_argument("--as-of", type=date.fromisoformat, default=None, metavar="YYYY-MM-DD",
                   help="assessment date (default: today)")
    p.add_argument("--fhir", action="store_true", help="also write the FHIR outputs as fhir/<Type>.ndjson for $import")
    p.add_argument("--workers", type=int, default=None, help="processes (default: every core)")
    p.add_argument("--buckets", type=int, default=None, help="patient-hash buckets (default: about 48 MB of input each)")
    p.add_argument("--engine", choices=("local", "spark"), default="local",
                   help="local processes (default), or Spark (needs fhirtrd[spark]; Spark Connect when "
                        "SPARK_REMOTE is set)")
    p.add_argument("--spark-master", default="local[2]", help="with --engine spark: the master (default local[2])")
    p.add_argument("--mappings", type=Path, action="append", default=[], metavar="DIR",
                   help="extra mapping tables that add to or override the packaged ones (repeatable)")
    p.set_defaults(run=run_population)
    return p


def run_population(args: argparse.Namespace, stdout: IO[str], stderr: IO[str]) -> int:
    from fhirtrd.errors import TerminologyError
    from fhirtrd.population.engine import Settings, _load, run_local

    if (args.workers is not None and args.workers < 1) or (args.buckets is not None and args.buckets < 1):
        stderr.write("fhirtrd population: --workers and --buckets must be at least 1\n")
        return EXIT_USAGE
    as_of = args.as_of or date.today()
    settings = Settings(as_of=as_of, mappings=tuple(str(m) for m in args.mappings), fhir=args.fhir,
                        issued=datetime.now(UTC).replace(microsecond=0))
    try:
        _load(settings)
    except TerminologyError as exc:
        stderr.write(f"fhirtrd: mappings: {exc}\n")
        return EXIT_MAPPINGS
    if args.engine == "spark":
        if args.fhir:
            stderr.write("fhirtrd population: --fhir is not available with --engine spark yet\n")
            return EXIT_USAGE
        try:
            from fhirtrd.population.spark import run_spark, session
            spark = session(args.spark_master)
        except ImportError as exc:
            stderr.write(f"fhirtrd population: --engine spark needs pyspark, pandas and pyarrow "
                         f"(pip install 'fhirtrd[spark]'): {exc}\n")
            return EXIT_USAGE
        try:
            done = run_spark(args.paths, args.out, settings, spark, buckets=args.buckets or 64)
        finally:
            spark.stop()
    else:
        done = run_local(args.paths, args.out, settings, workers=args.workers, buckets=args.buckets)
    for w in done.report.warnings:
        if w.code in ("unreadable", "invalid-json", "empty"):
            stderr.write(f"fhirtrd: {w.source}: {w.message}\n")
    stdout.write(orjson.dumps(done.summary(as_of), option=orjson.OPT_INDENT_2).decode() + "\n")
    return EXIT_UNREADABLE if done.report.failed else EXIT_OK
