"""`fhirtrd population --engine spark` (local[2], DataFrame API only) writes what the local engine writes."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import pytest

from bench.population import generate
from fhirtrd.cli import main

REPO_ROOT = Path(__file__).resolve().parents[2]
AS_OF = "2025-06-30"


def _need_spark() -> None:
    try:
        import pyspark  # noqa: F401
    except ImportError:
        reason = "pyspark is not installed (bash .ci/spark.sh installs it with Java)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)


@pytest.mark.slow
def test_spark_engine_output_equals_the_local_engine(tmp_path: Path) -> None:
    _need_spark()
    inputs = tmp_path / "in"
    generate(inputs, 40, 3, __import__("datetime").date.fromisoformat(AS_OF))
    (inputs / "broken.ndjson").write_text('{"resourceType": "Condition", "subject": \n')  # a warning to carry
    for sample in ("mdd-stage-ii-sertraline-then-venlafaxine.json", "sad-escitalopram-and-cbt-tr-sad.json"):
        (inputs / sample).write_bytes((REPO_ROOT / "samples" / sample).read_bytes())

    local, spark = tmp_path / "local", tmp_path / "spark"
    err = io.StringIO()
    assert main(["population", str(inputs), "--out", str(local), "--as-of", AS_OF, "--buckets", "6"],
                io.StringIO(), err) == 0, err.getvalue()
    assert main(["population", str(inputs), "--out", str(spark), "--as-of", AS_OF, "--buckets", "6",
                 "--engine", "spark"], io.StringIO(), err) == 0, err.getvalue()

    assert (spark / "results.ndjson").read_bytes() == (local / "results.ndjson").read_bytes()
    assert len((local / "results.ndjson").read_text().splitlines()) == 42
    assert sorted((spark / "warnings.ndjson").read_text().splitlines()) == \
        sorted((local / "warnings.ndjson").read_text().splitlines())
    assert "broken.ndjson:1" in (spark / "warnings.ndjson").read_text()
    summary = json.loads((spark / "summary.json").read_text())
    assert summary["engine"] == "spark" and summary["patients"] == 42
