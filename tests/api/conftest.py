"""Fixtures of the HTTP door's tests: apps with and without auth, signed JWTs, fake FHIR servers."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import responses

sys.path.insert(0, str(Path(__file__).resolve().parent))

from api_samples import AS_OF, EHR_FHIR, EHR_ISSUER, SERVICE_URL, Signer


@pytest.fixture(scope="session")
def signer() -> Signer:
    return Signer("RS384")


@pytest.fixture
def fake_http() -> Iterator[responses.RequestsMock]:
    """Every outgoing HTTP request is answered by registered fakes; an unexpected one fails."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


@pytest.fixture(scope="session")
def make_app(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Any]:
    from fhirtrd.api import create_app

    feedback = tmp_path_factory.mktemp("feedback") / "feedback.sqlite"

    def make(**settings: Any) -> Any:
        config: dict[str, Any] = {"public_url": SERVICE_URL, "as_of": AS_OF,
                                  "fhir_server_allowlist": [EHR_FHIR],
                                  "feedback_path": str(feedback)}
        config.update(settings)
        return create_app(config)

    return make


@pytest.fixture(scope="session")
def open_app(make_app: Callable[..., Any]) -> Any:
    """Auth switched off (local development)."""
    return make_app()


@pytest.fixture(scope="session")
def secured_app(make_app: Callable[..., Any], signer: Signer) -> Any:
    """Auth on: CDS clients by JWT from the trusted EHR, REST by API key or JWT."""
    return make_app(
        cds_auth=True, rest_auth=True, api_keys=["test-api-key"],
        trusted_issuers=[{"issuer": EHR_ISSUER, "jwks": signer.jwks}],
    )
