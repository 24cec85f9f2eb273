"""The local engine: split once, classify bucket by bucket in a process pool, merge the outputs.

Every bucket is classified by `classify_entries`, the one per-patient-group function the Spark
engine calls too; it feeds `service.Run` (the pipeline every door uses) and turns each result into
its contract dict and, when asked, its FHIR resources. Outputs stream: each bucket writes its part
files sorted by patient, and the parts are merged (heap merge, one line per part in memory) into
`results.ndjson` (the JSON contract, one patient a line, in the order `fhirtrd classify` prints),
`fhir/<Type>.ndjson` ready for `$import`, `warnings.ndjson` and `summary.json`.
"""

from __future__ import annotations

import heapq
import os
import shutil
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from pathlib import Path
from typing import Any

import orjson

from fhirtrd.fhir.reader import Entry, ReadReport
from fhirtrd.population.buckets import (
    MEDICATIONS,
    Chunk,
    Splitter,
    SplitReport,
    line_offsets,
    plan_chunks,
    read_bucket,
    reline,
)
from fhirtrd.terminology import Terminology, load_terminology

CHUNK_BYTES = 32 << 20  # input one process splits at a time (at least)
CHUNKS_PER_WORKER = 16
TARGET_BUCKET_BYTES = 48 << 20  # relevant input per bucket: keeps a worker's patients well under 100 MB
MAX_BUCKETS = 4096


@dataclass(frozen=True)
class Settings:
    """What a worker needs to classify a bucket (picklable: sent once to each worker)."""

    as_of: date
    mappings: tuple[str, ...] = ()
    fhir: bool = False
    issued: datetime | None = None


@dataclass
class Outcome:
    """One bucket's (or the whole run's) counts."""

    patients: int = 0
    assessed: int = 0
    treatment_resistant: Counter[str] = field(default_factory=Counter)
    stages: Counter[str] = field(default_factory=Counter)
    fhir_resources: Counter[str] = field(default_factory=Counter)
    warnings: int = 0

    def add(self, other: Outcome) -> None:
        self.patients += other.patients
        self.assessed += other.assessed
        self.treatment_resistant.update(other.treatment_resistant)
        self.stages.update(other.stages)
        self.fhir_resources.update(other.fhir_resources)
        self.warnings += other.warnings


_terminology: Terminology | None = None


def _load(settings: Settings) -> Terminology:
    global _terminology
    if _terminology is None:
        _terminology = load_terminology(list(settings.mappings))
    return _terminology


def import_resources(bundle: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """A write-back transaction's resources with ids for `$import`: each gets the uuid of its fullUrl
    as id (deterministic, so a re-run overwrites instead of duplicating), references rewritten."""
    ids = {e["fullUrl"]: f"{e['resource']['resourceType']}/{e['fullUrl'].rsplit(':', 1)[1]}"
           for e in bundle.get("entry", ())}
    if not ids:
        return
    raw = orjson.dumps([e["resource"] for e in bundle["entry"]])
    for url, ref in ids.items():
        raw = raw.replace(f'"{url}"'.encode(), f'"{ref}"'.encode())
    for entry, resource in zip(bundle["entry"], orjson.loads(raw), strict=True):
        resource["id"] = ids[entry["fullUrl"]].split("/", 1)[1]
        yield resource


def classify_entries(medications: Iterable[Entry], entries: Iterable[Entry], terminology: Terminology,
                     settings: Settings, report: ReadReport
                     ) -> Iterator[tuple[str, bytes, list[dict[str, Any]], dict[str, Any]]]:
    """(patient, contract JSON line, FHIR resources, the contract) for each patient of a group of whole
    patients, sorted by patient id — exactly what `fhirtrd classify` computes for them."""
    from fhirtrd.schemas import dump_result
    from fhirtrd.service import Run

    run = Run(terminology, settings.as_of, report=report)
    for entry in medications:
        run.add(entry)
    for entry in entries:
        run.add(entry)
    build = None
    if settings.fhir:
        from fhirtrd.fhir.outbound import build_transaction
        build = build_transaction
    for result in run.results():
        contract = dump_result(result)
        resources: list[dict[str, Any]] = []
        if build is not None:
            resources = list(import_resources(build(contract, issued=settings.issued)))
        yield result.patient, orjson.dumps(contract) + b"\n", resources, contract


def split_chunk(directory: str, index: int, chunk: Chunk, buckets: int, settings: Settings) -> SplitReport:
    """Split one chunk of input into its own bucket files under `<directory>/c<index>/`."""
    splitter = Splitter(Path(directory) / f"c{index}", buckets, _load(settings))
    try:
        splitter.split_file(Path(chunk.path), chunk.start, chunk.size)
    finally:
        splitter.close()
    return splitter.report


def _pieces(root: Path, chunks: Sequence[tuple[Chunk, int]], name: str | int, report: ReadReport) -> Iterator[Entry]:
    """A bucket's entries from every (chunk, line offset), in input order."""
    for c, (chunk, offset) in enumerate(chunks):
        yield from read_bucket(root / f"c{c}" / f"{name}.bucket", report, chunk, offset)


def classify_bucket(directory: str, bucket: int, chunks: Sequence[tuple[Chunk, int]], settings: Settings
                    ) -> tuple[Outcome, list[dict[str, Any]]]:
    """Classify one bucket into its sorted part files; returns its counts and run warnings."""
    from fhirtrd.schemas import WarningSchema

    terminology = _load(settings)
    root = Path(directory)
    report = ReadReport()
    outcome = Outcome()
    parts: dict[str, Any] = {}
    results = (root / f"{bucket}.results").open("wb")
    try:
        classified = classify_entries(_pieces(root, chunks, MEDICATIONS, report), _pieces(root, chunks, bucket, report),
                                      terminology, settings, report)
        for patient, line, resources, contract in classified:
            results.write(orjson.dumps(patient) + b"\t" + line)
            outcome.patients += 1
            outcome.warnings += len(contract.get("warnings", ()))
            for a in contract.get("assessments", ()):
                outcome.assessed += 1
                outcome.stages[f"{a['disorder']}:{a['stage']}"] += 1
                if a.get("treatment_resistant"):
                    outcome.treatment_resistant[a["disorder"]] += 1
            for resource in resources:
                rtype = resource["resourceType"]
                fh = parts.get(rtype)
                if fh is None:
                    fh = parts[rtype] = (root / f"{bucket}.{rtype}.fhir").open("wb")
                fh.write(orjson.dumps(patient) + b"\t" + orjson.dumps(resource) + b"\n")
                outcome.fhir_resources[rtype] += 1
    finally:
        results.close()
        for fh in parts.values():
            fh.close()
    for c in range(len(chunks)):
        (root / f"c{c}" / f"{bucket}.bucket").unlink(missing_ok=True)
    return outcome, WarningSchema(many=True).dump(report.warnings)


def input_bytes(paths: Sequence[Path | str]) -> int:
    """The size of the input (gzip counted ×8, about what it holds)."""
    total = 0
    for p in map(Path, paths):
        files = [p] if p.is_file() else [f for f in p.rglob("*") if f.is_file()] if p.is_dir() else []
        total += sum(f.stat().st_size * (8 if f.name.endswith(".gz") else 1) for f in files)
    return total


def default_buckets(paths: Sequence[Path | str], workers: int) -> int:
    """Enough buckets that each holds about TARGET_BUCKET_BYTES of input."""
    return max(4 * workers, min(MAX_BUCKETS, -(-input_bytes(paths) // TARGET_BUCKET_BYTES)))


def default_chunk_bytes(paths: Sequence[Path | str], workers: int) -> int:
    """CHUNK_BYTES, or more for a big input: about CHUNKS_PER_WORKER chunks a worker. Each chunk
    writes one file per bucket, so small chunks of a big export would make hundreds of thousands."""
    return max(CHUNK_BYTES, input_bytes(paths) // (workers * CHUNKS_PER_WORKER))


def _merge(parts: list[Path], out: Path, *, dedupe: bool = False) -> int:
    """Heap-merge part files of `patient<TAB>line` rows into `out` (lines only), removing the parts."""
    handles = [p.open("rb") for p in parts]
    written = 0
    seen: set[bytes] = set()
    try:
        with out.open("wb") as dst:
            for row in heapq.merge(*handles, key=lambda r: orjson.loads(r.partition(b"\t")[0])):
                line = row.partition(b"\t")[2]
                if dedupe:  # the shared Device resource comes once per patient; keep it once
                    if line in seen:
                        continue
                    seen.add(line)
                dst.write(line)
                written += 1
    finally:
        for h in handles:
            h.close()
        for p in parts:
            p.unlink()
    return written


@dataclass
class PopulationRun:
    """What a population run did, as written to `summary.json`."""

    outcome: Outcome
    report: ReadReport
    lines: int
    skipped_unparsed: int
    buckets: int
    workers: int
    seconds: dict[str, float]

    def summary(self, as_of: date) -> dict[str, Any]:
        o = self.outcome
        return {
            "as_of": as_of.isoformat(), "patients": o.patients, "assessments": o.assessed,
            "treatment_resistant": dict(sorted(o.treatment_resistant.items())),
            "stages": dict(sorted(o.stages.items())), "fhir_resources": dict(sorted(o.fhir_resources.items())),
            "patient_warnings": o.warnings, "input_warnings": len(self.report.warnings),
            "files": self.report.files, "unreadable": self.report.failed,
            "lines": self.lines, "lines_skipped_unparsed": self.skipped_unparsed,
            "buckets": self.buckets, "workers": self.workers, "seconds": self.seconds,
        }


def run_local(paths: Sequence[Path | str], out: Path, settings: Settings, *, workers: int | None = None,
              buckets: int | None = None, work: Path | None = None, chunk_bytes: int | None = None) -> PopulationRun:
    """Classify everything under `paths` into `out` with `workers` processes (default: all cores)."""
    from fhirtrd.schemas import WarningSchema

    workers = workers or os.cpu_count() or 1
    buckets = buckets or default_buckets(paths, workers)
    out.mkdir(parents=True, exist_ok=True)
    work = work or out / ".buckets"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    seconds: dict[str, float] = {}
    began = time.perf_counter()
    read = ReadReport()
    chunks = plan_chunks(paths, read, chunk_bytes or default_chunk_bytes(paths, workers))
    _load(settings)
    pool = ProcessPoolExecutor(max_workers=workers) if workers > 1 else None
    try:
        if pool is None:
            splits = [split_chunk(str(work), k, c, buckets, settings) for k, c in enumerate(chunks)]
        else:
            splits = list(pool.map(split_chunk, *zip(*((str(work), k, c, buckets, settings)
                                                        for k, c in enumerate(chunks)), strict=True)))
        lines = skipped = 0
        offsets = line_offsets(chunks, [sr.lines for sr in splits])
        for chunk, offset, sr in zip(chunks, offsets, splits, strict=True):
            read.files += sr.read.files
            read.failed += sr.read.failed
            read.warnings += [replace(w, source=reline(w.source, chunk.path, offset)) if w.source else w
                              for w in sr.read.warnings]
            lines += sr.lines
            skipped += sr.skipped_unparsed
        seconds["split"] = round(time.perf_counter() - began, 3)
        began = time.perf_counter()
        outcome = Outcome()
        placed = list(zip(chunks, offsets, strict=True))
        args = [(str(work), b, placed, settings) for b in range(buckets)]
        done = map(classify_bucket, *zip(*args, strict=True)) if pool is None else \
            pool.map(classify_bucket, *zip(*args, strict=True))
        bucket_warnings: list[list[dict[str, Any]]] = []
        for o, w in done:
            outcome.add(o)
            bucket_warnings.append(w)
    finally:
        if pool is not None:
            pool.shutdown()
    seconds["classify"] = round(time.perf_counter() - began, 3)
    began = time.perf_counter()
    _merge([work / f"{b}.results" for b in range(buckets)], out / "results.ndjson")
    if settings.fhir:
        fhir = out / "fhir"
        shutil.rmtree(fhir, ignore_errors=True)
        fhir.mkdir()
        for rtype in sorted(outcome.fhir_resources):
            parts = [p for b in range(buckets) if (p := work / f"{b}.{rtype}.fhir").exists()]
            outcome.fhir_resources[rtype] = _merge(parts, fhir / f"{rtype}.ndjson", dedupe=rtype == "Device")
    with (out / "warnings.ndjson").open("wb") as fh:
        for ws in (WarningSchema(many=True).dump(read.warnings), *bucket_warnings):
            for w in ws:
                fh.write(orjson.dumps(w) + b"\n")
    shutil.rmtree(work, ignore_errors=True)
    seconds["merge"] = round(time.perf_counter() - began, 3)
    result = PopulationRun(outcome, read, lines, skipped, buckets, workers, seconds)
    (out / "summary.json").write_bytes(orjson.dumps({**result.summary(settings.as_of),
                                                     "definitions": definitions_summary(out / "results.ndjson")},
                                                    option=orjson.OPT_INDENT_2))
    return result


def definitions_summary(results: Path) -> dict[str, Any]:
    """Prevalence of each published TRD definition and its agreement with fhirtrd (`--format summary`)."""
    from fhirtrd.summary import as_json, summarise_contract

    with results.open("rb") as fh:
        return as_json(summarise_contract(orjson.loads(line) for line in fh if line.strip()))
