#!/usr/bin/env bash
# Set up a development machine: a virtualenv in .venv with torch, the package and its test extras, and
# redis-server (Debian's package) when it is missing. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null || PYTHON=python3

if ! command -v redis-server >/dev/null; then
    if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
    else
        echo "redis-server is missing: install it (Debian/Ubuntu: sudo apt-get install redis-server)" >&2
        exit 1
    fi
fi

[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
# torch first and pinned: an unpinned torch would pull a multi-GB CUDA build from the index.
.venv/bin/python -m pip install -q torch==2.14.1 torchvision==0.29.1
.venv/bin/python -m pip install -q -e '.[test]'
echo "set up: $(.venv/bin/python --version), torch $(.venv/bin/python -c 'import torch; print(torch.__version__)'), $(redis-server --version | cut -d' ' -f1-3)"
