"""`POST /Patient/{id}/$classify` with the user's own FHIR server and token (SMART front-ends of others).

The request names the server in `X-FHIR-Server` (an exact base URL on `fhir_server_allowlist`) and the
user's token in `X-FHIR-Authorization: Bearer …`; headers, never the URL, so no token lands in a log.
The patient is read with that token through the sync's client and classified by the one service function.
"""

from __future__ import annotations

from datetime import date

from fhirtrd.api.errors import BadRequest, HttpError, NotFound, UpstreamError
from fhirtrd.errors import ServerError
from fhirtrd.server.errors import NotFound as ServerNotFound
from fhirtrd.smart.data import PatientView, allowed_server, fetch_and_classify

SERVER_HEADER = "X-FHIR-Server"
TOKEN_HEADER = "X-FHIR-Authorization"


class Forbidden(HttpError):
    status = 403
    code = "forbidden"


def classify_with_user_token(svc: object, server: str, authorization: str | None, patient_id: str,
                             as_of: date) -> PatientView:
    """Fetch and classify, translating every failure into an HttpError that names the header at fault."""
    from fhirtrd.api.http import Service

    assert isinstance(svc, Service)
    base = allowed_server(server, svc.settings.fhir_server_allowlist)
    if base is None:
        raise Forbidden(f"{server!r} is not on the allowlist of FHIR servers (fhir_server_allowlist)",
                        expression=SERVER_HEADER)
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise BadRequest(f"{TOKEN_HEADER} must be 'Bearer <the user's access token>'", expression=TOKEN_HEADER)
    try:
        return fetch_and_classify(base, token.strip(), patient_id, svc.terminology, as_of,
                                  timeout=svc.settings.fhir_timeout_seconds)
    except ServerNotFound as exc:
        raise NotFound(f"Patient/{patient_id} was not found on {base}", expression="Patient.id") from exc
    except ServerError as exc:
        status = getattr(exc, "status", None)
        if status in (401, 403):
            raise Forbidden(f"{base} refused the user's token (HTTP {status})", expression=TOKEN_HEADER) from exc
        raise UpstreamError(f"reading Patient/{patient_id} from {base} failed: {exc.__class__.__name__}") from exc
