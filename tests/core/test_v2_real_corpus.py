"""v2 windows on the real public corpus (../shared/data/real-fhir): no decades-long trials, no lost fills."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest

from .conftest import REAL

pytestmark = pytest.mark.skipif(not REAL.is_dir(), reason="real corpus not present")

STALE_ORDER_CAP_DAYS = 180  # mappings/thresholds.yaml stale_order_cap_days (clinical-spec §2 v2)
CMS128 = "ecqm-qicore-2024/AntidepressantMedicationManagementFHIR"


def _day(value: Any) -> date | None:
    try:
        return date.fromisoformat(str(value)[:10])
    except ValueError:
        return None


def _documents(path: Path) -> Iterator[Any]:
    name = path.name[:-3] if path.name.endswith(".gz") else path.name
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as fh:  # type: ignore[operator]
        text = fh.read()
    if name.endswith(".ndjson"):
        yield from (json.loads(line) for line in text.splitlines() if line.strip())
    elif name.endswith(".json"):
        try:
            yield json.loads(text)
        except ValueError:
            return


def _resources() -> Iterator[dict[str, Any]]:
    for path in sorted(p for p in REAL.rglob("*") if p.is_file()):
        for doc in _documents(path):
            if isinstance(doc, dict) and doc.get("resourceType") == "Bundle":
                yield from (e["resource"] for e in doc.get("entry") or [] if isinstance(e.get("resource"), dict))
            elif isinstance(doc, dict):
                yield doc


def last_evidence_dates() -> dict[str, date]:
    """For every medication resource of the corpus, the last day it says the drug was taken or ordered."""
    out: dict[str, date] = {}
    for r in _resources():
        kind = r.get("resourceType")
        days: list[date | None] = []
        if kind == "MedicationRequest":
            days.append(_day(r.get("authoredOn")))
            days += [_day(((d.get("timing") or {}).get("repeat") or {}).get("boundsPeriod", {}).get("end"))
                     for d in r.get("dosageInstruction") or []]
        elif kind == "MedicationDispense":
            handed = _day(r.get("whenHandedOver"))
            supply = (r.get("daysSupply") or {}).get("value")
            days.append(handed + timedelta(days=int(supply)) if handed and isinstance(supply, int | float) else handed)
        elif kind in ("MedicationStatement", "MedicationAdministration"):
            period = r.get("effectivePeriod") or {}
            days += [_day(period.get("end")), _day(period.get("start")), _day(r.get("effectiveDateTime"))]
        found = [d for d in days if d is not None]
        if found:
            out[f"{kind}/{r.get('id')}"] = max(found)
    return out


def test_no_trial_runs_more_than_the_stale_order_cap_past_its_last_evidence(
        corpus_json: tuple[int, dict[str, Any], str]) -> None:
    # the issue: 39- to 70-year "ongoing" trials from old active orders
    _, doc, _ = corpus_json
    evidence = last_evidence_dates()
    checked = 0
    for result in doc["results"]:
        for a in result["assessments"]:
            for t in a["trials"]:
                if t["kind"] not in ("medication", "augmentation", "adjunct"):
                    continue
                last = max(evidence[ref] for ref in t["evidence"] if ref in evidence)
                assert (date.fromisoformat(t["end"]) - last).days <= STALE_ORDER_CAP_DAYS, (result["patient"], t)
                checked += 1
    assert checked >= 40


@pytest.mark.parametrize("patient", ["9ab27fb9-1253-4b89-b88c-693d5f8ae65d", "925b4f30-ea5c-47c3-a24f-8bfcec5dcdf6"])
def test_the_cms128_dispense_after_its_orders_window_is_kept_as_exposure(
        corpus_json: tuple[int, dict[str, Any], str], patient: str) -> None:
    # the order's boundsPeriod ends in September 2024; the 10-day dispense of 1 January 2025 is still exposure
    _, doc, _ = corpus_json
    [result] = [r for r in doc["results"] if r["patient"] == f"Patient/{patient}"]
    [a] = result["assessments"]
    dispensed = [t for t in a["trials"] if any(ref.startswith("MedicationDispense/") for ref in t["evidence"])]
    assert [(t["treatment"], t["start"], t["end"]) for t in dispensed] == [("desipramine", "2025-01-01", "2025-01-10")]
    assert (REAL / CMS128 / f"{patient}.json").is_file()
