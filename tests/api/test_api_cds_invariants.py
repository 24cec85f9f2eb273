"""Every card fhirtrd returns keeps to the CDS Hooks 2.0 response rules (Card, Suggestion, Action).

The calls: patient-view for every bundled sample patient (with and without systemActions) and
order-sign with a low-dose and a same-class draft for each, so every kind of card is produced.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

from api_samples import draft_order

REPO = Path(__file__).resolve().parents[2]
INDICATORS = {"info", "warning", "critical"}
SELECTION = {"at-most-one", "any"}


def check_action(action: Any, where: str) -> None:
    assert isinstance(action, dict), where
    assert action.get("type") in {"create", "update", "delete"}, where
    assert isinstance(action.get("description"), str) and action["description"], where
    if action["type"] in ("create", "update"):
        resource = action.get("resource")
        assert isinstance(resource, dict) and isinstance(resource.get("resourceType"), str), where
        if action["type"] == "update":
            assert isinstance(resource.get("id"), str), f"{where}: an update names the id it replaces"
    else:
        assert isinstance(action.get("resourceId"), list) and action["resourceId"], where


def check_response(body: Any) -> int:
    """Assert the CDS Hooks 2.0 response invariants; the number of cards checked."""
    assert isinstance(body, dict) and isinstance(body.get("cards"), list)
    assert set(body) <= {"cards", "systemActions"}
    seen: set[str] = set()
    for i, card in enumerate(body["cards"]):
        where = f"cards[{i}]"
        assert isinstance(card.get("summary"), str) and 0 < len(card["summary"]) < 140, where
        assert card.get("indicator") in INDICATORS, where
        source = card.get("source")
        assert isinstance(source, dict) and isinstance(source.get("label"), str) and source["label"], where
        assert isinstance(card.get("uuid"), str) and str(uuid.UUID(card["uuid"])) == card["uuid"], where
        assert card["uuid"] not in seen, f"{where}: uuid repeated"
        seen.add(card["uuid"])
        if "detail" in card:
            assert isinstance(card["detail"], str), where
        suggestions = card.get("suggestions", [])
        assert isinstance(suggestions, list), where
        if suggestions:
            assert card.get("selectionBehavior") in SELECTION, f"{where}: suggestions need a selectionBehavior"
        for j, s in enumerate(suggestions):
            at = f"{where}.suggestions[{j}]"
            assert isinstance(s.get("label"), str) and s["label"], at
            assert isinstance(s.get("uuid"), str) and s["uuid"] not in seen, at
            seen.add(s["uuid"])
            assert isinstance(s.get("isRecommended"), bool), at
            for k, action in enumerate(s.get("actions", [])):
                check_action(action, f"{at}.actions[{k}]")
        for j, reason in enumerate(card.get("overrideReasons", [])):
            assert {"code", "system", "display"} <= set(reason), f"{where}.overrideReasons[{j}]"
        for link in card.get("links", []):
            assert {"label", "url", "type"} <= set(link) and link["type"] in {"absolute", "smart"}, where
    for k, action in enumerate(body.get("systemActions", [])):
        check_action(action, f"systemActions[{k}]")
    return len(body["cards"])


def sample_patients() -> list[tuple[dict[str, Any], list[dict[str, Any]]]]:
    out = []
    for path in sorted((REPO / "samples").glob("*.json")):
        resources = [e["resource"] for e in json.loads(path.read_text())["entry"]]
        patient = next(r for r in resources if r["resourceType"] == "Patient")
        out.append((patient, [r for r in resources if r is not patient]))
    return out


def test_every_card_keeps_to_the_cds_hooks_response_rules(make_app: Any) -> None:
    cards = 0
    for system_actions in (False, True):
        app = make_app(system_actions=system_actions, as_of="2025-01-15")
        client = app.test_client()
        keys = app.extensions["fhirtrd"].templates
        for patient, others in sample_patients():
            prefetch: dict[str, Any] = {k: None for k in keys}
            prefetch["patient"] = patient
            prefetch["conditions"] = {"resourceType": "Bundle", "type": "searchset",
                                      "entry": [{"resource": r} for r in others]}
            context = {"patientId": patient["id"], "userId": "Practitioner/example"}
            r = client.post("/cds-services/fhirtrd-patient-view", json={
                "hook": "patient-view", "hookInstance": str(uuid.uuid4()), "context": context,
                "prefetch": prefetch})
            assert r.status_code == 200, r.json
            cards += check_response(r.json)
            orders = {"resourceType": "Bundle", "type": "collection", "entry": [
                {"resource": draft_order("d-low", "citalopram", 5, pid=patient["id"])},
                {"resource": draft_order("d-ssri", "sertraline", 100, pid=patient["id"])}]}
            r = client.post("/cds-services/fhirtrd-order-sign", json={
                "hook": "order-sign", "hookInstance": str(uuid.uuid4()),
                "context": {**context, "draftOrders": orders}, "prefetch": prefetch})
            assert r.status_code == 200, r.json
            cards += check_response(r.json)
    assert cards >= 20


def test_the_checker_catches_a_card_an_ehr_would_reject() -> None:
    good = {"uuid": str(uuid.uuid4()), "summary": "s", "indicator": "info", "source": {"label": "x"},
            "selectionBehavior": "at-most-one",
            "suggestions": [{"label": "l", "uuid": str(uuid.uuid4()), "isRecommended": False,
                             "actions": [{"type": "create", "description": "d", "resource": {"resourceType": "Flag"}}]}]}
    assert check_response({"cards": [good]}) == 1
    for broken in ({**good, "summary": "x" * 140}, {**good, "indicator": "hard-stop"},
                   {**good, "suggestions": [{**good["suggestions"][0], "isRecommended": None}]},
                   {k: v for k, v in good.items() if k != "selectionBehavior"}):
        try:
            check_response({"cards": [broken]})
        except AssertionError:
            continue
        raise AssertionError(f"not caught: {broken}")
