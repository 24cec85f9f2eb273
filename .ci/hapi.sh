#!/usr/bin/env bash
# Builds fhirtrd's HAPI FHIR JPA test server (tests/hapi, from Maven Central) into one runnable jar,
# so tests/sync can start a real HAPI server. Rebuilt only when the module's pom or sources change;
# Maven keeps its downloads in ~/.m2. Called by scripts/test.sh.
# Usage: .ci/hapi.sh   (prints FHIRTRD_HAPI_JAR=<path of the jar>)
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
MODULE="${REPO_ROOT}/tests/hapi"
JAR="${MODULE}/target/fhirtrd-hapi.jar"
STAMP="${MODULE}/target/source.sha256"

digest="$(cd "${MODULE}" && find pom.xml src -type f | LC_ALL=C sort | xargs sha256sum | sha256sum | cut -d' ' -f1)"
if [ -f "${JAR}" ] && [ -f "${STAMP}" ] && [ "$(cat "${STAMP}")" = "${digest}" ]; then
    echo "HAPI test server jar is up to date" >&2
else
    start=$(date +%s)
    mvn -q -B -f "${MODULE}/pom.xml" package
    echo "${digest}" > "${STAMP}"
    echo "built the HAPI test server jar in $(( $(date +%s) - start ))s" >&2
fi
echo "FHIRTRD_HAPI_JAR=${JAR}"
