#!/usr/bin/env bash
# Benchmark: one enrolled device's signed Idle poll under wrk (kept-alive connections and
# Connection: close) through the real components on the local host, beside NanoMDM when
# NANOMDM (or --nanomdm) names its binary (how to build it: see docs/benchmarks.md).
# Prints a table of medians (requests/s, p50/p99, server CPU per poll) and the command.
# With --server URL --admin-key KEY, measures a server started elsewhere (spin up): see
# docs/benchmarks.md.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/need.sh
need wrk wrk
. scripts/lib/bench.sh
run_bench bench-polls "$@"
