"""The fhirtrd CodeSystems (mappings/fhir), their ValueSets and the docs/terminology.md page.

The CodeSystem JSON files in `mappings/fhir/` are the maintained source: every concept has a
display, a definition, one or more `group` properties (the value sets it belongs to) and a `source`.
This module loads and checks them, derives one ValueSet per group, rebases everything onto a
configured canonical base, and renders the human-readable page. Regenerate the derived files with
`python -m fhirtrd.fhir.codesystem` (add `--check` to fail when they are stale).
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from fhirtrd.fhir.outbound_errors import CodeSystemError

DEFAULT_BASE = "http://fhirtrd.org/fhir"
CODESYSTEM_NAMES = ("fhirtrd", "scales")
_GROUP = "group"
_NOT_SELECTABLE = "notSelectable"


@dataclass(frozen=True, slots=True)
class Concept:
    code: str
    display: str
    definition: str
    groups: tuple[str, ...]
    source: str
    abstract: bool


def codesystem_file(name: str) -> str:
    return f"CodeSystem-{name}.json"


def load_codesystem(name: str) -> dict[str, Any]:
    """The CodeSystem `name` ("fhirtrd" or "scales") as shipped, checked; a fresh copy each call."""
    return copy.deepcopy(_load(name))


@cache
def _load(name: str) -> dict[str, Any]:
    file = codesystem_file(name)
    path = resources.files("fhirtrd.mappings").joinpath("fhir", file)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CodeSystemError(file, None, f"cannot be read as JSON: {exc}") from exc
    concepts(data, file)  # validates
    return dict(data)


def concepts(codesystem: dict[str, Any], file: str = "CodeSystem") -> dict[str, Concept]:
    """The concepts of a CodeSystem by code, after checking the rules of this module's docstring."""
    raw = codesystem.get("concept")
    if not isinstance(raw, list) or not raw:
        raise CodeSystemError(file, None, "has no concept list")
    out: dict[str, Concept] = {}
    for item in raw:
        code = item.get("code")
        if not isinstance(code, str) or not code.strip():
            raise CodeSystemError(file, None, f"a concept has no code: {item!r}")
        if code in out:
            raise CodeSystemError(file, code, "is defined twice")
        display, definition = item.get("display"), item.get("definition")
        if not isinstance(display, str) or not display.strip():
            raise CodeSystemError(file, code, "has no display")
        if not isinstance(definition, str) or not definition.strip():
            raise CodeSystemError(file, code, "has no definition")
        props = item.get("property", [])
        groups = tuple(p["valueCode"] for p in props if p.get("code") == _GROUP)
        abstract = any(p.get("code") == _NOT_SELECTABLE and p.get("valueBoolean") for p in props)
        source = next((p["valueString"] for p in props if p.get("code") == "source"), "")
        if not abstract and not source:
            raise CodeSystemError(file, code, "has no source property")
        out[code] = Concept(code, display, definition, groups, source, abstract)
    for c in out.values():
        for g in c.groups:
            if g not in out or not out[g].abstract:
                raise CodeSystemError(file, c.code, f"names group {g!r}, which is no grouping concept")
    if codesystem.get("count") not in (None, len(out)):
        raise CodeSystemError(file, None, f"count {codesystem.get('count')} != {len(out)} concepts")
    return out


def codes_in_group(group: str) -> dict[str, Concept]:
    """The selectable fhirtrd concepts of one group, by code."""
    return {c.code: c for c in concepts(_load("fhirtrd")).values() if group in c.groups}


def all_concepts(name: str = "fhirtrd") -> dict[str, Concept]:
    return concepts(_load(name), codesystem_file(name))


def _rebase_url(url: str, base: str) -> str:
    return base.rstrip("/") + url[len(DEFAULT_BASE) :] if url.startswith(DEFAULT_BASE) else url


def codesystems(base: str = DEFAULT_BASE) -> list[dict[str, Any]]:
    """Both CodeSystems with their canonical URLs moved to `base`."""
    out = []
    for name in CODESYSTEM_NAMES:
        cs = load_codesystem(name)
        for key in ("url", "valueSet"):
            if key in cs:
                cs[key] = _rebase_url(cs[key], base)
        for prop in cs.get("property", []):
            if "uri" in prop:
                prop["uri"] = _rebase_url(prop["uri"], base)
        out.append(cs)
    return out


def value_sets(base: str = DEFAULT_BASE) -> list[dict[str, Any]]:
    """One ValueSet per group of the fhirtrd CodeSystem, plus one for each whole CodeSystem."""
    fhirtrd_cs, scales_cs = codesystems(base)
    version = fhirtrd_cs["version"]
    out: list[dict[str, Any]] = []
    for cs, name in ((fhirtrd_cs, "fhirtrd"), (scales_cs, "scales")):
        out.append(
            {
                "resourceType": "ValueSet",
                "id": name,
                "url": f"{base.rstrip('/')}/ValueSet/{name}",
                "version": version,
                "name": f"{cs['name']}All",
                "title": f"All {cs['title']}",
                "status": "active",
                "experimental": False,
                "publisher": "fhirtrd",
                "description": f"Every code of the CodeSystem {cs['url']}.",
                "compose": {"include": [{"system": cs["url"]}]},
            }
        )
    table = concepts(fhirtrd_cs)
    for group in (c for c in table.values() if c.abstract):
        members = [c for c in table.values() if group.code in c.groups]
        out.append(
            {
                "resourceType": "ValueSet",
                "id": f"fhirtrd-{group.code}",
                "url": f"{base.rstrip('/')}/ValueSet/{group.code}",
                "version": version,
                "name": "Fhirtrd" + "".join(p.capitalize() for p in group.code.split("-")),
                "title": f"fhirtrd {group.display.lower()}",
                "status": "active",
                "experimental": False,
                "publisher": "fhirtrd",
                "description": group.definition,
                "compose": {
                    "include": [
                        {
                            "system": fhirtrd_cs["url"],
                            "concept": [{"code": c.code, "display": c.display} for c in members],
                        }
                    ]
                },
            }
        )
    return out


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def terminology_markdown(base: str = DEFAULT_BASE) -> str:
    """docs/terminology.md: every code with display, definition and source, grouped."""
    fhirtrd_cs, scales_cs = codesystems(base)
    table = concepts(fhirtrd_cs)
    lines = [
        "# fhirtrd terminology",
        "",
        "Generated by `python -m fhirtrd.fhir.codesystem` from `mappings/fhir/CodeSystem-*.json`;"
        " do not edit by hand.",
        "",
        f"- CodeSystem `{fhirtrd_cs['url']}` (version {fhirtrd_cs['version']},"
        f" {len(table)} concepts): every code fhirtrd writes.",
        f"- CodeSystem `{scales_cs['url']}`: rating-scale totals without a confirmed LOINC code"
        " (clinical-spec §8).",
        "- One ValueSet per group below, at"
        f" `{base.rstrip('/')}/ValueSet/<group>`; `{base.rstrip('/')}/ValueSet/fhirtrd` and"
        f" `{base.rstrip('/')}/ValueSet/scales` hold whole CodeSystems.",
        "",
        "A code may belong to several groups (e.g. `unknown` is an outcome, an inflammation state"
        " and an adherence state); a CodeSystem defines each code once.",
        "",
    ]
    for group in (c for c in table.values() if c.abstract):
        lines += [f"## {group.display} (`{group.code}`)", "", group.definition, ""]
        lines += ["| code | display | definition | source |", "|---|---|---|---|"]
        for c in table.values():
            if group.code in c.groups:
                lines.append(
                    f"| `{c.code}` | {_cell(c.display)} | {_cell(c.definition)} | {_cell(c.source)} |"
                )
        lines.append("")
    lines += [f"## Rating scales (`{scales_cs['url']}`)", ""]
    lines += ["| code | display | definition | source |", "|---|---|---|---|"]
    for c in concepts(scales_cs).values():
        lines.append(f"| `{c.code}` | {_cell(c.display)} | {_cell(c.definition)} | {_cell(c.source)} |")
    lines.append("")
    return "\n".join(lines)


def _dump(resource: dict[str, Any]) -> str:
    return json.dumps(resource, indent=2, ensure_ascii=False) + "\n"


def generated_files(repo_root: Path) -> dict[Path, str]:
    """The derived files (ValueSets, docs/terminology.md) and their expected text."""
    files = {
        repo_root / "mappings" / "fhir" / f"ValueSet-{vs['id']}.json": _dump(vs)
        for vs in value_sets()
    }
    files[repo_root / "docs" / "terminology.md"] = terminology_markdown()
    return files


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fhirtrd.fhir.codesystem", description=__doc__)
    parser.add_argument("--repo", type=Path, default=Path.cwd(), help="repository root")
    parser.add_argument("--check", action="store_true", help="fail if a derived file is stale")
    args = parser.parse_args(argv)
    stale = []
    for path, text in generated_files(args.repo).items():
        current = path.read_text(encoding="utf-8") if path.exists() else None
        if current == text:
            continue
        stale.append(path)
        if not args.check:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
    for path in stale:
        print(("stale: " if args.check else "wrote: ") + str(path), file=sys.stderr)
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    raise SystemExit(main())
