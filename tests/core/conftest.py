"""Small builders of FHIR R4 resources and helpers that run them through the real core."""

from __future__ import annotations

import io
import itertools
import json
from collections.abc import Iterable, Sequence
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from fhirtrd.cli import main
from fhirtrd.domain.model import Assessment, DataWarning, PatientRecord, PatientResult, Trial
from fhirtrd.fhir.reader import expand
from fhirtrd.service import Run, classify_resources
from fhirtrd.terminology import Terminology, load_terminology

REPO_ROOT = Path(__file__).resolve().parents[2]
REAL = REPO_ROOT.parent / "shared" / "data" / "real-fhir"
AS_OF = date(2025, 6, 30)

RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
ATC = "http://www.whocc.no/atc"
LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
ICD10 = "http://hl7.org/fhir/sid/icd-10-cm"
SCALES = "http://fhirtrd.org/fhir/CodeSystem/scales"
GTS = "http://terminology.hl7.org/CodeSystem/v3-GTSAbbreviation"
UCUM = "http://unitsofmeasure.org"

# RxNorm codes from mappings/ (ingredient codes: clinical-spec §8; products: medication_products.csv)
SERTRALINE = "36437"
SERTRALINE_100_TAB = "312938"
SERTRALINE_25_TAB = "312940"
CITALOPRAM = "2556"
VENLAFAXINE = "39786"
AMITRIPTYLINE = "704"

INSTRUMENT_CODES = {
    "phq9": (LOINC, "44261-6"),
    "bdi2": (LOINC, "89209-1"),
    "hamd17": (SCALES, "hamd17-total"),
    "madrs": (SCALES, "madrs-total"),
    "qids-sr16": (SCALES, "qids-sr16-total"),
    "lsas": (SCALES, "lsas-total"),
    "cgi-i": (SCALES, "cgi-i"),
    "cgi-s": (SCALES, "cgi-s"),
}

_ids = itertools.count(1)


def _id(prefix: str) -> str:
    return f"{prefix}-{next(_ids)}"


@pytest.fixture(scope="session")
def terminology() -> Terminology:
    return load_terminology()


# --- resource builders -------------------------------------------------------------------------


def concept(code: str, system: str = RXNORM, display: str | None = None, text: str | None = None) -> dict[str, Any]:
    coding: dict[str, Any] = {"system": system, "code": code}
    if display:
        coding["display"] = display
    out: dict[str, Any] = {"coding": [coding]}
    if text:
        out["text"] = text
    return out


def patient(pid: str = "p1") -> dict[str, Any]:
    return {"resourceType": "Patient", "id": pid}


def condition(code: str = "F33.1", system: str = ICD10, *, pid: str = "p1", onset: str = "2024-01-01",
              clinical: str | None = "active", verification: str | None = None,
              rid: str | None = None) -> dict[str, Any]:
    r: dict[str, Any] = {"resourceType": "Condition", "id": rid or _id("cond"), "code": concept(code, system),
                         "subject": {"reference": f"Patient/{pid}"}, "onsetDateTime": onset}
    if clinical:
        r["clinicalStatus"] = concept(clinical, "http://terminology.hl7.org/CodeSystem/condition-clinical")
    if verification:
        r["verificationStatus"] = concept(verification, "http://terminology.hl7.org/CodeSystem/condition-ver-status")
    return r


def mdd(pid: str = "p1", onset: str = "2024-01-01") -> dict[str, Any]:
    """An active recurrent moderate MDD diagnosis (ICD-10-CM F33.1, clinical-spec §8)."""
    return condition("F33.1", ICD10, pid=pid, onset=onset)


def dosage(value: float | None = None, unit: str | None = "mg", *, frequency: float | None = 1,
           period: float | None = 1, period_unit: str | None = "d", code: str | None = None,
           low: float | None = None) -> dict[str, Any]:
    """A Dosage: doseQuantity (or doseRange.low) and timing.repeat, or timing.code when `code` is set."""
    d: dict[str, Any] = {}
    if code is not None:
        d["timing"] = {"code": concept(code, GTS)}
    elif frequency is not None or period is not None:
        repeat: dict[str, Any] = {}
        if frequency is not None:
            repeat["frequency"] = frequency
        if period is not None:
            repeat["period"] = period
        if period_unit is not None:
            repeat["periodUnit"] = period_unit
        d["timing"] = {"repeat": repeat}
    q = {"value": value, **({"unit": unit} if unit else {})}
    if low is not None:
        d["doseAndRate"] = [{"doseRange": {"low": {"value": low, **({"unit": unit} if unit else {})}}}]
    elif value is not None:
        d["doseAndRate"] = [{"doseQuantity": q}]
    return d


def order(med: dict[str, Any] | str = SERTRALINE, authored: str = "2025-01-01", *, pid: str = "p1",
          days: float | None = 30, repeats: int | None = None, dose: dict[str, Any] | None = None,
          status: str = "completed", rid: str | None = None, subject: str | None = None,
          reason: str | None = None, **extra: Any) -> dict[str, Any]:
    """A MedicationRequest; `med` is an RxNorm code, a CodeableConcept, or {"reference": …}."""
    r: dict[str, Any] = {"resourceType": "MedicationRequest", "id": rid or _id("rx"), "status": status,
                         "intent": "order", "subject": {"reference": subject or f"Patient/{pid}"},
                         "authoredOn": authored}
    if isinstance(med, str):
        r["medicationCodeableConcept"] = concept(med)
    elif "reference" in med:
        r["medicationReference"] = med
    else:
        r["medicationCodeableConcept"] = med
    r["dosageInstruction"] = [dose if dose is not None else dosage(100)]
    if days is not None or repeats is not None:
        dr: dict[str, Any] = {}
        if days is not None:
            dr["expectedSupplyDuration"] = {"value": days, "unit": "days", "system": UCUM, "code": "d"}
        if repeats is not None:
            dr["numberOfRepeatsAllowed"] = repeats
        r["dispenseRequest"] = dr
    if reason:
        r["statusReason"] = {"text": reason}
    r.update(extra)
    return r


def statement(med: dict[str, Any] | str = SERTRALINE, start: str = "2025-01-01", end: str | None = None, *,
              pid: str = "p1", dose: dict[str, Any] | None = None, status: str = "active",
              rid: str | None = None) -> dict[str, Any]:
    r: dict[str, Any] = {"resourceType": "MedicationStatement", "id": rid or _id("ms"), "status": status,
                         "subject": {"reference": f"Patient/{pid}"},
                         "effectivePeriod": {"start": start, **({"end": end} if end else {})},
                         "dosage": [dose if dose is not None else dosage(100)]}
    r["medicationCodeableConcept"] = concept(med) if isinstance(med, str) else med
    return r


def dispense(med: dict[str, Any] | str = SERTRALINE_100_TAB, handed_over: str = "2025-01-01", days: float | None = 30,
             *, pid: str = "p1", quantity: float | None = None, unit: str = "TAB", rid: str | None = None,
             dose: dict[str, Any] | None = None, status: str = "completed") -> dict[str, Any]:
    r: dict[str, Any] = {"resourceType": "MedicationDispense", "id": rid or _id("md"), "status": status,
                         "subject": {"reference": f"Patient/{pid}"}, "whenHandedOver": handed_over}
    r["medicationCodeableConcept"] = concept(med) if isinstance(med, str) else med
    if days is not None:
        r["daysSupply"] = {"value": days, "unit": "days", "system": UCUM, "code": "d"}
    if quantity is not None:
        r["quantity"] = {"value": quantity, "unit": unit}
    if dose is not None:
        r["dosageInstruction"] = [dose]
    return r


def score(instrument: str, value: float, when: str, *, pid: str = "p1", rid: str | None = None,
          code: tuple[str, str] | None = None) -> dict[str, Any]:
    system, c = code or INSTRUMENT_CODES[instrument]
    return {"resourceType": "Observation", "id": rid or _id(f"obs-{instrument}"), "status": "final",
            "code": concept(c, system), "subject": {"reference": f"Patient/{pid}"},
            "effectiveDateTime": when, "valueInteger": value}


def medication(rid: str, code: dict[str, Any] | None = None, ingredients: list[dict[str, Any]] | None = None
               ) -> dict[str, Any]:
    r: dict[str, Any] = {"resourceType": "Medication", "id": rid}
    if code is not None:
        r["code"] = code
    if ingredients is not None:
        r["ingredient"] = ingredients
    return r


def bundle(*resources: dict[str, Any], kind: str = "collection") -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": kind,
            "entry": [{"fullUrl": f"{r['resourceType']}/{r.get('id')}", "resource": r} for r in resources]}


# --- running the core --------------------------------------------------------------------------


def facts(terminology: Terminology, resources: Iterable[dict[str, Any]], as_of: date = AS_OF,
          pid: str = "p1") -> tuple[PatientRecord, list[DataWarning]]:
    """One patient's facts (as the inbound adapter makes them) and that patient's warnings."""
    run = Run(terminology, as_of)
    for i, resource in enumerate(resources):
        for entry in expand(resource, f"test[{i}]", run.report):
            run.add(entry)
    builder = run.builder(pid)
    run.adapter.finish(builder)
    record = builder.record(as_of)
    return record, list(builder.warnings)


def assess(terminology: Terminology, resources: Sequence[dict[str, Any]], as_of: date = AS_OF
           ) -> list[PatientResult]:
    return classify_resources(resources, terminology, as_of)


def assessment(results: Sequence[PatientResult], disorder: str = "mdd", patient: str = "Patient/p1") -> Assessment:
    result = next(r for r in results if r.patient == patient)
    hits = [a for a in result.assessments if a.disorder == disorder]
    assert hits, f"no {disorder} assessment for {patient}: {result.assessments}"
    return hits[0]


def trials(a: Assessment, treatment: str | None = None) -> list[Trial]:
    return [t for t in a.trials if treatment is None or t.treatment == treatment]


def warnings_with(warnings: Iterable[DataWarning], code: str) -> list[DataWarning]:
    return [w for w in warnings if w.code == code]


def run_cli(*argv: str | Path) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main([str(a) for a in argv], stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


def write_json(path: Path, value: Any) -> Path:
    path.write_text(json.dumps(value), encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def corpus_json() -> tuple[int, dict[str, Any], str]:
    """`fhirtrd classify <real corpus> --as-of 2025-06-30 --format json`, run once."""
    if not REAL.is_dir():
        pytest.skip(f"real corpus not found at {REAL}")
    code, out, err = run_cli("classify", REAL, "--as-of", AS_OF.isoformat(), "--format", "json", "--no-progress")
    return code, json.loads(out), err
