"""Every code the outputs use is defined in the published CodeSystem, and the terminology is current."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fhirout_checks import validate_fhirclient, validate_r4b
from fhirout_scenarios import ALL, contract

from fhirtrd.fhir.codesystem import concepts, generated_files
from fhirtrd.fhir.outbound import OutputSettings, build_transaction

REPO_ROOT = Path(__file__).resolve().parents[2]
FHIR_DIR = REPO_ROOT / "mappings" / "fhir"
FHIRTRD = "http://fhirtrd.org/fhir/CodeSystem/fhirtrd"
ISSUED = datetime(2024, 6, 1, tzinfo=UTC)


def published() -> dict[str, Any]:
    return dict(json.loads((FHIR_DIR / "CodeSystem-fhirtrd.json").read_text(encoding="utf-8")))


def codings(value: Any) -> Iterator[dict[str, Any]]:
    if isinstance(value, dict):
        if "system" in value and "code" in value:
            yield value
        for v in value.values():
            yield from codings(v)
    elif isinstance(value, list):
        for v in value:
            yield from codings(v)


def used_codes(settings: OutputSettings | None = None) -> list[dict[str, Any]]:
    system = (settings or OutputSettings()).codesystem
    out = []
    for name in ALL:
        bundle = build_transaction(contract(name), settings, issued=ISSUED)
        out += [c for c in codings(bundle) if c["system"] == system]
    return out


def test_every_fhirtrd_code_in_the_outputs_is_defined_with_its_display() -> None:
    table = concepts(published())
    used = used_codes()
    assert used
    for coding in used:
        concept = table.get(coding["code"])
        assert concept is not None, f"code {coding['code']!r} is not in CodeSystem-fhirtrd.json"
        assert not concept.abstract
        assert coding.get("display") == concept.display


def test_overridden_canonical_base_moves_every_code_system_reference() -> None:
    settings = OutputSettings(canonical_base="https://terminology.example.org/fhir")
    used = used_codes(settings)
    assert used
    bundle = build_transaction(contract("stage-ii-two-classes-failed"), settings, issued=ISSUED)
    assert "fhirtrd.org" not in json.dumps(bundle)


# The values of the contract (clinical-spec §9) that the outputs turn into codes, by group.
CONTRACT_VALUES = {
    "stages": {"0", "I", "II", "III", "IV", "V"},
    "statuses": {"confirmed", "provisional", "not-applicable"},
    "findings": {"inadequate-dose", "inadequate-duration", "nonadherence", "inadequate-psychotherapy",
                 "intolerance", "misdiagnosis-bipolar", "medical-thyroid", "medical-osa",
                 "substance-use", "dose-unknown", "inadequate-agent"},
    "strategies": {"reassess-diagnosis", "address-pseudo-resistance", "optimize-dose", "extend-trial",
                   "switch", "augment", "continue", "consider-advanced-options",
                   # emitted by the classifier beyond clinical-spec §6
                   "start-treatment", "gather-evidence"},
    "outcomes": {"remission", "response", "partial-response", "nonresponse", "unknown"},
    "caveats": {"adherence-unverified", "failure-inferred", "dose-unknown"},
    "inflammation-states": {"elevated", "not-elevated", "indeterminate", "unknown"},
    "subtypes": {"anxious", "anhedonic"},
    "advisories": {"goals-of-care"},
    "disorders": {"mdd", "sad"},
    "treatment-kinds": {"medication", "psychotherapy", "ect", "augmentation"},
    "adherence-states": {"ok", "poor", "unknown", "not-applicable"},
    "treatment-classes": {"SSRI", "SNRI", "TCA", "MAOI", "NDRI", "NaSSA", "SARI", "multimodal",
                          "psychotherapy", "ECT", "augmentation", "benzodiazepine",
                          "gabapentinoid", "beta-blocker"},
}


@pytest.mark.parametrize("group", sorted(CONTRACT_VALUES))
def test_every_contract_value_is_a_code_of_its_group(group: str) -> None:
    table = concepts(published())
    members = {c.code for c in table.values() if group in c.groups}
    assert CONTRACT_VALUES[group] <= members


def test_the_scenarios_exercise_every_stage_finding_strategy_and_outcome() -> None:
    used = {c["code"] for c in used_codes()}
    for group in ("stages", "findings", "strategies", "outcomes", "caveats", "inflammation-states",
                  "subtypes", "advisories", "statuses", "treatment-kinds", "adherence-states"):
        missing = CONTRACT_VALUES[group] - used
        assert not missing, f"{group}: no scenario writes {sorted(missing)}"


def test_scales_codesystem_has_the_spec_codes() -> None:
    scales = json.loads((FHIR_DIR / "CodeSystem-scales.json").read_text(encoding="utf-8"))
    assert scales["url"] == "http://fhirtrd.org/fhir/CodeSystem/scales"
    assert {c["code"] for c in scales["concept"]} == {
        "hamd17-total", "madrs-total", "qids-sr16-total", "lsas-total", "spin-total", "cgi-s", "cgi-i"}


@pytest.mark.parametrize("path", sorted(p.name for p in FHIR_DIR.glob("*.json")
                                        if p.name.startswith(("CodeSystem-", "ValueSet-"))))
def test_published_terminology_resources_validate(path: str) -> None:
    resource = json.loads((FHIR_DIR / path).read_text(encoding="utf-8"))
    validate_r4b(resource)
    validate_fhirclient(resource)


def test_value_sets_and_terminology_page_are_regenerated_from_the_codesystems() -> None:
    for path, text in generated_files(REPO_ROOT).items():
        assert path.exists(), f"{path} missing: run python -m fhirtrd.fhir.codesystem"
        assert path.read_text(encoding="utf-8") == text, (
            f"{path.relative_to(REPO_ROOT)} is stale: run python -m fhirtrd.fhir.codesystem")


def test_terminology_page_lists_every_code_with_its_definition() -> None:
    page = (REPO_ROOT / "docs" / "terminology.md").read_text(encoding="utf-8")
    for c in concepts(published()).values():
        if not c.abstract:
            assert f"| `{c.code}` | {c.display} |" in page
