#!/usr/bin/env bash
# Runs every test: builds the Spin components for wasm32-wasip2 (the integration tests
# drive those real .wasm files through the local host), then the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."

rustup target add wasm32-wasip2
cargo build --release --target wasm32-wasip2 \
    -p mdm-checkin -p mdm-commands -p mdm-admin -p mdm-sync
cargo test --workspace --exclude mdm-checkin --exclude mdm-commands --exclude mdm-admin \
    --exclude mdm-sync --exclude mdm-spin "$@"
