"""`classify` and `population` start without the HTTP doors: Flask, JWT and requests are not imported."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
PROBE = ("import io, sys\nfrom fhirtrd.cli import main\n"
         "code = main(sys.argv[1:], io.StringIO(), io.StringIO())\n"
         "print(code, sorted(m for m in ('flask', 'jwt', 'requests') if m in sys.modules))\n")


def _loaded(*argv: str) -> str:
    return subprocess.run([sys.executable, "-c", PROBE, *argv], cwd=REPO_ROOT, capture_output=True, text=True,
                          check=True, timeout=120).stdout.strip()


def test_classify_and_population_import_no_web_or_http_library(tmp_path: Path) -> None:
    assert _loaded("classify", "samples", "--as-of", "2025-01-15") == "0 []"
    assert _loaded("population", "samples", "--out", str(tmp_path), "--as-of", "2025-01-15", "--workers", "1") == "0 []"


def test_the_other_commands_are_still_there() -> None:
    out = subprocess.run([sys.executable, "-m", "fhirtrd", "--help"], cwd=REPO_ROOT, capture_output=True, text=True,
                         check=True, timeout=120).stdout
    for command in ("classify", "population", "export", "sync", "serve"):
        assert command in out
