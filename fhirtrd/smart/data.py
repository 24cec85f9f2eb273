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
from fhirtrd.server.errors import UnexpectedResponse
from fhirtrd.server.fetch import fetch_patient
from fhirtrd.service import Run, classify_resources
from fhirtrd.terminology import Terminology


class SameServerSession(requests.Session):
    """Sends only to `base` and below, never redirected: the user's token never follows a `next` link
    (or a redirect) off the server it was issued for."""

    def __init__(self, base: str) -> None:
        super().__init__()
        self.base = base.rstrip("/")

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> requests.Response:
        text = url.decode() if isinstance(url, bytes) else url
        if text != self.base and not text.startswith(self.base + "/"):
            raise UnexpectedResponse(f"{text} is not on {self.base}: not followed with the user's token",
                                     method=str(method), url=text, status=200)
        kwargs["allow_redirects"] = False
        return super().request(method, url, *args, **kwargs)


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
                       *, timeout: float = 10.0) -> PatientView:
    """Read the patient from `base` with `token` (the sync's client: $everything or per-type searches,
    paged on that server only) and classify them. Server failures propagate as ServerError."""
    client = FhirClient(base, auth=BearerToken(token), session=SameServerSession(base), timeout=(timeout, 60.0))
    record = fetch_patient(client, client.capabilities(), patient_id)
    run = Run(terminology, as_of)
    results = [r for r in classify_resources(record.resources, terminology, as_of, source=base, run=run)
               if r.patient == f"Patient/{patient_id}"]
    if results:
        result = dump_result(results[0])
    else:
        result = {"patient": f"Patient/{patient_id}", "as_of": as_of.isoformat(), "assessments": [], "warnings": []}
    return PatientView(result, scores_of(run, f"Patient/{patient_id}", scales_from(terminology.rules)), record.via)
