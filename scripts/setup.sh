#!/usr/bin/env bash
# Sets up everything the project needs on a Debian 12 host (run as root for the apt part):
# Debian packages when missing, a virtualenv in .venv, and the package installed editable with
# its native extensions built. Safe to run again: it only does what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(python3 python3-venv python3-dev gcc libsqlite3-dev valgrind)

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
# A python3 other than Debian's (pyenv, a container image) brings its own venv and headers.
if command -v python3 >/dev/null && [ "$(command -v python3)" != /usr/bin/python3 ] \
    && python3 -c 'import venv, sysconfig, os, sys; sys.exit(not os.path.exists(sysconfig.get_paths()["include"] + "/Python.h"))' 2>/dev/null; then
    filtered=()
    for pkg in "${missing[@]}"; do
        case "$pkg" in python3|python3-venv|python3-dev) ;; *) filtered+=("$pkg") ;; esac
    done
    missing=("${filtered[@]}")
fi
if [ "${#missing[@]}" -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "setup: missing Debian packages: ${missing[*]} (run as root, or install them)" >&2
        exit 1
    fi
    echo "setup: installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' || {
    echo "setup: Python 3.11 or newer is required, found $(python3 --version)" >&2
    exit 1
}

if [ ! -x .venv/bin/python ]; then
    echo "setup: creating .venv"
    python3 -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip "setuptools>=77" wheel "cython>=3.0,<4"
echo "setup: installing gatewayd (editable, building the native extensions)"
.venv/bin/python -m pip install -q --no-build-isolation -e ".[test]"
.venv/bin/python -c 'from gateway.smpp import codec; print(f"setup: SMPP codec backend: {codec.BACKEND}")'
