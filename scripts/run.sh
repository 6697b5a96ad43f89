#!/usr/bin/env bash
# Builds the components and the local host, then serves the app on 127.0.0.1:3000 with
# the default SQLite key-value store under .spin/. Extra arguments go to mdm-host
# (e.g. --listen 127.0.0.1:8080, --variable redis_url=redis://127.0.0.1:6379).
set -euo pipefail
cd "$(dirname "$0")/.."

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

echo "Admin API key: see SPIN_VARIABLE_ADMIN_API_KEY in .spin/dev.env" >&2
exec target/debug/mdm-host --from spin.toml --listen 127.0.0.1:3000 "$@"
