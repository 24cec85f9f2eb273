"""OpenAPI fragments the blueprints share: error bodies, FHIR bodies, CDS Hooks requests and answers.

The document must tell the truth (schemathesis checks every operation against it): each operation
lists every status it can answer with the body and content type it really has.
"""

from __future__ import annotations

from typing import Any

FHIR_JSON = "application/fhir+json"
# A FHIR id (1-64 of A-Z a-z 0-9 - .) that is not made only of dots; with FHIR_ID's lengths.
FHIR_ID_PATTERN = r"^[A-Za-z0-9\-.]*[A-Za-z0-9\-][A-Za-z0-9\-.]*$"
FHIR_ID: dict[str, Any] = {"type": "string", "pattern": FHIR_ID_PATTERN, "minLength": 1, "maxLength": 64}

OUTCOME: dict[str, Any] = {
    "type": "object", "required": ["resourceType", "issue"],
    "description": "A FHIR OperationOutcome naming the entry and element at fault",
    "properties": {
        "resourceType": {"type": "string", "enum": ["OperationOutcome"]},
        "issue": {"type": "array", "minItems": 1, "items": {
            "type": "object", "required": ["severity", "code"],
            "properties": {"severity": {"type": "string"}, "code": {"type": "string"},
                           "diagnostics": {"type": "string"},
                           "expression": {"type": "array", "items": {"type": "string"}}}}},
    },
}
CDS_ERROR: dict[str, Any] = {
    "type": "object", "required": ["error", "message"],
    "description": "A CDS Hooks error: a FHIR issue-type code and a message naming the field",
    "properties": {"error": {"type": "string"}, "message": {"type": "string"}},
}
BUNDLE: dict[str, Any] = {"type": "object", "required": ["resourceType"],
                          "description": "A FHIR R4 Bundle",
                          "properties": {"resourceType": {"type": "string", "enum": ["Bundle"]}}}

_RESOURCE: dict[str, Any] = {"type": "object", "required": ["resourceType"],
                             "properties": {"resourceType": {"type": "string", "minLength": 1}}}
_DRAFT_ORDERS: dict[str, Any] = {
    "type": "object", "required": ["resourceType"], "description": "A FHIR Bundle of draft orders",
    "properties": {"resourceType": {"type": "string", "enum": ["Bundle"]},
                   "entry": {"type": "array", "items": {"type": "object"}}}}


def cds_request(hook: str) -> dict[str, Any]:
    """The CDS Hooks 2.0 request of one hook (HTTP Request; the hook's context)."""
    context: dict[str, Any] = {"patientId": FHIR_ID, "userId": {"type": "string"}}
    required = ["patientId"]
    if hook in ("order-select", "order-sign"):
        context["draftOrders"] = _DRAFT_ORDERS
        required.append("draftOrders")
    if hook == "order-select":
        context["selections"] = {"type": "array", "items": {"type": "string"}}
        required.append("selections")
    return {
        "type": "object", "required": ["hook", "hookInstance", "context"],
        "properties": {
            "hook": {"type": "string", "enum": [hook]},
            "hookInstance": {"type": "string", "minLength": 1},
            "fhirServer": {"type": "string"},
            "fhirAuthorization": {"type": "object", "required": ["access_token"],
                                  "properties": {"access_token": {"type": "string"}}},
            "context": {"type": "object", "required": required, "properties": context},
            "prefetch": {"type": "object", "additionalProperties": {
                "anyOf": [_RESOURCE, {"type": "null"}]}},
        },
    }


_ACTION: dict[str, Any] = {"type": "object", "required": ["type"], "properties": {
    "type": {"type": "string", "enum": ["create", "update", "delete"]},
    "description": {"type": "string"}, "resource": {"type": "object"},
    "resourceId": {"type": "array", "items": {"type": "string"}}}}
CARD: dict[str, Any] = {
    "type": "object", "required": ["summary", "indicator", "source"],
    "properties": {
        "uuid": {"type": "string"}, "summary": {"type": "string", "maxLength": 140},
        "detail": {"type": "string"},
        "indicator": {"type": "string", "enum": ["info", "warning", "critical"]},
        "source": {"type": "object", "required": ["label"], "properties": {"label": {"type": "string"}}},
        "suggestions": {"type": "array", "items": {"type": "object", "required": ["label"], "properties": {
            "label": {"type": "string"}, "uuid": {"type": "string"},
            "isRecommended": {"type": "boolean"},
            "actions": {"type": "array", "items": _ACTION}}}},
        "selectionBehavior": {"type": "string", "enum": ["at-most-one", "any"]},
        "overrideReasons": {"type": "array", "items": {"type": "object"}},
        "links": {"type": "array", "items": {"type": "object"}},
    },
}
CDS_RESPONSE: dict[str, Any] = {
    "type": "object", "required": ["cards"],
    "properties": {"cards": {"type": "array", "items": CARD},
                   "systemActions": {"type": "array", "items": _ACTION}},
}
DISCOVERY: dict[str, Any] = {
    "type": "object", "required": ["services"],
    "properties": {"services": {"type": "array", "items": {
        "type": "object", "required": ["hook", "description", "id"],
        "properties": {"hook": {"type": "string"}, "title": {"type": "string"},
                       "description": {"type": "string"}, "id": {"type": "string"},
                       "prefetch": {"type": "object", "additionalProperties": {"type": "string"}}}}}},
}
_SUGGESTIONS: dict[str, Any] = {"type": "array", "items": {
    "type": "object", "required": ["id"], "properties": {"id": {"type": "string"}}}}
_OVERRIDE: dict[str, Any] = {"type": "object", "properties": {
    "reason": {"type": "object", "properties": {"code": {"type": "string"}, "system": {"type": "string"},
                                                "display": {"type": "string"}}},
    "userComment": {"type": "string"}}}
FEEDBACK: dict[str, Any] = {
    "type": "object", "required": ["feedback"],
    "properties": {"feedback": {"type": "array", "minItems": 1, "items": {"oneOf": [
        {"type": "object", "required": ["card", "outcome", "outcomeTimestamp", "acceptedSuggestions"],
         "description": "accepted: the suggestions taken", "not": {"required": ["overrideReason"]},
         "properties": {"card": {"type": "string"}, "outcome": {"type": "string", "enum": ["accepted"]},
                        "outcomeTimestamp": {"type": "string"},
                        "acceptedSuggestions": {**_SUGGESTIONS, "minItems": 1}}},
        {"type": "object", "required": ["card", "outcome", "outcomeTimestamp"],
         "description": "overridden: optionally why",
         "properties": {"card": {"type": "string"}, "outcome": {"type": "string", "enum": ["overridden"]},
                        "outcomeTimestamp": {"type": "string"}, "acceptedSuggestions": _SUGGESTIONS,
                        "overrideReason": _OVERRIDE}},
    ]}}},
}
RECORDED: dict[str, Any] = {"type": "object", "required": ["recorded"],
                            "properties": {"recorded": {"type": "integer", "minimum": 1}}}


def body(schema: dict[str, Any], description: str, content_types: tuple[str, ...]) -> dict[str, Any]:
    """An OpenAPI requestBody holding `schema` under each content type."""
    return {"required": True, "description": description,
            "content": {ct: {"schema": schema} for ct in content_types}}


def errors(statuses: dict[int, str], *, cds: bool) -> dict[int, dict[str, Any]]:
    """OpenAPI responses for error statuses: CDS Hooks JSON errors or FHIR OperationOutcomes."""
    content_type, schema = ("application/json", CDS_ERROR) if cds else (FHIR_JSON, OUTCOME)
    return {status: {"description": text, "content": {content_type: {"schema": schema}}}
            for status, text in statuses.items()}
