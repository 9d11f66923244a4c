#!/usr/bin/env bash
# Create or update the project's virtual environment in .venv/ (Python 3.11).
#
#   bash scripts/setup.sh            # environment only
#   bash scripts/setup.sh --browser  # also Debian's chromium + chromium-driver (browser test)
#
# The environment is installed from requirements-lock.txt, then hesslib editable without
# dependencies. A stamp (hash of the lock file, pyproject.toml and this script) is kept in
# .venv/; when it matches, the run is a no-op.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
VENV="$ROOT/.venv"
STAMP="$VENV/.hesslib-setup-stamp"

want_browser=0
for arg in "$@"; do
    case "$arg" in
        --browser) want_browser=1 ;;
        -h | --help) sed -n '2,9p' "$0"; exit 0 ;;
        *) echo "setup.sh: unknown option '$arg' (valid: --browser)" >&2; exit 2 ;;
    esac
done

find_python() {
    local cand
    for cand in "${PYTHON:-}" python3.11 python3; do
        [ -n "$cand" ] || continue
        command -v "$cand" >/dev/null 2>&1 || continue
        if "$cand" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' 2>/dev/null; then
            echo "$cand"
            return 0
        fi
    done
    return 1
}

# pip, quiet, minus the warnings some machines' pip config gives for absent local indexes.
pip_quiet() {
    { "$VENV/bin/python" -m pip "$@" --quiet --disable-pip-version-check 2>&1 1>&3 \
        | { grep -v 'is ignored: it is neither a file nor a directory' || true; } >&2; } 3>&1
}

stamp_of() {
    cat requirements-lock.txt pyproject.toml scripts/setup.sh | sha256sum | cut -d' ' -f1
}

setup_venv() {
    local want
    want="$(stamp_of)"
    if [ -x "$VENV/bin/python" ] && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ]; then
        echo "setup: .venv is up to date with requirements-lock.txt"
        return 0
    fi
    if ! [ -x "$VENV/bin/python" ] \
        || ! "$VENV/bin/python" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
        local py
        py="$(find_python)" || {
            echo "setup: Python 3.11 not found (set PYTHON=/path/to/python3.11)" >&2
            exit 1
        }
        echo "setup: creating .venv with $py ($("$py" --version))"
        rm -rf "$VENV"
        "$py" -m venv "$VENV"
    fi
    rm -f "$STAMP"
    echo "setup: installing requirements-lock.txt into .venv (first time: a few minutes)"
    pip_quiet install -r requirements-lock.txt
    pip_quiet install --no-deps --no-build-isolation -e .
    "$VENV/bin/python" -m pip check
    echo "$want" >"$STAMP"
    echo "setup: done ($("$VENV/bin/python" -c 'import torch; print("torch", torch.__version__)'))"
}

setup_browser() {
    if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then
        return 0
    fi
    if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
        echo "setup: /usr/bin/chromium missing; install Debian's chromium and" \
            "chromium-driver packages (apt-get, as root) for the browser test" >&2
        return 0
    fi
    echo "setup: installing Debian chromium + chromium-driver for the browser test"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends chromium chromium-driver fonts-liberation >/dev/null
}

setup_venv
if [ "$want_browser" = 1 ]; then
    setup_browser
fi
