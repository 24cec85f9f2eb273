"""CDS Hooks 2.0 services: discovery, patient-view, order-select, order-sign, and feedback."""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from flask import Response, request
from flask_smorest import Blueprint

from fhirtrd.api.actions import RECORDED_TYPES, plan_actions
from fhirtrd.api.body import JSON_TYPES, read_json
from fhirtrd.api.cards import DraftOrder, order_cards, patient_view_cards
from fhirtrd.api.docs import CDS_RESPONSE, DISCOVERY, FEEDBACK, RECORDED, body, cds_request, errors
from fhirtrd.api.errors import BadRequest, PreconditionFailed
from fhirtrd.api.fhirfetch import FhirFetcher
from fhirtrd.api.http import Service, is_fhir_id, json_response, service
from fhirtrd.api.prefetch import OUTPUT_KEYS, check_patient, gather
from fhirtrd.fhir.codesystem import codes_in_group
from fhirtrd.fhir.inbound import Adapter, RecordBuilder
from fhirtrd.fhir.outbound import build_transaction, is_fhirtrd_output, plan_flag_deactivations
from fhirtrd.schemas import dump_result
from fhirtrd.server.errors import OutputConflict
from fhirtrd.server.plan import Conventions, plan_patient
from fhirtrd.smart.cards import smart_link
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

# The service ids as a routing rule: an unknown id is a 404, and the OpenAPI document lists them.
_SERVICE_ID = "<any({}):service_id>".format(", ".join(f'"{i}"' for i in sorted(SERVICES)))


def _authenticate(svc: Service) -> None:
    svc.auth.cds_client(request.headers.get("Authorization"), request.path)


@blp.route("", methods=["GET"])
@blp.doc(security=[{"bearer": []}])
@blp.doc(operationId="cdsDiscovery", summary="CDS Hooks discovery: the services and prefetch")
@blp.alt_response(200, schema=DISCOVERY, content_type="application/json", success=True,
                  description='{"services": [{hook, title, description, id, prefetch}]}')
@blp.doc(responses=errors({401: "Missing or invalid JWT (cds_auth on)"}, cds=True))
def discovery() -> Response:
    svc = service()
    _authenticate(svc)
    services = [
        {"hook": s.hook, "title": s.title, "description": s.description, "id": s.id,
         "prefetch": _templates(svc, s.hook)}
        for s in SERVICES.values()
    ]
    return json_response({"services": services})


def _templates(svc: Service, hook: str) -> dict[str, str]:
    """A hook's prefetch templates: fhirtrd's own outputs only for patient-view (its cards and
    systemActions record them; the order hooks write nothing)."""
    return {k: v for k, v in svc.templates.items() if hook == "patient-view" or k not in OUTPUT_KEYS}


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
    if "fhirServer" in body and not isinstance(body["fhirServer"], str):
        raise BadRequest("fhirServer must be a string (a base URL)", expression="fhirServer")
    auth = body.get("fhirAuthorization")
    if "fhirAuthorization" in body and not (
            isinstance(auth, dict) and isinstance(auth.get("access_token"), str)):
        raise BadRequest("fhirAuthorization must be an object with access_token",
                         expression="fhirAuthorization")
    prefetch = body.get("prefetch")
    if "prefetch" in body and prefetch is not None:
        if not isinstance(prefetch, dict):
            raise BadRequest("prefetch must be an object", expression="prefetch")
        for key, value in prefetch.items():
            if value is not None and not (isinstance(value, dict) and isinstance(
                    value.get("resourceType"), str) and value["resourceType"]):
                raise BadRequest(f"prefetch.{key} must be a FHIR resource, a Bundle or null",
                                 expression=f"prefetch.{key}")
    context = body.get("context")
    if not isinstance(context, dict):
        raise BadRequest("context (an object) is required", expression="context")
    if "userId" in context and not isinstance(context["userId"], str):
        raise BadRequest("context.userId must be a string", expression="context.userId")
    pid = context.get("patientId")
    if not is_fhir_id(pid):
        raise BadRequest("context.patientId (a FHIR id) is required",
                         expression="context.patientId")
    if hook.hook in ("order-select", "order-sign"):
        drafts = context.get("draftOrders")
        if not isinstance(drafts, dict) or drafts.get("resourceType") != "Bundle":
            raise BadRequest("context.draftOrders (a Bundle) is required",
                             expression="context.draftOrders")
        entries = drafts.get("entry", [])
        if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
            raise BadRequest("context.draftOrders.entry must be an array of objects",
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


def call_service(service_id: str) -> Response:
    """One CDS service call; routed per service below, each with its own request schema."""
    svc = service()
    hook = SERVICES[service_id]
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

    not_obtained: list[str] = []
    # fhirtrd's outputs in the EHR are needed for systemActions; for a card's suggestion they only
    # spare offering what is already recorded, so an EHR that neither sends nor serves them is not refused
    optional = frozenset() if settings.system_actions else frozenset(OUTPUT_KEYS)
    resources = gather(body, _templates(svc, hook.hook), allowlist=settings.fhir_server_allowlist,
                       fetcher_for=fetcher_for, not_obtained=not_obtained, optional=optional)
    as_of = svc.as_of()
    orders: list[dict[str, Any]] = []
    if hook.hook != "patient-view":
        check_patient([(f"context.draftOrders.entry[{i}].resource", e["resource"])
                       for i, e in enumerate(context["draftOrders"].get("entry", []))
                       if isinstance(e, dict) and isinstance(e.get("resource"), dict)],
                      pid, body.get("fhirServer") if isinstance(body.get("fhirServer"), str) else None)
        orders = _draft_medication_requests(hook, context)
        draft_ids = {o.get("id") for o in orders} | {
            e["resource"].get("id") for e in context["draftOrders"].get("entry", [])
            if isinstance(e, dict) and isinstance(e.get("resource"), dict)}
        resources = [r for r in resources
                     if not (r.get("resourceType") == "MedicationRequest" and r.get("id") in draft_ids)]
    existing = [r for r in resources if is_fhirtrd_output(r)]  # fhirtrd's outputs already in the EHR
    resources = [r for r in resources if not is_fhirtrd_output(r)]
    results = classify_resources(resources, svc.terminology, as_of, source="prefetch")
    mine = next((dump_result(r) for r in results if r.patient == f"Patient/{pid}"), None)
    call_id = body["hookInstance"]
    response: dict[str, Any] = {"cards": []}
    kinds: dict[str, str] = {}  # card uuid -> card kind, kept for the feedback report
    if hook.hook == "patient-view":
        if mine is not None:
            built: list[dict[str, list[dict[str, Any]]]] = []

            def actions(disorder: str) -> list[dict[str, Any]]:
                if settings.system_actions:  # systemActions record the outputs: a card offering them too
                    return []                # would write them twice when the user accepts it
                if not built:  # the plan is made only when a card will show
                    built.append(_actions_by_disorder(svc, pid, mine, existing, as_of))
                return built[0].get(disorder, [])

            response["cards"] = patient_view_cards(
                mine, source=_source(svc), call_id=call_id, actions=actions, kinds=kinds,
                link=_smart_link(svc))
        if settings.system_actions:
            system = _system_actions(svc, pid, mine, existing, as_of)
            if system:
                response["systemActions"] = system
    else:
        medications = [r for r in resources if r.get("resourceType") == "Medication"]
        drafts = _draft_orders(svc, orders, medications, pid, as_of)
        response["cards"] = order_cards(mine, drafts, svc.terminology.rules,
                                        source=_source(svc), call_id=call_id, kinds=kinds,
                                        override_reasons=_override_reasons(svc))
    if not_obtained:
        note = "\n\n**Data not obtained** (the assessment is based on the rest): " + "; ".join(not_obtained)
        for card in response["cards"]:
            card["detail"] = card.get("detail", "") + note
    svc.feedback.record_cards(hook.id, kinds)
    log.info("cds call", extra={"service": hook.id, "hookInstance": call_id,
                                "cards": len(response["cards"]), "resources": len(resources)})
    return json_response(response)


def _route_service(hook: HookService) -> None:
    """`POST /cds-services/<id>`, documented with the request schema of its hook."""

    def view() -> Response:
        return call_service(hook.id)

    view.__name__ = view.__qualname__ = f"call_{hook.id.replace('-', '_')}"
    statuses = {
        400: "The request does not follow CDS Hooks 2.0 (the message names the field), or its data "
             "is about another patient than context.patientId",
        401: "Missing or invalid JWT (cds_auth on)",
        412: "The FHIR data needed could not be obtained (prefetch missing and fhirServer absent, "
             "not allowlisted or failing)",
        413: "Body over max_body_bytes", 415: "Content-Type is not JSON"}
    decorated = blp.doc(
        operationId=view.__name__, summary=f"{hook.title} ({hook.hook})", description=hook.description,
        security=[{"bearer": []}], responses=errors(statuses, cds=True),
        requestBody=body(cds_request(hook.hook), f"A CDS Hooks 2.0 {hook.hook} request", JSON_TYPES),
    )(blp.alt_response(200, schema=CDS_RESPONSE, content_type="application/json", success=True,
                       description='{"cards": [...], "systemActions": [...]}')(view))
    blp.route(f"/{hook.id}", methods=["POST"], endpoint=view.__name__)(decorated)


for _hook in SERVICES.values():
    _route_service(_hook)


def _override_reasons(svc: Service) -> list[dict[str, str]]:
    """The override reasons of order cards: the `override-reasons` codes of the fhirtrd CodeSystem."""
    system = svc.output_settings.codesystem
    return [{"system": system, "code": c.code, "display": c.display}
            for c in codes_in_group("override-reasons").values()]


def _actions_by_disorder(svc: Service, patient_id: str, result: dict[str, Any], existing: list[dict[str, Any]],
                         as_of: date) -> dict[str, list[dict[str, Any]]]:
    """The plan's actions (those systemActions would carry) for each disorder's outputs: a card offers
    to record only what the EHR does not already hold as it is, so accepting it twice writes nothing
    twice. None when the EHR holds two outputs with one identifier (a 412 with systemActions)."""
    try:
        planned = _system_actions(svc, patient_id, result, existing, as_of)
    except PreconditionFailed as exc:
        log.warning("no record suggestion for %s: %s", patient_id, exc)
        return {}
    by_disorder: dict[str, list[dict[str, Any]]] = {}
    for action in planned:
        disorder = _disorder_of(action["resource"])
        if disorder is not None:
            by_disorder.setdefault(disorder, []).append(action)
    return by_disorder


def _smart_link(svc: Service) -> Callable[[str, str | None], dict[str, Any]] | None:
    """The SMART app link of patient-view cards (fhirtrd.smart.cards), when the app is configured."""
    if not svc.settings.smart:
        return None
    public_url = svc.settings.public_url
    return lambda disorder, finding: smart_link(public_url, disorder, finding)


def _system_actions(svc: Service, patient_id: str, result: dict[str, Any] | None,
                    existing: list[dict[str, Any]], as_of: date) -> list[dict[str, Any]]:
    """The sync's plan (fhirtrd.server.plan) against the outputs the EHR holds, as CDS actions."""
    reference = f"Patient/{patient_id}"
    contract = result if result is not None else {
        "patient": reference, "as_of": as_of.isoformat(), "assessments": [], "warnings": []}
    issued = datetime.now(UTC)
    desired = build_transaction(contract, svc.output_settings, issued=issued)
    current = [r for r in existing if r.get("resourceType") in RECORDED_TYPES]
    flags = [r for r in current if r.get("resourceType") == "Flag"]
    deactivated = plan_flag_deactivations(flags, desired, issued)
    skip = frozenset(str(e["resource"].get("resourceType")) for e in desired.get("entry") or []
                     if isinstance(e, dict) and isinstance(e.get("resource"), dict)) - set(RECORDED_TYPES)
    conventions = Conventions(svc.output_settings.identifier_system,
                              svc.output_settings.content_hash_system)
    try:
        plan = plan_patient(patient_id, desired, current, deactivated, conventions, skip)
    except OutputConflict as exc:
        raise PreconditionFailed(f"{exc}; no systemActions are returned until it is resolved") from exc
    return plan_actions(plan, desired)


def _disorder_of(resource: dict[str, Any]) -> str | None:
    """The disorder in the business identifier `<patient id>/<disorder>/<kind>[/<key>]`."""
    for ident in resource.get("identifier") or []:
        value = ident.get("value") if isinstance(ident, dict) else None
        if isinstance(value, str) and value.count("/") >= 2:
            return value.split("/")[1]
    return None


_FEEDBACK_OUTCOMES = ("accepted", "overridden")


def _check_override(item: dict[str, Any], where: str) -> None:
    """overrideReason: only on overridden; {reason: Coding, userComment: string}, 400 naming the field."""
    if "overrideReason" not in item:
        return
    override = item["overrideReason"]
    at = f"{where}.overrideReason"
    if item["outcome"] != "overridden" or not isinstance(override, dict):
        raise BadRequest(f"{at} must be an object, and only on overridden feedback", expression=at)
    reason = override.get("reason", {})
    if not isinstance(reason, dict) or not all(
            isinstance(reason[k], str) for k in ("code", "system", "display") if k in reason):
        raise BadRequest(f"{at}.reason must be a Coding (code, system, display strings)",
                         expression=f"{at}.reason")
    if not isinstance(override.get("userComment", ""), str):
        raise BadRequest(f"{at}.userComment must be a string", expression=f"{at}.userComment")


@blp.route(f"/{_SERVICE_ID}/feedback", methods=["POST"])
@blp.doc(security=[{"bearer": []}])
@blp.doc(operationId="cdsFeedback", summary="Feedback on cards (accepted / overridden); stored")
@blp.alt_response(200, schema=RECORDED, content_type="application/json", success=True,
                  description="Feedback stored")
@blp.doc(requestBody=body(FEEDBACK, "CDS Hooks 2.0 feedback", JSON_TYPES), responses=errors({
    400: "Not CDS Hooks feedback (the message names the field)", 401: "Missing or invalid JWT",
    404: "No such CDS service", 413: "Body over max_body_bytes", 415: "Content-Type is not JSON"},
    cds=True))
def feedback(service_id: str) -> Response:
    svc = service()
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
        accepted = item.get("acceptedSuggestions", [])
        if not isinstance(accepted, list) or not all(
                isinstance(s, dict) and isinstance(s.get("id"), str) for s in accepted):
            raise BadRequest(f"{where}.acceptedSuggestions must be an array of {{id}} objects",
                             expression=f"{where}.acceptedSuggestions")
        if item["outcome"] == "accepted" and not accepted:
            raise BadRequest(f"{where}.acceptedSuggestions is required for accepted",
                             expression=f"{where}.acceptedSuggestions")
        _check_override(item, where)
    stored = svc.feedback.append(service_id, items)
    log.info("cds feedback stored", extra={
        "service": service_id, "items": stored,
        "outcomes": sorted({str(item["outcome"]) for item in items})})
    return json_response({"recorded": stored})
