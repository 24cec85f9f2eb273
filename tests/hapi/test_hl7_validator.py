"""Every resource fhirtrd writes is checked by the HL7 validation engine (HAPI's instance validator).

The samples, the golden scenarios (tests/scenarios/*/input.json), the hand-built write-back
scenarios (tests/fhir_out) and the shared real corpus are assessed, their write-back built, and
every distinct resource validated offline against the R4 core definitions plus fhirtrd's own
CodeSystems and ValueSets (mappings/fhir/), by `fhirtrd.hapi.Validate` in the jar .ci/hapi.sh
builds. Codes of external systems (SNOMED CT, LOINC, RxNorm) cannot be checked offline; the
validator reports an unknown system as a warning.

The R4 core package (2019) carries old copies of the HL7 terminology's CodeSystems: its
v3-ObservationValue lacks `AIAST` ("Artificial Intelligence asserted", which every fhirtrd output
carries in meta.security). So the validator also loads the HL7 terminology package
hl7.terminology.r4 (unpacked by .ci/hapi.sh), whose newer copies win: no error is allowed, and a
code invented in that system must still fail.
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
THO = Path(os.environ.get("FHIRTRD_HL7_TERMINOLOGY")
           or REPO_ROOT / "tests" / "hapi" / "target" / "hl7.terminology.r4-7.0.1" / "package")
REAL = REPO_ROOT.parent / "shared" / "data" / "real-fhir"
AS_OF = date(2024, 6, 1)
ISSUED = datetime(2024, 6, 1, 12, tzinfo=UTC)
V3_OBSERVATION_VALUE = "http://terminology.hl7.org/CodeSystem/v3-ObservationValue"


def written_resources(corpora: bool = True) -> list[str]:
    """The distinct resources of every write-back (only the hand-built ones unless CORPORA), as NDJSON lines."""
    sys.path.insert(0, str(REPO_ROOT / "tests" / "fhir_out"))
    from fhirout_scenarios import ALL, contract  # the hand-built write-back scenarios

    terminology = load_terminology()
    contracts = [contract(name) for name in sorted(ALL)]
    inputs = [REPO_ROOT / "samples", *sorted((REPO_ROOT / "tests" / "scenarios").glob("*/input.json"))]
    if REAL.is_dir():
        inputs.append(REAL)
    for path in inputs if corpora else []:
        contracts += [dump_result(r) for r in classify_paths([path], terminology, AS_OF)]
    lines: dict[str, None] = {}
    for c in contracts:
        for entry in build_transaction(c, issued=ISSUED).get("entry", []):
            lines[json.dumps(entry["resource"], sort_keys=True)] = None
    return list(lines)


def require_validator() -> None:
    """Skip (fail in CI) when .ci/hapi.sh has not built the jar or unpacked the terminology package."""
    for path, what in ((JAR, "the HAPI jar is not built"),
                       (THO / "package.json", "the HL7 terminology package is not unpacked")):
        if not path.is_file():
            reason = f"{what}: no {path} (run .ci/hapi.sh)"
            if os.environ.get("CI", "").lower() == "true":
                pytest.fail(reason, pytrace=False)
            pytest.skip(reason)


def validate(lines: list[str], tmp_path: Path) -> list[list[str]]:
    """The HL7 validator's messages on LINES: [severity, line, location, message id, message]."""
    ndjson = tmp_path / "outputs.ndjson"
    ndjson.write_text("\n".join(lines) + "\n")
    run = subprocess.run(
        ["java", "-Xmx1g", "-XX:+UseSerialGC", "-Dloader.main=fhirtrd.hapi.Validate", "-jar", str(JAR),
         str(REPO_ROOT / "mappings" / "fhir"), str(ndjson), str(THO)],
        capture_output=True, text=True, timeout=900, check=False)
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.strip().splitlines()[-1] == f"validated {len(lines)} resources"
    return [line.split("\t") for line in run.stdout.splitlines() if line.count("\t") == 4]


@pytest.mark.server
def test_every_written_resource_passes_the_hl7_validator(tmp_path: Path) -> None:
    require_validator()
    if not REAL.is_dir() and os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"the shared real corpus is missing: {REAL}", pytrace=False)
    lines = written_resources()
    messages = validate(lines, tmp_path)
    errors = [m for m in messages if m[0] in ("error", "fatal")]
    warnings = Counter(m[3] for m in messages if m[0] == "warning")
    types = Counter(json.loads(line)["resourceType"] for line in lines)
    print(f"\nHL7 validator: {len(lines)} resources {dict(types)}; errors {len(errors)}; "
          f"warnings by kind {dict(warnings)}")
    assert errors == []
    assert types["Observation"] > 100 and types["Flag"] > 10 and types["RiskAssessment"] > 10
    security = {(s["system"], s["code"]) for line in lines for s in json.loads(line)["meta"]["security"]}
    assert (V3_OBSERVATION_VALUE, "AIAST") in security


@pytest.mark.server
def test_the_validator_still_rejects_a_code_invented_in_the_newer_hl7_codesystem(tmp_path: Path) -> None:
    """The newer v3-ObservationValue is really used: AIAST passes, an invented code beside it fails."""
    require_validator()
    sample = next(line for line in written_resources(corpora=False) if json.loads(line)["resourceType"] == "Observation")
    invented = json.loads(sample)
    for coding in invented["meta"]["security"]:
        if coding["system"] == V3_OBSERVATION_VALUE:
            coding.update(code="AIASTX", display="Artificial Intelligence asserted, invented")
    messages = validate([sample, json.dumps(invented)], tmp_path)
    errors = [(m[1], m[2], m[4]) for m in messages if m[0] in ("error", "fatal")]
    assert errors == [("2", "Observation.meta.security[0]", f"Unknown code '{V3_OBSERVATION_VALUE}#AIASTX'")]
