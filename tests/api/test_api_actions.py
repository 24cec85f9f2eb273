"""Card actions applied to a real FHIR server (sekmet) as an EHR would: every reference resolves."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from api_samples import PATIENT_ID, hook_request, prefetch_for, two_failed_ssri_trials

from tests.sync.conftest import FhirServer, start_sekmet, stop_sekmet

pytestmark = pytest.mark.server
PV = "/cds-services/fhirtrd-patient-view"


@pytest.fixture(scope="module")
def ehr(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FhirServer]:
    server = start_sekmet(tmp_path_factory.mktemp("sekmet-actions"))
    yield server
    stop_sekmet(server)


def references(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        if "reference" in node or ("identifier" in node and "type" in node):
            yield node
        for value in node.values():
            yield from references(value)
    elif isinstance(node, list):
        for value in node:
            yield from references(value)


def test_every_action_of_a_card_applies_to_the_ehr_with_no_unresolved_reference(
        ehr: FhirServer, open_app: Any) -> None:
    session = ehr.session()
    data = two_failed_ssri_trials()
    loaded = session.post(ehr.base_url, timeout=60, headers={"Content-Type": "application/fhir+json"}, json={
        "resourceType": "Bundle", "type": "transaction",
        "entry": [{"resource": r, "request": {"method": "PUT", "url": f"{r['resourceType']}/{r['id']}"}}
                  for r in data]})
    assert loaded.status_code == 200, loaded.text[:300]
    body = hook_request("patient-view", {"patientId": PATIENT_ID},
                        prefetch_for(open_app.extensions["fhirtrd"].templates, data))
    cards = open_app.test_client().post(PV, json=body).json["cards"]
    actions = [a for c in cards for s in c.get("suggestions", []) for a in s["actions"]]
    assert actions and "urn:uuid:" not in json.dumps(actions)
    created = []
    for action in actions:  # apply each as the EHR does: one create per action
        assert action["type"] == "create"
        r = session.post(f"{ehr.base_url}/{action['resource']['resourceType']}", json=action["resource"],
                         headers={"Content-Type": "application/fhir+json"}, timeout=30)
        assert r.status_code == 201, r.text[:500]
        created.append(r.json())
    identifiers = {(r["resourceType"], r["identifier"][0]["value"]) for r in created}
    unresolved, literal, logical = [], 0, 0
    for resource in created:
        back = session.get(f"{ehr.base_url}/{resource['resourceType']}/{resource['id']}", timeout=30).json()
        for ref in references(back):
            if "reference" in ref:
                literal += 1
                if requests.get(f"{ehr.base_url}/{ref['reference']}", timeout=30).status_code != 200:
                    unresolved.append(ref["reference"])
            else:
                logical += 1
                target = (ref["type"], ref["identifier"]["value"])
                # a logical reference names another applied output, or the fhirtrd Device
                if target not in identifiers and ref["type"] != "Device":
                    unresolved.append(str(target))
    assert unresolved == []
    assert literal >= len(created) and logical > 0
