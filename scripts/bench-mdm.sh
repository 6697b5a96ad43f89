#!/usr/bin/env bash
# Benchmark: signed Idle polls (full load, then a fixed offered rate) and enqueue → APNs
# push → poll → acknowledge cycles, through the real components on the local host with
# many simulated devices enrolled zero-touch. Prints the figures and the command.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/bench.sh
run_bench bench-mdm "$@"
