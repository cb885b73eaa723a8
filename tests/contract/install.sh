#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Installs Prism (@stoplight/prism-cli, pinned) into tests/contract/node_modules
# for the contract tier. Idempotent: does nothing when the pinned version is
# already there. Without node/npm it says so and exits 0, because the tier
# then skips itself with the same message; an npm failure is an error.
set -euo pipefail

PRISM_VERSION=5.14.2
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
prism="$here/node_modules/.bin/prism"

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    echo "contract/install.sh: node and npm are not installed; the contract tier will skip" >&2
    exit 0
fi

if [ -x "$prism" ] && [ "$("$prism" --version 2>/dev/null)" = "$PRISM_VERSION" ]; then
    exit 0
fi

echo "contract/install.sh: installing @stoplight/prism-cli@$PRISM_VERSION into $here/node_modules"
# --prefix keeps the install inside tests/contract; no package.json is written
# to the repository (--no-save), so the pin lives here only.
npm install --prefix "$here" --no-save --no-audit --no-fund --loglevel=error \
    "@stoplight/prism-cli@$PRISM_VERSION"
"$prism" --version
