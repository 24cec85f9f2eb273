#!/usr/bin/env bash
# Runs fhirtrd's whole test suite on a fresh machine: a virtualenv with the project and its test
# extras, the local FHIR test servers (sekmet-fhir in a virtualenv of its own, HAPI FHIR built by
# Maven from tests/hapi), then pytest.
# Extra arguments go to pytest (e.g. `bash scripts/test.sh tests/core -x`).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check -e ".[test]"
bash .ci/sekmet.sh >/dev/null
bash .ci/healthchain.sh >/dev/null
bash .ci/smart-browser.sh >/dev/null
bash .ci/hapi.sh >/dev/null
bash .ci/spark.sh >/dev/null
export FHIRTRD_SEKMET="${FHIRTRD_SEKMET:-$PWD/.venv-sekmet/bin/sekmet}"
exec .venv/bin/python -m pytest "$@"
