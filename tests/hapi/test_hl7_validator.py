"""Every resource fhirtrd writes is checked by the HL7 validation engine (HAPI's instance validator).

The samples, the golden scenarios (tests/scenarios/*/input.json), the hand-built write-back
scenarios (tests/fhir_out) and the shared real corpus are assessed, their write-back built, and
every distinct resource validated offline against the R4 core definitions plus fhirtrd's own
CodeSystems and ValueSets (mappings/fhir/), by `fhirtrd.hapi.Validate` in the jar .ci/hapi.sh
builds. Codes of external systems (SNOMED CT, LOINC, RxNorm) cannot be checked offline; the
validator reports an unknown system as a warning.

One error kind is allowed, by its exact text, and counted: the R4 core package (2019) carries an
old copy of the HL7 terminology's v3-ObservationValue, without `AIAST` ("Artificial Intelligence
asserted", added to terminology.hl7.org later), so the offline validator cannot know that code.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from fhirtrd.fhir.outbound import build_transaction
from fhirtrd.schemas import dump_result
from fhirtrd.service import classify_paths
from fhirtrd.terminology import load_terminology

REPO_ROOT = Path(__file__).resolve().parents[2]
JAR = Path(os.environ.get("FHIRTRD_HAPI_JAR") or REPO_ROOT / "tests" / "hapi" / "target" / "fhirtrd-hapi.jar")
REAL = REPO_ROOT.parent / "shared" / "data" / "real-fhir"
AS_OF = date(2024, 6, 1)
ISSUED = datetime(2024, 6, 1, 12, tzinfo=UTC)
#: the one error kind allowed (see the module docstring): (message id, message)
NEWER_THAN_R4_CORE = ("Terminology_PassThrough_TX_Message",
                      "Unknown code 'http://terminology.hl7.org/CodeSystem/v3-ObservationValue#AIAST'")


def written_resources() -> list[str]:
    """The distinct resources of every write-back, as NDJSON lines."""
    sys.path.insert(0, str(REPO_ROOT / "tests" / "fhir_out"))
    from fhirout_scenarios import ALL, contract  # the hand-built write-back scenarios

    terminology = load_terminology()
    contracts = [contract(name) for name in sorted(ALL)]
    inputs = [REPO_ROOT / "samples", *sorted((REPO_ROOT / "tests" / "scenarios").glob("*/input.json"))]
    if REAL.is_dir():
        inputs.append(REAL)
    for path in inputs:
        contracts += [dump_result(r) for r in classify_paths([path], terminology, AS_OF)]
    lines: dict[str, None] = {}
    for c in contracts:
        for entry in build_transaction(c, issued=ISSUED).get("entry", []):
            lines[json.dumps(entry["resource"], sort_keys=True)] = None
    return list(lines)


@pytest.mark.server
def test_every_written_resource_passes_the_hl7_validator(tmp_path: Path) -> None:
    if not JAR.is_file():
        reason = f"the HAPI jar is not built: no {JAR} (run .ci/hapi.sh)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    if not REAL.is_dir() and os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"the shared real corpus is missing: {REAL}", pytrace=False)
    lines = written_resources()
    ndjson = tmp_path / "outputs.ndjson"
    ndjson.write_text("\n".join(lines) + "\n")

    run = subprocess.run(
        ["java", "-Xmx1g", "-XX:+UseSerialGC", "-Dloader.main=fhirtrd.hapi.Validate", "-jar", str(JAR),
         str(REPO_ROOT / "mappings" / "fhir"), str(ndjson)],
        capture_output=True, text=True, timeout=900, check=False)

    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.strip().splitlines()[-1] == f"validated {len(lines)} resources"
    messages = [line.split("\t") for line in run.stdout.splitlines() if line.count("\t") == 4]
    errors = [m for m in messages if m[0] in ("error", "fatal")]
    allowed = [m for m in errors if (m[3], m[4]) == NEWER_THAN_R4_CORE]
    warnings = Counter(m[3] for m in messages if m[0] == "warning")
    types = Counter(json.loads(line)["resourceType"] for line in lines)
    print(f"\nHL7 validator: {len(lines)} resources {dict(types)}; errors {len(errors) - len(allowed)} "
          f"(+{len(allowed)} AIAST unknown to the R4 core package); warnings by kind {dict(warnings)}")
    assert [m for m in errors if (m[3], m[4]) != NEWER_THAN_R4_CORE] == []
    assert types["Observation"] > 100 and types["Flag"] > 10 and types["RiskAssessment"] > 10
