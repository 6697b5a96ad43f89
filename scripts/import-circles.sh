#!/usr/bin/env bash
# Prints the import circles between source files of shared/ and functions/, with the imports
# inside each (what to move so that dependencies point one way: docs/architecture.md).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo run --quiet -p mdm-e2e --bin import-circles
