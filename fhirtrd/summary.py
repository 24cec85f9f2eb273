"""`--format summary`: prevalence of each TRD definition and of fhirtrd's staging, and their agreement.

The population is every MDD assessment of the input. For each definition: how many met it, the
prevalence, the 2×2 table against fhirtrd's `treatment_resistant` and Cohen's kappa; then the kappa
of every pair of definitions. Kappa is undefined (shown "-") when chance agreement is 1 (both
raters constant).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import IO, Any

from fhirtrd.domain.model import PatientResult

FHIRTRD = "fhirtrd"


@dataclass(frozen=True, slots=True)
class Agreement:
    """A 2×2 table of two yes/no ratings over the same subjects."""

    both: int
    first_only: int
    second_only: int
    neither: int

    @property
    def n(self) -> int:
        return self.both + self.first_only + self.second_only + self.neither

    @property
    def kappa(self) -> float | None:
        """Cohen's kappa (Cohen 1960): (p_o − p_e) / (1 − p_e); None when p_e = 1 or no subjects."""
        n = self.n
        if n == 0:
            return None
        p_o = (self.both + self.neither) / n
        first, second = self.both + self.first_only, self.both + self.second_only
        p_e = (first * second + (n - first) * (n - second)) / (n * n)
        return None if p_e == 1 else (p_o - p_e) / (1 - p_e)


def agreement(first: list[bool], second: list[bool]) -> Agreement:
    pairs = list(zip(first, second, strict=True))
    return Agreement(sum(a and b for a, b in pairs), sum(a and not b for a, b in pairs),
                     sum(b and not a for a, b in pairs), sum(not a and not b for a, b in pairs))


@dataclass(frozen=True, slots=True)
class Summary:
    """Per definition (fhirtrd first) the yes/no rating of every MDD assessment, in input order."""

    ids: tuple[str, ...]
    ratings: dict[str, list[bool]]
    patients: int

    @property
    def n(self) -> int:
        return len(self.ratings[FHIRTRD]) if self.ratings else 0

    def positive(self, key: str) -> int:
        return sum(self.ratings[key])

    def prevalence(self, key: str) -> float | None:
        return self.positive(key) / self.n if self.n else None

    def versus(self, key: str, other: str = FHIRTRD) -> Agreement:
        return agreement(self.ratings[key], self.ratings[other])


# One patient: fhirtrd's `treatment_resistant` and the (definition id, met) pairs of each MDD assessment.
PatientRatings = list[tuple[bool, list[tuple[str, bool]]]]


def summarise(results: Iterable[PatientResult]) -> Summary:
    """The summary of classified patients (the CLI's `--format summary`)."""
    return _summarise([(a.treatment_resistant, [(d.id, d.met) for d in a.definitions])
                       for a in r.assessments if a.disorder == "mdd"] for r in results)


def summarise_contract(results: Iterable[dict[str, Any]]) -> Summary:
    """The same summary from results in the JSON contract (a population run's `results.ndjson`)."""
    return _summarise([(bool(a.get("treatment_resistant")), [(d["id"], bool(d["met"])) for d in a.get("definitions", [])])
                       for a in r.get("assessments", []) if a.get("disorder") == "mdd"] for r in results)


def _summarise(patients: Iterable[PatientRatings]) -> Summary:
    ids: list[str] = []
    ratings: dict[str, list[bool]] = {FHIRTRD: []}
    count = 0
    for assessments in patients:
        count += 1
        for resistant, definitions in assessments:
            ratings[FHIRTRD].append(resistant)
            for key, met in definitions:
                if key not in ratings:
                    ids.append(key)
                    ratings[key] = [False] * (len(ratings[FHIRTRD]) - 1)
                ratings[key].append(met)
            for key in ratings:
                if len(ratings[key]) < len(ratings[FHIRTRD]):
                    ratings[key].append(False)
    return Summary((FHIRTRD, *ids), ratings, count)


def as_json(summary: Summary) -> dict[str, Any]:
    """Prevalence and agreement with fhirtrd per definition, for a machine-readable summary."""
    out: dict[str, Any] = {"mdd_assessments": summary.n}
    for key in summary.ids:
        g = summary.versus(key)
        out[key] = {"met": summary.positive(key), "prevalence": summary.prevalence(key),
                    "both": g.both, "only_this": g.first_only, "only_fhirtrd": g.second_only,
                    "neither": g.neither, "kappa_vs_fhirtrd": g.kappa}
    return out


def _k(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def _table(header: tuple[str, ...], rows: list[tuple[str, ...]], out: IO[str]) -> None:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)]
    line = "  ".join(f"{{:<{w}}}" for w in widths)
    out.write(line.format(*header).rstrip() + "\n")
    for row in rows:
        out.write(line.format(*row).rstrip() + "\n")


def write_summary(summary: Summary, out: IO[str]) -> None:
    """The two tables: prevalence and agreement with fhirtrd; kappa between every pair."""
    out.write(f"{summary.patients} patient(s), {summary.n} MDD assessment(s)\n\n")
    rows: list[tuple[str, ...]] = []
    for key in summary.ids:
        g = summary.versus(key)
        rows.append((key, str(summary.positive(key)), _pct(summary.prevalence(key)), str(g.both),
                     str(g.first_only), str(g.second_only), str(g.neither), _k(g.kappa)))
    _table(("definition", "met", "prevalence", "both", "only-this", "only-fhirtrd", "neither",
            "kappa-vs-fhirtrd"), rows, out)
    out.write("\nCohen's kappa between definitions (column numbers = row numbers)\n")
    numbered = [f"{i + 1}" for i in range(len(summary.ids))]
    matrix = [(f"{i + 1} {a}", *(_k(summary.versus(a, b).kappa) for b in summary.ids)) for i, a in enumerate(summary.ids)]
    _table(("", *numbered), matrix, out)
