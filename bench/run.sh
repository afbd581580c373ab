#!/usr/bin/env bash
# Run every benchmark scenario against the sandbox on 127.0.0.1 and rewrite
# bench/RESULTS.md. Arguments pass through: --quick for small sizes, or
# scenario names (batching limits throughput enqueue footprint side-by-side select verify restore;
# `raw` alone runs one idle end-to-end throughput run, for profiling).
set -euo pipefail
cd "$(dirname "$0")/.."
exec cargo bench --bench zdel -- "$@"
