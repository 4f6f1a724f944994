#!/usr/bin/env bash
# Full-stack benchmark: ringsoa's client → ringsoa-demo, beside the raw pre-encoded
# load generator against the same server. Echo of 64 B over framed binary at 1, 16
# and 128 concurrent calls; the server (one core) pinned to CPU 0, the load to CPU 1;
# modes alternate, ROUNDS rounds; the medians go to stdout as a Markdown table and
# every run's JSON to perf/results/client-echo.jsonl.
# Usage: perf/client-echo.sh [ROUNDS] [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
. perf/lib.sh
out=perf/results/client-echo.jsonl
: > "$out"
for round in $(seq "$rounds"); do
  for conns in 1 16 128; do
    for mode in raw tracked native; do
      case $mode in
        raw) flags=() ;;
        tracked) flags=(--full-stack) ;;
        native) flags=(--full-stack --no-tracking) ;;
      esac
      start_server ringsoa
      run_load "$out" "$round" "$mode" --conns "$conns" --payload 64 \
        --warmup-s 1 --duration-s "$secs" "${flags[@]}"
      stop_server
    done
  done
done
python3 perf/summary.py client-echo "$out"
