"""The quick structural check never accepts what the fhir.resources R4B models reject (differential).

`fhirtrd.fhir.quickcheck` answers "valid" for most resources in a fraction of the models' time; when it
is unsure the models decide. These tests hold it to its one promise on the real corpus, the samples,
the golden scenarios and the fuzz test's odd and invalid resources, and check that it is sure often
enough on real data to be worth having.
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

from fhirtrd.fhir.inbound import Adapter
from fhirtrd.fhir.inbound.common import _model
from fhirtrd.fhir.quickcheck import QuickCheck
from fhirtrd.fhir.reader import ReadReport, read_path
from fhirtrd.terminology import load_terminology
from tests.core.conftest import REAL, REPO_ROOT
from tests.core.test_fuzz import inputs, seed_record

EXAMPLES = int(os.environ.get("FHIRTRD_QUICKCHECK_EXAMPLES", "500"))  # CI; a long run: 20,000


def models_accept(resource: Any) -> bool:
    try:
        _model(resource["resourceType"]).model_validate(resource)
    except Exception:  # noqa: BLE001 - any refusal, whatever its kind
        return False
    return True


def resources_in(value: Any) -> Iterator[dict[str, Any]]:
    """Every resource of a JSON value: itself, Bundle entries and contained resources, at any depth."""
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, dict):
            if isinstance(v.get("resourceType"), str):
                yield v
            stack.extend(v.values())
        elif isinstance(v, list):
            stack.extend(v)


def corpus(limit: int = 4000) -> list[dict[str, Any]]:
    """The distinct resources of the types the classifier validates, at most `limit` (evenly spread)."""
    read = {*Adapter(load_terminology(), validate=False).handlers, "Medication"}
    roots = [REPO_ROOT / "samples", *sorted((REPO_ROOT / "tests" / "scenarios").glob("*/input.json"))]
    if REAL.is_dir():
        roots.append(REAL)
    found: dict[str, dict[str, Any]] = {}
    for root in roots:
        for entry in read_path(root, ReadReport()) if root.is_file() else (
                e for f in sorted(root.rglob("*")) if f.is_file() for e in read_path(f, ReadReport())):
            if entry.resource.get("resourceType") in read:
                found.setdefault(json.dumps(entry.resource, sort_keys=True), entry.resource)
    every = list(found.values())
    return every[::max(1, len(every) // limit)]


def test_on_real_data_it_accepts_only_what_the_models_accept_and_most_of_it() -> None:
    quick = QuickCheck()
    resources = corpus()
    accepted = [r for r in resources if quick.accepts(r)]
    valid = [r for r in resources if models_accept(r)]
    wrongly = [f"{r['resourceType']}/{r.get('id')}" for r in accepted if not models_accept(r)]

    assert len(resources) > 2000 if REAL.is_dir() else len(resources) > 200
    assert wrongly == []
    assert len(accepted) >= 0.95 * len(valid)  # sure of nearly every valid resource: the models are rarely asked


@pytest.mark.parametrize("change, why", [
    (lambda r: r.pop("status"), "a required element missing"),
    (lambda r: r.update(status=["active"]), "a list where one value goes"),
    (lambda r: r.update(authoredOn="2024-02-30"), "a date that does not exist"),
    (lambda r: r.update(authoredOn="01/02/2024"), "a date in the wrong format"),
    (lambda r: r.update(statusReasonText="x"), "an element R4 does not have"),
    (lambda r: r.update(medicationReference={"reference": "Medication/m"}), "two choices of medication[x]"),
    (lambda r: r.pop("medicationCodeableConcept"), "no choice of the required medication[x]"),
    (lambda r: r["dosageInstruction"][0].update(sequence=1.5), "a decimal where an integer goes"),
    (lambda r: r.update(contained=[{"resourceType": "Medication", "id": "m", "kode": {}}]), "a bad contained resource"),
    (lambda r: r.update(resourceType="MedicationStatement"), "the elements of another type"),
    (lambda r: r["dosageInstruction"].append(None), "a null in a list of complex elements"),
])
def test_worked_examples_of_invalid_resources_are_left_to_the_models(change: Any, why: str) -> None:
    order = copy.deepcopy(next(r for r in seed_record() if r["resourceType"] == "MedicationRequest"
                               and "medicationCodeableConcept" in r and r.get("dosageInstruction")))
    assert QuickCheck().accepts(order) and models_accept(order)
    change(order)
    assert not models_accept(order), why
    assert not QuickCheck().accepts(order), why


@settings(max_examples=EXAMPLES, deadline=None, derandomize=EXAMPLES <= 500,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(inputs())
def test_on_the_fuzz_tests_odd_resources_it_never_accepts_what_the_models_reject(batch: list[Any]) -> None:
    quick = QuickCheck()
    for resource in resources_in(batch):
        try:
            sure = quick.accepts(resource)
        except RecursionError:
            continue  # validation_error catches it and asks the models (resources nested hundreds deep)
        if sure:
            assert models_accept(resource), json.dumps(resource)[:500]
