"""Sync planning: what to write for one patient, as plain data, before anything is sent.

Why it works this way (cosmicpython ``sync.py``: ``determine_actions`` apart from ``sync``):

- The desired outputs are what the write-back builder makes of the patient's assessment
  (``fhirtrd.fhir.outbound.build_transaction``); the existing ones were read from the server by
  their ``fhirtrd-output`` tag. Both are matched by the business identifier
  (system ``http://fhirtrd.org/fhir/identifier``, value ``<patient>/<disorder>/<kind>[/<key>]``).
- "Unchanged" is decided by the content-hash tag the builder puts on every output (sha256 of the
  content without timestamps and meta), never by sending the resource again: an unchanged
  assessment costs no write and makes no new version.
- A Flag that no longer applies is made inactive with ``period.end`` (the builder's
  ``plan_flag_deactivations``), never deleted, so the chart keeps its history.
- Two outputs on the server with one identifier are a conflict that a person must resolve; the
  plan refuses to guess which one is right.

``to_transaction`` turns a plan into one transaction Bundle (all or nothing per patient). Writes
are optimistic, so two syncs of the same patient at once never both write (issue 9 item 7):

- an update is a PUT by the id read, with ``ifMatch`` on the version read: if another writer got
  there first, the server answers 412 and the whole transaction is refused; the sync then reads
  and plans again, finds the outputs current, and writes nothing;
- a create is a POST with ``ifNoneExist`` on the identifier where the server supports conditional
  create (a writer that comes second finds the output and makes no new version), else a
  conditional update on the identifier, else a plain POST as the last resort.

A lock inside one process would not help: the racing syncs are separate processes, often on
separate machines, and the server is the only place they meet.
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from fhirtrd.server.client import ServerCapabilities
from fhirtrd.server.errors import OutputConflict, ServerError

IDENTIFIER_SYSTEM = "http://fhirtrd.org/fhir/identifier"
HASH_SYSTEM = "http://fhirtrd.org/fhir/CodeSystem/content-hash"

CREATE, UPDATE, DEACTIVATE, UNCHANGED = "create", "update", "deactivate", "unchanged"
KINDS = (CREATE, UPDATE, DEACTIVATE, UNCHANGED)


@dataclass(frozen=True)
class Action:
    """One output and what happens to it."""

    kind: str  # create | update | deactivate | unchanged
    resource_type: str
    identifier: str  # the business identifier value
    existing_id: str | None  # id on the server, when the output exists there
    resource: Mapping[str, Any] | None  # what to send; None when unchanged
    full_url: str
    version: str | None = None  # meta.versionId of the existing output as read (for If-Match)

    @property
    def label(self) -> str:
        where = f"{self.resource_type}/{self.existing_id}" if self.existing_id else f"new {self.resource_type}"
        return f"{self.kind:<10} {where:<48} {self.identifier}"


@dataclass(frozen=True)
class PatientPlan:
    """The outputs of one patient and what happens to each; ``companions`` are the builder's shared
    entries (the fhirtrd Device, the Provenance) that go along only when something is written."""

    patient_id: str
    actions: tuple[Action, ...]
    companions: tuple[Mapping[str, Any], ...] = ()
    dropped: tuple[str, ...] = ()  # fullUrls of outputs left out (types the server cannot search)

    @property
    def writes(self) -> tuple[Action, ...]:
        return tuple(a for a in self.actions if a.kind != UNCHANGED)

    def counts(self) -> dict[str, int]:
        return {kind: sum(1 for a in self.actions if a.kind == kind) for kind in KINDS}

    def describe(self) -> list[str]:
        """Lines for --dry-run."""
        if not self.actions:
            return [f"Patient/{self.patient_id}: no outputs"]
        return [f"Patient/{self.patient_id}: {a.label}" for a in self.actions]

    def as_json(self) -> list[dict[str, Any]]:
        return [
            {"action": a.kind, "resourceType": a.resource_type, "identifier": a.identifier,
             "id": a.existing_id}
            for a in self.actions
        ]


@dataclass(frozen=True)
class Conventions:
    """The systems the write-back uses (fhirtrd.fhir.outbound.OutputSettings carries the same)."""

    identifier_system: str = IDENTIFIER_SYSTEM
    content_hash_system: str = HASH_SYSTEM


def business_identifier(resource: Mapping[str, Any], system: str = IDENTIFIER_SYSTEM) -> str | None:
    for ident in resource.get("identifier") or []:
        if isinstance(ident, dict) and ident.get("system") == system and ident.get("value"):
            return str(ident["value"])
    return None


def content_hash(resource: Mapping[str, Any], system: str = HASH_SYSTEM) -> str | None:
    """The resource's content-hash tag; None when it has none, or several.

    FHIR lets a server carry the tags of earlier versions forward on update (HAPI FHIR does,
    unless the writer sends X-Meta-Snapshot-Mode: TAG, as fhirtrd does): an output updated so
    holds several hash tags, in no telling order, and which one is current cannot be known; it is
    then treated as changed and written again (with one tag), never wrongly as unchanged.
    """
    codes = {str(tag["code"]) for tag in (resource.get("meta") or {}).get("tag") or []
             if isinstance(tag, dict) and tag.get("system") == system and tag.get("code")}
    return next(iter(codes)) if len(codes) == 1 else None


def _version(resource: Mapping[str, Any]) -> str | None:
    version = (resource.get("meta") or {}).get("versionId")
    return str(version) if isinstance(version, (str, int)) and str(version) else None


def _full_url(entry: Mapping[str, Any], resource_type: str, identifier: str) -> str:
    given = entry.get("fullUrl")
    if isinstance(given, str) and given:
        return given
    return f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, f'{IDENTIFIER_SYSTEM}|{resource_type}|{identifier}')}"


def _index_existing(
    patient_id: str, existing: Sequence[Mapping[str, Any]], conv: Conventions
) -> dict[tuple[str, str], Mapping[str, Any]]:
    by_key: dict[tuple[str, str], list[Mapping[str, Any]]] = {}
    for resource in existing:
        ident = business_identifier(resource, conv.identifier_system)
        if ident is None:
            continue  # tagged but without our identifier: not ours to manage
        by_key.setdefault((str(resource.get("resourceType")), ident), []).append(resource)
    for (rtype, ident), found in by_key.items():
        if len(found) > 1:
            raise OutputConflict(patient_id, ident, sorted(f"{rtype}/{r.get('id')}" for r in found))
    return {key: found[0] for key, found in by_key.items()}


def plan_patient(
    patient_id: str,
    desired: Mapping[str, Any],
    existing: Sequence[Mapping[str, Any]],
    deactivated_flags: Sequence[Mapping[str, Any]] = (),
    conventions: Conventions = Conventions(),
    skip_types: frozenset[str] = frozenset(),
) -> PatientPlan:
    """Compare the desired transaction Bundle with the outputs on the server. Pure.

    Entries whose identifier belongs to the patient (``<patient id>/...``) are matched with the
    server; the others (the shared Device, the Provenance) become companions. Outputs of
    ``skip_types`` (types the server cannot find again by patient, so writing them would add a
    copy on every run) are dropped, and references to them removed from the companions.
    """
    conv = conventions
    prefix = f"{patient_id}/"
    current = _index_existing(
        patient_id, [r for r in existing if (business_identifier(r, conv.identifier_system) or "").startswith(prefix)],
        conv)
    actions: list[Action] = []
    companions: list[Mapping[str, Any]] = []
    dropped: list[str] = []
    wanted: set[tuple[str, str]] = set()
    for entry in desired.get("entry") or []:
        resource = entry.get("resource")
        if not isinstance(resource, dict):
            continue
        rtype = str(resource.get("resourceType"))
        ident = business_identifier(resource, conv.identifier_system)
        if ident is None or not ident.startswith(prefix):
            companions.append(entry)
            continue
        if rtype in skip_types:
            dropped.append(_full_url(entry, rtype, ident))
            continue
        key = (rtype, ident)
        if key in wanted:
            raise ServerError(f"Patient/{patient_id}: the write-back produced two {rtype} with identifier {ident!r}")
        wanted.add(key)
        full_url = _full_url(entry, rtype, ident)
        old = current.get(key)
        old_hash = content_hash(old, conv.content_hash_system) if old is not None else None
        if old is None:
            actions.append(Action(CREATE, rtype, ident, None, resource, full_url))
        elif old_hash is not None and old_hash == content_hash(resource, conv.content_hash_system):
            actions.append(Action(UNCHANGED, rtype, ident, str(old.get("id")), None, full_url, _version(old)))
        else:
            actions.append(Action(UPDATE, rtype, ident, str(old.get("id")), resource, full_url, _version(old)))
    for flag in deactivated_flags:
        ident = business_identifier(flag, conv.identifier_system)
        if ident is None or ("Flag", ident) in wanted:
            continue
        old = current.get(("Flag", ident))
        if old is None or old.get("status") != "active":
            continue  # already inactive (or gone): nothing to do
        full_url = _full_url({}, "Flag", ident)
        actions.append(Action(DEACTIVATE, "Flag", ident, str(old.get("id")), flag, full_url, _version(old)))
    return PatientPlan(patient_id, tuple(actions), tuple(companions), tuple(dropped))


def _walk_references(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        if isinstance(node.get("reference"), str):
            yield node
        for value in node.values():
            yield from _walk_references(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk_references(value)


def _drop_references(node: Any, dropped: frozenset[str]) -> None:
    """Remove list items that are references to dropped outputs (e.g. Provenance.target)."""
    if not dropped:
        return
    if isinstance(node, dict):
        for value in node.values():
            _drop_references(value, dropped)
    elif isinstance(node, list):
        node[:] = [item for item in node
                   if not (isinstance(item, dict) and item.get("reference") in dropped)]
        for item in node:
            _drop_references(item, dropped)


def _identifier_query(action: Action, system: str) -> str:
    return "identifier=" + quote(f"{system}|{action.identifier}", safe=":/|")


def to_transaction(
    plan: PatientPlan, caps: ServerCapabilities, conventions: Conventions = Conventions()
) -> dict[str, Any] | None:
    """One transaction Bundle with every write of the plan; None when there is nothing to write."""
    writes = plan.writes
    if not writes:
        return None
    # outputs left out (unchanged) are referred to by their server id instead of their fullUrl
    resolved = {a.full_url: f"{a.resource_type}/{a.existing_id}" for a in plan.actions
                if a.kind == UNCHANGED and a.existing_id}
    entries: list[dict[str, Any]] = []
    for companion in plan.companions:
        entry = copy.deepcopy(dict(companion))
        _drop_references(entry.get("resource"), frozenset(plan.dropped))
        for ref in _walk_references(entry.get("resource")):
            if ref["reference"] in resolved:
                ref["reference"] = resolved[ref["reference"]]
        entries.append(entry)
    for action in writes:
        assert action.resource is not None
        resource = copy.deepcopy(dict(action.resource))
        for ref in _walk_references(resource):
            if ref["reference"] in resolved:
                ref["reference"] = resolved[ref["reference"]]
        if action.existing_id:
            resource["id"] = action.existing_id
        else:
            resource.pop("id", None)
        rtype = action.resource_type
        request: dict[str, str]
        query = _identifier_query(action, conventions.identifier_system)
        if action.existing_id and action.version:
            request = {"method": "PUT", "url": f"{rtype}/{action.existing_id}", "ifMatch": f'W/"{action.version}"'}
        elif action.existing_id and rtype not in caps.conditional_update:
            request = {"method": "PUT", "url": f"{rtype}/{action.existing_id}"}
        elif not action.existing_id and rtype in caps.conditional_create:
            request = {"method": "POST", "url": rtype, "ifNoneExist": query}
        elif rtype in caps.conditional_update:
            request = {"method": "PUT", "url": f"{rtype}?{query}"}
        else:
            request = {"method": "POST", "url": rtype}
        entries.append({"fullUrl": action.full_url, "resource": resource, "request": request})
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}
