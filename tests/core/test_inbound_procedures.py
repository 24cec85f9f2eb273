"""Sessions from Procedure and Encounter (SNOMED, CPT), CPAP, and substance use in remission (clinical-spec §2.1, §4 v2)."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from fhirtrd.terminology import Terminology

from .conftest import ICD10, SNOMED, concept, condition, facts, mdd, patient

CPT = "http://www.ama-assn.org/go/cpt"


def _procedure(code: str, system: str, when: str = "2025-01-10", **extra: Any) -> dict[str, Any]:
    return {"resourceType": "Procedure", "id": f"pr-{code}", "status": "completed", "subject": {"reference": "Patient/p1"},
            "code": concept(code, system), "performedDateTime": when, **extra}


def _encounter(rid: str, *, status: str = "finished", **extra: Any) -> dict[str, Any]:
    return {"resourceType": "Encounter", "id": rid, "status": status, "class": {
        "system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
        "subject": {"reference": "Patient/p1"}, "period": {"start": "2025-02-03T10:00:00Z"}, **extra}


@pytest.mark.parametrize(("code", "system", "expected"), [
    ("90832", CPT, "psychotherapy"), ("90834", CPT, "psychotherapy"), ("90837", CPT, "psychotherapy"),
    ("90853", CPT, "psychotherapy"), ("90870", CPT, "ect"), ("90867", CPT, "rtms"), ("90868", CPT, "rtms"),
    ("90869", CPT, "rtms"), ("47545007", SNOMED, "cpap"),
])
def test_cpt_and_snomed_procedures_become_sessions(terminology: Terminology, code: str, system: str,
                                                    expected: str) -> None:
    """clinical-spec §8 v2: the CPT codes for psychotherapy, ECT and rTMS, and SNOMED CPAP 47545007."""
    record, _ = facts(terminology, [patient(), mdd(), _procedure(code, system)])
    assert [(p.concept, p.when) for p in record.procedures] == [(expected, date(2025, 1, 10))]


def test_procedure_reasons_name_the_disorder(terminology: Terminology) -> None:
    sad = condition("F40.10", ICD10, rid="c-sad")
    coded = _procedure("90834", CPT, reasonCode=[concept("F40.10", ICD10)])
    by_ref = _procedure("90837", CPT, reasonReference=[{"reference": "Condition/c-sad"}])
    record, _ = facts(terminology, [patient(), mdd(), coded, by_ref, sad])
    assert [(p.ref, "sad" in p.reasons, "mdd" in p.reasons) for p in record.procedures] == [
        ("Procedure/pr-90834", True, False), ("Procedure/pr-90837", True, False)]


def test_encounters_are_sessions_by_type_or_service_type_with_their_diagnosis(terminology: Terminology) -> None:
    """§2.1 v2: an Encounter typed CPT 90834 (or serviceType) is a psychotherapy session."""
    typed = _encounter("e-typed", type=[concept("90834", CPT)], diagnosis=[{"condition": {"reference": "Condition/c1"}}])
    service = _encounter("e-service", serviceType=concept("75516001", SNOMED), reasonCode=[concept("F33.1", ICD10)])
    planned = _encounter("e-planned", status="planned", type=[concept("90834", CPT)])
    office = _encounter("e-office", type=[concept("185349003", SNOMED)])  # an ordinary visit
    record, _ = facts(terminology, [patient(), condition("F33.1", ICD10, rid="c1"), typed, service, planned, office])
    assert [(p.ref, p.concept, p.when, "mdd" in p.reasons) for p in record.procedures] == [
        ("Encounter/e-typed", "psychotherapy", date(2025, 2, 3), True),
        ("Encounter/e-service", "psychotherapy", date(2025, 2, 3), True),
    ]


def test_substance_use_in_remission_is_not_active_substance_use(terminology: Terminology) -> None:
    """§4 v2: ICD-10-CM F1x.11/F1x.21 and clinicalStatus remission/inactive/resolved are not active use."""
    record, _ = facts(terminology, [patient(), mdd(), condition("F10.21", ICD10, rid="c-remission"),
                                    condition("F10.20", ICD10, rid="c-resolved", clinical="resolved"),
                                    condition("F10.20", ICD10, rid="c-active")])
    got = {c.ref: (c.concepts, c.active) for c in record.conditions if c.ref != record.conditions[0].ref}
    assert got["Condition/c-remission"][0] == frozenset({"substance-use-remission"})
    assert got["Condition/c-resolved"] == (frozenset({"substance-use"}), False)
    assert got["Condition/c-active"] == (frozenset({"substance-use"}), True)
