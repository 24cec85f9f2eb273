"""Flags on the server that the new run no longer raises are planned inactive, never deleted."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from fhirout_checks import validate_fhirclient, validate_r4b
from fhirout_scenarios import contract

from fhirtrd.fhir.outbound import build_transaction, content_hash, plan_flag_deactivations

THEN = datetime(2024, 6, 1, 8, tzinfo=UTC)
NOW = datetime(2024, 7, 1, 9, 30, tzinfo=timezone(timedelta(hours=2)))


def as_stored(bundle: dict[str, Any]) -> list[dict[str, Any]]:
    """The Flags of a bundle as a server holds them: ids given, urn:uuid references resolved."""
    ids = {e["fullUrl"]: f"{e['resource']['resourceType']}/{n}" for n, e in enumerate(bundle["entry"], 1)}
    stored = []
    for e in bundle["entry"]:
        r = copy.deepcopy(e["resource"])
        if r["resourceType"] != "Flag":
            continue
        r["id"] = ids[e["fullUrl"]].split("/")[1]
        r["meta"]["versionId"] = "1"
        r["author"]["reference"] = ids[r["author"]["reference"]]
        r["extension"][0]["valueReference"]["reference"] = ids[r["extension"][0]["valueReference"]["reference"]]
        stored.append(r)
    return stored


def stage2(inflammation: str = "elevated") -> dict[str, Any]:
    c = contract("stage-ii-two-classes-failed")
    c["assessments"][0]["inflammation"] = inflammation
    return c


def test_a_flag_that_no_longer_applies_becomes_inactive_with_an_end() -> None:
    existing = as_stored(build_transaction(stage2("elevated"), issued=THEN))
    new = build_transaction(stage2("not-elevated"), issued=NOW)
    plan = plan_flag_deactivations(existing, new, NOW)
    assert [f["identifier"][0]["value"] for f in plan] == ["p-stage2/mdd/flag/inflammation-elevated"]
    flag = plan[0]
    assert flag["status"] == "inactive"
    assert flag["period"] == {"start": "2024-06-01", "end": "2024-07-01T07:30:00Z"}
    assert flag["id"] == next(f["id"] for f in existing if f["code"]["coding"][0]["code"] == "inflammation-elevated")
    assert flag["meta"]["tag"][1]["code"] == content_hash(flag)
    validate_r4b(flag)
    validate_fhirclient(flag)


def test_planning_changes_none_of_its_inputs() -> None:
    existing = as_stored(build_transaction(stage2("elevated"), issued=THEN))
    before = copy.deepcopy(existing)
    new = build_transaction(stage2("not-elevated"), issued=NOW)
    new_before = copy.deepcopy(new)
    plan_flag_deactivations(existing, new, NOW)
    assert existing == before and new == new_before


def test_same_assessment_again_deactivates_nothing() -> None:
    existing = as_stored(build_transaction(stage2(), issued=THEN))
    assert len(existing) == 2
    assert plan_flag_deactivations(existing, build_transaction(stage2(), issued=NOW), NOW) == []


def test_patient_leaving_scope_loses_all_active_fhirtrd_flags() -> None:
    existing = as_stored(build_transaction(stage2(), issued=THEN))
    empty = build_transaction({"patient": "Patient/p-stage2", "as_of": "2024-07-01",
                               "assessments": []}, issued=NOW)
    plan = plan_flag_deactivations(existing, empty, NOW)
    assert {f["status"] for f in plan} == {"inactive"} and len(plan) == 2


def test_other_flags_are_left_alone() -> None:
    existing = as_stored(build_transaction(stage2(), issued=THEN))
    inactive = copy.deepcopy(existing[0])
    inactive["status"] = "inactive"
    not_ours = copy.deepcopy(existing[1])
    del not_ours["meta"]["tag"][0]  # no fhirtrd-output tag: a clinician's own flag
    other_patient = copy.deepcopy(existing[1])
    other_patient["identifier"][0]["value"] = "p-stage2x/mdd/flag/inflammation-elevated"
    other_patient["subject"]["reference"] = "Patient/p-stage2x"
    empty = build_transaction({"patient": "Patient/p-stage2", "as_of": "2024-07-01",
                               "assessments": []}, issued=NOW)
    assert plan_flag_deactivations([inactive, not_ours, other_patient], empty, NOW) == []


def test_when_must_carry_a_time_zone() -> None:
    existing = as_stored(build_transaction(stage2(), issued=THEN))
    with pytest.raises(ValueError, match="timezone-aware"):
        plan_flag_deactivations(existing, build_transaction(stage2(), issued=NOW), datetime(2024, 7, 1))
