"""CORS for browser-based CDS clients (the CDS Hooks sandbox): an exact origin allowlist, none by default.

CDS Hooks 2.0 (CDS Services, "Cross-Origin Resource Sharing") asks services that browser clients
call to answer preflight requests and to name the allowed origin, methods and headers. Only an
origin on `cors_origins` gets any CORS header; others get none, so the browser refuses.
"""

from __future__ import annotations

from flask import Flask, Response, request

ALLOW_METHODS = "GET, POST, OPTIONS"
ALLOW_HEADERS = "Authorization, Content-Type, Accept"
EXPOSE_HEADERS = "Origin, Accept, Content-Location, Location, X-Requested-With"
MAX_AGE = "600"


def enable_cors(app: Flask, origins: tuple[str, ...]) -> None:
    """Answer preflights and add CORS headers for the allowed origins (exact match)."""
    allowed = {o.rstrip("/") for o in origins}

    def _allowed() -> str | None:
        origin = request.headers.get("Origin")
        return origin if origin is not None and origin.rstrip("/") in allowed else None

    @app.before_request
    def _preflight() -> Response | None:
        if request.method != "OPTIONS" or "Access-Control-Request-Method" not in request.headers:
            return None
        origin = _allowed()
        if origin is None:
            return None  # the default OPTIONS answer, without CORS headers: the browser refuses
        response = Response(status=204)
        response.headers.update({
            "Access-Control-Allow-Origin": origin,
            "Access-Control-Allow-Methods": ALLOW_METHODS,
            "Access-Control-Allow-Headers": ALLOW_HEADERS,
            "Access-Control-Max-Age": MAX_AGE,
            "Vary": "Origin",
        })
        return response

    @app.after_request
    def _headers(response: Response) -> Response:
        origin = _allowed()
        if origin is not None and "Access-Control-Allow-Origin" not in response.headers:
            response.headers["Access-Control-Allow-Origin"] = origin
            response.headers["Access-Control-Expose-Headers"] = EXPOSE_HEADERS
            response.headers.add("Vary", "Origin")
        return response
