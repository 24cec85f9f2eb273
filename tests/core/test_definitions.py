"""Published TRD definitions (mappings/definitions.csv) on worked examples built from each published rule."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest

from fhirtrd.domain.model import DefinitionResult
from fhirtrd.errors import TerminologyError
from fhirtrd.terminology import Terminology, load_terminology

from .conftest import CITALOPRAM, SERTRALINE, VENLAFAXINE, assess, assessment, dosage, mdd, order, score, statement

BUPROPION = "42347"
MIRTAZAPINE = "15996"
LITHIUM = "6448"
FLUOXETINE = "4493"


def defs(terminology: Terminology, resources: list[dict[str, Any]], *, onset: str = "2020-01-01",
         as_of: date = date(2025, 6, 30)) -> dict[str, DefinitionResult]:
    a = assessment(assess(terminology, [mdd(onset=onset), *resources], as_of))
    return {d.id: d for d in a.definitions}


def issues(med: str, first: str, count: int, every: int = 28) -> list[dict[str, Any]]:
    start = date.fromisoformat(first)
    return [order(med, (start + timedelta(days=every * i)).isoformat()) for i in range(count)]


def course(med: str, start: str, days: int, dose: float = 200) -> dict[str, Any]:
    """A statement of `days` days (first and last day included) at `dose` mg/day."""
    first = date.fromisoformat(start)
    return statement(med, start, (first + timedelta(days=days - 1)).isoformat(), status="completed",
                     dose=dosage(dose))


def test_every_definition_of_the_issue_is_in_the_table(terminology: Terminology) -> None:
    ids = [d.id for d in terminology.rules.definitions]
    assert ids == ["fabbri-2sw", "coombes-sw1", "coombes-sw2", "coombes-num", "lo-ssri-switch", "claims-2adq3",
                   "liu-2x4w", "dk-2shift-12m", "eu-pearl", "mgh-s", "esm"]
    assert all(d.source for d in terminology.rules.definitions)


# --- Fabbri 2021 (R code: episodes by 26-week gaps, ≥ 6 weeks, 0 < gap ≤ 14 weeks, ≥ 2 switches) ----


def fabbri_patient(gap_days: int) -> list[dict[str, Any]]:
    # sertraline issued 1 Jan, 29 Jan, 26 Feb 2024 (8 weeks first→last issue), then citalopram
    # `gap_days` after the last sertraline issue for 8 weeks, then venlafaxine 28 days after that.
    cit = date(2024, 2, 26) + timedelta(days=gap_days)
    ven = cit + timedelta(days=56 + 28)
    return [*issues(SERTRALINE, "2024-01-01", 3), *issues(CITALOPRAM, cit.isoformat(), 3),
            *issues(VENLAFAXINE, ven.isoformat(), 2)]


def test_fabbri_two_switches_within_14_weeks_is_trd_dated_at_the_third_drug(terminology: Terminology) -> None:
    d = defs(terminology, fabbri_patient(98))["fabbri-2sw"]
    assert d.met
    assert d.date_met == date(2024, 2, 26) + timedelta(days=98 + 56 + 28)
    assert len(d.evidence) == 8  # every issue of the three drugs


def test_fabbri_a_gap_of_14_weeks_and_one_day_is_not_a_switch(terminology: Terminology) -> None:
    assert not defs(terminology, fabbri_patient(99))["fabbri-2sw"].met


def test_fabbri_back_to_the_first_drug_is_not_a_second_switch(terminology: Terminology) -> None:
    # sertraline → citalopram → sertraline again (2 switches, 2 distinct drugs: R code's drug_distinct > 2)
    rs = [*issues(SERTRALINE, "2024-01-01", 3), *issues(CITALOPRAM, "2024-03-25", 3),
          *issues(SERTRALINE, "2024-06-17", 3)]
    # the second sertraline run is within 26 weeks of the first → one episode; no TRD either way
    assert not defs(terminology, rs)["fabbri-2sw"].met


def test_fabbri_a_drug_taken_under_six_weeks_does_not_start_a_switch(terminology: Terminology) -> None:
    # sertraline issued twice 28 days apart (4 weeks), then citalopram, then venlafaxine
    rs = [*issues(SERTRALINE, "2024-01-01", 2), *issues(CITALOPRAM, "2024-03-01", 3),
          *issues(VENLAFAXINE, "2024-06-01", 2)]
    assert not defs(terminology, rs)["fabbri-2sw"].met


# --- Coombes 2022 (≥ 30 days on the drug, next drug within 14 weeks) -----------------------------


@pytest.mark.parametrize(("days", "met"), [(30, True), (29, False)])
def test_coombes_one_switch_needs_30_days_on_the_first_drug(terminology: Terminology, days: int, met: bool) -> None:
    d = defs(terminology, [course(SERTRALINE, "2024-01-01", days), course(BUPROPION, "2024-03-01", 90, 300)])
    assert d["coombes-sw1"].met is met
    assert not d["coombes-sw2"].met
    if met:
        assert d["coombes-sw1"].date_met == date(2024, 3, 1)


@pytest.mark.parametrize(("gap", "met"), [(98, True), (99, False)])
def test_coombes_switch_within_14_weeks(terminology: Terminology, gap: int, met: bool) -> None:
    nxt = date(2024, 3, 30) + timedelta(days=gap + 1)  # sertraline ends 30 Mar; `gap` days without drug
    d = defs(terminology, [course(SERTRALINE, "2024-01-01", 90), course(BUPROPION, nxt.isoformat(), 90, 300)])
    assert d["coombes-sw1"].met is met


def test_coombes_num_counts_distinct_antidepressants_taken_30_days(terminology: Terminology) -> None:
    d = defs(terminology, [course(SERTRALINE, "2024-01-01", 60), course(BUPROPION, "2024-03-01", 29, 300),
                           course(VENLAFAXINE, "2024-04-01", 60), course(MIRTAZAPINE, "2024-06-01", 45, 30)])
    num = d["coombes-num"]
    assert num.value == 3  # bupropion's 29 days do not count
    assert num.met and num.date_met == date(2024, 4, 1)  # the second such drug (venlafaxine) starts 1 Apr
    assert d["coombes-sw2"].met  # sertraline (60 d) → bupropion, venlafaxine (60 d) → mirtazapine


def test_coombes_num_one_drug_is_not_met(terminology: Terminology) -> None:
    num = defs(terminology, [course(SERTRALINE, "2024-01-01", 90)])["coombes-num"]
    assert num.value == 1 and not num.met


# --- Lo 2024 (an SSRI prescription, then a different antidepressant's within 90 days) ----------------


@pytest.mark.parametrize(("gap", "met"), [(90, True), (91, False)])
def test_lo_ssri_switch_gap_between_prescription_dates(terminology: Terminology, gap: int, met: bool) -> None:
    # sertraline prescribed 1 Jan, 29 Jan, 26 Feb 2024; bupropion first prescribed `gap` days after 26 Feb
    nxt = date(2024, 2, 26) + timedelta(days=gap)
    d = defs(terminology, [*issues(SERTRALINE, "2024-01-01", 3), *issues(BUPROPION, nxt.isoformat(), 2)])
    assert d["lo-ssri-switch"].met is met
    if met:
        assert d["lo-ssri-switch"].date_met == nxt


def test_lo_a_switch_from_a_non_ssri_is_not_an_ssri_switch(terminology: Terminology) -> None:
    d = defs(terminology, [course(BUPROPION, "2024-01-01", 60, 300), course(SERTRALINE, "2024-03-15", 60)])
    assert not d["lo-ssri-switch"].met
    assert d["coombes-sw1"].met


# --- claims (Zhdanava 2021) and Liu 2021: adequate regimens followed by a new one -------------------


def test_claims_two_adequate_courses_then_a_third_within_two_years(terminology: Terminology) -> None:
    rs = [course(SERTRALINE, "2023-01-01", 60, 100), course(VENLAFAXINE, "2023-04-01", 60, 150),
          course(BUPROPION, "2023-08-01", 60, 300)]
    d = defs(terminology, rs)
    assert d["claims-2adq3"].met and d["claims-2adq3"].date_met == date(2023, 8, 1)
    assert d["liu-2x4w"].met


def test_claims_a_gap_over_180_days_between_courses_breaks_the_chain(terminology: Terminology) -> None:
    # venlafaxine ends 30 May 2023; bupropion starts 181 days later
    rs = [course(SERTRALINE, "2023-01-01", 60, 100), course(VENLAFAXINE, "2023-04-01", 60, 150),
          course(BUPROPION, (date(2023, 5, 30) + timedelta(days=182)).isoformat(), 60, 300)]
    d = defs(terminology, rs)
    assert not d["claims-2adq3"].met
    assert d["liu-2x4w"].met  # Liu sets no gap limit


def test_claims_under_dosed_course_is_not_adequate(terminology: Terminology) -> None:
    # sertraline 25 mg/day is below its minimum (50 mg, mappings/medications.csv)
    rs = [course(SERTRALINE, "2023-01-01", 60, 25), course(VENLAFAXINE, "2023-04-01", 60, 150),
          course(BUPROPION, "2023-08-01", 60, 300)]
    assert not defs(terminology, rs)["claims-2adq3"].met


# --- Danish registers: second shift within 12 months of the first contact ---------------------------


@pytest.mark.parametrize(("onset", "met"), [("2023-06-01", True), ("2022-11-30", False)])
def test_dk_second_shift_within_12_months_of_first_contact(terminology: Terminology, onset: str, met: bool) -> None:
    rs = [course(SERTRALINE, "2023-06-01", 30), course(BUPROPION, "2023-08-01", 30, 300),
          course(VENLAFAXINE, "2023-12-01", 60, 150)]
    d = defs(terminology, rs, onset=onset)["dk-2shift-12m"]
    assert d.met is met
    if met:
        assert d.date_met == date(2023, 12, 1)


# --- EU-PEARL (< 25 % improvement) and ESM (< 50 %, different classes) ------------------------------


def scored(med: str, start: str, days: int, dose: float, baseline: float, endpoint: float) -> list[dict[str, Any]]:
    first = date.fromisoformat(start)
    return [course(med, start, days, dose), score("phq9", baseline, start),
            score("phq9", endpoint, (first + timedelta(days=days - 1)).isoformat())]


def test_eu_pearl_two_failures_under_25_percent(terminology: Terminology) -> None:
    rs = [*scored(SERTRALINE, "2024-01-01", 56, 100, 20, 17), *scored(VENLAFAXINE, "2024-03-15", 56, 150, 20, 16)]
    d = defs(terminology, rs)
    assert d["eu-pearl"].met  # 15 % and 20 % improvement
    assert d["esm"].met and d["esm"].value == 1  # SSRI and SNRI: TRD1


def test_eu_pearl_partial_response_is_not_a_failure(terminology: Terminology) -> None:
    rs = [*scored(SERTRALINE, "2024-01-01", 56, 100, 20, 17), *scored(VENLAFAXINE, "2024-03-15", 56, 150, 20, 15)]
    d = defs(terminology, rs)
    assert not d["eu-pearl"].met  # 25 % is partially responsive depression
    assert d["esm"].met  # still a nonresponse (< 50 %) for the European Staging Method


def test_esm_needs_two_classes(terminology: Terminology) -> None:
    rs = [*scored(SERTRALINE, "2024-01-01", 56, 100, 20, 18), *scored(CITALOPRAM, "2024-03-15", 56, 40, 20, 18)]
    d = defs(terminology, rs)
    assert d["eu-pearl"].met
    assert not d["esm"].met and d["esm"].value == 0


def test_esm_stage_follows_the_duration_of_resistance(terminology: Terminology) -> None:
    """Souery 1999: TRD1 12-16 weeks … TRD4 30-40 weeks of failed adequate treatment (lower bounds 12/18/24/30/36)."""
    rs = [*scored(SERTRALINE, "2023-01-01", 70, 100, 20, 18), *scored(VENLAFAXINE, "2023-04-01", 70, 150, 20, 18),
          *scored(BUPROPION, "2023-07-01", 70, 300, 20, 18)]
    d = defs(terminology, rs)
    assert d["esm"].met and d["esm"].value == 4  # 3 × 10 weeks = 30 weeks: TRD4


def test_esm_week_bounds_come_from_the_table(terminology: Terminology, tmp_path: Path) -> None:
    rows = (Path(__file__).resolve().parents[2] / "mappings" / "definitions.csv").read_text(encoding="utf-8")
    (tmp_path / "definitions.csv").write_text(rows.replace("stage_weeks=12/18/24/30/36", "stage_weeks=12/x"),
                                              encoding="utf-8")
    with pytest.raises(TerminologyError, match="definitions.csv"):
        load_terminology([tmp_path])


# --- MGH staging ----------------------------------------------------------------------------------


def test_mgh_score_adds_failures_augmentation_and_optimisation(terminology: Terminology) -> None:
    rs = [course(SERTRALINE, "2024-01-01", 60, 50), course(SERTRALINE, "2024-03-01", 60, 150),
          course(VENLAFAXINE, "2024-05-15", 70, 150), statement(LITHIUM, "2024-06-01", "2024-07-23",
                                                                  status="completed", dose=dosage(600)),
          course(BUPROPION, "2024-09-01", 60, 300)]
    d = defs(terminology, rs)["mgh-s"]
    # sertraline failed (+1) with a dose increase (+0.5); venlafaxine failed (+1); lithium (+0.5)
    assert d.value == 3.0
    assert not d.met


# --- the table is data, checked at load ----------------------------------------------------------


def test_an_unknown_parameter_is_named_with_file_and_row(tmp_path: Path) -> None:
    (tmp_path / "definitions.csv").write_text(
        "id,method,params,source\nmine,switch,min_dayz=3,local study\n", encoding="utf-8")
    with pytest.raises(TerminologyError, match=r"definitions.csv:2: params: 'min_dayz=3'"):
        load_terminology([tmp_path])


def test_a_local_row_adds_a_definition(tmp_path: Path) -> None:
    (tmp_path / "definitions.csv").write_text(
        "id,method,params,source\nlocal-1sw,switch,unit=trials;min_days=60;min_switches=1,local study\n",
        encoding="utf-8")
    t = load_terminology([tmp_path])
    d = defs(t, [course(SERTRALINE, "2024-01-01", 59), course(BUPROPION, "2024-03-01", 60, 300)])
    assert not d["local-1sw"].met and d["coombes-sw1"].met


# --- write-back -----------------------------------------------------------------------------------


def test_write_back_has_one_valid_observation_per_definition(terminology: Terminology) -> None:
    from fhir.resources.R4B.observation import Observation

    from fhirtrd.fhir.outbound import build_transaction
    from fhirtrd.schemas import dump_result

    rs = [course(SERTRALINE, "2023-01-01", 60, 100), course(VENLAFAXINE, "2023-04-01", 60, 150),
          course(BUPROPION, "2023-08-01", 60, 300)]
    result = next(r for r in assess(terminology, [mdd(), *rs]) if r.patient == "Patient/p1")
    bundle = build_transaction(dump_result(result))
    entries = [e for e in bundle["entry"] if e["resource"].get("identifier")]
    trial_urls = {e["fullUrl"] for e in entries if "/mdd/trial/" in e["resource"]["identifier"][0]["value"]}
    defs_ = {e["resource"]["identifier"][0]["value"].rsplit("/", 1)[1]: e["resource"] for e in entries
             if "/mdd/definition/" in e["resource"]["identifier"][0]["value"]}
    assert list(defs_) == [d.id for d in terminology.rules.definitions]
    claims = defs_["claims-2adq3"]
    Observation.model_validate(claims)
    assert claims["valueBoolean"] is True
    assert claims["component"][0]["valueDateTime"] == "2023-08-01"
    derived = [r["reference"] for r in claims["derivedFrom"]]
    assert derived[0] == entries[1]["fullUrl"]  # the assessment Observation
    assert set(derived[1:]) == trial_urls  # all three trials are its evidence
    num = {c["code"]["coding"][0]["code"]: c for c in defs_["coombes-num"]["component"]}
    assert num["definition-value"]["valueQuantity"]["value"] == 3 and "date-met" in num
    assert defs_["fabbri-2sw"]["valueBoolean"] is False and "component" not in defs_["fabbri-2sw"]
