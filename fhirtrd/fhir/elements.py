"""The typed element reader: every FHIR element read with its type checked; a wrong type is a problem, never an exception.

Readers record what they could not use in the problem list of the resource being read
(`collecting`); the inbound adapter turns each into a warning naming the resource and the element.
Numbers are finite and bounded before any date arithmetic; nesting is limited at every door.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

#: deepest JSON nesting any door accepts (real FHIR resources stay well under 30 levels)
MAX_DEPTH = 64
#: largest magnitude a number may have before it is used in dose or date arithmetic
MAX_NUMBER = 1e9

#: longest span in days (a supply, a duration) used in date arithmetic: 100 years
MAX_DAYS = 36500
#: calendar years a FHIR date may have to be used at all (others cannot be real clinical dates)
YEARS = range(1800, 2201)

_problems: ContextVar[list[tuple[str, str]] | None] = ContextVar("fhirtrd_element_problems", default=None)


@contextmanager
def collecting() -> Iterator[list[tuple[str, str]]]:
    """Collect (element, message) problems of the resource read inside the block."""
    found: list[tuple[str, str]] = []
    token = _problems.set(found)
    try:
        yield found
    finally:
        _problems.reset(token)


def problem(element: str, message: str) -> None:
    """Record that `element` could not be used (outside `collecting` it is dropped)."""
    found = _problems.get()
    if found is not None and (element, message) not in found:
        found.append((element, message))


def _kind(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", int: "a number",
            float: "a number", type(None): "null"}.get(type(value), type(value).__name__)


def obj(holder: Any, key: str, element: str) -> dict[str, Any]:
    """holder[key] when it is an object; a missing element is {}, a wrong type a problem and {}."""
    value = holder.get(key) if isinstance(holder, dict) else None
    if value is None:
        return {}
    if not isinstance(value, dict):
        problem(element, f"is {_kind(value)}, expected an object")
        return {}
    return value


def objects(value: Any, element: str, *, single: bool = False) -> list[dict[str, Any]]:
    """The objects of a list element (an object alone is accepted when `single`); others are problems."""
    if value is None:
        return []
    if isinstance(value, dict) and single:
        return [value]
    if not isinstance(value, list):
        problem(element, f"is {_kind(value)}, expected a list")
        return []
    out = []
    for i, item in enumerate(value):
        if isinstance(item, dict):
            out.append(item)
        else:
            problem(f"{element}[{i}]", f"is {_kind(item)}, expected an object")
    return out


def string(holder: Any, key: str, element: str) -> str | None:
    """holder[key] when it is a string; another type is a problem and None."""
    value = holder.get(key) if isinstance(holder, dict) else None
    if value is None or isinstance(value, str):
        return value
    problem(element, f"is {_kind(value)}, expected a string")
    return None


def number(value: Any, element: str) -> float | None:
    """A finite number of plausible magnitude; a string, NaN, infinity or a huge value is a problem."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        problem(element, f"is {_kind(value)}, expected a number")
        return None
    try:
        as_float = float(value)
    except OverflowError:
        as_float = math.inf
    if not math.isfinite(as_float) or abs(as_float) > MAX_NUMBER:
        problem(element, f"{value!r:.40} is not a usable number")
        return None
    return as_float


def days(value: float | None, element: str) -> int | None:
    """A span in whole days (at least 1) when it is at most `MAX_DAYS`; a longer one is a problem."""
    if value is None or not math.isfinite(value) or value <= 0:
        return None
    if value > MAX_DAYS:
        problem(element, f"gives {value:.4g} days, more than {MAX_DAYS}")
        return None
    return max(1, round(value))


def codings(concept: Any, element: str) -> list[dict[str, Any]]:
    """The codings of a CodeableConcept whose system/code/display have their FHIR types.

    A coding whose system or code is not a string is a problem and is left out; so is a display
    of the wrong type (the coding itself is kept without it).
    """
    if concept is None:
        return []
    if not isinstance(concept, dict):
        problem(element, f"is {_kind(concept)}, expected a CodeableConcept")
        return []
    out: list[dict[str, Any]] = []
    for i, c in enumerate(objects(concept.get("coding"), f"{element}.coding")):
        bad = [k for k in ("system", "code") if c.get(k) is not None and not isinstance(c.get(k), str)]
        if bad:
            for k in bad:
                problem(f"{element}.coding[{i}].{k}", f"is {_kind(c.get(k))}, expected a string")
            continue
        if c.get("display") is not None and not isinstance(c.get("display"), str):
            problem(f"{element}.coding[{i}].display", f"is {_kind(c.get('display'))}, expected a string")
            c = {k: v for k, v in c.items() if k != "display"}
        out.append(c)
    return out


def texts(concept: Any, element: str) -> list[str]:
    """concept.text and each coding's display (strings only)."""
    if not isinstance(concept, dict):
        return []
    text = string(concept, "text", f"{element}.text")
    out = [text] if text else []
    out += [c["display"] for c in codings(concept, element) if isinstance(c.get("display"), str)]
    return out


def depth_exceeds(value: Any, limit: int = MAX_DEPTH) -> bool:
    """True when `value` nests objects/lists deeper than `limit` (level by level, without recursion)."""
    if not isinstance(value, (dict, list)):
        return False
    level, depth = [value], 1
    while level:
        deeper: list[Any] = []
        for item in level:
            for child in item.values() if isinstance(item, dict) else item:
                if isinstance(child, (dict, list)):
                    deeper.append(child)
        if deeper and depth >= limit:
            return True
        level, depth = deeper, depth + 1
    return False
