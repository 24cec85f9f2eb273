"""Two runs on the same data give the same transaction apart from the documented timestamps."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest
from fhirout_checks import normalise
from fhirout_scenarios import ALL, contract

from fhirtrd.fhir.outbound import build_transaction

FIRST = datetime(2024, 6, 1, 8, 0, tzinfo=UTC)
# a second run a day later, stamped in a non-UTC zone
SECOND = (FIRST + timedelta(days=1, minutes=7)).astimezone(timezone(timedelta(hours=-5)))


@pytest.mark.parametrize("name", sorted(set(ALL) - {"no-assessment"}))
def test_two_runs_differ_only_in_issued_and_recorded(name: str) -> None:
    one = build_transaction(contract(name), issued=FIRST)
    two = build_transaction(contract(name), issued=SECOND)
    assert one != two
    assert json.dumps(normalise(one)) == json.dumps(normalise(two))
    assert [e["fullUrl"] for e in one["entry"]] == [e["fullUrl"] for e in two["entry"]]
    assert [e["request"] for e in one["entry"]] == [e["request"] for e in two["entry"]]
    assert [e["resource"]["meta"] for e in one["entry"]] == [e["resource"]["meta"] for e in two["entry"]]
    stamps = {e["resource"].get("issued") or e["resource"].get("recorded")
              for e in two["entry"]} - {None}
    assert stamps == {"2024-06-02T08:07:00Z"}


@pytest.mark.parametrize("name", sorted(ALL))
def test_same_stamp_gives_byte_identical_bundles(name: str) -> None:
    a = json.dumps(build_transaction(contract(name), issued=FIRST), ensure_ascii=False)
    b = json.dumps(build_transaction(contract(name), issued=FIRST), ensure_ascii=False)
    assert a == b


def test_every_write_is_conditional_on_a_business_identifier_or_hash() -> None:
    bundle = build_transaction(contract("depression-and-social-anxiety"), issued=FIRST)
    seen = set()
    for e in bundle["entry"]:
        req, r = e["request"], e["resource"]
        if r["resourceType"] == "Device":
            assert req == {"method": "POST", "url": "Device", "ifNoneExist":
                           "identifier=http://fhirtrd.org/fhir/identifier|device/fhirtrd/"
                           + r["version"][0]["value"]}
        elif r["resourceType"] == "Provenance":
            digest = r["meta"]["tag"][1]["code"]
            assert req == {"method": "POST", "url": "Provenance", "ifNoneExist":
                           f"_tag=http://fhirtrd.org/fhir/CodeSystem/content-hash|{digest}"}
        else:
            value = r["identifier"][0]["value"]
            assert value.startswith("p-both/")
            assert req == {"method": "PUT", "url":
                           f"{r['resourceType']}?identifier=http://fhirtrd.org/fhir/identifier|{value}"}
            assert "id" not in r
        assert e["fullUrl"].startswith("urn:uuid:")
        seen.add(req.get("url") + req.get("ifNoneExist", ""))
    assert len(seen) == len(bundle["entry"]), "two entries write the same resource"


def test_a_changed_assessment_changes_only_the_affected_hashes() -> None:
    before = build_transaction(contract("stage-ii-two-classes-failed"), issued=FIRST)
    changed = contract("stage-ii-two-classes-failed")
    changed["assessments"][0]["inflammation"] = "not-elevated"
    after = build_transaction(changed, issued=FIRST)
    def hashes(b: dict) -> dict[str, str]:
        return {e["fullUrl"]: e["resource"]["meta"]["tag"][1]["code"] for e in b["entry"]}
    h1, h2 = hashes(before), hashes(after)
    differ = {u for u in h1.keys() | h2.keys() if h1.get(u) != h2.get(u)}
    kinds = {e["resource"]["resourceType"] for e in before["entry"] + after["entry"]
             if e["fullUrl"] in differ}
    # the assessment Observation, the now-missing inflammation Flag and the Provenance
    assert kinds == {"Observation", "Flag", "Provenance"}
    trials = [e["fullUrl"] for e in before["entry"] if "/trial/" in
              e["resource"].get("identifier", [{}])[0].get("value", "")]
    assert not differ & set(trials)
