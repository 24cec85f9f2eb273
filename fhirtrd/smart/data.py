"""One patient's data read with the clinician's token, classified by the one service function."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

import requests

from fhirtrd.report.page import scales_from, scores_of
from fhirtrd.report.timeline import ScorePoint
from fhirtrd.schemas import dump_result
from fhirtrd.server.auth import BearerToken
from fhirtrd.server.client import FhirClient
from fhirtrd.server.fetch import fetch_patient
from fhirtrd.service import Run, classify_resources
from fhirtrd.terminology import Terminology


@dataclass(frozen=True)
class PatientView:
    result: dict[str, Any]  # the assessment JSON contract of the patient
    scores: list[ScorePoint]
    via: str


def allowed_server(base: str, allowlist: tuple[str, ...]) -> str | None:
    """`base` without a trailing slash when it is exactly one of the allowlisted servers, else None."""
    wanted = base.strip().rstrip("/")
    return wanted if wanted in {a.rstrip("/") for a in allowlist} else None


def fetch_and_classify(base: str, token: str, patient_id: str, terminology: Terminology, as_of: date,
                       *, session: requests.Session | None = None, timeout: float = 10.0) -> PatientView:
    """Read the patient from `base` with `token` (the sync's client: $everything or per-type searches,
    paged) and classify them. Server failures propagate as fhirtrd.server.errors.ServerError."""
    client = FhirClient(base, auth=BearerToken(token), session=session, timeout=(timeout, 60.0))
    record = fetch_patient(client, client.capabilities(), patient_id)
    run = Run(terminology, as_of)
    results = [r for r in classify_resources(record.resources, terminology, as_of, source=base, run=run)
               if r.patient == f"Patient/{patient_id}"]
    if results:
        result = dump_result(results[0])
    else:
        result = {"patient": f"Patient/{patient_id}", "as_of": as_of.isoformat(), "assessments": [], "warnings": []}
    return PatientView(result, scores_of(run, f"Patient/{patient_id}", scales_from(terminology.rules)), record.via)
