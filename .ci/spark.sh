#!/usr/bin/env bash
# Installs what `fhirtrd population --engine spark` needs for its local[2] test: a Java 17 runtime
# from Debian (openjdk-17-jre-headless, only when no java is on PATH) and the project's `spark`
# extra (pyspark, pandas, pyarrow) in the project's virtualenv. Called by scripts/test.sh.
set -euo pipefail
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "${REPO_ROOT}"
if ! command -v java >/dev/null 2>&1; then
    SUDO=""
    [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    ${SUDO} apt-get update -qq
    DEBIAN_FRONTEND=noninteractive ${SUDO} apt-get install -y -qq openjdk-17-jre-headless >/dev/null
fi
.venv/bin/python -m pip install -q --disable-pip-version-check -e ".[spark]"
java -version 2>&1 | head -1
