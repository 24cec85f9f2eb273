"""Every write-back resource is valid R4 (two validators) and says what a clinician expects."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from fhirout_checks import check_bundle
from fhirout_scenarios import ALL, contract

from fhirtrd.fhir.outbound import build_transaction, is_fhirtrd_output

ISSUED = datetime(2024, 6, 1, 14, 30, tzinfo=UTC)


def bundle_of(name: str) -> dict[str, Any]:
    return build_transaction(contract(name), issued=ISSUED)


def by_type(bundle: dict[str, Any], rtype: str) -> list[dict[str, Any]]:
    return [e["resource"] for e in bundle.get("entry", []) if e["resource"]["resourceType"] == rtype]


def ident(resource: dict[str, Any]) -> str:
    return str(resource["identifier"][0]["value"]) if "identifier" in resource else ""


@pytest.mark.parametrize("name", sorted(ALL))
def test_every_output_validates_as_r4_with_allowed_references(name: str) -> None:
    check_bundle(bundle_of(name))


@pytest.mark.parametrize("name", sorted(ALL))
def test_every_output_is_marked_ai_asserted_fhirtrd_output(name: str) -> None:
    for e in bundle_of(name).get("entry", []):
        meta = e["resource"]["meta"]
        assert is_fhirtrd_output(e["resource"])
        assert meta["security"] == [{"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue",
                                     "code": "AIAST", "display": "Artificial Intelligence asserted"}]
        hashes = [t["code"] for t in meta["tag"]
                  if t["system"] == "http://fhirtrd.org/fhir/CodeSystem/content-hash"]
        assert len(hashes) == 1 and len(hashes[0]) == 32


def test_one_patient_two_disorders_gives_one_bundle_with_both_assessments() -> None:
    bundle = bundle_of("depression-and-social-anxiety")
    entries = bundle["entry"]
    assert [e["resource"]["resourceType"] for e in entries][0] == "Device"
    assert entries[-1]["resource"]["resourceType"] == "Provenance"
    assessments = [o for o in by_type(bundle, "Observation") if ident(o).endswith("/assessment")]
    assert [ident(o) for o in assessments] == ["p-both/mdd/assessment", "p-both/sad/assessment"]
    assert [o["code"]["coding"][0]["code"] for o in assessments] == ["trd-assessment", "tr-sad-assessment"]
    sad = assessments[1]
    trials = {e["fullUrl"]: e["resource"] for e in entries if "/sad/trial/" in ident(e["resource"])}
    assert [m["reference"] for m in sad["hasMember"]] == list(trials)
    assert len(trials) == 5
    assert {ident(r) for r in by_type(bundle, "RiskAssessment")} == {
        "p-both/mdd/next-step-likelihood", "p-both/sad/next-step-likelihood"}


def test_assessment_observation_carries_stage_and_components() -> None:
    obs = by_type(bundle_of("stage-ii-two-classes-failed"), "Observation")[0]
    assert obs["valueCodeableConcept"]["coding"][0]["code"] == "II"
    assert obs["valueCodeableConcept"]["text"] == "Thase–Rush stage II"
    assert obs["effectiveDateTime"] == "2024-06-01"
    assert obs["issued"] == "2024-06-01T14:30:00Z"
    comps = {}
    for c in obs["component"]:
        comps.setdefault(c["code"]["coding"][0]["code"], []).append(c)
    assert comps["treatment-resistant"][0]["valueBoolean"] is True
    assert comps["failed-adequate-trials"][0]["valueInteger"] == 2
    assert [c["valueCodeableConcept"]["coding"][0]["code"] for c in comps["failed-class"]] == ["SNRI", "SSRI"]
    assert comps["msm-total"][0]["valueInteger"] == 8
    assert comps["msm-band"][0]["valueCodeableConcept"]["coding"][0]["code"] == "moderate"
    assert comps["inflammation"][0]["valueCodeableConcept"]["coding"][0]["code"] == "elevated"
    assert comps["assessment-status"][0]["valueCodeableConcept"]["coding"][0]["code"] == "confirmed"
    # derivedFrom holds only score Observations / QuestionnaireResponses, never the orders
    refs = [r["reference"] for r in obs["derivedFrom"]]
    assert "QuestionnaireResponse/phq9-qr-1" in refs and "Observation/crp-1" in refs
    assert not [r for r in refs if r.startswith(("MedicationRequest/", "Condition/"))]


def test_note_reads_like_a_psychiatrist_summary() -> None:
    obs = by_type(bundle_of("stage-ii-two-classes-failed"), "Observation")[0]
    note = obs["note"][0]["text"]
    assert note.startswith(
        "Thase–Rush stage II: failed adequate trials of sertraline (SSRI, 12 weeks at 100 mg/day,"
        " nonresponse on PHQ-9 18→16) and venlafaxine (SNRI, 8 weeks at 225 mg/day, partial"
        " response on PHQ-9 20→13). Treatment-resistant: yes (2 failed adequate trials)."
    )
    assert "Not counted as failed: citalopram (inadequate dose)." in note
    assert "Next step: augment (suggested: mirtazapine)" in note
    assert "13.7 %" in note


def test_provisional_stage_v_note_names_the_open_medical_causes_and_ect() -> None:
    obs = by_type(bundle_of("stage-v-every-class-and-ect"), "Observation")[0]
    note = obs["note"][0]["text"]
    assert note.startswith("Thase–Rush stage V (provisional): failed adequate trials of fluoxetine")
    assert "ECT (bilateral, 12 sessions, nonresponse on HAM-D17 28→24)" in note
    assert "nortriptyline (TCA, 12 weeks at 100 mg/day, no paired scores; failure inferred" in note
    assert "possible thyroid cause (TSH 7.2 mIU/L)" in note
    assert "also consider advanced options" in note


def test_trial_observation_has_dose_duration_adherence_outcome() -> None:
    bundle = bundle_of("stage-ii-two-classes-failed")
    trial = next(o for o in by_type(bundle, "Observation")
                 if ident(o) == "p-stage2/mdd/trial/sertraline-2023-01-05")
    assert trial["valueCodeableConcept"]["coding"][0]["code"] == "nonresponse"
    assert trial["effectivePeriod"] == {"start": "2023-01-05", "end": "2023-04-10"}
    comps = {c["code"]["coding"][0]["code"]: c for c in trial["component"]}
    assert comps["daily-dose"]["valueQuantity"] == {"value": 100.0, "unit": "mg/day",
                                                    "system": "http://unitsofmeasure.org", "code": "mg/d"}
    assert comps["weeks-at-adequate-dose"]["valueQuantity"]["value"] == 12.0
    assert comps["score-change"]["valueQuantity"]["value"] == 11.0
    assert comps["proportion-days-covered"]["valueQuantity"]["value"] == 92.0
    assert comps["adherence"]["valueCodeableConcept"]["coding"][0]["code"] == "ok"
    assert comps["treatment-class"]["valueCodeableConcept"]["coding"][0]["code"] == "SSRI"
    assert [r["reference"] for r in trial["derivedFrom"]] == [
        "Observation/phq9-sertraline-b", "Observation/phq9-sertraline-e"]


def test_ongoing_trial_has_an_open_period() -> None:
    bundle = bundle_of("stage-0-early-trials")
    trial = next(o for o in by_type(bundle, "Observation") if "/trial/bupropion" in ident(o))
    assert trial["effectivePeriod"] == {"start": "2024-03-01"}


def test_flags_resistance_findings_inflammation_and_goals_of_care() -> None:
    flags = by_type(bundle_of("stage-v-every-class-and-ect"), "Flag")
    assert [ident(f) for f in flags] == [
        "p-stage5/mdd/flag/treatment-resistant-depression",
        "p-stage5/mdd/flag/medical-osa",
        "p-stage5/mdd/flag/medical-thyroid",
        "p-stage5/mdd/flag/substance-use",
        "p-stage5/mdd/flag/goals-of-care",
    ]
    assert flags[0]["code"]["text"] == "Treatment-resistant depression — Thase–Rush stage V (provisional)"
    for f in flags:
        assert f["status"] == "active" and f["period"] == {"start": "2024-06-01"}
    stage2 = by_type(bundle_of("stage-ii-two-classes-failed"), "Flag")
    assert [f["code"]["coding"][0]["code"] for f in stage2] == [
        "treatment-resistant-depression", "inflammation-elevated"]
    assert stage2[0]["code"]["text"] == "Treatment-resistant depression — Thase–Rush stage II"


def test_possible_bipolar_is_a_safety_flag_and_no_resistance_flag() -> None:
    flags = by_type(bundle_of("bipolar-on-file"), "Flag")
    assert len(flags) == 1
    assert flags[0]["category"][0]["coding"][0]["code"] == "safety"
    assert flags[0]["code"]["text"] == "Possible bipolar disorder — bipolar II disorder"


def test_risk_assessment_holds_next_step_likelihood_and_its_basis() -> None:
    bundle = bundle_of("stage-ii-two-classes-failed")
    risk = by_type(bundle, "RiskAssessment")[0]
    obs_url = bundle["entry"][1]["fullUrl"]
    assert risk["basis"] == [{"reference": obs_url}]
    assert risk["prediction"][0]["probabilityDecimal"] == 0.137
    assert risk["prediction"][0]["outcome"]["coding"][0]["code"] == "remission-next-step"
    assert "after 2 failed steps" in risk["prediction"][0]["rationale"]
    assert risk["condition"] == {"reference": "Condition/mdd-1"}
    futile = by_type(bundle_of("stage-v-every-class-and-ect"), "RiskAssessment")[0]
    assert futile["mitigation"] == "Goals-of-care discussion"
    assert "-0.095" in futile["note"][0]["text"]


@pytest.mark.parametrize("name", sorted(set(ALL) - {"no-assessment"}))
def test_provenance_targets_every_output_and_names_every_input(name: str) -> None:
    bundle = bundle_of(name)
    prov = by_type(bundle, "Provenance")
    assert len(prov) == 1
    outputs = [e["fullUrl"] for e in bundle["entry"]
               if e["resource"]["resourceType"] not in ("Device", "Provenance")]
    assert [t["reference"] for t in prov[0]["target"]] == outputs
    evidence = sorted({r for a in contract(name)["assessments"] for r in a["evidence"]})
    named = [x["what"].get("reference") or x["what"]["display"] for x in prov[0]["entity"]]
    assert named == evidence
    device = bundle["entry"][0]["fullUrl"]
    assert prov[0]["agent"][0]["who"] == {"reference": device}


def test_an_unresolvable_input_reference_is_kept_as_display_only() -> None:
    prov = by_type(bundle_of("stage-0-early-trials"), "Provenance")[0]
    urn = "urn:uuid:6a4e1f0c-0000-4000-8000-000000000001"
    assert {"role": "derivation", "what": {"display": urn}} in prov["entity"]


def test_patient_without_assessment_gets_an_empty_transaction_naming_the_patient() -> None:
    bundle = bundle_of("no-assessment")
    assert bundle == {"resourceType": "Bundle", "type": "transaction",
                      "identifier": {"system": "http://fhirtrd.org/fhir/identifier",
                                     "value": "p-none/transaction"}}
