"""`fhirtrd report`: the clinician's page as static HTML, one file per patient plus an index, from files."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from datetime import date
from pathlib import Path

from fhirtrd.domain.model import PatientResult
from fhirtrd.report.page import css, heat_map, render_index, render_page, scales_from, scores_of
from fhirtrd.schemas import dump_result
from fhirtrd.service import Run, classify_paths
from fhirtrd.summary import summarise
from fhirtrd.terminology import Terminology

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def page_name(patient: str) -> str:
    """The file name of a patient's page: the id with anything but letters, digits, . _ - replaced."""
    return _UNSAFE.sub("_", patient.removeprefix("Patient/")) + ".html"


def write_report(paths: Sequence[Path], out: Path, terminology: Terminology, as_of: date,
                 *, run: Run | None = None, progress: Callable[[int, int], None] | None = None) -> list[Path]:
    """Classify every patient under `paths` and write `out/<patient>.html`, `out/index.html`, `out/report.css`.

    Pages are written to a temporary name and renamed, so an interrupted run leaves no half page.
    """
    run = run or Run(terminology, as_of)
    scales = scales_from(terminology.rules)
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    rows: list[dict[str, str]] = []
    results: list[PatientResult] = []
    for result in classify_paths(paths, terminology, as_of, run=run, progress=progress):
        results.append(result)
        data = dump_result(result)
        name = page_name(result.patient)
        html = render_page(data, scores_of(run, result.patient, scales), scales)
        _write(out / name, html)
        written.append(out / name)
        for a in data["assessments"] or [None]:
            rows.append({"patient": result.patient, "href": name,
                         "disorder": a["disorder"] if a else "", "stage": a["stage"] if a else "-",
                         "status": a["status"] if a else "not in scope",
                         "tr": ("yes" if a["treatment_resistant"] else "no") if a else "-",
                         "next_step": a["next_step"]["strategy"] if a else "-"})
    _write(out / "report.css", css())
    _write(out / "index.html", render_index(rows, heat_map(summarise(results))))
    return written


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".part")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
