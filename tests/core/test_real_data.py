"""The real public FHIR corpus (../shared/data/real-fhir, see its SOURCE.md) through the real entry points."""

from __future__ import annotations

import csv
import json
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from fhirtrd.domain.model import PatientResult
from fhirtrd.service import Run, classify_paths
from fhirtrd.terminology import Terminology

from .conftest import AS_OF, REAL, SERTRALINE, bundle, mdd, order, score, write_json

pytestmark = pytest.mark.skipif(not REAL.is_dir(), reason="real corpus not present")

AMM = REAL / "ecqm-qicore-2024" / "AntidepressantMedicationManagementFHIR"
BULK = REAL / "smart-bulk-10-patients"
OUT_OF_RANGE_PATIENTS = ("01083d96-9f99-4138-824d-f4a0eab21f75", "b120a966-fc33-4768-b057-9e1e686d2c88")


def manifest_rows() -> list[dict[str, str]]:
    with (REAL / "patients.tsv").open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh, delimiter="\t"))


def by_patient(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["patient"]: r for r in doc["results"]}


def classify(terminology: Terminology, *paths: Path, as_of: date = AS_OF) -> dict[str, PatientResult]:
    return {r.patient: r for r in classify_paths(list(paths), terminology, as_of)}


def test_whole_corpus_is_read_and_every_listed_patient_has_a_result(corpus_json: tuple[int, dict, str]) -> None:
    code, doc, err = corpus_json
    assert code == 0, err
    results = by_patient(doc)
    listed = {f"Patient/{row['patient_id']}" for row in manifest_rows()}
    assert len(listed) == 288
    assert listed <= set(results)
    bulk_ids = {json.loads(line)["id"] for line in (BULK / "Patient.000.ndjson").read_text().splitlines() if line}
    assert len(bulk_ids) == 13 and {f"Patient/{p}" for p in bulk_ids} <= set(results)
    # the only input-level warnings: the non-FHIR files SOURCE.md mentions. (The official example
    # Observation-decimal has no subject, but its code is not one the classifier reads, so it is
    # skipped before anyone asks whose it is.)
    assert {(w["code"], Path(w["source"].split(":")[0]).name) for w in doc["warnings"]} == {
        ("not-fhir", "MANIFEST.json"), ("not-fhir", "package.json"), ("not-fhir", "log.ndjson")}


def test_antidepressant_medication_management_patients_have_desipramine_trials(terminology: Terminology) -> None:
    results = classify(terminology, AMM)
    assert len(results) == 26
    with_mdd = {p: r for p, r in results.items() if r.assessments}
    # CMS128 test "IPSD but no depression diagnosis" is the one patient out of scope
    assert set(results) - set(with_mdd) == {"Patient/3727f922-3b68-4b35-82cf-a7876b0bea5e"}
    for pid, r in with_mdd.items():
        [a] = r.assessments
        assert a.disorder == "mdd" and a.diagnosis == "recorded"
        # v2: CMS128's psychotherapy Encounters (CPT 90832…) are sessions too (clinical-spec §2.1 v2)
        assert a.trials and "desipramine" in {t.treatment for t in a.trials}, pid
        assert all(t.treatment_class == "TCA" and t.kind == "medication" for t in a.trials
                   if t.treatment == "desipramine")
        assert {t.treatment for t in a.trials} <= {"desipramine", "psychotherapy"}, pid
    sessions = [t for t in with_mdd["Patient/778e804e-7356-400f-bc36-8d202d775509"].assessments[0].trials
                if t.treatment == "psychotherapy"]
    assert [(t.start, t.sessions, t.evidence) for t in sessions] == [(date(2025, 1, 1), 1, ("Encounter/Encounter-1",))]
    # "Antidepressant continuous treatment 84 days": one dispense of 84 days from 1 Jan 2025
    [t] = with_mdd["Patient/006165b0-ab24-4823-bcee-61d64ae5f581"].assessments[0].trials
    assert (t.start, t.end, t.pdc) == (date(2025, 1, 1), date(2025, 3, 25), 1.0)
    # "Two dispensing events": two 10-day fills two months apart are two trials (gap > 14 days)
    two = with_mdd["Patient/4365633e-3edf-4bcf-a30e-33efb41fd496"].assessments[0].trials
    assert [(t.start, t.end) for t in two] == [(date(2025, 1, 1), date(2025, 1, 10)),
                                               (date(2025, 3, 1), date(2025, 3, 10))]


def test_order_ended_by_its_bounds_period_is_not_open_ended(terminology: Terminology) -> None:
    # CMS128 test "Active antidepressant ends 105 days prior to IPSD"
    r = classify(terminology, AMM / "9ab27fb9-1253-4b89-b88c-693d5f8ae65d.json")
    [a] = r["Patient/9ab27fb9-1253-4b89-b88c-693d5f8ae65d"].assessments
    assert a.trials[0].end == date(2024, 9, 18)
    assert "nonadherence" not in a.pseudo_resistance


def test_phq9_of_300_is_a_warning_not_a_score(corpus_json: tuple[int, dict, str]) -> None:
    _, doc, _ = corpus_json
    results = by_patient(doc)
    for pid in OUT_OF_RANGE_PATIENTS:
        r = results[f"Patient/{pid}"]
        [w] = [w for w in r["warnings"] if w["code"] == "value-out-of-range"]
        assert w["resource"] == "Observation/784651651684135131313"
        assert w["element"] == "Observation.value"
        assert "value 300" in w["message"] and "0-27" in w["message"]
        used = {ref for a in r["assessments"] for ref in a["evidence"]}
        assert "Observation/784651651684135131313" not in used


def test_us_core_phq9_total_as_value_string_is_read(terminology: Terminology, tmp_path: Path) -> None:
    # US Core 9.0.0 example: PHQ-9 total 44261-6 with valueString "12" on 29 Nov 2022 for Patient/example.
    # Add a diagnosis and an order for that patient: the string becomes the trial's baseline score.
    extra = write_json(tmp_path / "extra.json", bundle(
        mdd("example", onset="2022-11-01"), order(SERTRALINE, "2022-12-01", days=90, pid="example"),
        score("phq9", 5, "2023-02-20", pid="example")))
    phq9 = REAL / "hl7-examples" / "us-core-9.0.0" / "Observation-PHQ9-item-example-44261-6.json"
    r = classify(terminology, phq9, extra, as_of=date(2023, 6, 30))["Patient/example"]
    [t] = r.assessments[0].trials
    assert (t.instrument, t.baseline, t.endpoint, t.outcome) == ("phq9", 12, 5, "response")
    assert "Observation/PHQ9-item-example-44261-6" in t.evidence


def test_bulk_ndjson_groups_resources_by_patient(terminology: Terminology) -> None:
    run = Run(terminology, AS_OF)
    results = {r.patient for r in classify_paths([BULK], terminology, AS_OF, run=run)}
    assert len(results) == 13
    concepts = {pid: set().union(*(c.concepts for c in b.conditions)) for pid, b in run.builders.items()}
    # what Condition.000.ndjson holds for these patients, by code
    assert concepts["a4a401d1-a46a-eb4a-8a38-760d5d79d6ec"] == {"osa"}
    assert concepts["79a66c97-6131-3213-f3c9-4606946ab056"] == {"anxiety"}
    assert concepts["8e1a0a7c-e308-444b-075a-3c2b1f60f881"] == {"fatigue"}
    assert sum(1 for c in concepts.values() if c) == 4


def test_entered_in_error_medication_statement_is_ignored(terminology: Terminology, tmp_path: Path) -> None:
    # r4-core MedicationStatement example005 is status entered-in-error (example004: the same, active).
    # With the drug replaced by sertraline, only the active one becomes a trial.
    src = REAL / "hl7-examples" / "r4-core"
    docs = {}
    for name in ("example004", "example005"):
        r = json.loads((src / f"MedicationStatement-{name}.json").read_text(encoding="utf-8"))
        r["medicationCodeableConcept"] = {"coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm",
                                                      "code": SERTRALINE}]}
        docs[name] = write_json(tmp_path / f"{name}.json", r)
    assert json.loads(docs["example005"].read_text())["status"] == "entered-in-error"
    diagnosis = write_json(tmp_path / "dx.json", mdd("pat1", onset="2013-01-01"))
    with_error_only = classify(terminology, docs["example005"], diagnosis, as_of=date(2015, 1, 1))["Patient/pat1"]
    assert with_error_only.assessments[0].trials == () and with_error_only.warnings == ()
    both = classify(terminology, docs["example004"], docs["example005"], diagnosis, as_of=date(2015, 1, 1))
    assert [t.evidence[0] for t in both["Patient/pat1"].assessments[0].trials] == ["MedicationStatement/example004"]


def test_unmodified_official_medication_examples_produce_no_trials_and_one_warning_each(
        terminology: Terminology) -> None:
    """None of the official examples is a psychiatric drug: no assessment, and (clinical-spec §2 v2) each
    unresolved medication resource gives exactly one warning naming it; entered-in-error ones none."""
    src = REAL / "hl7-examples" / "r4-core"
    files = sorted(src.glob("MedicationStatement-*.json")) + sorted(src.glob("MedicationRequest-*.json"))
    r = classify(terminology, *files)
    assert set(r) == {"Patient/pat1"}
    assert r["Patient/pat1"].assessments == ()
    docs = [json.loads(f.read_text()) for f in files]
    used = sorted(f"{d['resourceType']}/{d['id']}" for d in docs
                  if d.get("status") != "entered-in-error" and d.get("subject", {}).get("reference") == "Patient/pat1")
    warnings = r["Patient/pat1"].warnings
    assert {w.code for w in warnings} == {"unresolved-medication"}
    assert sorted(w.resource or "" for w in warnings) == used


def test_bipolar_diagnosis_makes_the_mdd_assessment_not_applicable(corpus_json: tuple[int, dict, str]) -> None:
    _, doc, _ = corpus_json
    results = by_patient(doc)
    # CMS159 test patient with MDD (F32.9) and SNOMED 10981006 (severe mixed bipolar I disorder)
    [a] = results["Patient/a7fc8494-7b23-46f5-864c-fdc7e073a4c8"]["assessments"]
    assert (a["status"], a["treatment_resistant"], a["next_step"]["strategy"]) == (
        "not-applicable", False, "reassess-diagnosis")
    assert "misdiagnosis-bipolar" in a["pseudo_resistance"]
    # CMS2 test patients with bipolar only (10875004 / 12969000): no MDD or SAD in scope (clinical-spec §1)
    for pid in ("046b755c-a136-4161-b501-4e12cb681596", "61e359ab-5395-4a3d-b464-c868b9c2526a",
                "d3e306b5-c89f-4638-9794-ccce26dbb635", "a3ddb325-4928-4712-b42d-0b4257f5111c",
                "f3f347f2-5b62-42b1-a237-3956ca9c9185"):
        assert results[f"Patient/{pid}"]["assessments"] == []
    not_applicable = [p for p, r in results.items() for a in r["assessments"] if a["status"] == "not-applicable"]
    assert not_applicable == ["Patient/a7fc8494-7b23-46f5-864c-fdc7e073a4c8"]


UNVERIFIED_PATIENTS = ("0604cc6e-338a-44bf-a89a-d8de53669314", "3650cd70-613a-445f-a924-534a05a5a5c0")


def test_phq9_with_status_unknown_is_skipped_with_a_warning(corpus_json: tuple[int, dict, str]) -> None:
    """clinical-spec §3 v2: CMS159 test patients carry a PHQ-9 whose status is `unknown`: not a verified score."""
    _, doc, _ = corpus_json
    results = by_patient(doc)
    for pid in UNVERIFIED_PATIENTS:
        r = results[f"Patient/{pid}"]
        [w] = [w for w in r["warnings"] if w["code"] == "unverified-result"]
        assert (w["resource"], w["element"]) == ("Observation/784651651684135131313", "Observation.status")
        assert "'unknown'" in w["message"]
        used = {ref for a in r["assessments"] for ref in a["evidence"]}
        assert "Observation/784651651684135131313" not in used


def test_us_core_phq9_questionnaire_response_gives_a_phq9_of_12(terminology: Terminology, tmp_path: Path) -> None:
    """US Core 9.0.0 QuestionnaireResponse-phq-9-example: total item /44261-6 = 12, authored 29 Nov 2022."""
    extra = write_json(tmp_path / "extra.json", bundle(
        mdd("example", onset="2022-11-01"), order(SERTRALINE, "2022-12-01", days=90, pid="example"),
        score("phq9", 5, "2023-02-20", pid="example")))
    qr = REAL / "hl7-examples" / "us-core-9.0.0" / "QuestionnaireResponse-phq-9-example.json"
    r = classify(terminology, qr, extra, as_of=date(2023, 6, 30))["Patient/example"]
    [t] = r.assessments[0].trials
    assert (t.instrument, t.baseline, t.endpoint, t.outcome) == ("phq9", 12, 5, "response")
    assert "QuestionnaireResponse/phq-9-example" in t.evidence
