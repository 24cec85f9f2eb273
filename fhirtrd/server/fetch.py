"""Reading one patient's record, and the fhirtrd outputs already written for them, from the server."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from fhirtrd.fhir.inbound import RELEVANT
from fhirtrd.fhir.outbound import OutputSettings, is_fhirtrd_output
from fhirtrd.server.client import FhirClient, ServerCapabilities, bundle_resources
from fhirtrd.server.errors import ResponseError, UnexpectedResponse, response_error

#: patient resources fhirtrd writes back (fhirtrd.fhir.outbound): assessments, flags, likelihood
OUTPUT_TYPES: tuple[str, ...] = ("Observation", "Flag", "RiskAssessment")
PAGE_SIZE = 200
#: the classifier's input types (fhirtrd.fhir.inbound.RELEVANT) that are searched per patient;
#: Patient is read directly and Medication comes in through _include of the medication requests
SEARCHED_TYPES: tuple[str, ...] = tuple(sorted(RELEVANT - {"Patient", "Medication"}))
MEDICATION_REFERENCING = ("MedicationRequest", "MedicationStatement", "MedicationDispense",
                          "MedicationAdministration")


@dataclass(frozen=True)
class PatientRecord:
    """What the server holds for one patient: input resources and fhirtrd's earlier outputs."""

    patient_id: str
    resources: tuple[dict[str, Any], ...]
    via: str  # "$everything" or "search"


OUTPUT_TAG_CODE = "fhirtrd-output"


def output_tag_param(system: str = OutputSettings().codesystem) -> str:
    """The _tag search value of fhirtrd's outputs (system|code)."""
    return f"{system}|{OUTPUT_TAG_CODE}"


def _patient_param(caps: ServerCapabilities, resource_type: str, patient_id: str) -> tuple[str, str] | None:
    """The search parameter that finds a type's resources of one patient; None if the server has none."""
    if not caps.search_params or caps.supports_search_param(resource_type, "patient"):
        return ("patient", f"Patient/{patient_id}")
    if caps.supports_search_param(resource_type, "subject"):
        return ("subject", f"Patient/{patient_id}")
    return None


def searchable_by_patient(caps: ServerCapabilities, resource_type: str) -> bool:
    return _patient_param(caps, resource_type, "x") is not None


def fetch_patient(
    client: FhirClient,
    caps: ServerCapabilities,
    patient_id: str,
    *,
    use_everything: bool = True,
    types: Sequence[str] = SEARCHED_TYPES,
    page_size: int = PAGE_SIZE,
) -> PatientRecord:
    """The patient's resources the classifier reads (fhirtrd's own outputs left out).

    Patient/{id}/$everything (paged) when the server lists the operation; otherwise a read of the
    Patient plus one paged search per classifier type (patient=, _count).
    """
    if use_everything and caps.supports_operation("Patient", "everything"):
        resources = [
            r
            for page in client.pages(f"Patient/{patient_id}/$everything", [("_count", str(page_size))],
                                     kind="everything")
            for r in bundle_resources(page)
        ]
        return PatientRecord(patient_id, tuple(r for r in resources if not is_fhirtrd_output(r)), "$everything")
    found: list[dict[str, Any]] = [client.read("Patient", patient_id)]
    known = set(caps.search_params)
    for rtype in types:
        by_patient = _patient_param(caps, rtype, patient_id)
        if (known and rtype not in known) or by_patient is None:
            continue  # the server does not hold this type, or cannot search it by patient
        params = [by_patient, ("_count", str(page_size))]
        if rtype in MEDICATION_REFERENCING and caps.supports_search_param(rtype, "medication"):
            params.append(("_include", f"{rtype}:medication"))
        found.extend(r for r in client.search(rtype, params, kind="search") if not is_fhirtrd_output(r))
    return PatientRecord(patient_id, tuple(found), "search")


def _output_queries(
    caps: ServerCapabilities, patient_id: str, types: Iterable[str], tag_system: str
) -> list[tuple[str, list[tuple[str, str]]]]:
    queries: list[tuple[str, list[tuple[str, str]]]] = []
    for rtype in types:
        by_patient = _patient_param(caps, rtype, patient_id)
        if by_patient is not None:
            queries.append((rtype, [by_patient, ("_tag", output_tag_param(tag_system)), ("_count", "100")]))
    return queries


def read_outputs(
    client: FhirClient,
    caps: ServerCapabilities,
    patient_id: str,
    types: Sequence[str] = OUTPUT_TYPES,
    tag_system: str = OutputSettings().codesystem,
    use_batch: bool = True,
) -> list[dict[str, Any]]:
    """fhirtrd outputs already on the server for the patient (by meta.tag), in one round trip when
    the server takes batches (one GET search per type inside the batch), else one search per type.
    Types the server cannot search by patient are not read (the sync does not write them either).
    ``use_batch=False`` keeps to GET (a dry run sends no POST, so read-only scopes suffice)."""
    queries = _output_queries(caps, patient_id, types, tag_system)
    if not queries:
        return []
    if not (caps.batch and use_batch):
        found: list[dict[str, Any]] = []
        for rtype, params in queries:
            found.extend(r for r in client.search(rtype, params, kind="outputs") if is_fhirtrd_output(r))
        return found
    from urllib.parse import urlencode

    batch = {
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [{"request": {"method": "GET", "url": f"{rtype}?{urlencode(params)}"}} for rtype, params in queries],
    }
    response = client.transaction(batch, kind="outputs")
    out: list[dict[str, Any]] = []
    entries = response.get("entry") or []
    if len(entries) != len(queries):
        raise UnexpectedResponse(
            f"the batch answer has {len(entries)} entries for {len(queries)} searches",
            method="POST", url=client.base_url, status=200,
        )
    for (rtype, params), entry in zip(queries, entries, strict=True):
        status = str((entry.get("response") or {}).get("status", "200")).split()[0]
        if not status.isdigit() or int(status) >= 400:
            raise _entry_error(client, rtype, params, status, entry)
        page = entry.get("resource")
        for bundle in client.pages(rtype, params, kind="outputs", first_page=page):
            out.extend(r for r in bundle_resources(bundle) if is_fhirtrd_output(r))
    return out


def _entry_error(
    client: FhirClient, rtype: str, params: list[tuple[str, str]], status: str, entry: dict[str, Any]
) -> ResponseError:
    from urllib.parse import urlencode

    code = int(status) if status.isdigit() else 500
    return response_error(
        method="GET",
        url=f"{client.base_url}/{rtype}?{urlencode(params)}",
        status=code,
        outcome=(entry.get("response") or {}).get("outcome"),
    )
