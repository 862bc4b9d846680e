#!/usr/bin/env bash
# Regenerate the lock files from the extras in pyproject.toml.
# ロックファイルを pyproject.toml の extras から作り直す。
#
# Maintainers only: users never need uv, quickstart.py installs these files with pip.
# Run after changing an extra in pyproject.toml: the pins already in the locks stay.
# Run with --upgrade to take the newest releases of everything.
set -euo pipefail
cd "$(dirname "$0")/.."
upgrade=()
if [ "${1:-}" = "--upgrade" ]; then upgrade=(--upgrade); fi

# uv is a maintainer tool: use the one on PATH, else put it in a scratch venv.
UV=${UV:-$(command -v uv || true)}
if [ -z "$UV" ]; then
    scratch=$(mktemp -d)
    trap 'rm -rf "$scratch"' EXIT
    python3 -m venv "$scratch/venv"
    "$scratch/venv/bin/pip" install --quiet uv
    UV="$scratch/venv/bin/uv"
fi

# --no-config and --default-index: PyPI only, whatever uv.toml or index the machine has.
# --universal + --python-version 3.11: one file for Linux/macOS/Windows, Python 3.11 and newer.
compile() {
    local out=$1 source=$2; shift 2
    "$UV" --no-config pip compile "$source" "$@" \
        --universal --python-version 3.11 --generate-hashes \
        --default-index https://pypi.org/simple \
        --custom-compile-command "requirements/update.sh" \
        "${upgrade[@]}" --quiet --output-file "$out"
}

# build.in: the build backend, so quickstart.py can install the project without the index.
# collector.lock is what `demo` and every staff command on a laptop need (the pi extra too:
# `machikit pi gps-check` checks a receiver's log before a town buys twenty of them).
compile requirements/collector.lock pyproject.toml requirements/build.in \
    --extra collector --extra pi --extra workshop --extra grafana
# pi.lock: a Raspberry Pi (docs/pi.md) installs only what its jobs need.
compile requirements/pi.lock pyproject.toml requirements/build.in --extra pi
compile requirements/dev.lock pyproject.toml requirements/build.in \
    --extra collector --extra pi --extra workshop --extra grafana --extra dev
# MicroPython's stubs shadow CPython's own modules (time, socket...), so they never go into
# the venv: tools/check_firmware_types.py installs each board's set into a folder of its own.
for board in rp2 esp32; do
    compile "requirements/stubs-$board.lock" "requirements/stubs-$board.in"
done
