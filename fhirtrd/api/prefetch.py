"""CDS Hooks prefetch: the templates we ask for, and the data of a call (prefetched or fetched).

A template key the client left out is fetched from the request's `fhirServer` with its
`fhirAuthorization` token, only if that server is on the configured allowlist; a key whose value
is null means "no data" (CDS Hooks 2.0, Prefetch). Data we cannot obtain is a 412.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from fhirtrd.api.errors import BadRequest, HttpError, NotFound, PreconditionFailed
from fhirtrd.api.fhirfetch import FhirFetcher, normalize_base
from fhirtrd.terminology import LAB_CONCEPTS, Terminology

FHIR_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")
_PATIENT_REF = re.compile(r"(?:(?P<base>https?://\S+?)/)?Patient/(?P<id>[A-Za-z0-9\-.]{1,64})(?:/_history/\S+)?")
_TOKEN = re.compile(r"\{\{\s*context\.([A-Za-z0-9_]+)\s*\}\}")


def prefetch_templates(terminology: Terminology) -> dict[str, str]:
    """The prefetch templates of our services; Observation codes come from the mappings."""
    scores = sorted(k for k, v in terminology.observations.items() if v.concept not in LAB_CONCEPTS)
    labs = sorted(k for k, v in terminology.observations.items() if v.concept in LAB_CONCEPTS)
    patient = "{{context.patientId}}"

    def codes(pairs: list[tuple[str, str]]) -> str:
        return ",".join(f"{system}|{code}" for system, code in pairs)

    return {
        "patient": f"Patient/{patient}",
        "conditions": f"Condition?patient={patient}",
        "medicationRequests": f"MedicationRequest?patient={patient}",
        "medicationStatements": f"MedicationStatement?patient={patient}",
        "medicationDispenses": f"MedicationDispense?patient={patient}",
        "scores": f"Observation?patient={patient}&code={codes(scores)}",
        "labs": f"Observation?patient={patient}&code={codes(labs)}",
        "procedures": f"Procedure?patient={patient}",
        "intolerances": f"AllergyIntolerance?patient={patient}",
    }


#: the fhirtrd outputs a patient-view with systemActions reads back (fhirtrd.api.actions.RECORDED_TYPES)
OUTPUT_KEYS = {"fhirtrdObservations": "Observation", "fhirtrdFlags": "Flag"}


def output_templates(tag: str) -> dict[str, str]:
    """Templates reading fhirtrd's own current outputs of the patient by their `_tag` (system|code)."""
    return {key: f"{rtype}?patient={{{{context.patientId}}}}&_tag={tag}" for key, rtype in OUTPUT_KEYS.items()}


def render(template: str, context: Mapping[str, Any]) -> str:
    """A template with its {{context.x}} tokens filled from primitive context fields."""

    def value(match: re.Match[str]) -> str:
        field = match.group(1)
        v = context.get(field)
        if not isinstance(v, (str, int)) or isinstance(v, bool) or not FHIR_ID.fullmatch(str(v)) \
                or str(v).strip(".") == "":
            raise BadRequest(
                f"context.{field} is needed for prefetch and must be a FHIR id",
                expression=f"context.{field}",
            )
        return str(v)

    return _TOKEN.sub(value, template)


def patient_of(resource: Mapping[str, Any], server: str | None) -> str | None:
    """Which patient a resource is about, as "<base>|<id>"-free text for messages; None = unknown.

    A Patient is itself; another resource is its `subject` or `patient` reference when that is
    `Patient/<id>` or `<base>/Patient/<id>`. An absolute reference to another base than `server`
    (the call's fhirServer) is kept whole, so it never equals a local id.
    """
    if resource.get("resourceType") == "Patient":
        rid = resource.get("id")
        return rid if isinstance(rid, str) else None
    for element in ("subject", "patient"):
        ref = resource.get(element)
        text = ref.get("reference") if isinstance(ref, dict) else None
        if not isinstance(text, str):
            continue
        match = _PATIENT_REF.fullmatch(text)
        if match is None:
            return None if text.startswith(("urn:", "#")) or "/Patient/" not in f"/{text}" else text
        base = match.group("base")
        if base is not None and server is not None and normalize_base(base) != normalize_base(server):
            return text
        return match.group("id")
    return None


def check_patient(named: list[tuple[str, dict[str, Any]]], patient_id: str,
                  server: str | None) -> None:
    """400 naming the first resource that is about another patient than `context.patientId`.

    400 rather than 412: the data was obtained, but the request contradicts its own context, and
    sending it again cannot help. The whole call is refused, so nothing of two patients is mixed.
    """
    for where, resource in named:
        other = patient_of(resource, server)
        if other is not None and other != patient_id:
            raise BadRequest(
                f"{where} ({resource.get('resourceType')}) is about {other!r}, not "
                f"context.patientId {patient_id!r}; nothing was assessed", expression=where)


def _named(key: str, value: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    if value.get("resourceType") != "Bundle":
        return [(f"prefetch.{key}", value)]
    entries = value.get("entry") or []
    return [(f"prefetch.{key}.entry[{i}].resource", e["resource"]) for i, e in enumerate(entries)
            if isinstance(e, dict) and isinstance(e.get("resource"), dict)]


def resources_of(value: dict[str, Any]) -> list[dict[str, Any]]:
    """The resources of one prefetch value: a Bundle's entries, or the resource itself."""
    if value.get("resourceType") == "Bundle":
        return [
            e["resource"]
            for e in value.get("entry") or []
            if isinstance(e, dict) and isinstance(e.get("resource"), dict)
        ]
    return [value]


def gather(
    body: Mapping[str, Any],
    templates: Mapping[str, str],
    *,
    allowlist: tuple[str, ...],
    fetcher_for: Callable[[str, str | None], FhirFetcher],
    not_obtained: list[str] | None = None,
    optional: frozenset[str] = frozenset(),
) -> list[dict[str, Any]]:
    """Every resource the call's prefetch holds, fetching missing keys from an allowed fhirServer.

    A prefetch Bundle with a `next` link is completed by fetching its further pages from the
    call's fhirServer (allowlisted; pages on that server only). When they cannot be fetched, the
    rest is still assessed and `not_obtained` receives a sentence naming what is missing. A missing
    key of `optional` is fetched only when the call names a fhirServer, and is otherwise done without.
    """
    context = body["context"]
    prefetch = body.get("prefetch")
    if prefetch is None:
        prefetch = {}
    if not isinstance(prefetch, dict):
        raise BadRequest("prefetch must be an object", expression="prefetch")
    resources: list[dict[str, Any]] = []
    missing: list[tuple[str, str]] = []
    pages: list[tuple[str, str]] = []  # (key, next link) of prefetch Bundles with more pages
    server = body.get("fhirServer") if isinstance(body.get("fhirServer"), str) else None
    for key, template in templates.items():
        if key not in prefetch:
            missing.append((key, render(template, context)))
            continue
        value = prefetch[key]
        if value is None:
            continue  # the client has no data for this key
        if not isinstance(value, dict) or not isinstance(value.get("resourceType"), str):
            raise BadRequest(
                f"prefetch.{key} must be a FHIR resource or Bundle", expression=f"prefetch.{key}"
            )
        if value["resourceType"] == "OperationOutcome":
            missing.append((key, render(template, context)))  # the client's own fetch failed
            continue
        named = _named(key, value)
        check_patient(named, context["patientId"], server)
        resources.extend(r for _, r in named)
        more = _next_link(value) if value["resourceType"] == "Bundle" else None
        if more is not None:
            pages.append((key, more))
    if server is None:
        missing = [(k, q) for k, q in missing if k not in optional]
    if missing:
        fetcher = _fetcher(body, allowlist, fetcher_for, [k for k, _ in missing])
        for key, query in missing:
            try:
                fetched = fetcher.search(query) if "?" in query else [fetcher.get(query)]
            except NotFound as exc:
                raise PreconditionFailed(
                    f"prefetch {key}: {query} was not found on the FHIR server"
                ) from exc
            except HttpError as exc:
                raise PreconditionFailed(f"prefetch {key}: {exc.message}") from exc
            for i, resource in enumerate(fetched):
                other = patient_of(resource, server)
                if other is not None and other != context["patientId"]:
                    raise PreconditionFailed(
                        f"prefetch {key}: the FHIR server answered resource {i} about another "
                        f"patient ({other!r}); nothing was assessed")
            resources.extend(fetched)
    for key, url in pages:
        try:
            fetcher = _fetcher(body, allowlist, fetcher_for, [key])
            fetched = fetcher.continue_search(url)
        except HttpError as exc:
            if not_obtained is not None:
                not_obtained.append(f"prefetch {key}: the pages after the first could not be fetched "
                                    f"({exc.message})")
            continue
        check_patient([(f"prefetch.{key} (page {i + 2})", r) for i, r in enumerate(fetched)],
                      context["patientId"], server)
        resources.extend(fetched)
    return resources


def _next_link(bundle: Mapping[str, Any]) -> str | None:
    for link in bundle.get("link") or []:
        if isinstance(link, dict) and link.get("relation") == "next" and isinstance(link.get("url"), str):
            return str(link["url"])
    return None


def _fetcher(
    body: Mapping[str, Any],
    allowlist: tuple[str, ...],
    fetcher_for: Callable[[str, str | None], FhirFetcher],
    keys: list[str],
) -> FhirFetcher:
    server = body.get("fhirServer")
    what = ", ".join(keys)
    if not isinstance(server, str) or not server:
        raise PreconditionFailed(f"prefetch {what} missing and the request names no fhirServer")
    allowed = {normalize_base(u) for u in allowlist}
    if normalize_base(server) not in allowed:
        raise PreconditionFailed(
            f"prefetch {what} missing and fhirServer {server} is not on the allowlist"
        )
    auth = body.get("fhirAuthorization")
    token: str | None = None
    if auth is not None:
        if not isinstance(auth, dict) or not isinstance(auth.get("access_token"), str):
            raise BadRequest(
                "fhirAuthorization must be an object with access_token",
                expression="fhirAuthorization",
            )
        token = auth["access_token"]
    return fetcher_for(server, token)
