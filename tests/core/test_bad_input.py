"""Bad input is answered with a precise warning or error and an exit code, never a crash."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

from fhirtrd.service import classify_bundle
from fhirtrd.terminology import Terminology

from .conftest import (
    AS_OF,
    CITALOPRAM,
    SERTRALINE,
    assess,
    assessment,
    bundle,
    condition,
    mdd,
    order,
    patient,
    run_cli,
    score,
    trials,
    write_json,
)

AS_OF_ARGS = ("--as-of", "2025-06-30")

# one patient with a failed adequate sertraline trial (PHQ-9 20 → 18): MDD stage I
STAGE_I = [patient("good"), mdd("good"), order(SERTRALINE, "2025-01-01", days=90, pid="good"),
           score("phq9", 20, "2024-12-20", pid="good"), score("phq9", 18, "2025-03-20", pid="good")]


def classify_json(*argv: str | Path) -> tuple[int, dict[str, Any], str]:
    code, out, err = run_cli("classify", *argv, *AS_OF_ARGS, "--format", "json")
    return code, json.loads(out), err


def good_file(directory: Path) -> Path:
    return write_json(directory / "good.json", bundle(*STAGE_I))


def stage_of(doc: dict[str, Any], pid: str) -> str:
    [result] = [r for r in doc["results"] if r["patient"] == f"Patient/{pid}"]
    return result["assessments"][0]["stage"]


# --- unreadable inputs -------------------------------------------------------------------------


def test_truncated_one_line_json_exits_1_and_the_other_files_are_still_classified(tmp_path: Path) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text('{"resourceType": "Bundle", "type": "collection", "entry": [', encoding="utf-8")
    code, doc, err = classify_json(broken, good_file(tmp_path))
    assert code == 1
    assert f"{broken}: not valid JSON" in err
    assert stage_of(doc, "good") == "I"
    assert [(w["code"], w["source"]) for w in doc["warnings"]] == [("invalid-json", str(broken))]


def test_truncated_pretty_printed_json_exits_1(tmp_path: Path) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps(bundle(*STAGE_I), indent=2)[:-200], encoding="utf-8")
    code, doc, err = classify_json(broken, good_file(tmp_path))
    assert code == 1
    assert f"{broken}: not valid JSON" in err
    assert [w["code"] for w in doc["warnings"]] == ["invalid-json"]


def test_empty_file_exits_1(tmp_path: Path) -> None:
    empty = tmp_path / "empty.json"
    empty.write_bytes(b"")
    code, doc, err = classify_json(empty, good_file(tmp_path))
    assert code == 1
    assert f"{empty}: the input is empty" in err
    assert stage_of(doc, "good") == "I"


def test_gzip_file_that_is_not_gzip_exits_1(tmp_path: Path) -> None:
    fake = tmp_path / "export.json.gz"
    fake.write_text(json.dumps(bundle(*STAGE_I)), encoding="utf-8")
    code, doc, err = classify_json(fake)
    assert code == 1
    assert str(fake) in err and "Not a gzipped file" in err
    assert doc["results"] == []
    assert [w["code"] for w in doc["warnings"]] == ["unreadable"]


def test_real_gzip_is_read(tmp_path: Path) -> None:
    packed = tmp_path / "bundle.json.gz"
    packed.write_bytes(gzip.compress(json.dumps(bundle(*STAGE_I)).encode()))
    code, doc, _ = classify_json(packed)
    assert code == 0 and stage_of(doc, "good") == "I"


def test_non_existent_path_exits_1_naming_it(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.json"
    code, out, err = run_cli("classify", missing, *AS_OF_ARGS)
    assert code == 1
    assert f"{missing}: no such file or directory" in err


def test_non_existent_path_leaves_no_broken_json_on_stdout(tmp_path: Path) -> None:
    code, out, _ = run_cli("classify", good_file(tmp_path), tmp_path / "nowhere.json", *AS_OF_ARGS, "--format", "json")
    assert code == 1
    if out.strip():
        json.loads(out)


def test_directory_with_mixed_inputs(tmp_path: Path) -> None:
    # a directory is read recursively: JSON, NDJSON and gzip files; other suffixes are not inputs
    (tmp_path / "sub").mkdir()
    good_file(tmp_path / "sub")
    lines = [score("phq9", 20, "2024-12-20", pid="nd"), score("phq9", 18, "2025-03-20", pid="nd"),
             mdd("nd"), order(CITALOPRAM, "2025-01-01", days=90, pid="nd", dose={"doseAndRate": [
                 {"doseQuantity": {"value": 20, "unit": "mg"}}], "timing": {"repeat": {"frequency": 1, "period": 1,
                                                                                         "periodUnit": "d"}}})]
    (tmp_path / "export.ndjson").write_text("\n".join(json.dumps(r) for r in lines) + "\n{oops\n", encoding="utf-8")
    (tmp_path / "notes.txt").write_text("not an input", encoding="utf-8")
    (tmp_path / "notfhir.json").write_text('{"hello": "world"}', encoding="utf-8")
    code, doc, err = classify_json(tmp_path)
    assert code == 0, err  # every file could be read; the bad line and the non-FHIR JSON are warnings
    assert sorted(r["patient"] for r in doc["results"]) == ["Patient/good", "Patient/nd"]
    assert stage_of(doc, "nd") == "I" and stage_of(doc, "good") == "I"
    warned = {(w["code"], Path(w["source"]).name) for w in doc["warnings"]}
    assert warned == {("structure", "export.ndjson:5"), ("not-fhir", "notfhir.json")}


def test_json_that_is_not_fhir_is_a_warning(tmp_path: Path) -> None:
    other = write_json(tmp_path / "config.json", {"hello": "world"})
    code, doc, _ = classify_json(other)
    assert code == 0 and doc["results"] == []
    assert doc["warnings"] == [{"code": "not-fhir", "message": "not a FHIR resource (no resourceType); skipped",
                                "resource": None, "element": None, "source": str(other)}]


# --- bad resources inside readable inputs ------------------------------------------------------


def test_one_broken_entry_is_named_and_the_rest_of_the_patient_is_assessed(terminology: Terminology) -> None:
    broken = order(CITALOPRAM, "2025-01-01", pid="good", rid="broken")
    broken["dosageInstruction"] = "20 mg daily"  # must be a list of Dosage
    [result] = classify_bundle(bundle(*STAGE_I[:3], broken, *STAGE_I[3:]), terminology, AS_OF)
    [w] = result.warnings
    assert (w.resource, w.element, w.source) == ("MedicationRequest/broken", "MedicationRequest.dosageInstruction",
                                                 "Bundle#entry[3]")
    assert "skipped" in w.message
    a = assessment([result], patient="Patient/good")
    assert [t.treatment for t in a.trials] == ["sertraline"] and a.stage == "I"


def test_resource_without_subject_is_reported_and_skipped(tmp_path: Path) -> None:
    orphan = score("phq9", 20, "2025-01-01", rid="orphan")
    del orphan["subject"]
    code, doc, _ = classify_json(write_json(tmp_path / "b.json", bundle(*STAGE_I, orphan)))
    assert code == 0
    [w] = doc["warnings"]
    assert (w["code"], w["resource"], w["element"]) == ("no-subject", "Observation/orphan", "Observation.subject")
    assert stage_of(doc, "good") == "I"


def test_unknown_codes_are_not_guessed(terminology: Terminology) -> None:
    # an unknown diagnosis, an unknown observation code and an unknown drug code without text:
    # nothing is in scope, nothing is invented
    [result] = assess(terminology, [patient(), condition("Z99.89"),
                                    score("phq9", 20, "2025-01-01", code=("http://loinc.org", "99999-9")),
                                    order({"coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm",
                                                       "code": "99999999"}]}, "2025-01-01")])
    assert result.assessments == ()


def test_future_dates_are_ignored_with_a_warning(terminology: Terminology) -> None:
    # as of 30 Jun 2025, an order of 1 Aug 2025 and a score of 1 Jul 2025 do not exist yet
    [result] = assess(terminology, [bundle(*STAGE_I, order(SERTRALINE, "2025-08-01", pid="good", rid="later"),
                                           score("phq9", 2, "2025-07-01", pid="good", rid="tomorrow"))])
    future = {(w.code, w.resource) for w in result.warnings}
    assert future == {("future-date", "MedicationRequest/later"), ("future-date", "Observation/tomorrow")}
    assert all("after the as-of date 2025-06-30" in w.message for w in result.warnings)
    a = assessment([result], patient="Patient/good")
    [t] = a.trials
    assert (t.endpoint, t.outcome, a.stage) == (18, "nonresponse", "I")


def test_absurd_dose_in_a_bundle_leaves_the_dose_unknown(terminology: Terminology) -> None:
    huge = order(SERTRALINE, "2025-01-01", days=90, pid="good", rid="huge",
                 dose={"doseAndRate": [{"doseQuantity": {"value": 50000, "unit": "mg"}}],
                       "timing": {"repeat": {"frequency": 1, "period": 1, "periodUnit": "d"}}})
    [result] = assess(terminology, [bundle(patient("good"), mdd("good"), huge)])
    assert [(w.code, w.resource) for w in result.warnings] == [("implausible-dose", "MedicationRequest/huge")]
    a = assessment([result], patient="Patient/good")
    [t] = trials(a)
    assert t.daily_dose is None and "dose-unknown" in a.caveats and not t.adequate
