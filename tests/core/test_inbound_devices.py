"""CPAP from DeviceRequest, DeviceUseStatement and Device (clinical-spec §6 v2; codes in mappings/devices.csv)."""

from __future__ import annotations

from typing import Any

import pytest

from fhirtrd.terminology import Terminology

from .conftest import AS_OF, ICD10, SNOMED, assess, assessment, concept, condition, facts, mdd, patient, score

#: the device code of the HL7 US Core DeviceRequest CPAP example (mappings/devices.csv)
CPAP_DEVICE = concept("1284824006", SNOMED, "Sleep apnea breathing therapy equipment")
#: a device type that is not CPAP (glucose monitor): never read as treatment
OTHER_DEVICE = concept("337414009", SNOMED, "Blood glucose meters")


def _request(code: dict[str, Any] | None = None, *, status: str = "active", intent: str = "order",
             rid: str = "dr-1", **extra: Any) -> dict[str, Any]:
    r: dict[str, Any] = {"resourceType": "DeviceRequest", "id": rid, "status": status, "intent": intent,
                         "subject": {"reference": "Patient/p1"}, "authoredOn": "2024-06-20T13:45:00-05:00", **extra}
    if "codeReference" not in extra:
        r["codeCodeableConcept"] = code or CPAP_DEVICE
    return r


def _device(rid: str = "dev-1", type_: dict[str, Any] | None = None, *, status: str = "active",
            pid: str | None = "p1") -> dict[str, Any]:
    r: dict[str, Any] = {"resourceType": "Device", "id": rid, "status": status, "type": type_ or CPAP_DEVICE}
    if pid:
        r["patient"] = {"reference": f"Patient/{pid}"}
    return r


def _use(device: str = "Device/dev-1", *, status: str = "active", rid: str = "dus-1") -> dict[str, Any]:
    return {"resourceType": "DeviceUseStatement", "id": rid, "status": status, "subject": {"reference": "Patient/p1"},
            "timingPeriod": {"start": "2024-07-01"}, "device": {"reference": device}}


def _cpap(terminology: Terminology, resources: list[dict[str, Any]]) -> list[tuple[str, str]]:
    record, _ = facts(terminology, [patient(), mdd(), *resources])
    return [(p.ref, p.when.isoformat()) for p in record.procedures if p.concept == "cpap"]


def test_a_cpap_order_is_cpap_treatment(terminology: Terminology) -> None:
    assert _cpap(terminology, [_request()]) == [("DeviceRequest/dr-1", "2024-06-20")]


def test_an_order_referencing_a_cpap_device_is_read_whichever_comes_first(terminology: Terminology) -> None:
    request = _request(codeReference={"reference": "Device/dev-1"})
    expected = [("DeviceRequest/dr-1", "2024-06-20")]
    assert _cpap(terminology, [request, _device()]) == expected
    assert _cpap(terminology, [_device(), request]) == expected


@pytest.mark.parametrize(("status", "intent"), [("draft", "order"), ("revoked", "order"),
                                                 ("entered-in-error", "order"), ("active", "proposal"),
                                                 ("active", "plan")])
def test_drafts_revoked_proposals_and_plans_are_not_treatment(terminology: Terminology, status: str,
                                                               intent: str) -> None:
    assert _cpap(terminology, [_request(status=status, intent=intent)]) == []


def test_a_use_statement_takes_the_type_of_its_device_before_or_after_it(terminology: Terminology) -> None:
    expected = [("DeviceUseStatement/dus-1", "2024-07-01")]
    assert _cpap(terminology, [_use(), _device()]) == expected
    assert _cpap(terminology, [_device(), _use()]) == expected


def test_a_use_statement_of_another_device_or_not_yet_used_is_not_cpap(terminology: Terminology) -> None:
    assert _cpap(terminology, [_use(), _device(type_=OTHER_DEVICE)]) == []
    assert _cpap(terminology, [_use(status="intended"), _device(status="inactive")]) == []
    assert _cpap(terminology, [_use(status="entered-in-error"), _device(status="inactive")]) == []
    assert _cpap(terminology, [_use("Device/missing")]) == []


def test_an_active_cpap_device_of_the_patient_is_in_use_at_the_as_of_date(terminology: Terminology) -> None:
    assert _cpap(terminology, [_device()]) == [("Device/dev-1", AS_OF.isoformat())]
    assert _cpap(terminology, [_device(status="inactive")]) == []
    assert _cpap(terminology, [_device(type_=OTHER_DEVICE)]) == []


def test_cpap_device_clears_the_osa_finding(terminology: Terminology) -> None:
    """§6: OSA with CPAP recorded (here only as a DeviceRequest) is not a `medical-osa` finding."""
    osa = condition("G47.33", ICD10, rid="c-osa")
    scores = [score("phq9", 17, "2024-01-05"), score("phq9", 16, "2024-04-01")]
    without = assessment(assess(terminology, [patient(), mdd(), osa, *scores]))
    with_cpap = assessment(assess(terminology, [patient(), mdd(), osa, *scores, _request()]))
    assert "medical-osa" in without.pseudo_resistance
    assert "medical-osa" not in with_cpap.pseudo_resistance
