"""Plain-language words for fhirtrd's codes, read from the published CodeSystem (display + definition)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources


@dataclass(frozen=True, slots=True)
class Label:
    display: str
    definition: str


@lru_cache(maxsize=1)
def labels() -> dict[str, Label]:
    """Every concept of CodeSystem-fhirtrd.json by code (the first definition wins on a repeated code)."""
    text = resources.files("fhirtrd.mappings").joinpath("fhir/CodeSystem-fhirtrd.json").read_text("utf-8")
    found: dict[str, Label] = {}

    def walk(concepts: list[dict[str, object]]) -> None:
        for c in concepts:
            code = str(c["code"])
            found.setdefault(code, Label(str(c.get("display", code)), str(c.get("definition", ""))))
            walk(c.get("concept", []))  # type: ignore[arg-type]

    walk(json.loads(text)["concept"])
    return found


def display(code: str) -> str:
    """The code's display, or the code itself when the CodeSystem does not know it."""
    label = labels().get(code)
    return label.display if label else code


def definition(code: str) -> str:
    label = labels().get(code)
    return label.definition if label else ""
