"""HealthChain's CDS client calling fhirtrd: run in HealthChain's own virtualenv by test_api_healthchain.py.

Usage: healthchain_driver.py BASE_URL PREFETCH_JSON PATIENT_ID. Prints one JSON object: the
discovery and the patient-view response as HealthChain's models parsed them (strictly: a response
its models reject is an error here, not the raw fallback its client keeps).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import httpx
from healthchain.models import CDSResponse, CDSServiceInformation
from healthchain.sandbox import SandboxClient
from healthchain.sandbox.requestconstructors import CdsRequestConstructor
from healthchain.sandbox.workflows import Workflow


def main(base: str, prefetch_path: str, patient_id: str) -> None:
    answer = httpx.get(f"{base}/cds-services", timeout=10)
    answer.raise_for_status()
    info = CDSServiceInformation.model_validate(answer.json())
    service = next(s for s in info.services if s.hook == Workflow.patient_view.value)
    client = SandboxClient(url=f"{base}/cds-services/{service.id}", workflow=Workflow.patient_view,
                           timeout=30)
    prefetch = json.loads(Path(prefetch_path).read_text())
    client.requests.append(CdsRequestConstructor().construct_request(
        prefetch, workflow=Workflow.patient_view, context={"patientId": patient_id, "userId": "Practitioner/example"}))
    [raw] = client.send_requests()
    parsed = CDSResponse.model_validate(raw)
    print(json.dumps({
        "services": [s.model_dump(mode="json", exclude_none=True) for s in info.services],
        "response": parsed.model_dump(mode="json", exclude_none=True),
    }))


if __name__ == "__main__":
    main(*sys.argv[1:4])
