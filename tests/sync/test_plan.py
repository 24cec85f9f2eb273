"""The sync plan (pure): matching by identifier, unchanged by hash, and how writes are expressed."""

from __future__ import annotations

from typing import Any

import pytest

from fhirtrd.server.client import ServerCapabilities
from fhirtrd.server.errors import OutputConflict
from fhirtrd.server.plan import plan_patient, to_transaction

IDENT = "http://fhirtrd.org/fhir/identifier"
HASH = "http://fhirtrd.org/fhir/CodeSystem/content-hash"


def output(rtype: str, ident: str, digest: str, rid: str | None = None, **extra: Any) -> dict[str, Any]:
    r: dict[str, Any] = {"resourceType": rtype, "identifier": [{"system": IDENT, "value": ident}],
                         "meta": {"tag": [{"system": HASH, "code": digest}]}, **extra}
    if rid:
        r["id"] = rid
    return r


def desired(*resources: dict[str, Any]) -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": "transaction",
            "entry": [{"fullUrl": f"urn:uuid:00000000-0000-0000-0000-00000000000{i}", "resource": r}
                      for i, r in enumerate(resources)]}


def caps(conditional_update: bool, conditional_create: bool) -> ServerCapabilities:
    types = frozenset({"Observation", "Flag"})
    return ServerCapabilities(transaction=True, conditional_update=types if conditional_update else frozenset(),
                              conditional_create=types if conditional_create else frozenset())


def test_same_hash_is_unchanged_other_hash_is_update_missing_is_create() -> None:
    want = desired(output("Observation", "p1/mdd/assessment", "aaa"),
                   output("Observation", "p1/mdd/trial/x", "bbb"),
                   output("Flag", "p1/mdd/flag/trd", "ccc", status="active"))
    have = [output("Observation", "p1/mdd/assessment", "aaa", "o1"),
            output("Observation", "p1/mdd/trial/x", "old", "o2")]

    plan = plan_patient("p1", want, have)

    assert [(a.kind, a.identifier, a.existing_id) for a in plan.actions] == [
        ("unchanged", "p1/mdd/assessment", "o1"), ("update", "p1/mdd/trial/x", "o2"),
        ("create", "p1/mdd/flag/trd", None)]


def test_an_output_holding_two_hashes_is_updated_never_taken_as_unchanged() -> None:
    """A server that carried an earlier version's hash tag forward (HAPI without snapshot mode):
    the desired hash being one of the two proves nothing, so the output is written again."""
    old = output("Observation", "p1/mdd/assessment", "bbb", "o1")
    old["meta"]["tag"].insert(0, {"system": HASH, "code": "aaa"})

    plan = plan_patient("p1", desired(output("Observation", "p1/mdd/assessment", "aaa")), [old])

    assert [(a.kind, a.existing_id) for a in plan.actions] == [("update", "o1")]


def test_nothing_to_write_gives_no_transaction() -> None:
    want = desired(output("Observation", "p1/mdd/assessment", "aaa"))
    plan = plan_patient("p1", want, [output("Observation", "p1/mdd/assessment", "aaa", "o1")])

    assert to_transaction(plan, caps(True, True)) is None


@pytest.mark.parametrize(("cond_update", "cond_create", "update_request", "create_request"), [
    (True, True, {"method": "PUT", "url": f"Observation?identifier={IDENT}|p1/mdd/trial/x"},
     {"method": "POST", "url": "Flag", "ifNoneExist": f"identifier={IDENT}|p1/mdd/flag/trd"}),
    (True, False, {"method": "PUT", "url": f"Observation?identifier={IDENT}|p1/mdd/trial/x"},
     {"method": "PUT", "url": f"Flag?identifier={IDENT}|p1/mdd/flag/trd"}),
    (False, True, {"method": "PUT", "url": "Observation/o2"},
     {"method": "POST", "url": "Flag", "ifNoneExist": f"identifier={IDENT}|p1/mdd/flag/trd"}),
    (False, False, {"method": "PUT", "url": "Observation/o2"}, {"method": "POST", "url": "Flag"}),
])
def test_writes_follow_what_the_server_supports(cond_update: bool, cond_create: bool,
                                                update_request: dict[str, str],
                                                create_request: dict[str, str]) -> None:
    want = desired(output("Observation", "p1/mdd/trial/x", "new"), output("Flag", "p1/mdd/flag/trd", "f"))
    plan = plan_patient("p1", want, [output("Observation", "p1/mdd/trial/x", "old", "o2")])

    bundle = to_transaction(plan, caps(cond_update, cond_create))

    assert bundle is not None
    assert [e["request"] for e in bundle["entry"]] == [update_request, create_request]
    assert bundle["entry"][0]["resource"]["id"] == "o2" and "id" not in bundle["entry"][1]["resource"]


@pytest.mark.parametrize(("cond_update", "cond_create"), [(True, True), (False, False)])
def test_an_update_of_a_read_version_is_sent_with_if_match(cond_update: bool, cond_create: bool) -> None:
    """Two syncs that read the same version cannot both write it: the second gets 412 (issue 9 item 7)."""
    old = output("Observation", "p1/mdd/trial/x", "old", "o2")
    old["meta"]["versionId"] = "7"
    old_flag = output("Flag", "p1/mdd/flag/trd", "f", "f1", status="active")
    old_flag["meta"]["versionId"] = "2"
    plan = plan_patient("p1", desired(output("Observation", "p1/mdd/trial/x", "new")), [old, old_flag],
                        deactivated_flags=[output("Flag", "p1/mdd/flag/trd", "g", "f1", status="inactive")])

    bundle = to_transaction(plan, caps(cond_update, cond_create))

    assert bundle is not None
    assert [e["request"] for e in bundle["entry"]] == [
        {"method": "PUT", "url": "Observation/o2", "ifMatch": 'W/"7"'},
        {"method": "PUT", "url": "Flag/f1", "ifMatch": 'W/"2"'}]


def test_references_to_unchanged_outputs_point_at_their_server_ids() -> None:
    assessment = output("Observation", "p1/mdd/assessment", "aaa")
    flag = output("Flag", "p1/mdd/flag/trd", "new",
                  extension=[{"valueReference": {"reference": "urn:uuid:00000000-0000-0000-0000-000000000000"}}])
    plan = plan_patient("p1", desired(assessment, flag),
                        [output("Observation", "p1/mdd/assessment", "aaa", "o1")])

    bundle = to_transaction(plan, caps(True, True))

    assert bundle is not None
    (entry,) = bundle["entry"]
    assert entry["resource"]["extension"][0]["valueReference"]["reference"] == "Observation/o1"


def test_an_active_flag_no_longer_produced_is_deactivated_and_an_inactive_one_left_alone() -> None:
    have = [output("Flag", "p1/mdd/flag/old", "h1", "f1", status="active"),
            output("Flag", "p1/mdd/flag/older", "h2", "f2", status="inactive")]
    deactivated = [output("Flag", "p1/mdd/flag/old", "h3", "f1", status="inactive",
                          period={"end": "2024-06-01T00:00:00Z"})]

    plan = plan_patient("p1", desired(), have, deactivated)

    assert [(a.kind, a.existing_id) for a in plan.actions] == [("deactivate", "f1")]


def test_two_outputs_with_one_identifier_are_a_conflict_not_a_guess() -> None:
    have = [output("Flag", "p1/mdd/flag/trd", "h", "f1"), output("Flag", "p1/mdd/flag/trd", "h", "f9")]

    with pytest.raises(OutputConflict, match="Flag/f1, Flag/f9"):
        plan_patient("p1", desired(output("Flag", "p1/mdd/flag/trd", "h")), have)


def test_outputs_of_types_the_server_cannot_find_are_dropped_with_their_references() -> None:
    risk = output("RiskAssessment", "p1/mdd/next-step-likelihood", "r")
    provenance = {"resourceType": "Provenance", "target": [
        {"reference": "urn:uuid:00000000-0000-0000-0000-000000000000"},
        {"reference": "urn:uuid:00000000-0000-0000-0000-000000000001"}]}
    plan = plan_patient("p1", desired(risk, output("Flag", "p1/mdd/flag/trd", "f"), provenance), [],
                        skip_types=frozenset({"RiskAssessment"}))

    bundle = to_transaction(plan, caps(True, True))

    assert bundle is not None
    types = [e["resource"]["resourceType"] for e in bundle["entry"]]
    assert "RiskAssessment" not in types
    prov = next(e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Provenance")
    assert prov["target"] == [{"reference": "urn:uuid:00000000-0000-0000-0000-000000000001"}]
