"""`python -m bench.population_scale` measures the population engine against `fhirtrd classify` in one run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import population_scale


def test_the_benchmark_prints_runs_ratios_floors_and_projection(capsys: pytest.CaptureFixture[str],
                                                                tmp_path: Path) -> None:
    assert population_scale.main(["--patients", "60", "--registry", "30", "--keep", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    figures = json.loads(out.strip().splitlines()[-1])
    assert all(r["returncode"] == 0 for r in figures["runs"])
    assert figures["ratios"]["mix60"]["identical_to_classify"] is True
    assert figures["ratios"]["registry"]["identical_to_classify"] is True
    floors = {f["label"]: f for f in figures["inputs"]["floors"]}
    assert set(floors) == {"mix60", "registry30"}
    assert all(f["patients_per_cpu_s"] > 0 and f["parsed_mb"] >= 0 for f in floors.values())
    assert figures["projection"]["bench_mix_from_2_worker_wall"]["patients"] == 60
    assert 1.0 <= figures["inputs"]["machine_2_process_scaling"] <= 2.2
    assert "parse floor" in out and "targets:" in out
