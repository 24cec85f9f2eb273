"""The JSON contract of `fhirtrd classify --format json` (clinical-spec §9)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .conftest import (
    AMITRIPTYLINE,
    CITALOPRAM,
    SERTRALINE,
    VENLAFAXINE,
    bundle,
    condition,
    dosage,
    mdd,
    order,
    patient,
    run_cli,
    score,
    write_json,
)

STAGES = {"mdd": {"0", "I", "II", "III", "IV", "V"}, "sad": {"0", "I", "II"}}
STATUSES = {"confirmed", "provisional", "not-applicable"}
STRATEGIES = {"reassess-diagnosis", "address-pseudo-resistance", "optimize-dose", "extend-trial", "switch",
              "augment", "continue", "start-treatment", "gather-evidence", "monitor"}
FINDINGS = {"inadequate-dose", "inadequate-duration", "nonadherence", "inadequate-psychotherapy", "intolerance",
            "misdiagnosis-bipolar", "medical-thyroid", "medical-osa", "substance-use", "inadequate-agent",
            "non-depressive-indication"}
CAVEATS = {"adherence-unverified", "failure-inferred", "dose-unknown", "window-assumed", "modality-unverified"}
CLASSES = {"SSRI", "SNRI", "TCA", "MAOI", "NDRI", "NaSSA", "SARI", "multimodal", "psychotherapy", "ECT",
           "augmentation", "benzodiazepine", "gabapentinoid", "beta-blocker", "esketamine", "ketamine", "rTMS"}
OUTCOMES = {"remission", "response", "partial-response", "nonresponse", "unknown"}


def check_assessment(a: dict[str, Any]) -> None:
    assert a["disorder"] in STAGES
    assert a["diagnosis"] in {"recorded", "inferred"}
    assert a["stage"] in STAGES[a["disorder"]]
    assert a["status"] in STATUSES
    assert isinstance(a["treatment_resistant"], bool)
    if a["status"] == "not-applicable":
        assert a["treatment_resistant"] is False
    assert isinstance(a["failed_adequate_trials"], int) and a["failed_adequate_trials"] >= 0
    assert a["failed_classes"] == sorted(set(a["failed_classes"])) and set(a["failed_classes"]) <= CLASSES
    assert a["pseudo_resistance"] == sorted(set(a["pseudo_resistance"])) and set(a["pseudo_resistance"]) <= FINDINGS
    assert set(a["caveats"]) <= CAVEATS
    step = a["next_step"]
    assert step["strategy"] in STRATEGIES
    assert set(step["also"]) <= {"consider-advanced-options"}
    assert all(isinstance(s, str) for s in step["suggestions"])
    assert a["inflammation"] in {"elevated", "not-elevated", "indeterminate", "unknown"}
    assert set(a["subtypes"]) <= {"anxious", "anhedonic"}
    if a["disorder"] == "mdd":
        msm = a["msm"]
        assert msm["total"] is None or 3 <= msm["total"] <= 15
        assert msm["band"] in {None, "mild", "moderate", "severe"}
        assert (msm["total"] is None) == (msm["band"] is None) == (msm["reason"] is not None)
    likelihood = a["next_step_likelihood"]
    assert 0 <= likelihood["p_remission"] <= 1 and likelihood["source"]
    counted = 0
    for t in a["trials"]:
        assert {"treatment", "kind", "class", "start", "end", "adequate", "findings", "adherence", "outcome",
                "change", "instrument", "evidence"} <= set(t)
        assert t["kind"] in {"medication", "psychotherapy", "ect", "augmentation", "adjunct", "advanced"}
        assert t["class"] in CLASSES
        assert t["start"] <= t["end"]
        assert isinstance(t["adequate"], bool)
        assert set(t["findings"]) <= FINDINGS
        assert t["adherence"] in {"ok", "poor", "unknown", "not-applicable"}
        assert t["outcome"] in OUTCOMES
        assert t["change"] is None or isinstance(t["change"], float)
        assert t["evidence"] and all("/" in ref for ref in t["evidence"])
        counted += t["failed"] and t["episode"] == "current" and t["kind"] in ("medication", "psychotherapy", "ect")
    assert a["failed_adequate_trials"] == counted


def check_document(doc: dict[str, Any], as_of: str) -> None:
    assert set(doc) == {"results", "warnings"}
    patients = [r["patient"] for r in doc["results"]]
    assert len(patients) == len(set(patients))
    for r in doc["results"]:
        assert {"patient", "as_of", "assessments", "warnings"} <= set(r)
        assert r["patient"].startswith("Patient/") and r["as_of"] == as_of
        for w in r["warnings"]:
            assert w["message"] and w["code"]
        for a in r["assessments"]:
            check_assessment(a)


def test_contract_of_a_rich_example(tmp_path: Path) -> None:
    # stage III: failed SSRI, SNRI and TCA trials (PHQ-9 stays ≥ 17)
    resources = [patient(), mdd(onset="2023-06-01"),
                 order(CITALOPRAM, "2024-01-01", days=60, dose=dosage(40)),
                 order(VENLAFAXINE, "2024-04-01", days=60, dose=dosage(225)),
                 order(AMITRIPTYLINE, "2024-07-01", days=60, dose=dosage(150)),
                 order(SERTRALINE, "2025-05-01", days=90, status="active", dose=dosage(25))]
    for start in ("2023-12-20", "2024-03-25", "2024-06-25", "2024-09-10", "2025-04-25"):
        resources.append(score("phq9", 19, start))
    for end in ("2024-02-20", "2024-05-20"):
        resources.append(score("phq9", 18, end))
    code, out, err = run_cli("classify", write_json(tmp_path / "in.json", bundle(*resources)),
                             "--as-of", "2025-06-30", "--format", "json")
    assert code == 0, err
    doc = json.loads(out)
    check_document(doc, "2025-06-30")
    [a] = doc["results"][0]["assessments"]
    assert (a["stage"], a["failed_classes"], a["treatment_resistant"]) == ("III", ["SNRI", "SSRI", "TCA"], True)
    assert a["next_step"] == {**a["next_step"], "strategy": "optimize-dose", "also": ["consider-advanced-options"]}


def test_contract_of_a_bipolar_patient(tmp_path: Path) -> None:
    resources = [patient(), mdd(), condition("13746004", "http://snomed.info/sct", rid="bp")]
    code, out, _ = run_cli("classify", write_json(tmp_path / "in.json", bundle(*resources)),
                           "--as-of", "2025-06-30", "--format", "json")
    doc = json.loads(out)
    check_document(doc, "2025-06-30")
    [a] = doc["results"][0]["assessments"]
    assert (a["status"], a["treatment_resistant"], a["next_step"]["strategy"]) == (
        "not-applicable", False, "reassess-diagnosis")
    assert a["findings"][0] == {"code": "misdiagnosis-bipolar", "evidence": ["Condition/bp"],
                                "detail": a["findings"][0]["detail"]}


def test_contract_holds_for_every_patient_of_the_real_corpus(corpus_json: tuple[int, dict[str, Any], str]) -> None:
    _, doc, _ = corpus_json
    check_document(doc, "2025-06-30")
    assert sum(len(r["assessments"]) for r in doc["results"]) > 90
