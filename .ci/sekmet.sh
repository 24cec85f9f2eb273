#!/usr/bin/env bash
# Installs the FHIR test server (sekmet-fhir) in its own virtualenv, apart from the project's
# dependencies, so tests/sync can start a real FHIR R4 server. Called by .ci/run.
# Usage: .ci/sekmet.sh [VENV_DIR]   (default: .venv-sekmet under the repository root)
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV_DIR="${1:-${REPO_ROOT}/.venv-sekmet}"
PYTHON="${PYTHON:-python3}"
SEKMET_VERSION="0.1.1"

if [ ! -x "${VENV_DIR}/bin/sekmet" ]; then
    "${PYTHON}" -m venv "${VENV_DIR}"
    "${VENV_DIR}/bin/python" -m pip install --quiet --upgrade pip
    "${VENV_DIR}/bin/python" -m pip install --quiet "sekmet-fhir==${SEKMET_VERSION}"
fi
"${VENV_DIR}/bin/sekmet" --version
echo "FHIRTRD_SEKMET=${VENV_DIR}/bin/sekmet"
