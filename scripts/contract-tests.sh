#!/usr/bin/env bash
# Contract checks with Python tools, in a virtualenv under target/contract-venv:
#  - docs/openapi.yaml is valid OpenAPI 3.1 (openapi-spec-validator);
#  - the Kubernetes manifests validate (tests/contract/check_manifests.py).
# Run by scripts/test.sh; runs on its own too.
set -euo pipefail
cd "$(dirname "$0")/.."

venv=target/contract-venv
if [ ! -x "$venv/bin/python" ] || ! cmp -s tests/contract/requirements.txt "$venv/requirements.txt"; then
    python3 -m venv "$venv" || {
        echo "contract tests need Python 3.11+ with venv (Debian/Ubuntu: apt-get install python3-venv)" >&2
        exit 1
    }
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r tests/contract/requirements.txt
    cp tests/contract/requirements.txt "$venv/requirements.txt"
fi
"$venv/bin/python" -m openapi_spec_validator docs/openapi.yaml
"$venv/bin/python" tests/contract/check_manifests.py
