"""Bad contract dicts are answered with the element at fault; bundles land in files or NDJSON."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fhirout_checks import check_bundle
from fhirout_scenarios import contract

from fhirtrd.fhir.outbound import (
    build_transaction,
    is_fhirtrd_output,
    iter_bundles,
    merge_transactions,
    write_bundles,
)
from fhirtrd.fhir.outbound_errors import InvalidResultError, OutboundError, UndefinedCodeError

ISSUED = datetime(2024, 6, 1, 12, tzinfo=UTC)
NAMES = ["stage-ii-two-classes-failed", "bipolar-on-file", "no-assessment"]


def test_undefined_code_names_patient_element_and_value() -> None:
    c = contract("stage-ii-two-classes-failed")
    c["assessments"][0]["trials"][1]["outcome"] = "much-better"
    with pytest.raises(UndefinedCodeError) as err:
        build_transaction(c, issued=ISSUED)
    assert err.value.patient == "Patient/p-stage2"
    assert err.value.element == "assessments[0].trials[1].outcome"
    assert err.value.value == "much-better" and err.value.group == "outcomes"


@pytest.mark.parametrize(
    ("change", "element"),
    [
        (lambda c: c.update(patient="Group/7"), "patient"),
        (lambda c: c.update(as_of="June"), "as_of"),
        (lambda c: c["assessments"][0].update(stage="VI"), "assessments[0].stage"),
        (lambda c: c["assessments"][0]["trials"][0].update(start=None), "assessments[0].trials[0].start"),
        (lambda c: c["assessments"][0].update(failed_adequate_trials="two"),
         "assessments[0].failed_adequate_trials"),
        (lambda c: c["assessments"][0]["next_step_likelihood"].update(p_remission=1.7),
         "assessments[0].next_step_likelihood.p_remission"),
    ],
)
def test_bad_contract_values_are_reported_by_element(change, element: str) -> None:  # type: ignore[no-untyped-def]
    c = contract("stage-ii-two-classes-failed")
    change(c)
    with pytest.raises(InvalidResultError) as err:
        build_transaction(c, issued=ISSUED)
    assert err.value.element == element
    assert isinstance(err.value, OutboundError)


def test_issued_without_time_zone_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        build_transaction(contract("bipolar-on-file"), issued=datetime(2024, 6, 1))


def test_bundles_written_one_file_per_patient(tmp_path: Path) -> None:
    results = [contract(n) for n in NAMES]
    assert write_bundles(results, tmp_path, None, issued=ISSUED) == ["p-stage2", "p-bipolar", "p-none"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p-bipolar.json", "p-none.json", "p-stage2.json"]
    on_disk = json.loads((tmp_path / "p-stage2.json").read_text(encoding="utf-8"))
    assert on_disk == build_transaction(results[0], issued=ISSUED)
    check_bundle(on_disk)


def test_bundles_streamed_as_ndjson() -> None:
    out = io.StringIO()
    write_bundles([contract(n) for n in NAMES], None, out, issued=ISSUED)
    lines = out.getvalue().splitlines()
    assert len(lines) == 3
    assert [json.loads(line)["identifier"]["value"] for line in lines] == [
        "p-stage2/transaction", "p-bipolar/transaction", "p-none/transaction"]


def test_iter_bundles_stamps_one_run_with_one_time() -> None:
    stamps = set()
    for _, bundle in iter_bundles([contract(n) for n in NAMES[:2]]):
        stamps |= {e["resource"].get("issued") for e in bundle["entry"]} - {None}
    assert len(stamps) == 1


def test_outputs_are_recognised_and_inputs_are_not() -> None:
    bundle = build_transaction(contract("stage-ii-two-classes-failed"), issued=ISSUED)
    assert all(is_fhirtrd_output(e["resource"]) for e in bundle["entry"])
    ehr = {"resourceType": "Observation", "meta": {"tag": [{"system": "http://example.org/tags",
                                                            "code": "fhirtrd-output"}]}}
    assert not is_fhirtrd_output(ehr)
    assert not is_fhirtrd_output({"resourceType": "Flag"})


def test_merged_transaction_of_several_patients_writes_the_device_once() -> None:
    bundles = [build_transaction(contract(n), issued=ISSUED) for n in NAMES]
    merged = merge_transactions(bundles)
    devices = [e for e in merged["entry"] if e["resource"]["resourceType"] == "Device"]
    assert len(devices) == 1
    assert len(merged["entry"]) == sum(len(b.get("entry", [])) for b in bundles) - 1
    check_bundle(merged)
