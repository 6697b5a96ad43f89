#!/usr/bin/env bash
# Contract checks with Python tools, in a virtualenv under <target>/contract-venv:
#  - docs/openapi.yaml is valid OpenAPI 3.1 (openapi-spec-validator) and its examples fit
#    their schemas (tests/contract/check_examples.py);
#  - the Kubernetes manifests validate (tests/contract/check_manifests.py);
#  - the admin API of the real components keeps to docs/openapi.yaml: mdm-host serves the
#    built .wasm files on a free loopback port with a fresh store that contract-lab seeds
#    (tests/e2e/src/bin/contract-lab.rs), Schemathesis sends it generated requests
#    (tests/contract/schemathesis.toml: no 5xx, every status, content type, header and
#    body as documented), then tests/contract/check_store.py checks the store it left
#    (key-value battery, every listed record reads back).
# Run at the end of scripts/test.sh, after the components are built; runs on its own too
# (it builds what is missing). Honours CARGO_TARGET_DIR.
set -euo pipefail
cd "$(dirname "$0")/.."

target=${CARGO_TARGET_DIR:-target}
venv=$target/contract-venv
if [ ! -x "$venv/bin/python" ] || ! cmp -s tests/contract/requirements.txt "$venv/requirements.txt"; then
    python3 -m venv "$venv" || {
        echo "contract tests need Python 3.11+ with venv (Debian/Ubuntu: apt-get install python3-venv)" >&2
        exit 1
    }
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r tests/contract/requirements.txt
    cp tests/contract/requirements.txt "$venv/requirements.txt"
fi
"$venv/bin/python" -m openapi_spec_validator docs/openapi.yaml
"$venv/bin/python" tests/contract/check_examples.py
"$venv/bin/python" tests/contract/check_manifests.py

# The components, the local host and the lab that seeds it (nothing to do after
# scripts/test.sh).
cargo build --quiet --release --target wasm32-wasip2 \
    -p mdm-checkin -p mdm-commands -p mdm-admin -p mdm-sync
cargo build --quiet -p mdm-host --bin mdm-host -p mdm-e2e --bin contract-lab

# tests/e2e's contract-lab: Apple's services simulated, a synced server token, enrolled
# devices, their commands, a user and a group; served by the mdm-host binary on a free
# loopback port with a fresh state directory, until its standard input closes.
state=$(mktemp -d)
lab=
stop() {
    exec 3>&- 2>/dev/null || true
    [ -n "$lab" ] && wait "$lab" 2>/dev/null
    rm -rf "$state"
}
trap stop EXIT
mkfifo "$state/stdin"
"$target/debug/contract-lab" "$state/ids.toml" <"$state/stdin" >"$state/lab.out" &
lab=$!
exec 3>"$state/stdin"
for _ in $(seq 1500); do
    grep -qx READY "$state/lab.out" && break
    kill -0 "$lab" 2>/dev/null || { echo "contract-lab ended before serving" >&2; exit 1; }
    sleep 0.2
done
grep -qx READY "$state/lab.out" || { echo "contract-lab did not start serving" >&2; exit 1; }
MDM_URL=$(sed -n 's/^MDM_URL=//p' "$state/lab.out")
MDM_ADMIN_KEY=$(sed -n 's/^MDM_ADMIN_KEY=//p' "$state/lab.out")
export MDM_URL MDM_ADMIN_KEY
# The settings, and the ids the lab made as values for the path parameters.
cat tests/contract/schemathesis.toml "$state/ids.toml" >"$state/schemathesis.toml"

started=$SECONDS
"$venv/bin/schemathesis" --config-file "$state/schemathesis.toml" run docs/openapi.yaml
echo "schemathesis: $((SECONDS - started)) s"
"$venv/bin/python" tests/contract/check_store.py
