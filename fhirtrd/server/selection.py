"""Which patients a sync run visits: --all, --patient, --group, --since."""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fhirtrd.fhir.inbound import RELEVANT
from fhirtrd.fhir.outbound import is_fhirtrd_output
from fhirtrd.server.client import FhirClient, ServerCapabilities
from fhirtrd.server.errors import ServerConfigError, UnexpectedResponse
from fhirtrd.server.state import fhir_instant

_PATIENT_REF = re.compile(r"(?:^|/)Patient/([A-Za-z0-9\-.]{1,64})(?:/_history/[^/]+)?$")
PAGE_SIZE = 500


@dataclass(frozen=True)
class Selection:
    """One way of choosing patients; ``key`` identifies it in the state file (resume only the same)."""

    mode: str  # all | patients | group | since
    patient_ids: tuple[str, ...] = ()
    group_id: str | None = None
    since: datetime | None = None

    @property
    def key(self) -> dict[str, Any]:
        if self.mode == "patients":
            return {"mode": "patients", "patients": sorted(self.patient_ids)}
        if self.mode == "group":
            return {"mode": "group", "group": self.group_id}
        if self.mode == "since":
            assert self.since is not None
            return {"mode": "since", "since": fhir_instant(self.since)}
        return {"mode": "all"}

    def describe(self) -> str:
        if self.mode == "patients":
            return f"{len(self.patient_ids)} patient(s) given"
        if self.mode == "group":
            return f"members of Group/{self.group_id}"
        if self.mode == "since":
            assert self.since is not None
            return f"patients with changes since {fhir_instant(self.since)}"
        return "every patient on the server"


def patient_id_of(reference: Any) -> str | None:
    """The id in a Patient reference (relative, absolute or versioned); None for anything else."""
    if not isinstance(reference, dict) or not isinstance(reference.get("reference"), str):
        return None
    match = _PATIENT_REF.search(reference["reference"])
    return match.group(1) if match else None


def _subject_ids(resource: dict[str, Any]) -> Iterator[str]:
    for element in ("subject", "patient"):
        pid = patient_id_of(resource.get(element))
        if pid:
            yield pid


def iter_patients(client: FhirClient, caps: ServerCapabilities, selection: Selection,
                  changed_types: Sequence[str] | None = None) -> Iterator[str]:
    """Patient ids in the selection, each once, in the order the server gives them."""
    seen: set[str] = set()
    for pid in _raw_ids(client, caps, selection, changed_types):
        if pid not in seen:
            seen.add(pid)
            yield pid


def _raw_ids(client: FhirClient, caps: ServerCapabilities, selection: Selection,
             changed_types: Sequence[str] | None) -> Iterator[str]:
    if selection.mode == "patients":
        yield from selection.patient_ids
    elif selection.mode == "all":
        for patient in client.search("Patient", [("_count", str(PAGE_SIZE)), ("_elements", "id")],
                                     kind="select", include_included=False):
            if patient.get("resourceType") == "Patient" and patient.get("id"):
                yield str(patient["id"])
    elif selection.mode == "group":
        group = client.get(f"Group/{selection.group_id}", kind="select")
        if group.get("resourceType") != "Group":
            raise UnexpectedResponse(f"Group/{selection.group_id} answered with a {group.get('resourceType')}",
                                     method="GET", url=client.url(f"Group/{selection.group_id}"), status=200)
        for member in group.get("member") or []:
            if member.get("inactive") is True:
                continue
            pid = patient_id_of(member.get("entity"))
            if pid:
                yield pid
    elif selection.mode == "since":
        assert selection.since is not None
        since = f"ge{fhir_instant(selection.since)}"
        types = changed_types if changed_types is not None else sorted(RELEVANT - {"Medication"})
        for rtype in types:
            if caps.search_params and rtype not in caps.search_params:
                continue
            params = [("_lastUpdated", since), ("_count", str(PAGE_SIZE))]
            if rtype != "Patient":
                params.append(("_elements", "subject,patient,meta"))
            else:
                params.append(("_elements", "id,meta"))
            for resource in client.search(rtype, params, kind="select", include_included=False):
                if is_fhirtrd_output(resource):
                    continue  # our own write-back is not a clinical change
                if resource.get("resourceType") == "Patient" and resource.get("id"):
                    yield str(resource["id"])
                else:
                    yield from _subject_ids(resource)
    else:
        raise ServerConfigError(f"unknown selection mode {selection.mode!r}")
