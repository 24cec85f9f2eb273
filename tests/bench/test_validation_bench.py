"""`python -m bench.validation` times the quick check against the fhir.resources models on the same resources."""

from __future__ import annotations

import json

import pytest

from bench import validation


def test_the_benchmark_prints_both_timings_and_no_wrong_acceptance(capsys: pytest.CaptureFixture[str]) -> None:
    assert validation.main(["--patients", "20"]) == 0
    out = capsys.readouterr().out
    figures = json.loads(out.strip().splitlines()[-1])
    assert figures["benchmark"] == "fhirtrd-validation" and figures["resources"] > 500
    assert figures["quick_accepted_models_rejected"] == 0
    assert figures["cold_agrees_with_warm"] is True
    assert figures["speedup_warm"] == pytest.approx(
        figures["models_us_per_resource"] / figures["quick_warm_us_per_resource"], rel=0.1)
    assert "quick check, warm" in out
