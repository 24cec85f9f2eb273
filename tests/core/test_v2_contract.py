"""The v2 contract values are in the schemas, the CodeSystem and the docs (clinical-spec §9 v2)."""

from __future__ import annotations

import pytest
from marshmallow import ValidationError

from fhirtrd.fhir.codesystem import codes_in_group
from fhirtrd.schemas import CAVEATS, FINDINGS, STRATEGIES, TRIAL_KINDS, AssessmentSchema, TrialSchema

from .conftest import REPO_ROOT

V2 = {"treatment-kinds": {"adjunct", "advanced"}, "strategies": {"monitor"},
      "caveats": {"window-assumed", "modality-unverified"}, "findings": {"non-depressive-indication"}}


@pytest.mark.parametrize(("group", "values"), [("treatment-kinds", TRIAL_KINDS), ("caveats", CAVEATS),
                                               ("strategies", STRATEGIES), ("findings", FINDINGS)])
def test_every_schema_value_is_a_defined_code_with_a_source(group: str, values: tuple[str, ...]) -> None:
    defined = codes_in_group(group)
    assert set(values) <= set(defined) and V2[group] <= set(values)
    assert all(defined[v].definition and defined[v].source for v in values)


def test_the_schema_rejects_an_unknown_kind_and_accepts_the_v2_ones() -> None:
    base = {"treatment": "trazodone", "kind": "adjunct", "caveats": ["window-assumed"]}
    assert TrialSchema().validate(base) == {}
    assert "kind" in TrialSchema().validate({**base, "kind": "hypnotic"})
    with pytest.raises(ValidationError):
        AssessmentSchema().load({"disorder": "mdd", "diagnosis": "recorded", "stage": "0", "status": "confirmed",
                                 "treatment_resistant": False, "failed_adequate_trials": 0,
                                 "next_step": {"strategy": "wait-and-see"}})


def test_the_terminology_page_and_the_rules_document_name_every_v2_value() -> None:
    terminology = (REPO_ROOT / "docs" / "terminology.md").read_text(encoding="utf-8")
    rules = (REPO_ROOT / "docs" / "clinical-rules.md").read_text(encoding="utf-8")
    for value in set().union(*V2.values()):
        assert f"`{value}`" in terminology or value in terminology, value
        assert value in rules, value
