#!/usr/bin/env bash
# Installs the Debian 12 packages ferry needs to build, test and run the demo.
# Only missing packages are installed; apt-get needs root (or sudo without a
# password prompt), and nothing here ever waits for input.
set -euo pipefail

packages=(
    build-essential cmake pkg-config
    libuv1-dev libh2o-dev libcurl4-openssl-dev libjansson-dev liblua5.4-dev
    libsqlite3-dev libxml2-dev libcmocka-dev libssl-dev libmimalloc-dev
    python3 curl sqlite3 groff-base wrk valgrind strace openssl
)
# Extra packages for one target (make fuzz passes clang's), given as arguments.
packages+=("$@")

missing=()
for p in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$p")
    fi
done

if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi

echo "install-deps: installing ${missing[*]}"
if [ "$(id -u)" -eq 0 ]; then
    sudo_cmd=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    sudo_cmd=(sudo -n)
else
    echo "install-deps: these packages are missing and apt-get needs root: ${missing[*]}" >&2
    echo "install-deps: run 'sudo .ci/install-deps.sh' once, then retry." >&2
    exit 1
fi

export DEBIAN_FRONTEND=noninteractive
"${sudo_cmd[@]}" apt-get update -qq
"${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
