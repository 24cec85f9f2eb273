"""v2 trial kinds in the write-back: adjunct and advanced trials are trial Observations (clinical-spec §2, §9)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fhirout_checks import check_bundle
from fhirout_scenarios import contract

from fhirtrd.fhir.outbound import build_transaction

CS = "http://fhirtrd.org/fhir/CodeSystem/fhirtrd"


def trial_kinds(bundle: dict[str, Any]) -> dict[str, str]:
    """treatment → kind code of every trial Observation in the bundle."""
    out: dict[str, str] = {}
    for e in bundle["entry"]:
        r = e["resource"]
        codes = {(c["system"], c["code"]) for c in r.get("code", {}).get("coding", [])}
        if r["resourceType"] != "Observation" or (CS, "treatment-trial") not in codes:
            continue
        comps = {c["code"]["coding"][0]["code"]: c for c in r["component"]}
        kind = comps["treatment-kind"]["valueCodeableConcept"]["coding"][0]
        assert kind["system"] == CS and kind.get("display")
        out[comps["treatment"]["valueCodeableConcept"]["text"] if "valueCodeableConcept" in comps["treatment"]
            else comps["treatment"]["valueString"]] = kind["code"]
    return out


def test_adjunct_and_advanced_trials_are_written_as_valid_trial_observations() -> None:
    bundle = build_transaction(contract("advanced-in-progress-with-adjunct"),
                               issued=datetime(2024, 6, 1, 14, 30, tzinfo=UTC))
    check_bundle(bundle)  # R4-valid with two validators
    assert trial_kinds(bundle) == {"sertraline": "medication", "trazodone": "adjunct",
                                   "venlafaxine": "medication", "esketamine": "advanced"}
    [assessment] = [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Observation"
                    and e["resource"].get("hasMember")]
    assert len(assessment["hasMember"]) == 4
    # the note lists only the counted failures, never the esketamine course
    assert "esketamine" not in assessment["note"][0]["text"].split(":", 1)[1].split(".")[0]
