"""The Spark engine: the same split and per-bucket classify as the local engine, as DataFrame steps.

Only the DataFrame API is used (`mapInPandas`, `groupBy().applyInPandas`, `orderBy`,
`toLocalIterator`: no RDD, no SparkContext), so it also runs on Spark Connect (Databricks serverless,
Fabric, EMR with Connect). Step 1 maps input chunks (path, byte range, first line number) to bucket
rows with the local engine's `Splitter`; step 2 groups the rows by bucket and runs
`engine.classify_entries` — the one per-patient-group function both engines call — on each group in
input order; the driver streams the results sorted by patient into the same files as the local engine.
Executors need fhirtrd installed (`pip install fhirtrd[spark]`) and the input paths readable.
"""

from __future__ import annotations

import itertools
import os
import sys
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import orjson

from fhirtrd.fhir.reader import Entry, ReadReport
from fhirtrd.population.buckets import (
    MEDICATIONS,
    Chunk,
    Splitter,
    entries_of,
    line_offsets,
    plan_chunks,
    reline,
)
from fhirtrd.population.engine import (
    CHUNK_BYTES,
    Outcome,
    PopulationRun,
    Settings,
    _load,
    classify_entries,
    definitions_summary,
)

REPORT = "report"
SPLIT_SCHEMA = "chunk long, seq long, bucket string, data binary"
RESULT_SCHEMA = "bucket long, patient string, line binary"


class _Collector(Splitter):
    """A Splitter that hands its bucket lines back instead of writing files."""

    def __init__(self, buckets: int, settings: Settings) -> None:
        self.rows: list[tuple[str, bytes]] = []
        super().__init__(Path(os.devnull).parent, buckets, _load(settings))

    def _write(self, name: str, data: bytes) -> None:
        self.rows.append((name, data))

    def close(self) -> None:
        return None


def _split(batches: Iterator[Any], buckets: int, settings: Settings) -> Iterator[Any]:
    import pandas as pd
    from fhirtrd.schemas import WarningSchema

    for batch in batches:
        for chunk_id, path, start, size in batch.itertuples(index=False):
            c = _Collector(buckets, settings)
            c.split_file(Path(path), int(start), None if size < 0 else int(size))
            read = c.report.read
            report = orjson.dumps({"files": read.files, "failed": read.failed, "lines": c.report.lines,
                                   "skipped": c.report.skipped_unparsed,
                                   "warnings": WarningSchema(many=True).dump(read.warnings)})
            rows = [*c.rows, (REPORT, report)]
            yield pd.DataFrame({"chunk": [chunk_id] * len(rows), "seq": range(len(rows)),
                                "bucket": [name for name, _ in rows], "data": [data for _, data in rows]})


def _decoded(lines: Iterable[tuple[int, bytes]], placed: list[tuple[str, int]], report: ReadReport) -> Iterator[Entry]:
    """(chunk, bucket line) pairs as entries, sources numbered as in their files (see `buckets.Chunk`)."""
    for chunk, group in itertools.groupby(lines, key=lambda pair: pair[0]):
        path, offset = placed[chunk]
        yield from entries_of((line.rstrip(b"\n") for _, line in group), report, path, offset)


def _classify(group: Any, medications: list[tuple[int, bytes]], placed: list[tuple[str, int]],
              settings: Settings) -> Any:
    import pandas as pd
    from fhirtrd.schemas import WarningSchema

    group = group.sort_values(["chunk", "seq"])
    report = ReadReport()
    entries = _decoded(((int(c), line) for c, line in zip(group["chunk"], group["data"], strict=True)),
                       placed, report)
    rows: list[tuple[str | None, bytes]] = [
        (p, line) for p, line, _, _ in classify_entries(_decoded(medications, placed, report), entries,
                                                     _load(settings), settings, report)]
    bucket = int(group["bucket"].iloc[0])
    rows.append((None, orjson.dumps(WarningSchema(many=True).dump(report.warnings))))  # the run's warnings
    return pd.DataFrame({"bucket": [bucket] * len(rows), "patient": [p for p, _ in rows],
                         "line": [line for _, line in rows]})


def session(master: str = "local[2]") -> Any:
    """A Spark session: Spark Connect when SPARK_REMOTE is set, else `master`; executors use this
    interpreter unless PYSPARK_PYTHON says otherwise."""
    from pyspark.sql import SparkSession

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder = SparkSession.builder.appName("fhirtrd-population")
    if not os.environ.get("SPARK_REMOTE"):
        if master.startswith("local"):  # a local run listens on loopback only
            os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
            builder = builder.config("spark.driver.host", "127.0.0.1").config("spark.driver.bindAddress", "127.0.0.1")
        builder = builder.master(master).config("spark.sql.shuffle.partitions", "8") \
            .config("spark.ui.enabled", "false")
    return builder.getOrCreate()


def run_spark(paths: Sequence[Path | str], out: Path, settings: Settings, spark: Any, *, buckets: int = 64,
              chunk_bytes: int = CHUNK_BYTES) -> PopulationRun:
    """Classify everything under `paths` on `spark` into `out` (results, warnings, summary)."""
    import time

    from pyspark.sql import functions as F

    began = time.perf_counter()
    read = ReadReport()
    chunks: list[Chunk] = plan_chunks(paths, read, chunk_bytes)
    plan = spark.createDataFrame(
        [(k, str(Path(c.path).resolve()), c.start, -1 if c.size is None else c.size)
         for k, c in enumerate(chunks)], "chunk long, path string, start long, size long")
    # Resolved paths name the sources; keep the caller's spelling, as the local engine does.
    spelled = {str(Path(c.path).resolve()): c.path for c in chunks}
    split = plan.repartition(max(1, len(chunks)), "chunk").mapInPandas(
        lambda it: _split(it, buckets, settings), SPLIT_SCHEMA).cache()
    reports = [orjson.loads(r["data"]) for r in split.filter(F.col("bucket") == REPORT).orderBy("chunk").collect()]
    offsets = line_offsets(chunks, [r["lines"] for r in reports])
    placed = [(str(Path(c.path).resolve()), o) for c, o in zip(chunks, offsets, strict=True)]
    medications = [(int(r["chunk"]), bytes(r["data"]))
                   for r in split.filter(F.col("bucket") == MEDICATIONS).orderBy("chunk", "seq").collect()]
    entries = split.filter(~F.col("bucket").isin(REPORT, MEDICATIONS))
    results = entries.groupBy("bucket").applyInPandas(lambda g: _classify(g, medications, placed, settings),
                                                      RESULT_SCHEMA).cache()
    out.mkdir(parents=True, exist_ok=True)
    outcome = Outcome()
    with (out / "results.ndjson").open("wb") as fh:
        for row in results.filter(F.col("patient").isNotNull()).orderBy("patient").toLocalIterator():
            line = _respell(bytes(row["line"]), spelled)
            fh.write(line)
            contract = orjson.loads(line)
            outcome.patients += 1
            outcome.warnings += len(contract.get("warnings", ()))
            for a in contract.get("assessments", ()):
                outcome.assessed += 1
                outcome.stages[f"{a['disorder']}:{a['stage']}"] += 1
                if a.get("treatment_resistant"):
                    outcome.treatment_resistant[a["disorder"]] += 1
    lines = skipped = input_warnings = 0
    with (out / "warnings.ndjson").open("wb") as fh:
        for r, placed_chunk in zip(reports, placed, strict=True):
            path, offset = placed_chunk
            for w in r["warnings"]:
                if w.get("source"):
                    w["source"] = reline(w["source"], path, offset)
            read.files += r["files"]
            read.failed += r["failed"]
            lines += r["lines"]
            skipped += r["skipped"]
            input_warnings += len(r["warnings"])
            for w in r["warnings"]:
                fh.write(_respell(orjson.dumps(w), spelled) + b"\n")
        for row in results.filter(F.col("patient").isNull()).orderBy("bucket").toLocalIterator():
            for w in orjson.loads(bytes(row["line"])):
                fh.write(_respell(orjson.dumps(w), spelled) + b"\n")
    split.unpersist()
    results.unpersist()
    done = PopulationRun(outcome, read, lines, skipped, buckets, 0,
                         {"spark": round(time.perf_counter() - began, 3)})
    (out / "summary.json").write_bytes(orjson.dumps({**done.summary(settings.as_of), "engine": "spark",
                                                     "input_warnings": input_warnings,
                                                     "definitions": definitions_summary(out / "results.ndjson")},
                                                    option=orjson.OPT_INDENT_2))
    return done


def _respell(data: bytes, spelled: dict[str, str]) -> bytes:
    for resolved, given in spelled.items():
        if resolved != given:
            data = data.replace(orjson.dumps(resolved)[1:-1], orjson.dumps(given)[1:-1])
    return data
