#!/usr/bin/env bash
# Benchmark: signed Idle polls (full load, then a fixed offered rate) and enqueue → APNs
# push → poll → acknowledge cycles, through the real components on the local host with
# many simulated devices enrolled zero-touch. Prints the figures and the command.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/toolchain.sh
ensure_toolchain
rustup target add wasm32-wasip2 >/dev/null
cargo build --release --target wasm32-wasip2 -p mdm-admin -p mdm-sync -p mdm-checkin -p mdm-commands
cargo run --release -p mdm-e2e --bin bench-mdm -- "$@"
