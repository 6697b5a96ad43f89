#!/usr/bin/env bash
# Builds the components and the local host, then serves the app on 127.0.0.1:3000 with
# the default SQLite key-value store under .spin/. Extra arguments go to mdm-host
# (e.g. --listen 127.0.0.1:8080, --variable redis_url=redis://127.0.0.1:6379).
set -euo pipefail
cd "$(dirname "$0")/.."

. scripts/lib/toolchain.sh
ensure_toolchain
rustup target add wasm32-wasip2
cargo build --release --target wasm32-wasip2 -p mdm-checkin -p mdm-commands -p mdm-admin -p mdm-sync
cargo build -p mdm-host

# Development secrets: generated once, kept in .spin/dev.env (git-ignored). Variables
# already set in the environment win.
mkdir -p .spin
if [ ! -f .spin/dev.env ]; then
    umask 077
    gen() { od -An -N32 -tx1 /dev/urandom | tr -d ' \n'; }
    {
        echo "SPIN_VARIABLE_ADMIN_API_KEY=$(gen)"
        echo "SPIN_VARIABLE_SYNC_API_KEY=$(gen)"
        echo "SPIN_VARIABLE_STORAGE_KEY=$(gen)"
    } > .spin/dev.env
    echo "Generated development secrets in .spin/dev.env" >&2
fi
while IFS='=' read -r name value; do
    [ -n "$name" ] && [ -z "${!name:-}" ] && export "$name=$value"
done < .spin/dev.env

# Where it listens: the last --listen of the arguments wins, as in mdm-host.
listen=127.0.0.1:3000
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
    case "${args[$i]}" in
        --listen) listen=${args[$((i + 1))]:-$listen} ;;
        --listen=*) listen=${args[$i]#--listen=} ;;
    esac
done

target/debug/mdm-host --from spin.toml --listen 127.0.0.1:3000 "$@" &
host=$!
trap 'kill "$host" 2>/dev/null; wait "$host" 2>/dev/null' INT TERM EXIT
base=http://$listen
for _ in $(seq 120); do
    curl -fsS -o /dev/null "$base/healthz" 2>/dev/null && break
    kill -0 "$host" 2>/dev/null || { wait "$host"; exit $?; }
    sleep 0.5
done
ready=$(curl -sS "$base/readyz" 2>/dev/null || true)
cat >&2 <<INFO

The MDM server runs at $base (component logs: .spin/logs/).
  admin API        $base/api/v1/...   (docs/openapi.yaml; bearer key below)
  probes           $base/healthz  $base/readyz  $base/version
  devices enroll   $base/mdm/enroll/... and check in at $base/mdm/checkin
Development secrets: .spin/dev.env (SPIN_VARIABLE_ADMIN_API_KEY is the admin API key).
Next, in another terminal:
  source .spin/dev.env
  curl -H "Authorization: Bearer \$SPIN_VARIABLE_ADMIN_API_KEY" $base/api/v1/tokens
INFO
case "$ready" in
    *'"status":"ready"'*) ;;
    *) echo "warning: the server is not ready: $ready" >&2 ;;
esac
case "$ready" in
    *'"push_certificate":{"state":"missing"'*)
        echo "warning: no push topic: devices cannot enroll until you set SPIN_VARIABLE_APNS_TOPIC" \
            "or upload the MDM push certificate (PUT /api/v1/push/certificate; infra/README.md)" >&2 ;;
esac
case "$ready" in
    *'"push_certificate":{"state":"topic_only"'*)
        echo "note: the push topic comes from apns_topic; pushes need the certificate in the runtime" \
            "config's [[client_tls]] (infra/README.md)" >&2 ;;
esac
wait "$host"
