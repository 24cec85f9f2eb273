#!/usr/bin/env bash
# Installs HealthChain (its CDS Hooks client and models) in its own virtualenv: its pins (FastAPI,
# fhir.resources 8.1, httpx 0.27) are not the project's, so tests/api drives the service with it
# from a separate interpreter. Called by scripts/test.sh.
# Usage: .ci/healthchain.sh [VENV_DIR]   (default: .venv-healthchain under the repository root)
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV_DIR="${1:-${REPO_ROOT}/.venv-healthchain}"
PYTHON="${PYTHON:-python3}"
HEALTHCHAIN_VERSION="0.16.1"

if ! "${VENV_DIR}/bin/python" -c "import healthchain.sandbox" 2>/dev/null; then
    "${PYTHON}" -m venv "${VENV_DIR}"
    "${VENV_DIR}/bin/python" -m pip install --quiet --disable-pip-version-check "healthchain==${HEALTHCHAIN_VERSION}"
fi
"${VENV_DIR}/bin/python" -c "import importlib.metadata as m; print('healthchain', m.version('healthchain'))"
