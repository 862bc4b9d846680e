#!/usr/bin/env bash
# Regenerate the lock files from the extras in pyproject.toml.
# ロックファイルを pyproject.toml の extras から作り直す。
#
# Maintainers only: users never need uv, quickstart.py installs these files with pip.
# Run after changing an extra in pyproject.toml, or to take newer releases.
set -euo pipefail
cd "$(dirname "$0")/.."

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
        --upgrade --quiet --output-file "$out"
}

compile requirements/collector.lock pyproject.toml --extra collector --extra workshop --extra grafana
compile requirements/dev.lock pyproject.toml --extra collector --extra pi --extra workshop --extra grafana --extra dev
# MicroPython's stubs shadow CPython's own modules (time, socket...), so they never go into
# the venv: tools/check_firmware_types.py installs each board's set into a folder of its own.
for board in rp2 esp32; do
    compile "requirements/stubs-$board.lock" "requirements/stubs-$board.in"
done
