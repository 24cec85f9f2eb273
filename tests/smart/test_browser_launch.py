"""The whole SMART launch in Debian's headless Chromium: EHR and standalone launch, the page, axe-core."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import pytest
import requests

from .conftest import AUTHZ, OUTPUT, REPO, Rig

pytestmark = [pytest.mark.server, pytest.mark.slow]

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def browser(rig: Rig) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        yield b
        b.close()


def ehr_launch(rig: Rig, browser: Any, launch: str) -> Any:
    """Play the EHR: open the app's launch URL with iss and launch, as the EHR's app list does."""
    page = browser.new_page(viewport={"width": 1100, "height": 900})
    page.goto(f"{rig.app_url}/smart/launch?" + urlencode({"iss": rig.fhir.base_url, "launch": launch}))
    page.wait_for_url(f"{rig.app_url}/smart/app")
    return page


def axe(page: Any, name: str) -> list[dict[str, Any]]:
    """Run axe-core in the page; write the full result beside the screenshots; return the violations."""
    page.evaluate((AUTHZ / "node_modules" / "axe-core" / "axe.min.js").read_text("utf-8"))
    result = page.evaluate("async () => { const r = await axe.run(document); "
                           "return {violations: r.violations.map(v => ({id: v.id, impact: v.impact, "
                           "help: v.help, nodes: v.nodes.length})), passes: r.passes.length}; }")
    OUTPUT.mkdir(parents=True, exist_ok=True)
    (OUTPUT / f"axe-{name}.json").write_text(json.dumps(result, indent=2), "utf-8")
    violations: list[dict[str, Any]] = result["violations"]
    return violations


def shot(page: Any, name: str) -> None:
    OUTPUT.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(OUTPUT / f"{name}.png"), full_page=True)


def test_ehr_launch_shows_the_stage_two_patient_with_one_bar_per_trial_and_thresholds(rig: Rig, browser: Any
                                                                                       ) -> None:
    page = ehr_launch(rig, browser, "launch-stage2")
    shot(page, "p-stage2")
    assert page.locator("h1").inner_text() == "Patient/p-stage2"
    assert page.locator("dd.stage").inner_text() == "II"
    assert page.locator("dd.label").inner_text() == "Treatment-resistant depression"
    assert "Switch" in page.locator(".next-step h3").inner_text()
    assert page.locator("svg.timeline g.trial").count() == 2  # sertraline, venlafaxine
    assert page.locator("svg.timeline g.trial.failed").count() == 2
    assert page.locator("svg.timeline g.threshold.remission").count() == 1
    assert page.locator("svg.timeline g.threshold.response").count() == 2
    assert page.locator("table.trials tbody tr.trial-row").count() == 2
    # the CDS card's appContext reached the app through the token response
    assert "Major depressive disorder" in page.locator("p.focus").inner_text()
    # evidence is listed and linked to the FHIR server it came from
    assert page.locator(f'ul.evidence a[href="{rig.fhir.base_url}/Condition/p-stage2-con-001"]').count() == 1
    assert page.evaluate("() => document.scripts.length") == 0  # no JavaScript on the page
    serious = [v for v in axe(page, "p-stage2") if v["impact"] in ("serious", "critical")]
    assert serious == []
    page.close()


def test_ehr_launch_of_the_tr_sad_patient_shows_psychotherapy_and_the_sad_label(rig: Rig, browser: Any) -> None:
    page = ehr_launch(rig, browser, "launch-trsad")
    assert page.locator("dd.stage").inner_text() == "II"
    assert page.locator("dd.label").inner_text() == "Treatment-resistant social anxiety disorder"
    assert page.locator("svg.timeline g.trial").count() == 2
    assert page.locator('svg.timeline g.trial[data-treatment="cbt"]').count() == 1
    assert page.locator('svg.timeline g.score-lane[data-instrument="lsas"] g.threshold.remission').count() == 1
    shot(page, "p-trsad")
    assert [v for v in axe(page, "p-trsad") if v["impact"] in ("serious", "critical")] == []
    page.close()


def test_standalone_launch_picks_the_server_and_shows_findings_with_their_reasons(rig: Rig, browser: Any
                                                                                   ) -> None:
    page = browser.new_page(viewport={"width": 1100, "height": 900})
    page.goto(f"{rig.app_url}/smart/")
    page.get_by_role("link", name="Sample EHR (sekmet)").click()
    page.wait_for_url(f"{rig.app_url}/smart/app")
    assert page.locator("h1").inner_text() == "Patient/p-nonadherent"
    marker = page.locator('svg.timeline g.finding[data-code="nonadherence"]')
    assert marker.count() >= 1
    assert "Adherence was below" in marker.first.locator("title").text_content()
    assert "Nonadherence" in page.locator("ul.findings").inner_text()
    shot(page, "p-nonadherent")
    assert [v for v in axe(page, "p-nonadherent") if v["impact"] in ("serious", "critical")] == []
    page.close()


def test_the_session_is_an_httponly_cookie_and_no_token_reaches_the_browser(rig: Rig, browser: Any) -> None:
    context = browser.new_context()
    page = context.new_page()
    page.goto(f"{rig.app_url}/smart/launch?" + urlencode({"iss": rig.fhir.base_url, "launch": "launch-trsad"}))
    page.wait_for_url(f"{rig.app_url}/smart/app")
    cookies = [c for c in context.cookies() if c["name"] == "fhirtrd_smart"]
    assert len(cookies) == 1 and cookies[0]["httpOnly"] and cookies[0]["sameSite"] == "Lax"
    html = page.content()
    assert "access_token" not in html and "eyJ" not in html  # no JWT in the page
    response = page.request.get(f"{rig.app_url}/smart/app")
    assert "default-src 'none'" in response.headers["content-security-policy"]
    context.close()


def test_a_launch_from_a_server_not_on_the_allowlist_is_refused_before_any_redirect(rig: Rig) -> None:
    response = requests.get(f"{rig.app_url}/smart/launch", params={"iss": "http://127.0.0.1:9/fhir", "launch": "x"},
                            allow_redirects=False, timeout=10)
    assert response.status_code == 400
    assert "not one the app is configured for" in response.text


def test_sekmet_checks_the_token_a_forged_one_is_refused(rig: Rig) -> None:
    import jwt

    forged = jwt.encode({"aud": rig.fhir.base_url, "scope": "patient/*.rs", "exp": 4102444800}, "x" * 64, "HS256")
    response = requests.get(f"{rig.fhir.base_url}/Patient/p-stage2",
                            headers={"Authorization": f"Bearer {forged}"}, timeout=10)
    assert response.status_code == 401


def test_the_static_report_prints_without_the_screen_banner_and_passes_axe(browser: Any, tmp_path: Any) -> None:
    from fhirtrd.cli import main

    sample = REPO / "samples" / "mdd-intolerance-hyponatraemia-on-citalopram.json"
    assert main(["report", str(sample), "--out", str(tmp_path),
                 "--as-of", "2025-01-15"]) == 0
    page = browser.new_page(viewport={"width": 1100, "height": 900})
    page.goto((tmp_path / "p-hyponat.html").as_uri())
    screen = page.evaluate("() => getComputedStyle(document.querySelector('.banner')).backgroundColor")
    page.emulate_media(media="print")
    printed = page.evaluate("() => getComputedStyle(document.querySelector('.banner')).backgroundColor")
    assert screen == "rgb(15, 59, 99)" and printed == "rgba(0, 0, 0, 0)"
    assert page.locator('svg.timeline g.finding[data-code="intolerance"]').count() >= 1
    page.emulate_media(media="screen")
    assert [v for v in axe(page, "static-p-hyponat") if v["impact"] in ("serious", "critical")] == []
    page.close()
