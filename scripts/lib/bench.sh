# Runs one of tests/e2e's benchmark binaries on the host: makes the pinned toolchain
# usable, builds the four components for wasm32-wasip2 (release, as they are served),
# then runs the binary (release) with the script's arguments.
run_bench() {
    local bin=$1
    shift
    . scripts/lib/toolchain.sh
    ensure_toolchain
    rustup target add wasm32-wasip2 >/dev/null
    cargo build --release --target wasm32-wasip2 -p mdm-admin -p mdm-sync -p mdm-checkin -p mdm-commands
    cargo run --release -p mdm-e2e --bin "$bin" -- "$@"
}
