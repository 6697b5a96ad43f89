#!/usr/bin/env bash
# Benchmark: Mdm-Signature verifications per second in WebAssembly, as the components run
# them (shared/core/benches/verify_signature.rs built for wasm32-wasip2, run in Wasmtime
# with the host's compiler settings by tests/host's run-wasm). Optional argument: seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/toolchain.sh
ensure_toolchain
rustup target add wasm32-wasip2 >/dev/null
cargo build --release -p mdm-host --bin run-wasm
bench=$(cargo build --release --target wasm32-wasip2 -p mdm-core --bench verify_signature \
    --message-format=json | sed -n 's/.*"executable":"\([^"]*\.wasm\)".*/\1/p' | tail -1)
echo "\$ ./scripts/bench-verify.sh $*"
./target/release/run-wasm "$bench" "$@"
