"""The OpenAPI document tells the truth: schemathesis fuzzes every operation of the app in-process.

Every check schemathesis has runs on every example (no 5xx; status codes, content types, headers
and bodies as documented; valid data accepted, invalid data refused); the example count per
operation is bounded (`FHIRTRD_SCHEMATHESIS_EXAMPLES`, default 40) so CI stays fast. The patient
operation reads from a real FHIR server (sekmet), so its answers are real 200s and 404s.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from api_samples import AS_OF, EHR_FHIR, SERVICE_URL
from hypothesis import HealthCheck, given, settings
from schemathesis.config._checks import PositiveDataAcceptanceConfig
from schemathesis.generation import GenerationMode

from tests.sync.conftest import FhirServer, start_sekmet, stop_sekmet

EXAMPLES = int(os.environ.get("FHIRTRD_SCHEMATHESIS_EXAMPLES", "40"))

pytestmark = [pytest.mark.server, pytest.mark.slow]


@pytest.fixture(scope="module")
def sekmet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FhirServer]:
    server = start_sekmet(tmp_path_factory.mktemp("sekmet-schemathesis"))
    yield server
    stop_sekmet(server)


def test_every_operation_keeps_to_its_documentation(sekmet: FhirServer, tmp_path: Path) -> None:
    from fhirtrd.api import create_app

    app = create_app({"public_url": SERVICE_URL, "as_of": AS_OF, "fhir_server_allowlist": [EHR_FHIR],
                      "fhir_base_url": sekmet.base_url, "feedback_path": str(tmp_path / "feedback.sqlite"),
                      "log_level": "WARNING"})
    schema = schemathesis.openapi.from_wsgi("/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {f"{op.method.upper()} {op.path}" for op in operations} == {
        "POST /$classify", "POST /Patient/{patient_id}/$classify", "GET /healthz", "GET /readyz",
        "GET /cds-services", "POST /cds-services/fhirtrd-patient-view", "POST /cds-services/fhirtrd-order-select",
        "POST /cds-services/fhirtrd-order-sign", "POST /cds-services/{service_id}/feedback"}
    counts: dict[str, int] = {}
    statuses: dict[str, set[int]] = {}

    def fuzz(operation: Any, mode: GenerationMode) -> None:
        name = f"{operation.method.upper()} {operation.path} ({mode.value})"

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
                  suppress_health_check=list(HealthCheck))
        def run(case: Any) -> None:
            response = case.call_and_validate()
            counts[name] = counts.get(name, 0) + 1
            statuses.setdefault(name, set()).add(response.status_code)

        run()

    checks = schema.config.checks
    default = checks.positive_data_acceptance
    for operation in operations:
        # A schema-valid CDS call may leave prefetch out with no fhirServer to fetch from: CDS Hooks
        # 2.0 answers 412 then (HTTP Response), so 412 counts as accepting valid data there.
        cds_call = operation.path.startswith("/cds-services/fhirtrd-")
        checks.positive_data_acceptance = PositiveDataAcceptanceConfig(
            expected_statuses=[*default.expected_statuses, "412"]) if cds_call else default
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            if mode is GenerationMode.NEGATIVE and operation.method.upper() == "GET":
                continue  # no parameters and no body: nothing can be made invalid
            fuzz(operation, mode)
    checks.positive_data_acceptance = default
    print("schemathesis:", {n: (counts[n], sorted(statuses[n])) for n in sorted(counts)})
    assert all(code < 500 for codes in statuses.values() for code in codes)
    assert sum(counts.values()) >= len(operations) * 10
    assert {n.split(" (")[0] for n in counts} == {f"{op.method.upper()} {op.path}" for op in operations}
