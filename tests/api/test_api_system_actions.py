"""systemActions as the sync's plan, applied to real FHIR servers (sekmet, HAPI) as an EHR would.

Each patient-view reads fhirtrd's current outputs in the EHR (prefetch by `_tag`, or the fetch from
fhirServer when the key is left out) and answers only what must change: create what is absent,
update what changed (with its id), nothing when all is current. The servers are the session's
(``fhir_server``, tests/conftest.py), shared with other tests: this one keeps to its own patient.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from api_samples import bipolar_condition, hook_request, two_failed_ssri_trials

from fhirtrd.api.prefetch import render
from tests.sync.conftest import FhirServer

pytestmark = pytest.mark.server
PV = "/cds-services/fhirtrd-patient-view"
FHIR_JSON = {"Content-Type": "application/fhir+json"}
PATIENT_ID = f"sysact-{uuid.uuid4().hex[:8]}"  # none of the session server's other tests uses it


def put_all(ehr: FhirServer, resources: list[dict[str, Any]]) -> None:
    r = ehr.session().post(ehr.base_url, timeout=60, headers=FHIR_JSON, json={
        "resourceType": "Bundle", "type": "transaction",
        "entry": [{"resource": x, "request": {"method": "PUT", "url": f"{x['resourceType']}/{x['id']}"}}
                  for x in resources]})
    assert r.status_code == 200, r.text[:300]


def prefetched(ehr: FhirServer, templates: dict[str, str]) -> dict[str, Any]:
    """The prefetch an EHR fills: every template run against the EHR's FHIR server.

    With `Cache-Control: no-cache`, as an EHR filling prefetch through HAPI's REST API must send
    (fhirtrd's own reads send it too): HAPI answers a search repeated within 60 s from its cache.
    """
    out: dict[str, Any] = {}
    session = ehr.session()
    session.headers["Cache-Control"] = "no-cache"
    for key, template in templates.items():
        r = session.get(f"{ehr.base_url}/{render(template, {'patientId': PATIENT_ID})}", timeout=30)
        assert r.status_code == 200, (key, r.text[:300])
        body = r.json()
        assert not any(link.get("relation") == "next" for link in body.get("link", [])), key
        out[key] = body
    return out


def apply(ehr: FhirServer, actions: list[dict[str, Any]]) -> None:
    """The actions as one transaction, as an EHR applies systemActions.

    An update's resource is the whole new version, tags included: on HAPI, which otherwise carries
    the earlier version's tags forward, the EHR says so with X-Meta-Snapshot-Mode (fhirtrd's own
    sync sends it too). Without it fhirtrd, seeing two content hashes, proposes the update again.
    """
    entries = []
    for action in actions:
        res = action["resource"]
        request = ({"method": "POST", "url": res["resourceType"]} if action["type"] == "create"
                   else {"method": "PUT", "url": f"{res['resourceType']}/{res['id']}"})
        entries.append({"resource": res, "request": request})
    r = ehr.session().post(ehr.base_url, timeout=60, headers={**FHIR_JSON, "X-Meta-Snapshot-Mode": "TAG"},
                           json={"resourceType": "Bundle", "type": "transaction", "entry": entries})
    assert r.status_code == 200, r.text[:500]


def outputs(ehr: FhirServer, tag: str) -> list[dict[str, Any]]:
    found = []
    for rtype in ("Observation", "Flag"):
        r = ehr.session().get(f"{ehr.base_url}/{rtype}", timeout=30,
                              params={"patient": PATIENT_ID, "_tag": tag, "_count": "200"})
        found += [e["resource"] for e in r.json().get("entry", [])]
    return found


def versions(found: list[dict[str, Any]]) -> dict[str, str]:
    return {f"{r['resourceType']}/{r['id']}": r["meta"]["versionId"] for r in found}


def test_patient_view_returns_the_plan_and_the_ehr_ends_with_one_of_each_output(
        fhir_server: FhirServer, make_app: Callable[..., Any]) -> None:
    ehr = fhir_server
    app = make_app(system_actions=True, fhir_server_allowlist=[ehr.base_url])
    templates = app.extensions["fhirtrd"].templates
    tag = templates["fhirtrdFlags"].split("_tag=", 1)[1]
    client = app.test_client()
    data = two_failed_ssri_trials(PATIENT_ID)
    put_all(ehr, data)

    # 1. nothing of fhirtrd's in the EHR yet: every output is a create
    first = client.post(PV, json=hook_request("patient-view", {"patientId": PATIENT_ID},
                                              prefetched(ehr, templates), fhirServer=ehr.base_url)).json
    actions = first["systemActions"]
    assert actions and {a["type"] for a in actions} == {"create"}
    apply(ehr, actions)
    after_first = outputs(ehr, tag)
    assert len(after_first) == len(actions)

    # 2. the same chart again, outputs fetched from fhirServer (prefetch left out): nothing to do
    second = client.post(PV, json=hook_request("patient-view", {"patientId": PATIENT_ID},
                                               fhirServer=ehr.base_url)).json
    assert "systemActions" not in second and second["cards"]  # the card still shows
    assert versions(outputs(ehr, tag)) == versions(after_first)

    # 3. a bipolar diagnosis is added: the changed outputs are updates by id, new ones creates
    put_all(ehr, [bipolar_condition(PATIENT_ID)])
    third = client.post(PV, json=hook_request("patient-view", {"patientId": PATIENT_ID},
                                              prefetched(ehr, templates), fhirServer=ehr.base_url)).json
    changes = third["systemActions"]
    updates = [a for a in changes if a["type"] == "update"]
    assert updates and all(f"{a['resource']['resourceType']}/{a['resource']['id']}" in versions(after_first)
                           for a in updates)
    apply(ehr, changes)

    # 4. and again: current, so nothing
    fourth = client.post(PV, json=hook_request("patient-view", {"patientId": PATIENT_ID},
                                               prefetched(ehr, templates), fhirServer=ehr.base_url)).json
    assert "systemActions" not in fourth
    final = outputs(ehr, tag)
    per_identifier = Counter((r["resourceType"], r["identifier"][0]["value"]) for r in final)
    assert per_identifier and set(per_identifier.values()) == {1}  # exactly one of each output
    now = versions(final)
    assert {ref for ref, v in now.items() if v != "1"} == {
        f"{a['resource']['resourceType']}/{a['resource']['id']}" for a in updates}
