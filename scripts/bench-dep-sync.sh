#!/usr/bin/env bash
# Benchmark: full ADE sync of 200,000 simulated devices through the real components on the
# local host. Prints devices/min, store operations per device and peak memory.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/toolchain.sh
ensure_toolchain
rustup target add wasm32-wasip2 >/dev/null
cargo build --release --target wasm32-wasip2 -p mdm-admin -p mdm-sync -p mdm-checkin -p mdm-commands
cargo run --release -p mdm-e2e --bin bench-dep-sync -- "$@"
