"""Every command docs/population.md shows runs, exactly as written, and does what the text says."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
DOC = REPO_ROOT / "docs" / "population.md"


def _commands() -> list[str]:
    blocks = re.findall(r"```\n(.*?)```", DOC.read_text(), flags=re.S)
    return [line[2:] for block in blocks for line in block.splitlines() if line.startswith("$ ")]


def test_the_documented_command_writes_the_documented_outputs(tmp_path: Path) -> None:
    (tmp_path / "samples").symlink_to(REPO_ROOT / "samples")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    commands = _commands()
    assert commands
    for command in commands:
        done = subprocess.run(["bash", "-c", command], cwd=tmp_path, env=env, capture_output=True, text=True,
                              timeout=300)
        assert done.returncode == 0, done.stderr
    out = tmp_path / "population-out"
    summary = json.loads((out / "summary.json").read_text())
    results = [json.loads(line) for line in (out / "results.ndjson").read_text().splitlines()]
    assert summary["patients"] == len(results) == len(list((REPO_ROOT / "samples").glob("*.json")))
    assert [r["patient"] for r in results] == sorted(r["patient"] for r in results)
    assert {p.name for p in (out / "fhir").iterdir()} >= {"Observation.ndjson", "Flag.ndjson", "Device.ndjson",
                                                          "Provenance.ndjson", "RiskAssessment.ndjson"}
    # The published TRD definitions are summarised as `fhirtrd classify … --format summary` does.
    from datetime import date

    from fhirtrd.service import classify_paths
    from fhirtrd.summary import as_json, summarise
    from fhirtrd.terminology import load_terminology

    as_of = date.fromisoformat(summary["as_of"])
    classified = list(classify_paths([REPO_ROOT / "samples"], load_terminology(), as_of))
    assert summary["definitions"] == as_json(summarise(classified))
    assert summary["definitions"]["fhirtrd"]["met"] == sum(
        a["treatment_resistant"] for r in results for a in r["assessments"] if a["disorder"] == "mdd")
