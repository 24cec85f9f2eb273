"""The clinician's page for one patient: header, timeline, findings, MSM, likelihood, evidence, data table."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import date
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup

from fhirtrd.domain.rules import Rules
from fhirtrd.report.labels import definition, display
from fhirtrd.report.timeline import Scale, ScorePoint, timeline_svg
from fhirtrd.summary import Summary

_ENV: Environment | None = None


def _env() -> Environment:
    global _ENV
    if _ENV is None:
        _ENV = Environment(loader=PackageLoader("fhirtrd.report", "templates"),
                           autoescape=select_autoescape(default=True), trim_blocks=True, lstrip_blocks=True)
        _ENV.filters["words"] = display
        _ENV.globals["definition"] = definition
    return _ENV


def scales_from(rules: Rules) -> dict[str, Scale]:
    """Each instrument's range and thresholds, as loaded from mappings/instruments.csv."""
    return {k: Scale(k, i.low, i.high, i.remission_max, i.response_min_change) for k, i in rules.instruments.items()}


def scores_of(run: Any, patient: str, scales: Mapping[str, Scale]) -> list[ScorePoint]:
    """The instrument totals the service read for `patient` (Patient/id), up to the run's as-of date."""
    builder = run.builders.get(patient.removeprefix("Patient/"))
    if builder is None:
        return []
    return [ScorePoint(m.concept, m.when, m.value, m.ref) for m in builder.measurements
            if m.concept in scales and m.when <= run.as_of]


def css() -> str:
    """The page's stylesheet (screen and print), served or written beside the page."""
    return _env().loader.get_source(_env(), "report.css")[0]  # type: ignore[union-attr]


def render_page(result: Mapping[str, Any], scores: Sequence[ScorePoint], scales: Mapping[str, Scale], *,
                css_href: str = "report.css", link: Callable[[str], str | None] = lambda ref: None,
                context: Mapping[str, Any] | None = None) -> str:
    """One patient's page as HTML (no JavaScript). `link(ref)` gives the address of an input resource."""
    as_of = date.fromisoformat(str(result["as_of"]))
    assessments = []
    for a in result.get("assessments", []):
        assessments.append({"a": a, "svg": Markup(timeline_svg(a, scores, scales, as_of))})
    return _env().get_template("page.html").render(
        result=result, assessments=assessments, css_href=css_href, link=link, scores=scores,
        context=context or {})


def render_index(rows: Sequence[Mapping[str, Any]], heat: Mapping[str, Any] | None = None,
                 *, css_href: str = "report.css") -> str:
    """The static report's index: one line per patient and disorder, then the definitions' heat map."""
    return _env().get_template("index.html").render(rows=rows, heat=heat, css_href=css_href)


def heat_map(summary: Summary) -> dict[str, Any]:
    """`--format summary` as a table for the index: prevalence per definition and Cohen's kappa between
    every pair, each kappa cell shaded by its value (darker = closer agreement; orange below 0)."""
    def cell(kappa: float | None) -> dict[str, str]:
        if kappa is None:
            return {"text": "-", "style": "background:#eeeeee;color:#333333"}
        light = round(95 - 55 * min(abs(kappa), 1.0))
        hue = 210 if kappa >= 0 else 25
        return {"text": f"{kappa:.2f}", "style": f"background:hsl({hue},65%,{light}%);"
                                                 f"color:{'#ffffff' if light < 50 else '#111111'}"}

    return {"n": summary.n, "patients": summary.patients, "ids": list(summary.ids),
            "rows": [{"id": a, "met": summary.positive(a),
                      "prevalence": "-" if (p := summary.prevalence(a)) is None else f"{100 * p:.1f} %",
                      "cells": [cell(summary.versus(a, b).kappa) for b in summary.ids]} for a in summary.ids]}
