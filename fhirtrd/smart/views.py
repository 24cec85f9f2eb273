"""The SMART app's pages: standalone start, EHR/standalone launch, OAuth callback, the clinician's page."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

from flask import Blueprint, Flask, Response, current_app, redirect, render_template_string, request

from fhirtrd.api.config import ServiceSettings
from fhirtrd.errors import ServerError
from fhirtrd.report.page import css, render_page
from fhirtrd.smart.oauth import LaunchError, authorize_url, endpoints, exchange_code, pkce_pair
from fhirtrd.smart.settings import SmartSettings, smart_settings
from fhirtrd.smart.store import SessionStore

log = logging.getLogger("fhirtrd.smart")
bp = Blueprint("smart", __name__, url_prefix="/smart")
COOKIE = "fhirtrd_smart"
PENDING_SECONDS = 600


@dataclass
class SmartApp:
    settings: SmartSettings
    store: SessionStore


def _app() -> SmartApp:
    return current_app.extensions["fhirtrd_smart"]  # type: ignore[no-any-return]


def init_smart(app: Flask, settings: ServiceSettings) -> None:
    """Register the app's blueprint when the `smart` settings are given (nothing happens otherwise)."""
    smart = smart_settings(settings.smart, settings.public_url)
    if smart is None:
        return
    app.extensions["fhirtrd_smart"] = SmartApp(smart, SessionStore(smart.session_db))
    app.register_blueprint(bp)


_SIMPLE = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{{ title }}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="stylesheet" href="{{ url_for('smart.stylesheet') }}"></head><body>
<header class="banner"><p class="product">fhirtrd: treatment-resistance assessment</p><h1>{{ title }}</h1></header>
<main class="launch">{% if message %}<p role="alert">{{ message }}</p>{% endif %}
{% if issuers %}<p>Choose the FHIR server to sign in to; you will pick the patient there.</p><ul>
{% for i in issuers %}<li><a href="{{ url_for('smart.launch', iss=i.iss) }}">{{ i.name or i.iss }}</a></li>{% endfor %}
</ul>{% endif %}</main></body></html>"""


def _simple(title: str, message: str = "", status: int = 200, issuers: Any = ()) -> Response:
    return Response(render_template_string(_SIMPLE, title=title, message=message, issuers=issuers), status,
                    mimetype="text/html")


@bp.errorhandler(LaunchError)
def _launch_error(exc: LaunchError) -> Response:
    log.warning("SMART launch refused: %s", exc.message)
    return _simple("The app could not start", exc.message, exc.status)


@bp.after_request
def _headers(response: Response) -> Response:
    smart = _app().settings
    response.headers["Content-Security-Policy"] = (
        "default-src 'none'; style-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; "
        f"frame-ancestors {' '.join(smart.frame_ancestors)}")
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/")
def start() -> Response:
    """Standalone launch: the list of allowlisted FHIR servers."""
    return _simple("Treatment-resistance timeline", issuers=_app().settings.issuers)


@bp.get("/static/report.css")
def stylesheet() -> Response:
    response = Response(css(), mimetype="text/css")
    return response


@bp.get("/launch")
def launch() -> Response:
    """EHR launch (`iss` + `launch`) or standalone launch (`iss` only): redirect to the authorize endpoint."""
    from fhirtrd.api.http import service

    app = _app()
    iss = request.args.get("iss", "")
    issuer = app.settings.issuer(iss)
    if issuer is None:
        raise LaunchError("this FHIR server (iss) is not one the app is configured for; ask your administrator "
                          "to add it to smart.issuers", 400)
    launch_token = request.args.get("launch")
    svc = service()
    ep = endpoints(issuer, svc.session, svc.settings.fhir_timeout_seconds)
    state = SessionStore.new_key()
    verifier, challenge = pkce_pair()
    app.store.put("pending:" + state, {"iss": issuer.iss, "verifier": verifier, "token_url": ep.token},
                  PENDING_SECONDS)
    target = authorize_url(ep, app.settings, issuer, state=state, challenge=challenge, launch=launch_token)
    return redirect(target, 302)  # type: ignore[return-value]


@bp.get("/callback")
def callback() -> Response:
    """The authorization server's redirect: check `state`, exchange the code, open a server-side session."""
    from fhirtrd.api.http import service

    app = _app()
    state = request.args.get("state", "")
    pending = app.store.pop("pending:" + state) if state else None
    if pending is None:
        raise LaunchError("this sign-in is unknown or expired (state); launch the app again", 400)
    if request.args.get("error"):
        raise LaunchError(f"the authorization server did not authorize the app: {request.args['error']}", 403)
    code = request.args.get("code")
    if not code:
        raise LaunchError("the authorization server sent no code", 400)
    svc = service()
    token = exchange_code(pending["token_url"], app.settings, code, pending["verifier"], svc.session,
                          svc.settings.fhir_timeout_seconds)
    expires = token.get("expires_in")
    seconds = min(app.settings.session_seconds, int(expires)) if isinstance(expires, int) and expires > 0 \
        else app.settings.session_seconds
    sid = SessionStore.new_key()
    app.store.put("session:" + sid, {"iss": pending["iss"], "access_token": token["access_token"],
                                     "patient": token["patient"], "scope": token.get("scope", ""),
                                     "app_context": token.get("appContext")}, seconds)
    response: Response = redirect("/smart/app", 303)  # type: ignore[assignment]
    secure = request.is_secure or app.settings.redirect_uri.startswith("https://")
    response.set_cookie(COOKIE, sid, max_age=seconds, httponly=True, secure=secure or
                        app.settings.cookie_samesite == "None", samesite=app.settings.cookie_samesite, path="/smart")
    return response


def _focus(app_context: Any) -> str:
    """The finding a CDS card opened the app for (appContext JSON: disorder, finding), in words."""
    from fhirtrd.report.labels import display

    if not isinstance(app_context, str):
        return ""
    try:
        data = json.loads(app_context)
    except ValueError:
        return ""
    if not isinstance(data, dict):
        return ""
    parts = [display(str(data[k])) for k in ("disorder", "finding") if isinstance(data.get(k), str)]
    return " · ".join(parts)


@bp.get("/app")
def page() -> Response:
    """The clinician's page for the patient in context, read with the clinician's token."""
    from fhirtrd.api.http import service
    from fhirtrd.smart.data import fetch_and_classify

    app = _app()
    sid = request.cookies.get(COOKIE, "")
    session = app.store.get("session:" + sid) if sid else None
    if session is None:
        raise LaunchError("no open session: launch the app from the EHR (or start it again)", 401)
    svc = service()
    iss = session["iss"]
    try:
        view = fetch_and_classify(iss, session["access_token"], session["patient"], svc.terminology, svc.as_of(),
                                  timeout=svc.settings.fhir_timeout_seconds)
    except ServerError as exc:
        status = getattr(exc, "status", None)
        if status in (401, 403):
            app.store.delete("session:" + sid)
            raise LaunchError("the FHIR server no longer accepts this sign-in; launch the app again", 401) from exc
        log.warning("SMART app: reading Patient/%s failed: %s", session["patient"], exc.__class__.__name__)
        raise LaunchError("the FHIR server could not be read; try again later", 502) from exc
    html = render_page(view.result, view.scores, _scales(), css_href="/smart/static/report.css",
                       link=lambda ref: f"{iss}/{ref}", context={"server": iss, "focus": _focus(session["app_context"])})
    return Response(html, mimetype="text/html")


def _scales() -> Any:
    from fhirtrd.api.http import service
    from fhirtrd.report.page import scales_from

    return scales_from(service().terminology.rules)
