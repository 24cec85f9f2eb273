"""Golden write-back for clinical scenarios (timestamps normalised); FHIRTRD_UPDATE_GOLDEN=1 rewrites."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fhirout_checks import normalise
from fhirout_scenarios import contract

from fhirtrd.fhir.outbound import OutputSettings, build_transaction

GOLDEN = Path(__file__).resolve().parent / "golden"
SETTINGS = OutputSettings(device_version="golden")  # goldens do not change with each release


@pytest.mark.parametrize("name", ["stage-ii-two-classes-failed", "bipolar-on-file",
                                  "depression-and-social-anxiety"])
def test_bundle_matches_golden(name: str) -> None:
    bundle = normalise(build_transaction(contract(name), SETTINGS,
                                         issued=datetime(2030, 1, 1, tzinfo=UTC)))
    path = GOLDEN / f"{name}.json"
    if os.environ.get("FHIRTRD_UPDATE_GOLDEN") == "1":
        path.write_text(json.dumps(bundle, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    expected = json.loads(path.read_text(encoding="utf-8"))
    assert bundle == expected
