"""Deterministic synthetic Bulk Data NDJSON population (Synthea-like) for the classify benchmark.

Why it looks the way it does: the mix and sizes mimic the real Synthea exports in
`../shared/data/real-fhir/` (exafluence 2025 QI-Core bundles, smart-bulk NDJSON): most resources are
of no interest to the classifier (Encounters with Claims and ExplanationOfBenefits, vitals, lab
panels, PRAPARE, clinical notes, immunizations, dental and screening Procedures, medications for
hypertension or diabetes), while a share of patients (default 25 %) carries a depression and/or
social anxiety history: MDD/SAD Conditions, 1–5 antidepressant trials as MedicationRequests (dose in
tablets) with MedicationDispenses, PHQ-9 / GAD-7 / LSAS scores over time, sometimes CBT sessions,
TSH and CRP labs.

Every code the classifier reads (diagnoses, antidepressants, instruments, labs, therapies, stop
reasons) is taken from `mappings/`; the BACKGROUND_* tables below are filler copied from Synthea
output and are not classifier facts. Patient *i* of seed *s* is the same whatever the population
size, so the 1,000-patient population is a prefix of the 10,000-patient one.

Run: `python -m bench.population --patients 10000 --seed 7 --out /tmp/pop`.
"""

from __future__ import annotations

import argparse
import base64
import csv
import math
import random
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, BinaryIO

import orjson

REPO_ROOT = Path(__file__).resolve().parents[1]
MAPPINGS = REPO_ROOT / "mappings"
DEFAULT_AS_OF = date(2025, 6, 30)
MH_SHARE = 0.25

Resource = dict[str, Any]

RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
UCUM = "http://unitsofmeasure.org"
CVX = "http://hl7.org/fhir/sid/cvx"
USCORE = "http://hl7.org/fhir/us/core/StructureDefinition/"
QICORE = "http://hl7.org/fhir/us/qicore/StructureDefinition/"
THO = "http://terminology.hl7.org/CodeSystem/"
TAB = {"unit": "TAB", "system": THO + "v3-orderableDrugForm", "code": "TAB"}
ORG = "Organization?identifier=https://github.com/synthetichealth/synthea|b18dc037-79b0-3ad2-b276-35ca8a4298ec"
LOC = "Location?identifier=https://github.com/synthetichealth/synthea|b01bba6f-eac0-3699-b2be-8e33b7a36fd6"
ORG_NAME = "COMMUNITY HOSPITAL OF THE MONTEREY PENINSULA"

# --- background filler, as found in Synthea output (not read by the classifier) -----------------

BACKGROUND_VITALS: tuple[tuple[str, str, str, str, float, float], ...] = (
    # loinc, display, unit, US Core profile, low, high
    ("8302-2", "Body Height", "cm", "us-core-body-height", 150, 190),
    ("29463-7", "Body Weight", "kg", "us-core-body-weight", 50, 120),
    ("39156-5", "Body mass index (BMI) [Ratio]", "kg/m2", "us-core-bmi", 18, 38),
    ("8867-4", "Heart rate", "/min", "us-core-heart-rate", 55, 100),
    ("9279-1", "Respiratory rate", "/min", "us-core-respiratory-rate", 12, 20),
    ("72514-3", "Pain severity - 0-10 verbal numeric rating [Score] - Reported", "{score}",
     "us-core-vital-signs", 0, 6),
)
BACKGROUND_BMP: tuple[tuple[str, str, str, float, float], ...] = (
    ("2339-0", "Glucose [Mass/volume] in Blood", "mg/dL", 70, 140),
    ("6299-2", "Urea nitrogen [Mass/volume] in Blood", "mg/dL", 7, 20),
    ("38483-4", "Creatinine [Mass/volume] in Blood", "mg/dL", 0.6, 1.3),
    ("49765-1", "Calcium [Mass/volume] in Blood", "mg/dL", 8.5, 10.2),
    ("6298-4", "Potassium [Moles/volume] in Blood", "mmol/L", 3.5, 5.1),
    ("2069-3", "Chloride [Moles/volume] in Blood", "mmol/L", 98, 107),
    ("20565-8", "Carbon dioxide, total [Moles/volume] in Blood", "mmol/L", 22, 29),
)
BACKGROUND_LIPIDS: tuple[tuple[str, str, str, float, float], ...] = (
    ("2093-3", "Cholesterol [Mass/volume] in Serum or Plasma", "mg/dL", 150, 260),
    ("2571-8", "Triglycerides", "mg/dL", 80, 250),
    ("18262-6", "Low Density Lipoprotein Cholesterol", "mg/dL", 70, 180),
    ("2085-9", "Cholesterol in HDL [Mass/volume] in Serum or Plasma", "mg/dL", 35, 80),
)
BACKGROUND_SCREENING_OBS: tuple[tuple[str, str, int], ...] = (
    ("55758-7", "Patient Health Questionnaire 2 item (PHQ-2) total score [Reported]", 6),
    ("75626-2", "Total score [AUDIT-C]", 12),
    ("82667-7", "Total score [DAST-10]", 10),
)
BACKGROUND_WELLNESS_PROCEDURES: tuple[tuple[str, str], ...] = (
    ("171207006", "Depression screening (procedure)"),
    ("710824005", "Assessment of health and social care needs (procedure)"),
    ("428211000124100", "Assessment of substance use (procedure)"),
    ("430193006", "Medication reconciliation (procedure)"),
    ("710841007", "Assessment of anxiety (procedure)"),
)
BACKGROUND_OTHER_PROCEDURES: tuple[tuple[str, str], ...] = (
    ("34043003", "Dental consultation and report (procedure)"),
    ("274788003", "Examination of gingivae (procedure)"),
    ("1260009003", "Removal of supragingival plaque and calculus from all teeth using dental instrument (procedure)"),
    ("243085009", "Oral health education (procedure)"),
    ("762993000", "Assessment using Morse Fall Scale (procedure)"),
    ("16830007", "Visual acuity testing (procedure)"),
    ("76601001", "Intramuscular injection (procedure)"),
    ("91251008", "Physical therapy procedure (regime/therapy)"),
)
BACKGROUND_FINDINGS: tuple[tuple[str, str], ...] = (
    ("314529007", "Medication review due (situation)"),
    ("160903007", "Full-time employment (finding)"),
    ("73595000", "Stress (finding)"),
    ("66383009", "Gingivitis (disorder)"),
    ("422650009", "Social isolation (finding)"),
    ("224299000", "Received higher education (finding)"),
    ("444814009", "Viral sinusitis (disorder)"),
    ("195662009", "Acute viral pharyngitis (disorder)"),
    ("10509002", "Acute bronchitis (disorder)"),
    ("271737000", "Anemia (disorder)"),
)
BACKGROUND_CHRONIC: tuple[tuple[str, str, str, str], ...] = (
    # condition snomed, display, med rxnorm, med display
    ("59621000", "Essential hypertension (disorder)", "314076", "lisinopril 10 MG Oral Tablet"),
    ("55822004", "Hyperlipidemia (disorder)", "314231", "Simvastatin 10 MG Oral Tablet"),
    ("44054006", "Diabetes mellitus type 2 (disorder)", "860975",
     "24 HR Metformin hydrochloride 500 MG Extended Release Oral Tablet"),
    ("195967001", "Asthma (disorder)", "896001",
     "120 ACTUAT fluticasone propionate 0.11 MG/ACTUAT Metered Dose Inhaler [Flovent]"),
    ("82423001", "Chronic pain (finding)", "835603", "tramadol hydrochloride 50 MG Oral Tablet"),
    ("414545008", "Ischemic heart disease (disorder)", "309362", "Clopidogrel 75 MG Oral Tablet"),
)
BACKGROUND_ACUTE_MEDS: tuple[tuple[str, str], ...] = (
    ("308182", "Amoxicillin 250 MG Oral Capsule"),
    ("313782", "Acetaminophen 325 MG Oral Tablet"),
    ("310965", "Ibuprofen 200 MG Oral Tablet"),
    ("562251", "Amoxicillin 250 MG / Clavulanate 125 MG Oral Tablet"),
)
BACKGROUND_VACCINES: tuple[tuple[str, str], ...] = (
    ("140", "Influenza, seasonal, injectable, preservative free"),
    ("113", "Td (adult), 5 Lf tetanus toxoid, preservative free, adsorbed"),
    ("121", "zoster vaccine, live"),
)
SICK_VISITS: tuple[tuple[str, str, str], ...] = (
    ("185347001", "Encounter for problem (procedure)", "AMB"),
    ("185345009", "Encounter for symptom (procedure)", "AMB"),
    ("390906007", "Follow-up encounter (procedure)", "AMB"),
    ("702927004", "Urgent care clinic (environment)", "AMB"),
    ("50849002", "Emergency room admission (procedure)", "EMER"),
)
WELLNESS_VISIT = ("162673000", "General examination of patient (procedure)", "AMB")
MH_VISIT = ("390906007", "Follow-up encounter (procedure)", "AMB")
FAMILY = ("Smith", "Johnson", "Nguyen", "Garcia", "Okafor", "Müller", "Rossi", "Kowalski", "Haddad", "Tanaka")
GIVEN = ("Ana", "Ben", "Chloe", "Dmitri", "Eve", "Farid", "Grace", "Hugo", "Ines", "Jamal", "Kira", "Liam")
CITIES = (("Salinas", "CA", "93901"), ("Albany", "NY", "12207"), ("Monterey", "CA", "93940"))


# --- codes the classifier reads, from mappings/ ----------------------------------------------------


class PopulationError(Exception):
    """A mappings/ table the generator needs is missing or lacks the rows it needs."""


@dataclass(frozen=True, slots=True)
class Coded:
    system: str
    code: str
    display: str


@dataclass(frozen=True, slots=True)
class Product:
    """An antidepressant as prescribed: the RxNorm code on the order and the mg per tablet."""

    ingredient: str
    drug_class: str
    code: str
    display: str
    strength_mg: float
    min_daily_dose: float


@dataclass(frozen=True, slots=True)
class Vocabulary:
    """The classifier-relevant codes the generator writes, all read from mappings/."""

    mdd: tuple[Coded, ...]
    sad: tuple[Coded, ...]
    bipolar: tuple[Coded, ...]
    products: dict[str, tuple[Product, ...]]  # ingredient -> products
    ingredient_codes: bool  # True when no product table: orders carry ingredient codes + mg doses
    observations: dict[str, Coded]  # concept -> code (phq9, gad7, tsh, crp, hscrp, sodium, lsas, …)
    units: dict[str, str]  # concept -> unit
    cbt: Coded
    stop_reason: Coded | None


def _rows(name: str) -> list[dict[str, str]]:
    path = MAPPINGS / name
    if not path.exists():
        raise PopulationError(f"{path}: missing")
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _strength_from_display(display: str) -> float | None:
    words = display.replace("/", " ").split()
    for i, word in enumerate(words[1:], start=1):
        if word.upper() == "MG":
            try:
                return float(words[i - 1])
            except ValueError:
                return None
    return None


def _products(drugs: dict[str, dict[str, str]]) -> tuple[dict[str, tuple[Product, ...]], bool]:
    """Clinical-drug products from medication_products.csv if present, else ingredient codes."""
    out: dict[str, list[Product]] = {}
    path = MAPPINGS / "medication_products.csv"
    if path.exists():
        for row in _rows(path.name):
            ingredient = (row.get("ingredient") or "").strip()
            drug = drugs.get(ingredient)
            code = (row.get("rxnorm") or row.get("code") or "").strip()
            display = (row.get("display") or row.get("name") or "").strip()
            strength_text = next(
                (v for k, v in row.items() if k and k.startswith("strength") and v), ""
            )
            try:
                strength = float(strength_text) if strength_text else _strength_from_display(display)
            except ValueError:
                strength = _strength_from_display(display)
            if drug is None or not code or strength is None or "Oral" not in display:
                continue
            if " / " in display or (row.get("unit") or "mg").strip().lower() != "mg":
                continue  # combination products and non-mg strengths: not what this population needs
            if "Tablet" not in display and "Capsule" not in display:
                continue
            out.setdefault(ingredient, []).append(
                Product(ingredient, drug["class"], code, display, strength,
                        float(drug["min_daily_dose"]))
            )
    if out:
        return {k: tuple(v) for k, v in out.items()}, False
    for ingredient, drug in drugs.items():
        minimum = float(drug["min_daily_dose"])
        strengths = sorted({minimum / 2, minimum})
        out[ingredient] = [
            Product(ingredient, drug["class"], drug["rxnorm"],
                    f"{ingredient} {s:g} MG Oral Tablet", s, minimum)
            for s in strengths
        ]
    return {k: tuple(v) for k, v in out.items()}, True


def load_vocabulary() -> Vocabulary:
    """Read the classifier's own code tables; raise PopulationError naming what is missing."""
    drugs = {
        r["ingredient"]: r
        for r in _rows("medications.csv")
        if r["role"] == "antidepressant" and r["rxnorm"] and r["min_daily_dose"]
    }
    conditions = _rows("conditions.csv")

    def pick(wanted: str, exclude: set[str]) -> tuple[Coded, ...]:
        found = []
        for r in conditions:
            concepts = set(r["concepts"].split())
            if r["match"] == "exact" and wanted in concepts and not concepts & exclude:
                display = r["display"] or r["code"]
                found.append(Coded(r["system"], r["code"], display))
        if not found:
            raise PopulationError(f"{MAPPINGS / 'conditions.csv'}: no exact code for {wanted!r}")
        return tuple(found)

    mdd = pick("mdd", {"psychotic-features", "in-remission", "bipolar"})
    sad = pick("sad", set())
    bipolar = pick("bipolar", set())[:20]
    observations: dict[str, Coded] = {}
    units: dict[str, str] = {}
    for r in _rows("observation_codes.csv"):
        observations.setdefault(r["concept"], Coded(r["system"], r["code"], r["display"]))
        units.setdefault(r["concept"], r["unit"])
    for needed in ("phq9", "gad7", "tsh", "crp", "hscrp", "sodium", "lsas", "phq9-item1"):
        if needed not in observations:
            raise PopulationError(f"{MAPPINGS / 'observation_codes.csv'}: no {needed!r} row")
    cbt = next(
        (Coded(r["system"], r["code"], r["display"]) for r in _rows("procedures.csv")
         if r["concept"] == "cbt"), None,
    )
    if cbt is None:
        raise PopulationError(f"{MAPPINGS / 'procedures.csv'}: no 'cbt' row")
    stop_reason = None
    if (MAPPINGS / "stop_reasons.csv").exists():
        stop_reason = next(
            (Coded(r["system"], r["code"], r["display"]) for r in _rows("stop_reasons.csv")
             if r["concept"] == "adverse-effect"), None,
        )
    products, ingredient_codes = _products(drugs)
    return Vocabulary(mdd, sad, bipolar, products, ingredient_codes, observations, units, cbt,
                      stop_reason)


# --- one patient -------------------------------------------------------------------------------

# First choices in real practice are SSRIs, then SNRIs, bupropion, mirtazapine; TCAs and MAOIs late.
CLASS_WEIGHT_EARLY = {"SSRI": 8, "SNRI": 3, "NDRI": 2, "NaSSA": 1.5, "multimodal": 1, "SARI": 0.5}
CLASS_WEIGHT_LATE = {"SSRI": 3, "SNRI": 3, "NDRI": 2, "NaSSA": 2, "multimodal": 1, "SARI": 0.5,
                     "TCA": 1.5, "MAOI": 0.5}


@dataclass(slots=True)
class PatientPlan:
    """What was generated for one patient, so tests can check what the classifier should find."""

    patient_id: str
    mdd: bool = False
    sad: bool = False
    bipolar: bool = False
    ingredients: list[str] = field(default_factory=list)  # antidepressant trials, in order
    cbt_sessions: int = 0


def _cc(system: str, code: str, display: str) -> dict[str, Any]:
    return {"coding": [{"system": system, "code": code, "display": display}], "text": display}


class _PatientWriter:
    """Builds one patient's resources; `emit` receives each finished resource."""

    def __init__(self, rng: random.Random, vocab: Vocabulary, as_of: date,
                 emit: Callable[[Resource], None]) -> None:
        self.rng = rng
        self.vocab = vocab
        self.as_of = as_of
        self.emit = emit
        self.pid = self.uuid()
        self.pref = {"reference": f"Patient/{self.pid}"}
        self.tz = timezone(timedelta(hours=rng.choice((-8, -7, -5, -4))))
        self.doctor = {
            "reference": f"Practitioner?identifier=http://hl7.org/fhir/sid/us-npi|99999{rng.randrange(10**5):05d}",
            "display": f"Dr. {rng.choice(GIVEN)}{rng.randrange(999)} {rng.choice(FAMILY)}{rng.randrange(999)}",
        }
        self.plan = PatientPlan(self.pid)

    def uuid(self) -> str:
        h = f"{self.rng.getrandbits(128):032x}"
        return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"

    def when(self, day: date, minutes: int = 0) -> datetime:
        return datetime(day.year, day.month, day.day, 9, 0, tzinfo=self.tz) + timedelta(
            minutes=minutes + self.rng.randrange(480)
        )

    # --- generic pieces -----------------------------------------------------------------------

    def patient(self, birth: date) -> None:
        rng = self.rng
        family, given = rng.choice(FAMILY), rng.choice(GIVEN)
        city, state, zip_code = rng.choice(CITIES)
        female = rng.random() < 0.52
        self.emit({
            "resourceType": "Patient", "id": self.pid,
            "meta": {"profile": [USCORE + "us-core-patient", QICORE + "qicore-patient"]},
            "text": {"status": "generated", "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\">Generated by the fhirtrd benchmark population (Synthea-like).</div>"},
            "extension": [
                {"url": USCORE + "us-core-race", "extension": [
                    {"url": "ombCategory", "valueCoding": {"system": "urn:oid:2.16.840.1.113883.6.238", "code": "2106-3", "display": "White"}},
                    {"url": "text", "valueString": "White"}]},
                {"url": USCORE + "us-core-ethnicity", "extension": [
                    {"url": "ombCategory", "valueCoding": {"system": "urn:oid:2.16.840.1.113883.6.238", "code": "2186-5", "display": "Not Hispanic or Latino"}},
                    {"url": "text", "valueString": "Not Hispanic or Latino"}]},
                {"url": USCORE + "us-core-birthsex", "valueCode": "F" if female else "M"},
                {"url": "http://hl7.org/fhir/StructureDefinition/patient-birthPlace", "valueAddress": {"city": city, "state": state, "country": "US"}},
            ],
            "identifier": [
                {"system": "https://github.com/synthetichealth/synthea", "value": self.pid},
                {"type": _cc(THO + "v2-0203", "MR", "Medical Record Number"), "system": "http://hospital.smarthealthit.org", "value": self.pid},
                {"type": _cc(THO + "v2-0203", "SS", "Social Security Number"), "system": "http://hl7.org/fhir/sid/us-ssn", "value": f"999-{rng.randrange(100):02d}-{rng.randrange(10000):04d}"},
            ],
            "name": [{"use": "official", "family": f"{family}{rng.randrange(999)}", "given": [f"{given}{rng.randrange(999)}"], "prefix": ["Ms." if female else "Mr."]}],
            "telecom": [{"system": "phone", "value": f"555-{rng.randrange(1000):03d}-{rng.randrange(10000):04d}", "use": "home"}],
            "gender": "female" if female else "male",
            "birthDate": birth.isoformat(),
            "address": [{"line": [f"{rng.randrange(1, 999)} {rng.choice(FAMILY)} Street"], "city": city, "state": state, "postalCode": zip_code, "country": "US"}],
            "maritalStatus": _cc(THO + "v3-MaritalStatus", "M", "Married"),
            "communication": [{"language": _cc("urn:ietf:bcp:47", "en-US", "English (United States)")}],
        })

    def encounter(self, start: datetime, visit: tuple[str, str, str],
                  reason: tuple[str, str] | None, minutes: int = 30) -> str:
        eid = self.uuid()
        period = {"start": start.isoformat(), "end": (start + timedelta(minutes=minutes)).isoformat()}
        res: Resource = {
            "resourceType": "Encounter", "id": eid,
            "meta": {"profile": [USCORE + "us-core-encounter", QICORE + "qicore-encounter"]},
            "identifier": [{"use": "official", "system": "https://github.com/synthetichealth/synthea", "value": eid}],
            "status": "finished",
            "class": {"system": THO + "v3-ActCode", "code": visit[2]},
            "type": [_cc(SNOMED, visit[0], visit[1])],
            "subject": {**self.pref, "display": "patient"},
            "participant": [{"type": [_cc(THO + "v3-ParticipationType", "PPRF", "primary performer")], "period": period, "individual": self.doctor}],
            "period": period,
            "location": [{"location": {"reference": LOC, "display": ORG_NAME}}],
            "serviceProvider": {"reference": ORG, "display": ORG_NAME},
        }
        if reason:
            res["reasonCode"] = [{"coding": [{"system": SNOMED, "code": reason[0], "display": reason[1]}]}]
        self.emit(res)
        return eid

    def note(self, eid: str, start: datetime, text: str) -> None:
        data = base64.b64encode(text.encode()).decode()
        ref = {"reference": f"Encounter/{eid}"}
        note_code = {"coding": [{"system": LOINC, "code": "34117-2", "display": "History and physical note"},
                                {"system": LOINC, "code": "51847-2", "display": "Evaluation + Plan note"}]}
        did = self.uuid()
        self.emit({
            "resourceType": "DiagnosticReport", "id": did,
            "meta": {"profile": [USCORE + "us-core-diagnosticreport-note"]},
            "status": "final", "category": [note_code], "code": note_code, "subject": self.pref,
            "encounter": ref, "effectiveDateTime": start.isoformat(), "issued": start.isoformat(),
            "performer": [self.doctor],
            "presentedForm": [{"contentType": "text/plain; charset=utf-8", "data": data}],
        })
        self.emit({
            "resourceType": "DocumentReference", "id": self.uuid(),
            "meta": {"profile": [USCORE + "us-core-documentreference"]},
            "identifier": [{"system": "urn:ietf:rfc:3986", "value": f"urn:uuid:{did}"}],
            "status": "superseded", "type": note_code,
            "category": [{"coding": [{"system": "http://hl7.org/fhir/us/core/CodeSystem/us-core-documentreference-category", "code": "clinical-note", "display": "Clinical Note"}]}],
            "subject": self.pref, "date": start.isoformat(), "author": [self.doctor],
            "custodian": {"reference": ORG, "display": ORG_NAME},
            "content": [{"attachment": {"contentType": "text/plain; charset=utf-8", "data": data},
                         "format": {"system": "http://ihe.net/fhir/ihe.formatcode.fhir/CodeSystem/formatcode", "code": "urn:ihe:iti:xds:2017:mimeTypeSufficient", "display": "mimeType Sufficient"}}],
            "context": {"encounter": [ref], "period": {"start": start.isoformat()}},
        })

    def claim(self, eid: str, start: datetime, items: list[tuple[str, str, str]],
              pharmacy: bool = False) -> None:
        """A Claim and its ExplanationOfBenefit (Synthea writes both for every visit and order)."""
        rng = self.rng
        cid = self.uuid()
        iso = start.isoformat()
        period = {"start": iso, "end": (start + timedelta(minutes=30)).isoformat()}
        kind = {"coding": [{"system": THO + "claim-type", "code": "pharmacy" if pharmacy else "professional"}]}
        claim_items = []
        eob_items = []
        total = 0.0
        for seq, (system, code, display) in enumerate(items, start=1):
            net = round(rng.uniform(20, 900), 2)
            total += net
            service = _cc(system, code, display)
            claim_items.append({"sequence": seq, "productOrService": service, "encounter": [{"reference": f"Encounter/{eid}"}],
                                "net": {"value": net, "currency": "USD"}})
            eob_items.append({
                "sequence": seq,
                "category": {"coding": [{"system": "https://bluebutton.cms.gov/resources/variables/line_cms_type_srvc_cd", "code": "1", "display": "Medical care"}]},
                "productOrService": service, "servicedPeriod": period,
                "locationCodeableConcept": {"coding": [{"system": THO + "ex-serviceplace", "code": "19", "display": "Off Campus-Outpatient Hospital"}]},
                "encounter": [{"reference": f"Encounter/{eid}"}],
                "net": {"value": net, "currency": "USD"},
                "adjudication": [
                    {"category": {"coding": [{"system": "https://bluebutton.cms.gov/resources/codesystem/adjudication", "code": c, "display": d}]},
                     "amount": {"value": round(net * f, 2), "currency": "USD"}}
                    for c, d, f in (("https://bluebutton.cms.gov/resources/variables/line_coinsrnc_amt", "Line Beneficiary Coinsurance Amount", 0.2),
                                    ("https://bluebutton.cms.gov/resources/variables/line_prvdr_pmt_amt", "Line Provider Payment Amount", 0.8),
                                    ("https://bluebutton.cms.gov/resources/variables/line_sbmtd_chrg_amt", "Line Submitted Charge Amount", 1.0),
                                    ("https://bluebutton.cms.gov/resources/variables/line_alowd_chrg_amt", "Line Allowed Charge Amount", 1.0),
                                    ("https://bluebutton.cms.gov/resources/variables/line_bene_ptb_ddctbl_amt", "Line Beneficiary Part B Deductible Amount", 0.0))
                ],
            })
        provider = {"reference": ORG, "display": ORG_NAME}
        self.emit({
            "resourceType": "Claim", "id": cid,
            "meta": {"profile": [QICORE + "qicore-claim"]},
            "status": "active", "type": kind, "use": "claim", "patient": self.pref,
            "billablePeriod": period, "created": iso, "provider": provider,
            "priority": {"coding": [{"system": THO + "processpriority", "code": "normal"}]},
            "facility": {"reference": LOC, "display": ORG_NAME},
            "insurance": [{"sequence": 1, "focal": True, "coverage": {"display": "Medicaid"}}],
            "item": claim_items, "total": {"value": round(total, 2), "currency": "USD"},
        })
        self.emit({
            "resourceType": "ExplanationOfBenefit", "id": self.uuid(),
            "contained": [
                {"resourceType": "ServiceRequest", "id": "referral", "status": "completed", "intent": "order", "subject": self.pref,
                 "requester": {"reference": self.doctor["reference"]}, "performer": [{"reference": self.doctor["reference"]}]},
                {"resourceType": "Coverage", "id": "coverage", "status": "active", "type": {"text": "Medicaid"},
                 "beneficiary": self.pref, "payor": [{"display": "Medicaid"}]},
            ],
            "identifier": [{"system": "https://bluebutton.cms.gov/resources/variables/clm_id", "value": cid},
                           {"system": "https://bluebutton.cms.gov/resources/identifier/claim-group", "value": "99999999999"}],
            "status": "active", "type": kind, "use": "claim", "patient": self.pref,
            "billablePeriod": period, "created": iso, "insurer": {"display": "Medicaid"},
            "provider": {"reference": self.doctor["reference"]}, "referral": {"reference": "#referral"},
            "facility": {"reference": LOC, "display": ORG_NAME}, "claim": {"reference": f"Claim/{cid}"},
            "outcome": "complete",
            "careTeam": [{"sequence": 1, "provider": {"reference": self.doctor["reference"]},
                          "role": {"coding": [{"system": THO + "claimcareteamrole", "code": "primary", "display": "Primary provider"}]}}],
            "insurance": [{"focal": True, "coverage": {"reference": "#coverage", "display": "Medicaid"}}],
            "item": eob_items,
            "total": [{"category": {"coding": [{"system": THO + "adjudication", "code": "submitted", "display": "Submitted Amount"}], "text": "Submitted Amount"},
                       "amount": {"value": round(total, 2), "currency": "USD"}}],
            "payment": {"amount": {"value": round(total * 0.8, 2), "currency": "USD"}},
        })

    def observation(self, eid: str | None, at: datetime, code: Coded, category: str,
                    value: Resource, profile: str = "us-core-observation-lab") -> str:
        oid = self.uuid()
        res: Resource = {
            "resourceType": "Observation", "id": oid,
            "meta": {"profile": [USCORE + profile, QICORE + "qicore-observation"]},
            "status": "final",
            "category": [{"coding": [{"system": THO + "observation-category", "code": category}]}],
            "code": _cc(code.system, code.code, code.display),
            "subject": self.pref,
            "effectiveDateTime": at.isoformat(), "issued": at.isoformat(),
        }
        if eid:
            res["encounter"] = {"reference": f"Encounter/{eid}"}
        res.update(value)
        self.emit(res)
        return oid

    def quantity(self, value: float, unit: str) -> Resource:
        return {"valueQuantity": {"value": value, "unit": unit, "system": UCUM, "code": unit}}

    def condition(self, eid: str, onset: datetime, coded: Coded, category: str = "encounter-diagnosis",
                  abated: datetime | None = None) -> str:
        cid = self.uuid()
        res: Resource = {
            "resourceType": "Condition", "id": cid,
            "meta": {"profile": [USCORE + "us-core-condition-" + category]},
            "clinicalStatus": {"coding": [{"system": THO + "condition-clinical", "code": "resolved" if abated else "active"}]},
            "verificationStatus": {"coding": [{"system": THO + "condition-ver-status", "code": "confirmed"}]},
            "category": [{"coding": [{"system": THO + "condition-category", "code": category}]}],
            "code": _cc(coded.system, coded.code, coded.display),
            "subject": self.pref, "encounter": {"reference": f"Encounter/{eid}"},
            "onsetDateTime": onset.isoformat(), "recordedDate": onset.isoformat(),
        }
        if abated:
            res["abatementDateTime"] = abated.isoformat()
        self.emit(res)
        return cid

    def procedure(self, eid: str, at: datetime, coded: Coded, reason: str | None = None) -> None:
        res: Resource = {
            "resourceType": "Procedure", "id": self.uuid(),
            "meta": {"profile": [USCORE + "us-core-procedure", QICORE + "qicore-procedure"]},
            "status": "completed", "code": _cc(coded.system, coded.code, coded.display),
            "subject": self.pref, "encounter": {"reference": f"Encounter/{eid}"},
            "performedPeriod": {"start": at.isoformat(), "end": (at + timedelta(minutes=30)).isoformat()},
            "location": {"reference": LOC, "display": ORG_NAME},
        }
        if reason:
            res["reasonReference"] = [{"reference": f"Condition/{reason}"}]
        self.emit(res)

    def order(self, eid: str, at: datetime, code: str, display: str, dose: Resource,
              per_day: int, supply: int, repeats: int, status: str, reason: str | None,
              stop_reason: Coded | None = None) -> tuple[str, Resource, list[Resource]]:
        mid = self.uuid()
        dosage = [{
            "sequence": 1, "text": f"{display}: {dose['value']:g} {dose['unit']} {per_day} time(s) a day",
            "timing": {"repeat": {"frequency": per_day, "period": 1, "periodUnit": "d"}},
            "asNeededBoolean": False,
            "route": _cc(SNOMED, "26643006", "Oral route"),
            "doseAndRate": [{"type": _cc(THO + "dose-rate-type", "ordered", "Ordered"), "doseQuantity": dose}],
        }]
        medication = {"coding": [{"system": RXNORM, "code": code, "display": display}], "text": display}
        res: Resource = {
            "resourceType": "MedicationRequest", "id": mid,
            "meta": {"profile": [USCORE + "us-core-medicationrequest", QICORE + "qicore-medicationrequest"]},
            "status": status, "intent": "order",
            "category": [_cc(THO + "medicationrequest-category", "community", "Community")],
            "medicationCodeableConcept": medication,
            "subject": self.pref, "encounter": {"reference": f"Encounter/{eid}"},
            "authoredOn": at.isoformat(), "requester": self.doctor,
            "dosageInstruction": dosage,
            "dispenseRequest": {
                "numberOfRepeatsAllowed": repeats,
                "quantity": {**dose, "value": dose["value"] * per_day * supply} if dose.get("code") == "TAB" else {"value": supply, "unit": "d"},
                "expectedSupplyDuration": {"value": supply, "unit": "days", "system": UCUM, "code": "d"},
            },
        }
        if reason:
            res["reasonReference"] = [{"reference": f"Condition/{reason}"}]
        if stop_reason:
            res["statusReason"] = _cc(stop_reason.system, stop_reason.code, stop_reason.display)
        self.emit(res)
        self.claim(eid, at, [(RXNORM, code, display)], pharmacy=True)
        return mid, medication, dosage

    def dispense(self, mid: str, medication: Resource, dosage: list[Resource], at: datetime,
                 days: int, quantity: float, unit: Resource) -> None:
        self.emit({
            "resourceType": "MedicationDispense", "id": self.uuid(),
            "meta": {"profile": [USCORE + "us-core-medicationdispense"]},
            "status": "completed", "medicationCodeableConcept": medication, "subject": self.pref,
            "performer": [{"actor": {"reference": ORG, "display": ORG_NAME}}],
            "authorizingPrescription": [{"reference": f"MedicationRequest/{mid}"}],
            "type": _cc(THO + "v3-ActCode", "FF", "First Fill"),
            "quantity": {**unit, "value": quantity},
            "daysSupply": {"value": days, "unit": "Day", "system": UCUM, "code": "d"},
            "whenPrepared": at.isoformat(), "whenHandedOver": (at + timedelta(hours=2)).isoformat(),
            "dosageInstruction": dosage,
        })

    # --- the history ------------------------------------------------------------------------------

    def build(self, mh: bool) -> PatientPlan:
        rng = self.rng
        as_of = self.as_of
        years = rng.randint(2, 6)
        start = as_of - timedelta(days=365 * years)
        birth = start - timedelta(days=rng.randrange(18 * 365, 80 * 365))
        self.patient(birth)
        chronic = rng.sample(BACKGROUND_CHRONIC, k=min(len(BACKGROUND_CHRONIC), int(rng.expovariate(0.8))))
        chronic_refs: list[tuple[str, str, str]] = []
        # Sick visits per year: heavy-tailed, like Synthea (median ~3, some patients 10+).
        sick_rate = min(12.0, rng.lognormvariate(math.log(2.5), 0.7))
        for year in range(years):
            y0 = start + timedelta(days=365 * year)
            self.wellness(self.when(y0 + timedelta(days=rng.randrange(60))), chronic, chronic_refs, year == 0)
            for _ in range(self._poisson(sick_rate)):
                self.sick_visit(self.when(y0 + timedelta(days=rng.randrange(365))))
        if mh:
            self.mental_health(start)
        return self.plan

    def _poisson(self, lam: float) -> int:
        # Knuth; lam is small here.
        limit, k, p = math.exp(-lam), 0, 1.0
        while True:
            p *= self.rng.random()
            if p <= limit:
                return k
            k += 1

    def wellness(self, at: datetime, chronic: list[tuple[str, str, str, str]],
                 chronic_refs: list[tuple[str, str, str]], first: bool) -> None:
        rng = self.rng
        eid = self.encounter(at, WELLNESS_VISIT, None, minutes=45)
        self.note(eid, at, _note_text(rng, at, "No complaints.", chronic))
        vitals = Coded(LOINC, "85354-9", "Blood pressure panel with all children optional")
        self.observation(eid, at, vitals, "vital-signs", {"component": [
            {"code": _cc(LOINC, "8462-4", "Diastolic Blood Pressure"), **self.quantity(rng.randint(65, 95), "mm[Hg]")},
            {"code": _cc(LOINC, "8480-6", "Systolic Blood Pressure"), **self.quantity(rng.randint(105, 160), "mm[Hg]")},
        ]}, "us-core-blood-pressure")
        for code, display, unit, profile, lo, hi in BACKGROUND_VITALS:
            self.observation(eid, at, Coded(LOINC, code, display), "vital-signs",
                             self.quantity(round(rng.uniform(lo, hi), 1), unit), profile)
        self.observation(eid, at, Coded(LOINC, "72166-2", "Tobacco smoking status"), "social-history",
                         {"valueCodeableConcept": _cc(SNOMED, "266919005", "Never smoked tobacco (finding)")},
                         "us-core-smokingstatus")
        self.prapare(eid, at)
        for code, display, high in BACKGROUND_SCREENING_OBS:
            self.observation(eid, at, Coded(LOINC, code, display), "survey",
                             {"valueQuantity": {"value": rng.randint(0, high // 3), "unit": "{score}", "system": UCUM, "code": "{score}"}},
                             "us-core-observation-screening-assessment")
        if rng.random() < 0.5:  # Synthea screens anxiety with GAD-7 at many wellness visits.
            self.observation(eid, at, self.vocab.observations["gad7"], "survey",
                             {"valueQuantity": {"value": rng.randint(0, 6), "unit": "{score}", "system": UCUM, "code": "{score}"}},
                             "us-core-observation-screening-assessment")
        if rng.random() < 0.6:
            self.panel(eid, at, "51990-0", "Basic metabolic panel - Blood", BACKGROUND_BMP, sodium=True)
        if rng.random() < 0.4:
            self.panel(eid, at, "57698-3", "Lipid panel with direct LDL - Serum or Plasma", BACKGROUND_LIPIDS)
        for code, display in rng.sample(BACKGROUND_WELLNESS_PROCEDURES, k=rng.randint(2, 5)):
            self.procedure(eid, at, Coded(SNOMED, code, display))
        code, display = BACKGROUND_VACCINES[0] if rng.random() < 0.8 else rng.choice(BACKGROUND_VACCINES)
        self.emit({
            "resourceType": "Immunization", "id": self.uuid(),
            "meta": {"profile": [USCORE + "us-core-immunization"]},
            "status": "completed", "vaccineCode": _cc(CVX, code, display), "patient": self.pref,
            "encounter": {"reference": f"Encounter/{eid}"}, "occurrenceDateTime": at.isoformat(),
            "recorded": at.isoformat(), "primarySource": True,
            "location": {"reference": LOC, "display": ORG_NAME},
        })
        for code, display in rng.sample(BACKGROUND_FINDINGS[:6], k=rng.randint(1, 3)):
            self.condition(eid, at, Coded(SNOMED, code, display))
        if first:
            for cond_code, cond_display, med_code, med_display in chronic:
                cid = self.condition(eid, at, Coded(SNOMED, cond_code, cond_display), "problem-list-item")
                chronic_refs.append((cid, med_code, med_display))
        for cid, med_code, med_display in chronic_refs:  # yearly renewal of chronic medicines
            mid, medication, dosage = self.order(
                eid, at, med_code, med_display, {"value": 1, **TAB}, 1, 90, 3, "completed", cid)
            if rng.random() < 0.5:
                for fill in range(rng.randint(1, 4)):
                    self.dispense(mid, medication, dosage, at + timedelta(days=90 * fill), 90, 90, TAB)
        self.claim(eid, at, [(SNOMED, WELLNESS_VISIT[0], WELLNESS_VISIT[1])]
                   + [(SNOMED, c, d) for c, d in BACKGROUND_WELLNESS_PROCEDURES[:2]])

    def prapare(self, eid: str, at: datetime) -> None:
        """The PRAPARE social-needs panel: one large Observation with many components (Synthea)."""
        questions = (
            ("56051-6", "Do you consider yourself Hispanic/Latino?", "LA32-8", "No"),
            ("32624-9", "Race", "LA4457-3", "White"),
            ("93035-4", "At any point in the past 2 years, has season or migrant farm work been your or your family's main source of income?", "LA32-8", "No"),
            ("93034-7", "Have you been discharged from the armed forces of the United States?", "LA32-8", "No"),
            ("54899-0", "Preferred language", "LA43-2", "English"),
            ("63512-8", "How many family members, including yourself, do you currently live with?", None, "3"),
            ("71802-3", "Housing status", "LA30190-5", "I have housing"),
            ("93033-9", "Are you worried about losing your housing?", "LA32-8", "No"),
            ("56799-0", "Address", None, "1 Main Street"),
            ("82589-3", "Highest level of school", "LA30189-7", "High school diploma or GED"),
            ("67875-5", "Employment status current", "LA17956-6", "Unemployed"),
            ("76437-3", "Primary insurance", "LA29153-6", "Medicaid"),
            ("63586-2", "What was your best estimate of the total income of all family members from all sources, before taxes, in last year?", None, "25000"),
            ("93031-3", "In the past year, have you or any family members you live with been unable to get any of the following when it was really needed?", "LA30125-1", "I choose not to answer this question"),
            ("93030-5", "Has lack of transportation kept you from medical appointments, meetings, work, or from getting things needed for daily living", "LA30134-3", "No"),
            ("93029-7", "How often do you see or talk to people that you care about and feel close to", "LA30105-3", "1 or 2 times a week"),
            ("93038-8", "Stress level", "LA13914-9", "Not at all"),
            ("93028-9", "In the past year, have you spent more than 2 nights in a row in a jail, prison, detention center, or juvenile correctional facility?", "LA32-8", "No"),
            ("93027-1", "Are you a refugee?", "LA32-8", "No"),
            ("93026-3", "Do you feel physically and emotionally safe where you currently live?", "LA33-6", "Yes"),
        )
        comps = []
        for code, display, answer_code, answer in questions:
            value: Resource = ({"valueCodeableConcept": _cc(LOINC, answer_code, answer)} if answer_code
                               else {"valueString": answer})
            comps.append({"code": _cc(LOINC, code, display), **value})
        self.observation(eid, at, Coded(LOINC, "93025-5", "Protocol for Responding to and Assessing Patients' Assets, Risks, and Experiences [PRAPARE]"),
                         "survey", {"component": comps}, "us-core-observation-sdoh-assessment")

    def panel(self, eid: str, at: datetime, code: str, display: str,
              rows: tuple[tuple[str, str, str, float, float], ...], sodium: bool = False) -> None:
        rng = self.rng
        members = []
        for lcode, ldisplay, unit, lo, hi in rows:
            oid = self.observation(eid, at, Coded(LOINC, lcode, ldisplay), "laboratory",
                                   self.quantity(round(rng.uniform(lo, hi), 1), unit))
            members.append({"reference": f"Observation/{oid}", "display": ldisplay})
        if sodium:  # the BMP sodium is a classifier input (hyponatraemia), so its code is mapped
            members.append({"reference": f"Observation/{self.lab(eid, at, 'sodium', rng.uniform(134, 145))}"})
        self.emit({
            "resourceType": "DiagnosticReport", "id": self.uuid(),
            "meta": {"profile": [USCORE + "us-core-diagnosticreport-lab"]},
            "status": "final",
            "category": [{"coding": [{"system": THO + "v2-0074", "code": "LAB", "display": "Laboratory"}]}],
            "code": _cc(LOINC, code, display), "subject": self.pref,
            "encounter": {"reference": f"Encounter/{eid}"}, "effectiveDateTime": at.isoformat(),
            "issued": at.isoformat(), "performer": [self.doctor], "result": members,
        })

    def lab(self, eid: str | None, at: datetime, concept: str, value: float) -> str:
        return self.observation(eid, at, self.vocab.observations[concept], "laboratory",
                                self.quantity(round(value, 2), self.vocab.units[concept]))

    def sick_visit(self, at: datetime) -> None:
        rng = self.rng
        visit = rng.choice(SICK_VISITS)
        code, display = rng.choice(BACKGROUND_FINDINGS[6:])
        eid = self.encounter(at, visit, (code, display), minutes=rng.choice((20, 40, 90)))
        self.note(eid, at, _note_text(rng, at, f"Patient is presenting with {display}.", ()))
        cid = self.condition(eid, at, Coded(SNOMED, code, display),
                             abated=at + timedelta(days=rng.randint(7, 30)))
        if rng.random() < 0.5:
            for vcode, vdisplay, unit, profile, lo, hi in BACKGROUND_VITALS[3:5]:
                self.observation(eid, at, Coded(LOINC, vcode, vdisplay), "vital-signs",
                                 self.quantity(round(rng.uniform(lo, hi), 1), unit), profile)
        items = [(SNOMED, visit[0], visit[1])]
        for pcode, pdisplay in rng.sample(BACKGROUND_OTHER_PROCEDURES, k=rng.randint(0, 3)):
            self.procedure(eid, at, Coded(SNOMED, pcode, pdisplay), cid)
            items.append((SNOMED, pcode, pdisplay))
        if rng.random() < 0.5:
            mcode, mdisplay = rng.choice(BACKGROUND_ACUTE_MEDS)
            self.order(eid, at, mcode, mdisplay, {"value": 1, **TAB}, 3, 10, 0, "completed", cid)
        self.claim(eid, at, items)

    # --- depression / social anxiety --------------------------------------------------------------

    def mental_health(self, history_start: date) -> None:
        rng = self.rng
        vocab = self.vocab
        plan = self.plan
        onset_day = history_start + timedelta(days=rng.randrange(30, 365))
        onset = self.when(onset_day)
        eid = self.encounter(onset, MH_VISIT, None, minutes=60)
        roll = rng.random()
        plan.mdd = roll < 0.85
        plan.sad = roll >= 0.7
        conditions = []
        if plan.mdd:
            conditions.append(self.condition(eid, onset, rng.choice(vocab.mdd)))
        if plan.sad:
            conditions.append(self.condition(eid, onset, rng.choice(vocab.sad)))
        if rng.random() < 0.04:
            plan.bipolar = True
            self.condition(eid, onset, rng.choice(vocab.bipolar))
        reason = conditions[0]
        self.note(eid, onset, _note_text(rng, onset, "Low mood, poor sleep, avoids social situations.", ()))
        self.claim(eid, onset, [(SNOMED, MH_VISIT[0], MH_VISIT[1])])
        severity = rng.randint(12, 24)
        self.score(eid, onset, "phq9", severity, items=True)
        if plan.sad:
            self.score(eid, onset, "lsas", rng.randint(60, 110))
            self.score(eid, onset, "gad7", rng.randint(8, 18))
        if rng.random() < 0.6:
            self.lab(eid, onset, "tsh", rng.lognormvariate(math.log(2.0), 0.5))
        if rng.random() < 0.35:
            self.lab(eid, onset, rng.choice(("crp", "hscrp")), rng.lognormvariate(math.log(2.5), 0.8))
        day = onset_day + timedelta(days=rng.randint(0, 14))
        n_trials = min(5, 1 + int(rng.expovariate(0.9)))
        used: set[str] = set()
        for index in range(n_trials):
            if day >= self.as_of - timedelta(days=14):
                break
            severity, day = self.trial(day, index, used, reason, severity)
            day += timedelta(days=rng.randint(0, 21))
        if rng.random() < 0.3:
            self.cbt(onset_day + timedelta(days=rng.randint(0, 120)), reason)

    def trial(self, day: date, index: int, used: set[str], reason: str, severity: int) -> tuple[int, date]:
        """One antidepressant trial: orders (dose in tablets), fills, PHQ-9 every few weeks."""
        rng = self.rng
        vocab = self.vocab
        weights = CLASS_WEIGHT_EARLY if index < 2 else CLASS_WEIGHT_LATE
        ingredients = sorted(ing for ing, ps in vocab.products.items()
                             if ing not in used and ps[0].drug_class in weights)
        ingredient = rng.choices(
            ingredients, weights=[weights[vocab.products[i][0].drug_class] for i in ingredients])[0]
        products = vocab.products[ingredient]
        # A tablet strength a prescriber would use: between a quarter of and the minimum dose.
        usual = [p for p in products if p.min_daily_dose / 4 <= p.strength_mg <= p.min_daily_dose]
        product = rng.choice(usual or list(products))
        used.add(product.ingredient)
        self.plan.ingredients.append(product.ingredient)
        weeks = rng.choice((3, 5, 8, 10, 12, 16, 24, 36))
        end = min(day + timedelta(weeks=weeks), self.as_of - timedelta(days=1))
        ongoing = end >= self.as_of - timedelta(days=30)
        # Tablets a day so that the dose is below, at or above the minimum adequate dose.
        tablets = min(4, max(1, round(product.min_daily_dose * rng.choice((0.5, 1, 1, 1.5, 2))
                                      / product.strength_mg)))
        if vocab.ingredient_codes:
            dose_unit: Resource = {"unit": "mg", "system": UCUM, "code": "mg"}
            dose = {"value": product.strength_mg * tablets, **dose_unit}
        else:
            dose_unit = TAB
            dose = {"value": tablets, **TAB}
        stopped_for_effects = (not ongoing and weeks <= 5 and vocab.stop_reason is not None
                               and rng.random() < 0.5)
        adherence = rng.choice((1.0, 0.95, 0.9, 0.8, 0.6, 0.4))
        response = rng.uniform(-0.1, 0.8)
        current = day
        segment = 0
        while current < end:
            at = self.when(current)
            eid = self.encounter(at, MH_VISIT, None)
            self.claim(eid, at, [(SNOMED, MH_VISIT[0], MH_VISIT[1])])
            last = current + timedelta(days=90) >= end
            status = ("active" if ongoing and last else
                      "stopped" if stopped_for_effects and last else "completed")
            # 30-day supplies with refills up to 90 days, but no further than the trial's end.
            repeats = max(0, min(2, math.ceil((end - current).days / 30) - 1))
            mid, medication, dosage = self.order(
                eid, at, product.code, product.display, dose, 1, 30, repeats, status, reason,
                vocab.stop_reason if status == "stopped" else None)
            fill = current
            while fill < min(current + timedelta(days=30 * (1 + repeats)), end):
                if rng.random() < adherence:
                    qty = dose["value"] * 30 if dose_unit is TAB else 30
                    self.dispense(mid, medication, dosage, self.when(fill), 30, qty,
                                  dose_unit if dose_unit is TAB else {"unit": "TAB", "system": TAB["system"], "code": "TAB"})
                fill += timedelta(days=30)
            # Scores every 2–6 weeks during the segment.
            score_day = current + timedelta(days=rng.randint(14, 42))
            while score_day < min(current + timedelta(days=90), end + timedelta(days=7)):
                progress = min(1.0, (score_day - day).days / 56)
                value = round(severity * (1 - response * progress) + rng.gauss(0, 1.5))
                self.score(None, self.when(score_day), "phq9", max(0, min(27, value)),
                           items=rng.random() < 0.3)
                score_day += timedelta(days=rng.randint(14, 42))
            if segment == 0 and weeks >= 8 and tablets <= 2 and rng.random() < 0.4:  # titrate up at week 4
                dose = {**dose, "value": dose["value"] * 2}
                current += timedelta(days=28)
            else:
                current += timedelta(days=90)
            segment += 1
        if rng.random() < 0.15:
            self.lab(None, self.when(end), "sodium", rng.uniform(128, 142))
        new_severity = max(5, min(27, round(severity * (1 - response))))
        return new_severity, end

    def score(self, eid: str | None, at: datetime, concept: str, value: int, items: bool = False) -> None:
        vocab = self.vocab
        rng = self.rng
        if rng.random() < 0.5:
            payload: Resource = {"valueInteger": value}
        else:
            payload = {"valueQuantity": {"value": value, "unit": "{score}", "system": UCUM, "code": "{score}"}}
        self.observation(eid, at, vocab.observations[concept], "survey", payload,
                         "us-core-observation-screening-assessment")
        if items:
            for item in ("phq9-item1", "phq9-item3", "phq9-item4"):
                if item in vocab.observations:
                    self.observation(eid, at, vocab.observations[item], "survey",
                                     {"valueInteger": min(3, max(0, round(value / 9 + rng.gauss(0, 0.7))))},
                                     "us-core-observation-screening-assessment")

    def cbt(self, day: date, reason: str) -> None:
        rng = self.rng
        sessions = rng.randint(4, 16)
        for _ in range(sessions):
            if day >= self.as_of:
                break
            at = self.when(day)
            eid = self.encounter(at, MH_VISIT, None, minutes=50)
            self.procedure(eid, at, self.vocab.cbt, reason)
            self.claim(eid, at, [(self.vocab.cbt.system, self.vocab.cbt.code, self.vocab.cbt.display)])
            self.plan.cbt_sessions += 1
            day += timedelta(days=rng.choice((7, 7, 7, 14)))


def _note_text(rng: random.Random, at: datetime, complaint: str,
               chronic: tuple[tuple[str, str, str, str], ...] | list[tuple[str, str, str, str]]) -> str:
    meds = "\n".join(f"- {c[3]}" for c in chronic) or "No Active Medications."
    problems = "\n".join(f"- {c[1]}" for c in chronic) or "None."
    return (
        f"\n{at.date().isoformat()}\n\n# Chief Complaint\n{complaint}\n\n"
        "# History of Present Illness\nPatient is an adult seen in the outpatient clinic.\n\n"
        "# Social History\n Patient has never smoked. Patient comes from a middle socioeconomic "
        "background.\n\n# Allergies\nNo Known Allergies.\n\n"
        f"# Medications\n{meds}\n\n# Problems\n{problems}\n\n# Assessment and Plan\n"
        f"Patient is presenting with {complaint.lower()} Vital signs reviewed. "
        f"Follow up in {rng.choice((2, 4, 6, 12))} weeks.\n\n## Plan\n"
    )


def patient_resources(seed: int, index: int, vocab: Vocabulary, as_of: date = DEFAULT_AS_OF,
                      mh_share: float = MH_SHARE) -> tuple[list[Resource], PatientPlan]:
    """All resources of patient `index` for `seed` (independent of the population size)."""
    rng = random.Random(f"fhirtrd-bench:{seed}:{index}")
    out: list[Resource] = []
    writer = _PatientWriter(rng, vocab, as_of, out.append)
    plan = writer.build(mh=rng.random() < mh_share)
    return out, plan


# --- the export ----------------------------------------------------------------------------------


@dataclass(slots=True)
class PopulationStats:
    """What was written: counts and bytes per resource type, and the mental-health share."""

    patients: int = 0
    resources: int = 0
    bytes: int = 0
    by_type: Counter[str] = field(default_factory=Counter)
    bytes_by_type: Counter[str] = field(default_factory=Counter)
    mh_patients: int = 0
    mdd_patients: int = 0
    sad_patients: int = 0
    antidepressant_trials: int = 0
    seconds: float = 0.0
    files: list[str] = field(default_factory=list)
    ingredient_codes: bool = False

    def summary(self) -> dict[str, Any]:
        return {
            "patients": self.patients, "resources": self.resources, "bytes": self.bytes,
            "resources_per_patient": round(self.resources / max(1, self.patients), 1),
            "kb_per_patient": round(self.bytes / max(1, self.patients) / 1024, 1),
            "mh_share": round(self.mh_patients / max(1, self.patients), 3),
            "mdd_patients": self.mdd_patients, "sad_patients": self.sad_patients,
            "antidepressant_trials": self.antidepressant_trials,
            "orders_use_ingredient_codes": self.ingredient_codes,
            "by_type": dict(self.by_type.most_common()),
            "generate_s": round(self.seconds, 2),
        }


def iter_population(patients: int, seed: int, vocab: Vocabulary, as_of: date = DEFAULT_AS_OF,
                    ) -> Iterator[tuple[list[Resource], PatientPlan]]:
    for index in range(patients):
        yield patient_resources(seed, index, vocab, as_of)


def generate(out_dir: Path, patients: int, seed: int, as_of: date = DEFAULT_AS_OF,
             mixed: bool = False) -> PopulationStats:
    """Write a Bulk Data style export (one `<Type>.ndjson` per type, or one mixed file)."""
    vocab = load_vocabulary()
    out_dir.mkdir(parents=True, exist_ok=True)
    stats = PopulationStats(ingredient_codes=vocab.ingredient_codes)
    handles: dict[str, BinaryIO] = {}
    began = time.perf_counter()
    dumps = orjson.dumps
    try:
        for resources, plan in iter_population(patients, seed, vocab, as_of):
            stats.patients += 1
            if plan.mdd or plan.sad:
                stats.mh_patients += 1
                stats.mdd_patients += plan.mdd
                stats.sad_patients += plan.sad
                stats.antidepressant_trials += len(plan.ingredients)
            for res in resources:
                kind = res["resourceType"]
                line = dumps(res) + b"\n"
                name = "population" if mixed else kind
                fh = handles.get(name)
                if fh is None:
                    fh = handles[name] = (out_dir / f"{name}.ndjson").open("wb", buffering=1 << 20)
                fh.write(line)
                stats.by_type[kind] += 1
                stats.bytes_by_type[kind] += len(line)
                stats.bytes += len(line)
                stats.resources += 1
    finally:
        for fh in handles.values():
            fh.close()
    stats.files = sorted(f"{name}.ndjson" for name in handles)
    stats.seconds = time.perf_counter() - began
    return stats


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--patients", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--as-of", type=date.fromisoformat, default=DEFAULT_AS_OF)
    parser.add_argument("--out", type=Path, default=None, help="directory (default: a new temp dir)")
    parser.add_argument("--mixed", action="store_true", help="one mixed NDJSON instead of one file per type")
    args = parser.parse_args(argv)
    out = args.out or Path(tempfile.mkdtemp(prefix="fhirtrd-pop-"))
    try:
        stats = generate(out, args.patients, args.seed, args.as_of, args.mixed)
    except PopulationError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(orjson.dumps({"out": str(out), **stats.summary()}, option=orjson.OPT_INDENT_2).decode())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
