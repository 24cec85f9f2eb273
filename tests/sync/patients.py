"""Hand-built FHIR R4 patients for the sync tests, and a loader that puts bundles on a server."""

from __future__ import annotations

import gzip
import json
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import requests

SNOMED = "http://snomed.info/sct"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
LOINC = "http://loinc.org"

# (ingredient, RxNorm ingredient code, daily dose mg) — codes from clinical-spec §8
SERTRALINE = ("sertraline", "36437", 100)
ESCITALOPRAM = ("escitalopram", "321988", 20)
BUPROPION = ("bupropion", "42347", 300)
VENLAFAXINE = ("venlafaxine", "39786", 150)


def _put(resource: dict[str, Any]) -> dict[str, Any]:
    rtype, rid = resource["resourceType"], resource["id"]
    return {"fullUrl": f"urn:uuid:{rid}" if _is_uuid(rid) else f"{rtype}/{rid}", "resource": resource,
            "request": {"method": "PUT", "url": f"{rtype}/{rid}"}}


def _is_uuid(value: str) -> bool:
    return len(value) == 36 and value.count("-") == 4


def patient(pid: str, family: str = "Testpatient") -> dict[str, Any]:
    return {"resourceType": "Patient", "id": pid, "name": [{"family": family, "given": [pid]}],
            "gender": "female", "birthDate": "1980-04-02"}


def mdd_condition(pid: str, onset: date) -> dict[str, Any]:
    return {
        "resourceType": "Condition", "id": f"{pid}-mdd",
        "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                                       "code": "active"}]},
        "verificationStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-ver-status",
                                           "code": "confirmed"}]},
        "code": {"coding": [{"system": SNOMED, "code": "370143000", "display": "Major depressive disorder"}]},
        "subject": {"reference": f"Patient/{pid}"},
        "onsetDateTime": onset.isoformat(),
    }


def medication_statement(pid: str, n: int, drug: tuple[str, str, int], start: date, weeks: int) -> dict[str, Any]:
    name, rxcui, mg = drug
    end = start + timedelta(weeks=weeks)
    return {
        "resourceType": "MedicationStatement", "id": f"{pid}-med{n}", "status": "completed",
        "medicationCodeableConcept": {"coding": [{"system": RXNORM, "code": rxcui, "display": name}], "text": name},
        "subject": {"reference": f"Patient/{pid}"},
        "effectivePeriod": {"start": start.isoformat(), "end": end.isoformat()},
        "dosage": [{"timing": {"repeat": {"frequency": 1, "period": 1, "periodUnit": "d"}},
                    "doseAndRate": [{"doseQuantity": {"value": mg, "unit": "mg", "system": "http://unitsofmeasure.org",
                                                      "code": "mg"}}]}],
    }


def phq9(pid: str, n: int, when: date, score: int) -> dict[str, Any]:
    return {
        "resourceType": "Observation", "id": f"{pid}-phq{n}", "status": "final",
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                                  "code": "survey"}]}],
        "code": {"coding": [{"system": LOINC, "code": "44261-6",
                             "display": "Patient Health Questionnaire 9 item (PHQ-9) total score [Reported]"}]},
        "subject": {"reference": f"Patient/{pid}"},
        "effectiveDateTime": when.isoformat(),
        "valueInteger": score,
    }


def failed_trial(pid: str, n: int, drug: tuple[str, str, int], start: date, weeks: int = 10) -> list[dict[str, Any]]:
    """An adequate trial (dose and duration) with PHQ-9 20 before and 19 at its end: no response."""
    return [
        medication_statement(pid, n, drug, start, weeks),
        phq9(pid, 2 * n, start - timedelta(days=3), 20),
        phq9(pid, 2 * n + 1, start + timedelta(weeks=weeks) - timedelta(days=2), 19),
    ]


def mdd_patient(pid: str, trials: list[tuple[str, str, int]], first_start: date = date(2023, 1, 9)) -> list[dict[str, Any]]:
    """A patient with recorded MDD and the given drugs as consecutive failed adequate trials."""
    out = [patient(pid), mdd_condition(pid, first_start - timedelta(days=60))]
    start = first_start
    for n, drug in enumerate(trials, start=1):
        out += failed_trial(pid, n, drug, start)
        start += timedelta(weeks=12)
    return out


def transaction(resources: list[dict[str, Any]]) -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": "transaction", "entry": [_put(r) for r in resources]}


def post_bundle(session: requests.Session, base_url: str, bundle: dict[str, Any]) -> dict[str, Any]:
    response = session.post(base_url, json=bundle, headers={"Content-Type": "application/fhir+json"}, timeout=120)
    assert response.status_code == 200, f"loading a bundle failed: {response.status_code} {response.text[:500]}"
    return response.json()


def stable_ids(bundle: dict[str, Any]) -> dict[str, Any]:
    """Turn a Synthea transaction (POST with urn:uuid fullUrls) into PUTs that keep those uuids as ids,
    so a test knows the patient ids on the server."""
    out = dict(bundle)
    entries = []
    for entry in bundle.get("entry") or []:
        resource = entry.get("resource") or {}
        full = str(entry.get("fullUrl", ""))
        request = dict(entry.get("request") or {})
        if request.get("method") == "POST" and full.startswith("urn:uuid:") and not request.get("ifNoneExist"):
            rid = full[len("urn:uuid:"):]
            resource = {**resource, "id": rid}
            request = {"method": "PUT", "url": f"{resource['resourceType']}/{rid}"}
        entries.append({**entry, "resource": resource, "request": request})
    out["entry"] = entries
    return out


def read_bundle(path: Path) -> dict[str, Any]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as handle:  # type: ignore[operator]
        return json.load(handle)
