"""The command line's arguments (exit 2) and `--mappings` (exit 3, overrides, local codes)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .conftest import SERTRALINE, bundle, mdd, order, patient, run_cli, score, write_json

LOCAL = ("http://hospital.example/codes", "PHQ9TOT")

# sertraline 100 mg for 7 weeks (49 days), PHQ-9 20 → 18: with the default 6 weeks an adequate
# trial that failed (stage I); with 8 weeks not adequate (stage 0)
SEVEN_WEEKS = [patient(), mdd(), order(SERTRALINE, "2025-01-01", days=49),
               score("phq9", 20, "2024-12-20"), score("phq9", 18, "2025-02-15")]


def stage(path: Path, *extra: str | Path) -> tuple[str, dict]:
    code, out, err = run_cli("classify", path, "--as-of", "2025-06-30", "--format", "json", *extra)
    assert code == 0, err
    [result] = json.loads(out)["results"]
    [a] = result["assessments"]
    return a["stage"], a["trials"][0]


@pytest.mark.parametrize("argv", [
    ["classify"],                                         # no paths
    ["classify", "x.json", "--as-of", "2025-13-01"],      # not a date
    ["classify", "x.json", "--format", "xml"],            # unknown format
    ["diagnose", "x.json"],                               # unknown command
    [],
])
def test_wrong_arguments_exit_2(argv: list[str]) -> None:
    code, out, err = run_cli(*argv)
    assert code == 2 and out == ""
    assert "error:" in err


def test_bad_date_message_names_the_value() -> None:
    _, _, err = run_cli("classify", "x.json", "--as-of", "2025-13-01")
    assert "not a date (YYYY-MM-DD): '2025-13-01'" in err


def test_usage_error_goes_to_the_given_stderr() -> None:
    code, _, err = run_cli("classify", "x.json", "--as-of", "2025-13-01")
    assert code == 2 and "2025-13-01" in err


@pytest.mark.parametrize(("name", "content", "expected"), [
    ("observation_codes.csv",
     "system,code,concept,unit,display,source\n"
     "http://hospital.example/codes,P9,phq9,{score},x,local list\n"
     "http://hospital.example/codes,P9,phq9,{score},x,local list\n",
     "observation_codes.csv:3: duplicate key ('http://hospital.example/codes', 'P9') "
     "(first at {dir}/observation_codes.csv:2)"),
    ("conditions.csv",
     "system,code,match,concepts,display,source\nhttp://hl7.org/fhir/sid/icd-10-cm,F99,exact,madness,,local\n",
     "conditions.csv:2: unknown condition concept 'madness'"),
    ("observation_codes.csv",
     "system,code,concept,unit,display,source\nhttp://hospital.example/codes,P9,phq9,{score},x,\n",
     "observation_codes.csv:2: every row needs a source"),
    ("medications.csv", "ingredient,rxnorm,class\nfoo,1,SSRI\n",
     "medications.csv: missing column(s) role, min_daily_dose, dose_unit, sad_line, sad_adequate, source"),
    ("thresholds.yaml", "adequate_weeks: {value: -8, source: local}\n",
     "thresholds.yaml: adequate_weeks: value must be a non-negative number"),
])
def test_invalid_mappings_exit_3_naming_file_and_row(tmp_path: Path, name: str, content: str, expected: str) -> None:
    mappings = tmp_path / "mappings"
    mappings.mkdir()
    (mappings / name).write_text(content, encoding="utf-8")
    inp = write_json(tmp_path / "in.json", bundle(*SEVEN_WEEKS))
    code, out, err = run_cli("classify", inp, "--as-of", "2025-06-30", "--mappings", mappings)
    assert code == 3 and out == ""
    assert err.startswith("fhirtrd: mappings: ")
    assert f"{mappings}/{expected.format(dir=mappings)}" in err


def test_missing_mappings_directory_exits_3(tmp_path: Path) -> None:
    code, _, err = run_cli("classify", tmp_path, "--mappings", tmp_path / "nope")
    assert code == 3 and f"{tmp_path / 'nope'}: mappings directory not found" in err


def test_mappings_can_override_a_threshold(tmp_path: Path) -> None:
    inp = write_json(tmp_path / "in.json", bundle(*SEVEN_WEEKS))
    assert stage(inp)[0] == "I"
    local = tmp_path / "local"
    local.mkdir()
    (local / "thresholds.yaml").write_text('adequate_weeks: {value: 8, source: "local policy: 8 weeks"}\n',
                                           encoding="utf-8")
    result_stage, trial = stage(inp, "--mappings", local)
    assert result_stage == "0"
    assert trial["adequate"] is False and trial["weeks_adequate"] == 7.0


def test_a_local_phq9_code_added_by_mappings_counts(tmp_path: Path) -> None:
    local_scores = [score("phq9", 20, "2024-12-20", code=LOCAL), score("phq9", 18, "2025-03-20", code=LOCAL)]
    inp = write_json(tmp_path / "in.json", bundle(patient(), mdd(), order(SERTRALINE, "2025-01-01", days=90),
                                                  *local_scores))
    # without the mapping the local code is not a score: no outcome, no failure
    assert stage(inp)[1]["outcome"] == "unknown"
    local = tmp_path / "local"
    local.mkdir()
    (local / "observation_codes.csv").write_text(
        "system,code,concept,unit,display,source\n"
        f"{LOCAL[0]},{LOCAL[1]},phq9,{{score}},PHQ-9 total (local),hospital code list 2025\n", encoding="utf-8")
    result_stage, trial = stage(inp, "--mappings", local)
    assert result_stage == "I"
    assert (trial["instrument"], trial["baseline"], trial["endpoint"], trial["outcome"]) == (
        "phq9", 20, 18, "nonresponse")
