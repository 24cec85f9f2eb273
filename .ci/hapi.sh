#!/usr/bin/env bash
# Builds fhirtrd's HAPI FHIR JPA test server (tests/hapi, from Maven Central) into one runnable jar,
# so tests/sync can start a real HAPI server. Rebuilt only when the module's pom or sources change;
# Maven keeps its downloads in ~/.m2. Also unpacks the HL7 terminology package hl7.terminology.r4
# (npm registry, CC0; npm keeps it in ~/.npm) for the HL7 validator: its terminology.hl7.org
# CodeSystems are newer than the R4 core package's copies. Called by scripts/test.sh.
# Usage: .ci/hapi.sh   (prints FHIRTRD_HAPI_JAR=<path of the jar> and FHIRTRD_HL7_TERMINOLOGY=<dir>)
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

THO_VERSION=7.0.1
THO_INTEGRITY="sha512-UamZUcARk/TEaJb7X0hDyANmC7bCv0Jof0u0uGIOB2O9VQX0uV45Vf4EyONHM6Sejv6q7sXEAzKAQsgw1Cld3A=="
THO="${MODULE}/target/hl7.terminology.r4-${THO_VERSION}"
if [ ! -f "${THO}/package/package.json" ]; then
    rm -rf "${THO}" && mkdir -p "${THO}"
    integrity="$(npm pack "hl7.terminology.r4@${THO_VERSION}" --json --pack-destination "${THO}" 2>/dev/null \
        | python3 -c 'import json, sys; print(json.load(sys.stdin)[0]["integrity"])')"
    if [ "${integrity}" != "${THO_INTEGRITY}" ]; then
        echo "hl7.terminology.r4@${THO_VERSION}: integrity ${integrity}, expected ${THO_INTEGRITY}" >&2
        rm -rf "${THO}"
        exit 1
    fi
    tar -xzf "${THO}/hl7.terminology.r4-${THO_VERSION}.tgz" -C "${THO}"
    rm "${THO}/hl7.terminology.r4-${THO_VERSION}.tgz"
fi
echo "FHIRTRD_HAPI_JAR=${JAR}"
echo "FHIRTRD_HL7_TERMINOLOGY=${THO}/package"
