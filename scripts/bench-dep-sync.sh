#!/usr/bin/env bash
# Benchmark: full ADE sync of 200,000 simulated devices through the real components on the
# local host. Prints devices/min, store operations per device and peak memory.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/bench.sh
run_bench bench-dep-sync "$@"
