"""Checks every write-back test applies: two R4 validators, no empty values, allowed references."""

from __future__ import annotations

import copy
import importlib
from collections.abc import Iterator
from typing import Any

from fhir.resources.R4B import get_fhir_model_class

# FHIR R4 4.0.1, copied from the spec pages (not from the code under test): element → target types.
R4_TARGETS: dict[tuple[str, str], set[str]] = {
    ("Observation", "derivedFrom"): {"DocumentReference", "ImagingStudy", "Media",
                                     "QuestionnaireResponse", "Observation", "MolecularSequence"},
    ("Observation", "hasMember"): {"Observation", "QuestionnaireResponse", "MolecularSequence"},
    ("Observation", "device"): {"Device", "DeviceMetric"},
    ("Observation", "subject"): {"Patient", "Group", "Device", "Location"},
    ("Flag", "author"): {"Device", "Organization", "Patient", "Practitioner", "PractitionerRole"},
    ("Flag", "subject"): {"Patient", "Location", "Group", "Organization", "Practitioner",
                          "PlanDefinition", "Medication", "Procedure"},
    ("RiskAssessment", "performer"): {"Practitioner", "PractitionerRole", "Device"},
    ("RiskAssessment", "condition"): {"Condition"},
    ("RiskAssessment", "subject"): {"Patient", "Group"},
}
PROVENANCE_WHO = {"Practitioner", "PractitionerRole", "RelatedPerson", "Patient", "Device",
                  "Organization"}
TIMESTAMP = "<timestamp>"


def validate_r4b(resource: dict[str, Any]) -> None:
    get_fhir_model_class(resource["resourceType"]).model_validate(copy.deepcopy(resource))


def validate_fhirclient(resource: dict[str, Any]) -> None:
    rtype = resource["resourceType"]
    module = importlib.import_module(f"fhirclient.models.{rtype.lower()}")
    getattr(module, rtype)(copy.deepcopy(resource), strict=True)


def empties(value: Any, path: str = "$") -> Iterator[str]:
    """Paths of empty strings, empty lists, empty objects and nulls."""
    if value is None or value == "" or value == [] or value == {}:
        yield path
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from empties(v, f"{path}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from empties(v, f"{path}[{i}]")


def target_type(ref: str, full_urls: dict[str, str]) -> str:
    if ref.startswith("urn:uuid:"):
        assert ref in full_urls, f"{ref} does not resolve inside the bundle"
        return full_urls[ref]
    return ref.split("/")[-2] if "/_history/" not in ref else ref.split("/")[-4]


def check_bundle(bundle: dict[str, Any]) -> list[dict[str, Any]]:
    """Validate the bundle and every resource in it; return the resources."""
    assert list(empties(bundle)) == []
    validate_r4b(bundle)
    validate_fhirclient(bundle)
    entries = bundle.get("entry", [])
    full_urls = {e["fullUrl"]: e["resource"]["resourceType"] for e in entries}
    assert len(full_urls) == len(entries), "fullUrls repeat"
    for e in entries:
        r = e["resource"]
        validate_r4b(r)
        validate_fhirclient(r)
        rtype = r["resourceType"]
        for (owner, element), allowed in R4_TARGETS.items():
            if owner != rtype or element not in r:
                continue
            refs = r[element] if isinstance(r[element], list) else [r[element]]
            for ref in refs:
                assert target_type(ref["reference"], full_urls) in allowed, (rtype, element, ref)
        if rtype == "Flag":
            detail = [x for x in r["extension"]
                      if x["url"] == "http://hl7.org/fhir/StructureDefinition/flag-detail"]
            assert len(detail) == 1
            assert target_type(detail[0]["valueReference"]["reference"], full_urls) == "Observation"
        if rtype == "Provenance":
            for agent in r["agent"]:
                assert target_type(agent["who"]["reference"], full_urls) in PROVENANCE_WHO
            for t in r["target"]:
                assert t["reference"] in full_urls
    return [e["resource"] for e in entries]


def normalise(bundle: dict[str, Any]) -> dict[str, Any]:
    """The bundle with its documented timestamps replaced (Observation.issued, Provenance.recorded)."""
    out = copy.deepcopy(bundle)
    for e in out.get("entry", []):
        r = e["resource"]
        for name in ("issued", "recorded"):
            if name in r:
                r[name] = TIMESTAMP
    return out
