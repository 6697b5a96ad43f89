#!/usr/bin/env bash
# Every test: builds the Spin components for wasm32-wasip2, then runs the native tests,
# including the end-to-end tests (tests/e2e) that serve those .wasm files through the
# local host (tests/host) and drive them over HTTP on 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."

. scripts/lib/need.sh
# The SCEP end-to-end test runs micromdm's real client, from Debian's `scep` package.
need scepclient scep
# The Redis store's end-to-end tests start their own redis-server (Debian's 7.0 package).
need redis-server redis-server
. scripts/lib/toolchain.sh
ensure_toolchain
rustup target add wasm32-wasip2
# Formatting first: it costs nothing and fails fast.
cargo fmt --all --check
cargo build --release --target wasm32-wasip2 \
    -p mdm-checkin -p mdm-commands -p mdm-admin -p mdm-sync
native=(--workspace --exclude mdm-checkin --exclude mdm-commands --exclude mdm-admin
    --exclude mdm-sync --exclude mdm-spin)
# Tests with several host processes on one store run the built mdm-host binary.
cargo build -p mdm-host --bin mdm-host
cargo test "${native[@]}" "$@"
# The core's and the crypto crate's unit tests once more in WebAssembly, where the RSA
# arithmetic (shared/crypto/src/modpow.rs) takes its SIMD path: run by tests/host's
# run-wasm in Wasmtime with the host's compiler settings (built with the same package
# selection as the tests, so it reuses their dependencies).
unit_tests=$(cargo test --release --target wasm32-wasip2 -p mdm-core -p mdm-crypto --lib \
    --no-run --message-format=json | sed -n 's/.*"executable":"\([^"]*\.wasm\)".*/\1/p')
cargo build "${native[@]}" --bin run-wasm
for tests in $unit_tests; do
    ./target/debug/run-wasm "$tests" --test-threads=1
done
# Lints, warnings as errors, over every crate and target (tests, benches, bins).
cargo clippy --workspace --all-targets -- -D warnings
# The API contract and the Kubernetes manifests, checked by their own validators.
./scripts/contract-tests.sh
