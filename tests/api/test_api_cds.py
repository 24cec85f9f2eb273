"""CDS Hooks 2.0 services through the Flask test client, with sandbox-shaped requests."""

from __future__ import annotations

import json
import logging
import sqlite3
from typing import Any

import pytest
import responses
from api_samples import (
    EHR_FHIR,
    PATIENT_ID,
    SERVICE_URL,
    bipolar_condition,
    bundle,
    draft_order,
    hook_request,
    patient,
    prefetch_for,
    searchset,
    two_failed_ssri_trials,
)

PV = "/cds-services/fhirtrd-patient-view"
SELECT = "/cds-services/fhirtrd-order-select"
SIGN = "/cds-services/fhirtrd-order-sign"


def templates(app: Any) -> dict[str, str]:
    return app.extensions["fhirtrd"].templates


def test_discovery_lists_three_services_with_prefetch_templates(open_app: Any) -> None:
    r = open_app.test_client().get("/cds-services")
    assert r.status_code == 200
    services = {s["id"]: s for s in r.json["services"]}
    assert {s["hook"] for s in services.values()} == {"patient-view", "order-select", "order-sign"}
    prefetch = services["fhirtrd-patient-view"]["prefetch"]
    assert prefetch["patient"] == "Patient/{{context.patientId}}"
    assert prefetch["medicationRequests"] == "MedicationRequest?patient={{context.patientId}}"
    for key in ("conditions", "medicationStatements", "medicationDispenses", "procedures"):
        assert "{{context.patientId}}" in prefetch[key]
    assert "http://loinc.org|44261-6" in prefetch["scores"]  # PHQ-9, from mappings
    assert "44261-6" not in prefetch["labs"]
    # fhirtrd's outputs already in the EHR, for patient-view only (the order hooks write nothing)
    assert "_tag=" in prefetch["fhirtrdFlags"] and "fhirtrdFlags" not in services["fhirtrd-order-sign"]["prefetch"]
    for s in services.values():
        assert s["title"] and s["description"]


def patient_view(app: Any, resources: list[dict[str, Any]], **extra: Any) -> Any:
    body = hook_request("patient-view", {"patientId": PATIENT_ID},
                        prefetch_for(templates(app), resources), **extra)
    return app.test_client().post(PV, json=body)


def test_patient_view_card_for_two_failed_ssri_trials(open_app: Any) -> None:
    r = patient_view(open_app, two_failed_ssri_trials())
    assert r.status_code == 200
    [card] = r.json["cards"]
    assert card["summary"].startswith("Depression (MDD) stage I: 2 failed adequate trials")
    assert len(card["summary"]) < 140
    assert card["indicator"] == "info"  # stage I
    assert card["source"]["label"]
    assert "| citalopram | SSRI | 2023-01-02 | 2023-04-30 |" in card["detail"]
    assert "MedicationStatement/pat-1-ser" in card["detail"]  # evidence
    assert card["selectionBehavior"] == "at-most-one"
    [suggestion] = card["suggestions"]
    kinds = {(a["type"], a["resource"]["resourceType"]) for a in suggestion["actions"]}
    assert kinds == {("create", "Observation"), ("create", "Flag")}
    assert "systemActions" not in r.json


def test_possible_bipolar_disorder_is_a_warning(open_app: Any) -> None:
    r = patient_view(open_app, [*two_failed_ssri_trials(), bipolar_condition()])
    [card] = r.json["cards"]
    assert card["indicator"] == "warning"
    assert "possible bipolar disorder" in card["summary"]


def test_nothing_to_say_gives_no_cards(open_app: Any) -> None:
    r = patient_view(open_app, [patient()])
    assert r.json == {"cards": []}


def test_cards_link_the_smart_app_when_it_is_configured(make_app: Any) -> None:
    app = make_app(smart={"client_id": "fhirtrd-app", "issuers": [{"iss": EHR_FHIR}]})
    [stage] = patient_view(app, two_failed_ssri_trials()).json["cards"]
    [link] = stage["links"]
    assert link["type"] == "smart" and link["url"] == SERVICE_URL + "/smart/launch"
    assert json.loads(link["appContext"]) == {"disorder": "mdd"}  # a stage: the disorder only
    [bipolar] = patient_view(app, [*two_failed_ssri_trials(), bipolar_condition()]).json["cards"]
    assert json.loads(bipolar["links"][0]["appContext"]) == {"disorder": "mdd", "finding": "misdiagnosis-bipolar"}


def test_no_smart_link_without_the_smart_app(open_app: Any) -> None:
    [card] = patient_view(open_app, two_failed_ssri_trials()).json["cards"]
    assert "links" not in card


def test_system_actions_only_when_configured_and_then_no_card_offers_them_again(make_app: Any,
                                                                              open_app: Any) -> None:
    offered = patient_view(open_app, two_failed_ssri_trials()).json
    assert "systemActions" not in offered
    card_actions = offered["cards"][0]["suggestions"][0]["actions"]

    app = make_app(system_actions=True)
    r = patient_view(app, two_failed_ssri_trials())
    assert [(a["type"], a["resource"]["resourceType"]) for a in r.json["systemActions"]] == \
        [(a["type"], a["resource"]["resourceType"]) for a in card_actions]
    # the EHR applies systemActions itself: a card suggesting the same writes would write them twice
    assert all("suggestions" not in card for card in r.json["cards"])


def test_a_card_offers_only_what_the_ehr_does_not_already_hold(open_app: Any) -> None:
    first = patient_view(open_app, two_failed_ssri_trials()).json["cards"][0]["suggestions"][0]["actions"]
    assert first and {a["type"] for a in first} == {"create"}
    recorded = [{**a["resource"], "id": f"out-{i}", "meta": {**a["resource"].get("meta", {}), "versionId": "1"}}
                for i, a in enumerate(first)]

    again = patient_view(open_app, [*two_failed_ssri_trials(), *recorded]).json["cards"]

    assert again and all("suggestions" not in card for card in again)  # accepting twice cannot duplicate


def test_two_outputs_with_one_identifier_in_the_ehr_are_a_412_naming_them(make_app: Any) -> None:
    app = make_app(system_actions=True)
    [flag] = [a["resource"] for a in patient_view(app, two_failed_ssri_trials()).json["systemActions"]
              if a["resource"]["resourceType"] == "Flag"]
    copies = [{**flag, "id": "flag-a", "subject": {"reference": f"Patient/{PATIENT_ID}"}},
              {**flag, "id": "flag-b", "subject": {"reference": f"Patient/{PATIENT_ID}"}}]
    r = patient_view(app, [*two_failed_ssri_trials(), *copies])
    assert r.status_code == 412
    assert "Flag/flag-a" in r.text and "Flag/flag-b" in r.text


def order_call(app: Any, path: str, hook: str, orders: list[dict[str, Any]],
               selections: list[str] | None = None) -> Any:
    context: dict[str, Any] = {"patientId": PATIENT_ID, "draftOrders": bundle(orders)}
    if selections is not None:
        context["selections"] = selections
    body = hook_request(hook, context, prefetch_for(templates(app), two_failed_ssri_trials()))
    return app.test_client().post(path, json=body)


def test_order_select_third_ssri_after_two_failed(open_app: Any) -> None:
    r = order_call(open_app, SELECT, "order-select",
                   [draft_order("d1", "escitalopram", 10)], ["MedicationRequest/d1"])
    assert r.status_code == 200
    [card] = r.json["cards"]
    assert card["summary"] == ("escitalopram: third SSRI after two failed adequate SSRI trials "
                               "— a different class or augmentation is recommended")
    assert card["indicator"] == "warning"
    assert "| sertraline |" in card["detail"]


def test_order_sign_low_dose_reads_the_minimum_from_the_mappings(open_app: Any) -> None:
    minimum = open_app.extensions["fhirtrd"].terminology.rules.drugs["bupropion"].min_daily_dose
    r = order_call(open_app, SIGN, "order-sign", [draft_order("d2", "bupropion", minimum / 2)])
    [card] = r.json["cards"]
    assert card["summary"] == (f"bupropion {minimum / 2:g} mg/day: dose below the adequate "
                               f"minimum ({minimum:g} mg/day)")


def test_order_of_another_class_at_an_adequate_dose_says_nothing(open_app: Any) -> None:
    minimum = open_app.extensions["fhirtrd"].terminology.rules.drugs["bupropion"].min_daily_dose
    r = order_call(open_app, SIGN, "order-sign", [draft_order("d3", "bupropion", minimum)])
    assert r.json["cards"] == []


def test_order_select_judges_only_the_selected_order(open_app: Any) -> None:
    orders = [draft_order("d1", "escitalopram", 10), draft_order("d2", "bupropion", 50)]
    r = order_call(open_app, SELECT, "order-select", orders, ["MedicationRequest/d2"])
    assert [c["summary"].split(" ")[0] for c in r.json["cards"]] == ["bupropion"]


def test_missing_prefetch_is_fetched_from_an_allowlisted_server(open_app: Any,
                                                                fake_http: Any) -> None:
    resources = two_failed_ssri_trials()
    prefetch = prefetch_for(templates(open_app), resources)
    del prefetch["medicationStatements"]
    fake_http.get(f"{EHR_FHIR}/MedicationStatement", json=searchset(
        [r for r in resources if r["resourceType"] == "MedicationStatement"]),
        match=[responses.matchers.query_param_matcher({"patient": PATIENT_ID})])
    body = hook_request("patient-view", {"patientId": PATIENT_ID}, prefetch,
                        fhirServer=EHR_FHIR,
                        fhirAuthorization={"access_token": "ehr-token", "token_type": "Bearer",
                                           "expires_in": 300, "scope": "patient/*.read",
                                           "subject": "fhirtrd"})
    r = open_app.test_client().post(PV, json=body)
    assert r.status_code == 200
    assert "2 failed adequate trials" in r.json["cards"][0]["summary"]
    [call] = fake_http.calls
    assert call.request.headers["Authorization"] == "Bearer ehr-token"


def test_null_prefetch_means_no_data_and_is_not_fetched(open_app: Any, fake_http: Any) -> None:
    prefetch = prefetch_for(templates(open_app), [patient()])
    prefetch["medicationDispenses"] = None
    body = hook_request("patient-view", {"patientId": PATIENT_ID}, prefetch, fhirServer=EHR_FHIR)
    r = open_app.test_client().post(PV, json=body)
    assert r.status_code == 200
    assert len(fake_http.calls) == 0


@pytest.mark.parametrize("server", [None, "https://elsewhere.example/fhir"])
def test_missing_prefetch_without_an_allowed_server_is_412(open_app: Any, fake_http: Any,
                                                           server: str | None) -> None:
    prefetch = prefetch_for(templates(open_app), two_failed_ssri_trials())
    del prefetch["conditions"]
    extra = {"fhirServer": server} if server else {}
    body = hook_request("patient-view", {"patientId": PATIENT_ID}, prefetch, **extra)
    r = open_app.test_client().post(PV, json=body)
    assert r.status_code == 412
    assert r.json["error"] == "not-found" and "conditions" in r.json["message"]
    assert len(fake_http.calls) == 0  # never a request to a server off the allowlist


def test_unobtainable_data_is_412(open_app: Any, fake_http: Any) -> None:
    prefetch = prefetch_for(templates(open_app), two_failed_ssri_trials())
    del prefetch["conditions"]
    fake_http.get(f"{EHR_FHIR}/Condition", status=401)
    body = hook_request("patient-view", {"patientId": PATIENT_ID}, prefetch, fhirServer=EHR_FHIR)
    r = open_app.test_client().post(PV, json=body)
    assert r.status_code == 412


def test_feedback_is_stored_by_card_kind_and_its_comment_never_logged(
        make_app: Any, tmp_path: Any, caplog: Any) -> None:
    store = tmp_path / "feedback.sqlite"
    app = make_app(feedback_path=str(store))
    client = app.test_client()
    call = hook_request("patient-view", {"patientId": PATIENT_ID},
                        prefetch_for(templates(app), two_failed_ssri_trials()))
    card = client.post(PV, json=call).json["cards"][0]
    body = {"feedback": [{"card": card["uuid"], "outcome": "accepted",
                          "acceptedSuggestions": [{"id": card["suggestions"][0]["uuid"]}],
                          "outcomeTimestamp": "2024-03-01T10:00:00Z"},
                         {"card": card["uuid"], "outcome": "overridden",
                          "overrideReason": {"reason": {"code": "patient-refused",
                                                        "display": "Patient refused"},
                                             "userComment": "prefers therapy with Dr Jones"},
                          "outcomeTimestamp": "2024-03-01T10:01:00Z"}]}
    with caplog.at_level(logging.DEBUG, logger="fhirtrd"):
        r = client.post(f"{PV}/feedback", json=body)
    assert r.status_code == 200 and r.json == {"recorded": 2}
    logged = "\n".join(f"{rec.getMessage()} {rec.__dict__}" for rec in caplog.records)
    assert "feedback" in logged and "Dr Jones" not in logged and "prefers therapy" not in logged
    report = [(row.kind, row.outcome, row.reason, row.count)
              for row in app.extensions["fhirtrd"].feedback.report()]
    assert report == [("mdd-stage", "accepted", "-", 1), ("mdd-stage", "overridden", "patient-refused", 1)]
    with sqlite3.connect(store) as conn:
        assert conn.execute("SELECT user_comment FROM feedback WHERE outcome = 'overridden'"
                            ).fetchone() == ("prefers therapy with Dr Jones",)
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            conn.execute("DELETE FROM feedback")
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            conn.execute("UPDATE feedback SET outcome = 'accepted'")


def test_cds_auth_requires_a_jwt_for_this_endpoint(secured_app: Any, signer: Any) -> None:
    client = secured_app.test_client()
    assert client.get("/cds-services").status_code == 401
    token = signer.token(SERVICE_URL + "/cds-services")
    assert client.get("/cds-services", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    body = hook_request("patient-view", {"patientId": PATIENT_ID},
                        prefetch_for(templates(secured_app), two_failed_ssri_trials()))
    token = signer.token(SERVICE_URL + PV)
    r = client.post(PV, json=body, headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200 and r.json["cards"]
    r = client.post(PV, json=body, headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 401 and "replay" in r.json["message"]


def test_a_prefetch_bundle_with_a_next_link_is_completed_from_the_same_server(open_app: Any, fake_http: Any) -> None:
    data = two_failed_ssri_trials()
    prefetch = prefetch_for(templates(open_app), data)
    statements = prefetch["medicationStatements"]
    second = statements["entry"].pop()  # the sertraline trial is on page 2
    statements["link"] = [{"relation": "next", "url": f"{EHR_FHIR}/MedicationStatement?patient={PATIENT_ID}&page=2"}]
    fake_http.get(f"{EHR_FHIR}/MedicationStatement", json={"resourceType": "Bundle", "type": "searchset",
                                                          "entry": [second]})
    body = hook_request("patient-view", {"patientId": PATIENT_ID}, prefetch, fhirServer=EHR_FHIR)
    card = open_app.test_client().post(PV, json=body).json["cards"][0]
    assert "2 failed adequate trials" in card["summary"] and "not obtained" not in card["detail"]


def test_pages_that_cannot_be_fetched_are_named_in_the_card_detail(open_app: Any, fake_http: Any) -> None:
    prefetch = prefetch_for(templates(open_app), two_failed_ssri_trials())
    prefetch["conditions"]["link"] = [{"relation": "next", "url": "https://elsewhere.example/fhir/Condition?page=2"}]
    body = hook_request("patient-view", {"patientId": PATIENT_ID}, prefetch, fhirServer=EHR_FHIR)
    r = open_app.test_client().post(PV, json=body)
    assert r.status_code == 200
    detail = r.json["cards"][0]["detail"]
    assert "**Data not obtained**" in detail and "prefetch conditions" in detail and "elsewhere.example" in detail
    # no fhirServer at all: still assessed, the gap named
    del body["fhirServer"]
    detail = open_app.test_client().post(PV, json=body).json["cards"][0]["detail"]
    assert "prefetch conditions: the pages after the first could not be fetched" in detail


def test_an_ehr_that_sends_no_outputs_and_names_no_fhir_server_is_still_answered(open_app: Any, make_app: Any) -> None:
    prefetch = prefetch_for(templates(open_app), two_failed_ssri_trials())
    for key in ("fhirtrdObservations", "fhirtrdFlags"):
        del prefetch[key]
    body = hook_request("patient-view", {"patientId": PATIENT_ID}, prefetch)

    r = open_app.test_client().post(PV, json=body)
    assert r.status_code == 200
    assert {a["type"] for a in r.json["cards"][0]["suggestions"][0]["actions"]} == {"create"}
    # systemActions cannot be planned without them: that call is refused, naming the keys
    refused = make_app(system_actions=True).test_client().post(PV, json=body)
    assert refused.status_code == 412 and "fhirtrdObservations" in refused.text
