"""Reading a request body as JSON within the size, media-type and nesting limits."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import orjson
from flask import Request
from werkzeug.exceptions import RequestEntityTooLarge

from fhirtrd.api.errors import BadRequest, PayloadTooLarge, UnsupportedMediaType

FHIR_JSON_TYPES = ("application/fhir+json", "application/json", "application/json+fhir")
JSON_TYPES = ("application/json", "application/fhir+json")


def json_depth(value: Any, limit: int) -> int:
    """Nesting depth of parsed JSON (a scalar is 0), counted level by level; stops past `limit`."""
    level: list[Any] = [value] if isinstance(value, (dict, list)) else []
    depth = 0
    while level:
        depth += 1
        if depth > limit:
            return depth
        below: list[Any] = []
        for node in level:
            children = node.values() if isinstance(node, dict) else node
            below.extend(c for c in children if isinstance(c, (dict, list)))
        level = below
    return depth


def read_json(
    request: Request,
    *,
    max_bytes: int,
    max_depth: int,
    media_types: Iterable[str] = FHIR_JSON_TYPES,
) -> Any:
    """The parsed body; 415 for a non-JSON media type, 413 over `max_bytes`, 400 for bad JSON."""
    allowed = tuple(media_types)
    mimetype = request.mimetype
    if mimetype not in allowed:
        raise UnsupportedMediaType(
            f"Content-Type must be one of {', '.join(allowed)}, not {mimetype or 'missing'}",
            expression="Content-Type",
        )
    if request.content_length is not None and request.content_length > max_bytes:
        raise PayloadTooLarge(f"request body is over the limit of {max_bytes} bytes")
    try:
        data = request.get_data(cache=False)
    except RequestEntityTooLarge as exc:
        raise PayloadTooLarge(f"request body is over the limit of {max_bytes} bytes") from exc
    if len(data) > max_bytes:
        raise PayloadTooLarge(f"request body is over the limit of {max_bytes} bytes")
    if not data.strip():
        raise BadRequest("request body is empty; a JSON document is expected")
    try:
        value = orjson.loads(data)  # orjson itself refuses nesting deeper than 1024
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"body is not valid JSON: {exc}", code="structure") from exc
    if json_depth(value, max_depth) > max_depth:
        raise BadRequest(f"JSON nesting is deeper than the limit of {max_depth}", code="structure")
    return value
