"""`python -m bench.definitions` measures the definitions' cost against a same-run baseline."""

from __future__ import annotations

import json

import pytest

from bench import definitions


def test_the_benchmark_prints_both_timings_and_their_ratio(capsys: pytest.CaptureFixture[str]) -> None:
    assert definitions.main(["--patients", "40", "--repeats", "1"]) == 0
    out = capsys.readouterr().out
    figures = json.loads(out.strip().splitlines()[-1])
    assert figures["benchmark"] == "fhirtrd-definitions"
    assert figures["patients"] == 40 and figures["definitions"] == 11
    assert figures["mdd_assessments"] > 0  # the population has depressed patients to define
    assert figures["pipeline_ratio"] == pytest.approx(
        figures["pipeline_with_definitions_s"] / figures["pipeline_baseline_s"], rel=0.01)
    assert "target: definitions add <= 10 % to classify time" in out
