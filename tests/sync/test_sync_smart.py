"""SMART Backend Services end to end against the real server: tokens, renewal, scopes."""

from __future__ import annotations

import time
from datetime import date

import pytest

from fhirtrd.server.auth import SmartBackendAuth, load_signing_key
from fhirtrd.server.client import FhirClient, RetryPolicy
from fhirtrd.server.errors import AuthError
from fhirtrd.server.selection import Selection
from fhirtrd.server.sync import SyncConfig, run_sync
from fhirtrd.terminology import load_terminology

from .conftest import SmartSetup
from .patients import BUPROPION, SERTRALINE, mdd_patient, transaction

pytestmark = pytest.mark.server
AS_OF = date(2024, 6, 1)


def smart_client(setup: SmartSetup, scope: str = "system/*.read system/*.write",
                 client_id: str | None = None) -> tuple[FhirClient, SmartBackendAuth]:
    auth = SmartBackendAuth(client_id or setup.client_id, load_signing_key(setup.key_path), setup.token_url, scope)
    return FhirClient(setup.server.base_url, auth=auth, retry=RetryPolicy(backoff=(0.1,))), auth


def test_sync_with_smart_backend_services_renews_its_token(smart_server: SmartSetup) -> None:
    loader, _ = smart_client(smart_server)
    loader.transaction(transaction(mdd_patient("smart-a", [SERTRALINE, BUPROPION])))
    terminology = load_terminology()
    client, auth = smart_client(smart_server)
    selection = Selection("patients", patient_ids=("smart-a",))

    first = run_sync(client, selection, terminology, SyncConfig(as_of=AS_OF))
    assert [o.status for o in first.outcomes] == ["written"]
    assert auth.tokens_fetched == 1

    time.sleep(smart_server.token_lifetime)  # the token is now expired on the server
    second = run_sync(client, selection, terminology, SyncConfig(as_of=AS_OF))

    assert [o.status for o in second.outcomes] == ["unchanged"]
    assert auth.tokens_fetched == 2
    assert second.fatal is None


def test_a_token_the_server_calls_expired_is_renewed_once_and_the_request_retried(
        smart_server: SmartSetup) -> None:
    # renew only when told (margin -1000 s): the server's 401 is what triggers the renewal
    auth = SmartBackendAuth(smart_server.client_id, load_signing_key(smart_server.key_path),
                            smart_server.token_url, renew_margin=-1000.0)
    client = FhirClient(smart_server.server.base_url, auth=auth, retry=RetryPolicy(backoff=(0.1,)))
    client.get("Patient", [("_count", "1")])
    time.sleep(smart_server.token_lifetime + 0.5)

    bundle = client.get("Patient", [("_count", "1")])  # 401 "Access token expired", renewed, retried

    assert bundle["resourceType"] == "Bundle"
    assert auth.tokens_fetched == 2
    assert client.stats.retries == 0


def test_a_read_only_scope_cannot_write_and_stops_the_run(smart_server: SmartSetup) -> None:
    loader, _ = smart_client(smart_server)
    loader.transaction(transaction(mdd_patient("smart-ro", [SERTRALINE, BUPROPION])))
    client, _ = smart_client(smart_server, scope="system/*.read")
    selection = Selection("patients", patient_ids=("smart-ro",))
    terminology = load_terminology()

    planned = run_sync(client, selection, terminology, SyncConfig(as_of=AS_OF, dry_run=True))
    report = run_sync(client, selection, terminology, SyncConfig(as_of=AS_OF))

    assert [o.status for o in planned.outcomes] == ["planned"]
    assert report.fatal is not None and "do not permit" in report.fatal
    assert report.outcomes == []


def test_an_unknown_client_is_refused_with_the_token_endpoints_reason(smart_server: SmartSetup) -> None:
    client, _ = smart_client(smart_server, client_id="someone-else")

    with pytest.raises(AuthError, match="invalid_client: Unknown client_id 'someone-else'"):
        run_sync(client, Selection("patients", patient_ids=("smart-a",)), load_terminology(),
                 SyncConfig(as_of=AS_OF))
