#!/usr/bin/env bash
# Installs what the SMART app's browser tests need: Debian's chromium (apt-get; never a downloaded
# browser) and, under tests/smart/authz/node_modules (git-ignored), the test authorization server
# (oidc-provider) and axe-core with `npm ci` from the committed package-lock.json. Called by scripts/test.sh.
set -euo pipefail
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [ ! -x /usr/bin/chromium ]; then
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends chromium >/dev/null
fi
AUTHZ="${REPO_ROOT}/tests/smart/authz"
if [ ! -f "${AUTHZ}/node_modules/.package-lock.json" ] || ! cmp -s "${AUTHZ}/package-lock.json" "${AUTHZ}/.installed-lock"; then
    (cd "${AUTHZ}" && npm ci --no-audit --no-fund --loglevel=error >/dev/null && cp package-lock.json .installed-lock)
fi
/usr/bin/chromium --version
