"""The assessment JSON contract (clinical-spec §9) as marshmallow schemas, shared by every door.

`dump_results` turns domain results into the contract; the REST API documents its responses with
the same schemas. Fields beyond the minimum of §9 (findings with evidence, advisories, trial dose
detail, warnings) are additive: a consumer that knows only §9 reads the same values it expects.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from marshmallow import Schema, fields, validate

from fhirtrd.domain.model import PatientResult


TRIAL_KINDS = ("medication", "psychotherapy", "ect", "augmentation", "adjunct", "advanced")
CAVEATS = ("adherence-unverified", "failure-inferred", "dose-unknown", "window-assumed", "modality-unverified")
STRATEGIES = ("reassess-diagnosis", "address-pseudo-resistance", "optimize-dose", "extend-trial", "switch",
              "augment", "continue", "monitor", "start-treatment", "gather-evidence")
FINDINGS = ("inadequate-dose", "inadequate-duration", "nonadherence", "inadequate-psychotherapy", "intolerance",
            "inadequate-agent", "non-depressive-indication", "misdiagnosis-bipolar", "medical-thyroid", "medical-osa",
            "substance-use")


class _Strict(Schema):
    class Meta:
        ordered = True


class FindingSchema(_Strict):
    code = fields.String(required=True, validate=validate.OneOf(FINDINGS))
    evidence = fields.List(fields.String())
    detail = fields.String()


class NextStepSchema(_Strict):
    strategy = fields.String(required=True, validate=validate.OneOf(STRATEGIES))
    also = fields.List(fields.String())
    suggestions = fields.List(fields.String())
    reason = fields.String()


class MsmSchema(_Strict):
    total = fields.Integer(allow_none=True)
    band = fields.String(allow_none=True)
    reason = fields.String(allow_none=True)
    duration = fields.Integer(allow_none=True)
    severity = fields.Integer(allow_none=True)
    failures = fields.Integer(allow_none=True)
    augmentation = fields.Integer(allow_none=True)
    ect = fields.Integer(allow_none=True)


class LikelihoodSchema(_Strict):
    p_remission = fields.Float(required=True)
    p_burden = fields.Float()
    expected_utility = fields.Float()
    prior_failed_steps = fields.Integer()
    source = fields.String()


class DoseSegmentSchema(_Strict):
    start = fields.Date()
    end = fields.Date()
    daily_dose = fields.Float(allow_none=True)


class TrialSchema(_Strict):
    treatment = fields.String(required=True)
    kind = fields.String(required=True, validate=validate.OneOf(TRIAL_KINDS))
    treatment_class = fields.String(data_key="class")
    start = fields.Date()
    end = fields.Date()
    ongoing = fields.Boolean()
    adequate = fields.Boolean()
    findings = fields.List(fields.String())
    adherence = fields.String()
    pdc = fields.Float(allow_none=True)
    outcome = fields.String()
    change = fields.Float(allow_none=True)
    instrument = fields.String(allow_none=True)
    baseline = fields.Float(allow_none=True)
    endpoint = fields.Float(allow_none=True)
    failed = fields.Boolean()
    failure_inferred = fields.Boolean()
    episode = fields.String()
    daily_dose = fields.Float(allow_none=True)
    min_adequate_dose = fields.Float(allow_none=True)
    weeks_adequate = fields.Float()
    sessions = fields.Integer(allow_none=True)
    laterality = fields.String(allow_none=True)
    segments = fields.List(fields.Nested(DoseSegmentSchema))
    caveats = fields.List(fields.String(validate=validate.OneOf(CAVEATS)))
    evidence = fields.List(fields.String())


class DefinitionSchema(_Strict):
    id = fields.String(required=True)
    met = fields.Boolean(required=True)
    date_met = fields.Date(allow_none=True)
    value = fields.Float(allow_none=True)
    evidence = fields.List(fields.String())


class AssessmentSchema(_Strict):
    disorder = fields.String(required=True)
    diagnosis = fields.String(required=True)
    stage = fields.String(required=True)
    status = fields.String(required=True)
    treatment_resistant = fields.Boolean(required=True)
    failed_adequate_trials = fields.Integer(required=True)
    failed_classes = fields.List(fields.String())
    pseudo_resistance = fields.List(fields.String())
    findings = fields.List(fields.Nested(FindingSchema))
    caveats = fields.List(fields.String(validate=validate.OneOf(CAVEATS)))
    next_step = fields.Nested(NextStepSchema)
    inflammation = fields.String()
    inflammation_evidence = fields.List(fields.String())
    subtypes = fields.List(fields.String())
    msm = fields.Nested(MsmSchema, allow_none=True)
    next_step_likelihood = fields.Nested(LikelihoodSchema)
    advisories = fields.List(fields.String())
    episode_start = fields.Date(allow_none=True)
    diagnosis_evidence = fields.List(fields.String())
    score_evidence = fields.List(fields.String())
    evidence = fields.List(fields.String())
    trials = fields.List(fields.Nested(TrialSchema))
    definitions = fields.List(fields.Nested(DefinitionSchema))


class WarningSchema(_Strict):
    code = fields.String()
    message = fields.String(required=True)
    resource = fields.String(allow_none=True)
    element = fields.String(allow_none=True)
    source = fields.String(allow_none=True)


class PatientResultSchema(_Strict):
    patient = fields.String(required=True)
    as_of = fields.Date(required=True)
    assessments = fields.List(fields.Nested(AssessmentSchema))
    warnings = fields.List(fields.Nested(WarningSchema))


class ResultsSchema(_Strict):
    results = fields.List(fields.Nested(PatientResultSchema))
    warnings = fields.List(fields.Nested(WarningSchema))


_PATIENT = PatientResultSchema()


def dump_result(result: PatientResult) -> dict[str, Any]:
    """One patient's result as the contract's JSON object."""
    return dict(_PATIENT.dump(result))


def dump_results(results: Iterable[PatientResult]) -> list[dict[str, Any]]:
    return [dump_result(r) for r in results]
