"""The domain core imports only the standard library and itself (STYLE.md: a pure core)."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

from .conftest import REPO_ROOT

DOMAIN = REPO_ROOT / "fhirtrd" / "domain"


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every absolute import; relative imports stay inside the package."""
    out: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.append((node.lineno, node.module))
    return out


def allowed(module: str) -> bool:
    top = module.split(".")[0]
    return top in sys.stdlib_module_names or module == "fhirtrd.domain" or module.startswith("fhirtrd.domain.")


def test_domain_modules_exist() -> None:
    names = {p.name for p in DOMAIN.glob("*.py")}
    assert {"model.py", "rules.py", "trials.py", "classify.py"} <= names


def test_domain_imports_only_the_standard_library_and_itself() -> None:
    forbidden = [f"{p.relative_to(REPO_ROOT)}:{line}: {module}"
                 for p in sorted(DOMAIN.rglob("*.py")) for line, module in imported_modules(p) if not allowed(module)]
    assert forbidden == []


def test_the_check_catches_third_party_and_outer_layers(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text("import flask\nfrom fhir.resources import R4B\nimport orjson, yaml\n"
                      "from fhirtrd.fhir import inbound\nfrom pydantic import BaseModel\nimport requests.adapters\n"
                      "from datetime import date\nfrom fhirtrd.domain.model import Trial\nfrom . import rules\n",
                      encoding="utf-8")
    bad = [m for _, m in imported_modules(sample) if not allowed(m)]
    assert bad == ["flask", "fhir.resources", "orjson", "yaml", "fhirtrd.fhir", "pydantic", "requests.adapters"]
