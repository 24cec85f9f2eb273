"""CDS Hooks 2.0 services: discovery, patient-view, order-select, order-sign, and feedback."""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass
from datetime import date
from typing import Any

from flask import Response, request
from flask_smorest import Blueprint

from fhirtrd.api.app import Service, json_response, service
from fhirtrd.api.body import JSON_TYPES, read_json
from fhirtrd.api.cards import DraftOrder, order_cards, patient_view_cards
from fhirtrd.api.errors import BadRequest, NotFound
from fhirtrd.api.fhirfetch import FhirFetcher
from fhirtrd.api.prefetch import FHIR_ID, gather
from fhirtrd.fhir.inbound import Adapter, RecordBuilder
from fhirtrd.schemas import dump_result
from fhirtrd.service import classify_resources

log = logging.getLogger("fhirtrd.api.cds")

blp = Blueprint("cds", __name__, url_prefix="/cds-services",
                description="CDS Hooks 2.0 services (discovery, hooks, feedback)")


@dataclass(frozen=True, slots=True)
class HookService:
    id: str
    hook: str
    title: str
    description: str


SERVICES = {
    s.id: s
    for s in (
        HookService(
            "fhirtrd-patient-view", "patient-view", "Treatment-resistance assessment",
            "Stages treatment resistance in depression and social anxiety disorder from the "
            "patient's trials; flags pseudo-resistance and possible bipolar disorder.",
        ),
        HookService(
            "fhirtrd-order-select", "order-select", "Antidepressant order check (select)",
            "What a selected draft antidepressant order means given the failed adequate trials "
            "so far, and whether its dose reaches the adequate minimum.",
        ),
        HookService(
            "fhirtrd-order-sign", "order-sign", "Antidepressant order check (sign)",
            "What the draft antidepressant orders about to be signed mean given the failed "
            "adequate trials so far, and whether their doses reach the adequate minimum.",
        ),
    )
}

_CDS_JSON = {"type": "object"}


def _authenticate(svc: Service) -> None:
    svc.auth.cds_client(request.headers.get("Authorization"), request.path)


@blp.route("", methods=["GET"])
@blp.doc(operationId="cdsDiscovery", summary="CDS Hooks discovery: the services and prefetch")
@blp.alt_response(200, schema=_CDS_JSON, content_type="application/json", success=True,
                  description='{"services": [{hook, title, description, id, prefetch}]}')
def discovery() -> Response:
    svc = service()
    _authenticate(svc)
    services = [
        {"hook": s.hook, "title": s.title, "description": s.description, "id": s.id,
         "prefetch": dict(svc.templates)}
        for s in SERVICES.values()
    ]
    return json_response({"services": services})


def _source(svc: Service) -> dict[str, Any]:
    source: dict[str, Any] = {"label": svc.settings.source_label}
    if svc.settings.source_url:
        source["url"] = svc.settings.source_url
    return source


def _hook_request(hook: HookService, body: Any) -> dict[str, Any]:
    """The call body checked against CDS Hooks 2.0 (HTTP Request); 400 naming the field."""
    if not isinstance(body, dict):
        raise BadRequest("the CDS Hooks request must be a JSON object")
    if body.get("hook") != hook.hook:
        raise BadRequest(f"hook must be {hook.hook!r} for service {hook.id}, not "
                         f"{body.get('hook')!r}", expression="hook")
    if not isinstance(body.get("hookInstance"), str) or not body["hookInstance"]:
        raise BadRequest("hookInstance (a UUID string) is required", expression="hookInstance")
    context = body.get("context")
    if not isinstance(context, dict):
        raise BadRequest("context (an object) is required", expression="context")
    pid = context.get("patientId")
    if not isinstance(pid, str) or not FHIR_ID.fullmatch(pid):
        raise BadRequest("context.patientId (a FHIR id) is required",
                         expression="context.patientId")
    if hook.hook in ("order-select", "order-sign"):
        drafts = context.get("draftOrders")
        if not isinstance(drafts, dict) or drafts.get("resourceType") != "Bundle":
            raise BadRequest("context.draftOrders (a Bundle) is required",
                             expression="context.draftOrders")
        if not isinstance(drafts.get("entry", []), list):
            raise BadRequest("context.draftOrders.entry must be an array",
                             expression="context.draftOrders.entry")
        if hook.hook == "order-select":
            selections = context.get("selections")
            if not isinstance(selections, list) or not all(isinstance(s, str) for s in selections):
                raise BadRequest("context.selections (an array of references) is required",
                                 expression="context.selections")
    return body


def _draft_medication_requests(hook: HookService, context: dict[str, Any]) -> list[dict[str, Any]]:
    entries = context["draftOrders"].get("entry", [])
    orders = [e["resource"] for e in entries
              if isinstance(e, dict) and isinstance(e.get("resource"), dict)
              and e["resource"].get("resourceType") == "MedicationRequest"]
    if hook.hook == "order-select":
        selected = set(context["selections"])
        orders = [o for o in orders if f"MedicationRequest/{o.get('id')}" in selected]
    return orders


def _draft_orders(svc: Service, orders: list[dict[str, Any]], medications: list[dict[str, Any]],
                  patient_id: str, as_of: date) -> list[DraftOrder]:
    """Ingredient and daily dose of each draft order, read by the inbound adapter as if signed."""
    adapter = Adapter(svc.terminology, validate=True)
    for med in medications:
        adapter.remember_medication(med, None)
    drafts: list[DraftOrder] = []
    for i, order in enumerate(orders):
        as_signed = copy.deepcopy(order)
        as_signed.update(status="active", intent="order",
                         subject={"reference": f"Patient/{patient_id}"})
        as_signed.setdefault("authoredOn", as_of.isoformat())
        builder = RecordBuilder(patient_id, svc.terminology)
        adapter.add(builder, as_signed, f"context.draftOrders.entry[{i}]", {})
        adapter.finish(builder)
        for exposure in builder.exposures:
            drafts.append(DraftOrder(f"MedicationRequest/{order.get('id')}",
                                     exposure.ingredient, exposure.daily_dose))
    return drafts


@blp.route("/<string:service_id>", methods=["POST"])
@blp.doc(operationId="cdsService", summary="Call a CDS service (patient-view, order-select, "
         "order-sign) with context and prefetch")
@blp.alt_response(200, schema=_CDS_JSON, content_type="application/json", success=True,
                  description='{"cards": [...], "systemActions": [...]}')
@blp.alt_response(412, schema=_CDS_JSON, content_type="application/json",
                  description="The FHIR data needed could not be obtained (prefetch missing and "
                              "fhirServer absent, not allowlisted or failing)")
def call_service(service_id: str) -> Response:
    svc = service()
    hook = SERVICES.get(service_id)
    if hook is None:
        raise NotFound(f"no CDS service {service_id!r}")
    _authenticate(svc)
    body = _hook_request(hook, read_json(
        request, max_bytes=svc.settings.max_body_bytes, max_depth=svc.settings.max_json_depth,
        media_types=JSON_TYPES))
    context = body["context"]
    pid = context["patientId"]
    settings = svc.settings

    def fetcher_for(server: str, token: str | None) -> FhirFetcher:
        return FhirFetcher(svc.session, server, token=token,
                           timeout=settings.fhir_timeout_seconds, max_pages=settings.fhir_max_pages)

    resources = gather(body, svc.templates, allowlist=settings.fhir_server_allowlist,
                       fetcher_for=fetcher_for)
    as_of = svc.as_of()
    orders: list[dict[str, Any]] = []
    if hook.hook != "patient-view":
        orders = _draft_medication_requests(hook, context)
        draft_ids = {o.get("id") for o in orders} | {
            e["resource"].get("id") for e in context["draftOrders"].get("entry", [])
            if isinstance(e, dict) and isinstance(e.get("resource"), dict)}
        resources = [r for r in resources
                     if not (r.get("resourceType") == "MedicationRequest" and r.get("id") in draft_ids)]
    results = classify_resources(resources, svc.terminology, as_of, source="prefetch")
    mine = next((dump_result(r) for r in results if r.patient == f"Patient/{pid}"), None)
    call_id = body["hookInstance"]
    response: dict[str, Any] = {"cards": []}
    if hook.hook == "patient-view":
        if mine is not None:
            built: list[dict[str, list[dict[str, Any]]]] = []

            def actions(disorder: str) -> list[dict[str, Any]]:
                if not built:  # the write-back is built only when a card will show
                    built.append(_record_actions(svc, mine))
                return built[0].get(disorder, [])

            response["cards"] = patient_view_cards(
                mine, source=_source(svc), call_id=call_id, actions=actions)
            if settings.system_actions and built:
                system = [a for d in sorted(built[0]) for a in built[0][d]]
                if system:
                    response["systemActions"] = system
    else:
        medications = [r for r in resources if r.get("resourceType") == "Medication"]
        drafts = _draft_orders(svc, orders, medications, pid, as_of)
        response["cards"] = order_cards(mine, drafts, svc.terminology.rules,
                                        source=_source(svc), call_id=call_id)
    log.info("cds %s hookInstance=%s patient=%s cards=%d", hook.id, call_id, pid,
             len(response["cards"]))
    return json_response(response)


def _record_actions(svc: Service, result: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """Create actions for the Flag/Observation resources of each disorder's write-back."""
    from fhirtrd.api.routes import transaction_of

    bundle = transaction_of(svc, [result])
    by_disorder: dict[str, list[dict[str, Any]]] = {}
    for entry in bundle.get("entry", []):
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if not isinstance(resource, dict) or resource.get("resourceType") not in ("Flag", "Observation"):
            continue
        disorder = _disorder_of(resource)
        if disorder is None:
            continue
        code = resource.get("code") or {}
        label = code.get("text") or next(
            (c.get("display") for c in code.get("coding") or [] if c.get("display")),
            resource["resourceType"])
        by_disorder.setdefault(disorder, []).append(
            {"type": "create", "description": f"Create {resource['resourceType']}: {label}",
             "resource": resource})
    return by_disorder


def _disorder_of(resource: dict[str, Any]) -> str | None:
    """The disorder in the business identifier `<patient id>/<disorder>/<kind>[/<key>]`."""
    for ident in resource.get("identifier") or []:
        value = ident.get("value") if isinstance(ident, dict) else None
        if isinstance(value, str) and value.count("/") >= 2:
            return value.split("/")[1]
    return None


_FEEDBACK_OUTCOMES = ("accepted", "overridden")


@blp.route("/<string:service_id>/feedback", methods=["POST"])
@blp.doc(operationId="cdsFeedback", summary="Feedback on cards (accepted / overridden); logged")
@blp.alt_response(200, schema=_CDS_JSON, content_type="application/json", success=True,
                  description="Feedback recorded")
def feedback(service_id: str) -> Response:
    svc = service()
    if service_id not in SERVICES:
        raise NotFound(f"no CDS service {service_id!r}")
    _authenticate(svc)
    body = read_json(request, max_bytes=svc.settings.max_body_bytes,
                     max_depth=svc.settings.max_json_depth, media_types=JSON_TYPES)
    items = body.get("feedback") if isinstance(body, dict) else None
    if not isinstance(items, list) or not items:
        raise BadRequest("feedback (a non-empty array) is required", expression="feedback")
    for i, item in enumerate(items):
        where = f"feedback[{i}]"
        if not isinstance(item, dict):
            raise BadRequest(f"{where} must be an object", expression=where)
        if not isinstance(item.get("card"), str):
            raise BadRequest(f"{where}.card (the card uuid) is required", expression=f"{where}.card")
        if item.get("outcome") not in _FEEDBACK_OUTCOMES:
            raise BadRequest(f"{where}.outcome must be accepted or overridden",
                             expression=f"{where}.outcome")
        if not isinstance(item.get("outcomeTimestamp"), str):
            raise BadRequest(f"{where}.outcomeTimestamp is required",
                             expression=f"{where}.outcomeTimestamp")
        accepted = item.get("acceptedSuggestions") or []
        if item["outcome"] == "accepted" and not (isinstance(accepted, list) and accepted):
            raise BadRequest(f"{where}.acceptedSuggestions is required for accepted",
                             expression=f"{where}.acceptedSuggestions")
    for item in items:
        reason = item.get("overrideReason") if isinstance(item.get("overrideReason"), dict) else {}
        log.info(
            "cds feedback service=%s card=%s outcome=%s suggestions=%s reason=%s comment=%s at=%s",
            service_id, item["card"], item["outcome"],
            [s.get("id") for s in item.get("acceptedSuggestions") or [] if isinstance(s, dict)],
            (reason.get("reason") or {}).get("code") if isinstance(reason.get("reason"), dict) else None,
            reason.get("userComment"), item["outcomeTimestamp"],
        )
    return json_response({"recorded": len(items)})
