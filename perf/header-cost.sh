#!/usr/bin/env bash
# What the header transports cost the paths that existed before them: perf/ab.sh
# against BASE (default: the commit before TTHeader/THeader came in), echo 64 B,
# framed and buffered. Results in perf/results/header-cost.jsonl.
# Usage: perf/header-cost.sh [ROUNDS] [SECONDS] [BASE]
set -euo pipefail
cd "$(dirname "$0")/.."
first=$(git log --diff-filter=A --format=%H -- src/transport/header.rs | tail -1)
PAYLOADS=64 TRANSPORTS="framed buffered" OUT=perf/results/header-cost.jsonl \
  exec perf/ab.sh "${1:-5}" "${2:-2}" "${3:-$first~1}"
