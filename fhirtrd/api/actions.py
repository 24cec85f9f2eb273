"""CDS actions an EHR can apply as they stand: no `urn:uuid:` left in any action resource.

The write-back transaction links its resources by `urn:uuid:` fullUrls, which mean something only
inside that Bundle. An EHR applying one card's actions never receives the Bundle, so every such
reference is rewritten: to the target's business identifier (`Reference.identifier`, a logical
reference — FHIR R4 References, "identifier") when the target is a fhirtrd output, which it always
is (the Device, the trial Observations, the assessment Observation). The Patient and the input
resources are literal references the EHR already holds and are left as they are.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from fhirtrd.server.plan import PatientPlan

RECORDED_TYPES = ("Flag", "Observation")


def applicable(resource: Mapping[str, Any], by_full_url: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """A copy of `resource` whose `urn:uuid:` references are logical references (or removed)."""
    out = copy.deepcopy(dict(resource))
    out.pop("id", None)
    _rewrite(out, by_full_url)
    return out


def _rewrite(node: Any, by_full_url: Mapping[str, Mapping[str, Any]]) -> bool:
    """Rewrite in place; True when `node` is a Reference left saying nothing (to be removed)."""
    if isinstance(node, list):
        node[:] = [item for item in node if not _rewrite(item, by_full_url)]
        return False
    if not isinstance(node, dict):
        return False
    ref = node.get("reference")
    if isinstance(ref, str) and ref.startswith("urn:uuid:"):
        target = by_full_url.get(ref)
        del node["reference"]
        identifiers = target.get("identifier") if target is not None else None
        if target is not None and isinstance(identifiers, list) and identifiers:
            node["type"] = str(target["resourceType"])
            node["identifier"] = copy.deepcopy(identifiers[0])
        return not node
    for key in [k for k, v in node.items() if _rewrite(v, by_full_url)]:
        del node[key]
    return False


def _label(resource: Mapping[str, Any]) -> str:
    code = resource.get("code") or {}
    return str(code.get("text") or next(
        (c.get("display") for c in code.get("coding") or [] if c.get("display")), resource["resourceType"]))


def plan_actions(plan: PatientPlan, bundle: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The sync's plan as CDS actions: `create` for an absent output, `update` (with the server id
    read) for a changed one or a Flag that no longer applies, none for an unchanged one."""
    entries = [e for e in bundle.get("entry") or [] if isinstance(e, dict) and isinstance(e.get("resource"), dict)]
    by_full_url = {str(e["fullUrl"]): e["resource"] for e in entries if isinstance(e.get("fullUrl"), str)}
    out: list[dict[str, Any]] = []
    for action in plan.writes:
        assert action.resource is not None
        resource = applicable(action.resource, by_full_url)
        meta = resource.get("meta")
        if isinstance(meta, dict):  # the server's bookkeeping of the version read is not ours to send
            meta.pop("versionId", None)
            meta.pop("lastUpdated", None)
        verb = "create" if action.existing_id is None else "update"
        if action.existing_id is not None:
            resource["id"] = action.existing_id
        what = "Make inactive" if action.kind == "deactivate" else verb.capitalize()
        out.append({"type": verb, "description": f"{what} {action.resource_type}: {_label(resource)}",
                    "resource": resource})
    return out
