"""Benchmark: the quick structural check against the fhir.resources R4B models on the same resources.

The resources are those the classifier validates (the types its adapter reads, and Medication) of
a registry from bench/population.py (every patient with a depression or SAD history), plus the
shared real corpus when it is present. In one process and one run:
- models: `model_validate` of every resource (the baseline);
- quick, cold: `QuickCheck.accepts` of every resource in a fresh checker (nothing remembered);
- quick, warm: the same again (primitive values remembered, as in a population run).
It also counts where they disagree: the quick check accepting a resource the models reject must be
0 (it would let an invalid resource through); the models accepting one the quick check is unsure of
costs only time (the models are asked). Prints a table and, last, one JSON line.

Run: `python -m bench.validation [--patients 300] [--seed 7]`.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import orjson

from bench.population import DEFAULT_AS_OF, load_vocabulary, patient_resources
from fhirtrd.fhir.inbound import Adapter
from fhirtrd.fhir.inbound.common import _model
from fhirtrd.fhir.quickcheck import QuickCheck
from fhirtrd.fhir.reader import ReadReport, read_path
from fhirtrd.terminology import load_terminology

REAL = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real-fhir"


def resources(patients: int, seed: int) -> list[dict[str, Any]]:
    read = {*Adapter(load_terminology(), validate=False).handlers, "Medication"}
    vocab = load_vocabulary()
    out = [r for i in range(patients) for r in patient_resources(seed, i, vocab, DEFAULT_AS_OF, mh_share=1.0)[0]
           if r["resourceType"] in read]
    if REAL.is_dir():
        out += [e.resource for f in sorted(REAL.rglob("*")) if f.is_file()
                for e in read_path(f, ReadReport()) if e.resource.get("resourceType") in read]
    return out


def models_accept(resource: dict[str, Any]) -> bool:
    try:
        _model(resource["resourceType"]).model_validate(resource)
    except Exception:  # noqa: BLE001 - any refusal
        return False
    return True


def timed(fn: Any, items: list[dict[str, Any]]) -> tuple[float, list[bool]]:
    began = time.process_time()
    answers = [fn(r) for r in items]
    return time.process_time() - began, answers


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--patients", type=int, default=300)
    p.add_argument("--seed", type=int, default=7)
    args = p.parse_args(argv)
    items = resources(args.patients, args.seed)
    for r in items[:50]:  # import and build every model and table once, outside the timings
        models_accept(r)
        QuickCheck().accepts(r)
    models_s, valid = timed(models_accept, items)
    quick = QuickCheck()
    cold_s, cold = timed(quick.accepts, items)
    warm_s, warm = timed(quick.accepts, items)
    wrongly_accepted = sum(1 for q, m in zip(warm, valid, strict=True) if q and not m)
    unsure = sum(1 for q, m in zip(warm, valid, strict=True) if m and not q)
    n = len(items)
    figures = {
        "benchmark": "fhirtrd-validation", "resources": n, "valid": sum(valid),
        "models_us_per_resource": round(models_s / n * 1e6, 1),
        "quick_cold_us_per_resource": round(cold_s / n * 1e6, 1),
        "quick_warm_us_per_resource": round(warm_s / n * 1e6, 1),
        "speedup_cold": round(models_s / cold_s, 1), "speedup_warm": round(models_s / warm_s, 1),
        "quick_accepted_models_rejected": wrongly_accepted, "models_accepted_quick_unsure": unsure,
        "real_corpus": REAL.is_dir(), "cold_agrees_with_warm": cold == warm,
    }
    print(f"{'check':24} {'µs/resource':>12} {'× faster':>9}")
    print(f"{'fhir.resources models':24} {figures['models_us_per_resource']:>12}")
    print(f"{'quick check, cold':24} {figures['quick_cold_us_per_resource']:>12} {figures['speedup_cold']:>9}")
    print(f"{'quick check, warm':24} {figures['quick_warm_us_per_resource']:>12} {figures['speedup_warm']:>9}")
    print(f"{n} resources ({sum(valid)} valid); quick accepted what the models reject: {wrongly_accepted}; "
          f"models accepted what quick left to them: {unsure}")
    print(orjson.dumps(figures).decode())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
