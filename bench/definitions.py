"""Benchmark: what computing the published TRD definitions adds to classify time (target ≤ 10 %).

On the bench population (bench/population.py), in one process and one run:
- pipeline: `fhirtrd.service.classify_paths` over the whole export (read, facts, classify,
  definitions) with the packaged definitions, and the same with the definitions table emptied
  (the baseline); runs alternate, min of `--repeats` each;
- core: the patients' facts built once; `classify` alone (baseline) and `with_definitions` alone on
  its assessments, min of 5 × `--repeats` each; ratio = (classify + definitions) ÷ classify.
Prints both ratios and, last, one JSON line. Exit 0 when it ran (the target is reported), 2 when the
population could not be made.

Run: `python -m bench.definitions [--patients 2000] [--seed 7] [--repeats 3] [--out DIR]`.
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path

import orjson

from bench.classify import population
from bench.population import DEFAULT_AS_OF, PopulationError
from fhirtrd.domain.classify import classify
from fhirtrd.domain.definitions import with_definitions
from fhirtrd.domain.model import PatientRecord
from fhirtrd.service import Run, classify_paths
from fhirtrd.terminology import Terminology, load_terminology

TARGET = 1.10


def _best(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        began = time.perf_counter()
        fn()
        times.append(time.perf_counter() - began)
    return min(times)


def records(directory: Path, terminology: Terminology, as_of: date) -> list[PatientRecord]:
    """Every patient's facts, as the service builds them (read once, outside the timed part)."""
    run = Run(terminology, as_of)
    list(classify_paths([directory], terminology, as_of, run=run))
    out = []
    for b in run.builders.values():
        out.append(b.record(as_of))
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.definitions", description=__doc__.splitlines()[0])
    p.add_argument("--patients", type=int, default=2000)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--as-of", type=date.fromisoformat, default=DEFAULT_AS_OF)
    p.add_argument("--out", type=Path, help="keep (and reuse) the population in this directory")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="fhirtrd-bench-defs-") as tmp:
        directory = args.out or Path(tmp) / "population"
        try:
            pop = population(directory, args.patients, args.seed, args.as_of)
        except PopulationError as exc:
            print(f"bench.definitions: population: {exc}")
            return 2
        with_defs = load_terminology()
        without = dataclasses.replace(with_defs, rules=dataclasses.replace(with_defs.rules, definitions=()))
        rules = with_defs.rules

        def pipeline(t: Terminology) -> Callable[[], object]:
            return lambda: sum(1 for _ in classify_paths([directory], t, args.as_of))

        base_times, def_times = [], []
        for _ in range(args.repeats):  # alternate so that machine load hits both alike
            base_times.append(_best(pipeline(without), 1))
            def_times.append(_best(pipeline(with_defs), 1))
        base, full = min(base_times), min(def_times)

        recs = records(directory, with_defs, args.as_of)
        done = [(r, classify(r, rules, args.as_of)) for r in recs]
        core_base = _best(lambda: [classify(r, rules, args.as_of) for r in recs], 5 * args.repeats)
        defs_only = _best(lambda: [with_definitions(r, a, rules, args.as_of) for r, a in done], 5 * args.repeats)
        core_full = core_base + defs_only
        assessed = sum(1 for r in recs for a in classify(r, rules, args.as_of) if a.disorder == "mdd")

    figures = {
        "benchmark": "fhirtrd-definitions", "patients": pop["patients"], "mdd_assessments": assessed,
        "definitions": len(rules.definitions),
        "pipeline_baseline_s": round(base, 3), "pipeline_with_definitions_s": round(full, 3),
        "pipeline_ratio": round(full / base, 4),
        "core_baseline_s": round(core_base, 4), "definitions_only_s": round(defs_only, 4),
        "core_ratio": round(core_full / core_base, 4), "target_ratio": TARGET,
    }
    print(f"population: {pop['patients']} patients ({assessed} MDD assessments), {len(rules.definitions)} definitions")
    print(f"{'measure':<36}{'baseline s':>12}{'with defs s':>13}{'ratio':>8}")
    print(f"{'classify_paths (read+facts+classify)':<36}{base:>12.3f}{full:>13.3f}{full / base:>8.3f}")
    print(f"{'classify() on built facts':<36}{core_base:>12.3f}{core_full:>13.3f}{core_full / core_base:>8.3f}")
    print(f"definitions alone on built facts: {defs_only:.4f} s")
    verdict = "met" if full / base <= TARGET else "NOT met"
    print(f"target: definitions add <= {100 * (TARGET - 1):.0f} % to classify time: {verdict}")
    print(orjson.dumps(figures).decode())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
