#!/usr/bin/env bash
# Server benchmark: ringsoa-demo against the raw monoio echo server (the limit), same
# bytes on the wire. Echo of 64 B and 4 KiB over framed binary at 1, 16 and 128
# connections; each server pinned to CPU 0 (one core), the load generator to CPU 1;
# servers alternate (the order swapped every round), ROUNDS rounds; the medians go
# to stdout as a Markdown table and every run's JSON to perf/results/server-echo.jsonl.
# Usage: perf/server-echo.sh [ROUNDS] [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
. perf/lib.sh
out=perf/results/server-echo.jsonl
: > "$out"
for round in $(seq "$rounds"); do
  for payload in 64 4096; do
    for conns in 1 16 128; do
      for srv in $(in_turn "$round" raw ringsoa); do
        start_server "$srv"
        run_load "$out" "$round" "$srv" --conns "$conns" --payload "$payload" \
          --warmup-s 1 --duration-s "$secs"
        stop_server
      done
    done
  done
done
python3 perf/summary.py server-echo "$out"
