#!/usr/bin/env bash
# Interface control's cost: server CPU per call (echo 64 B, 16 connections, one
# core) with the per-core recorders and breaker checks on against --no-metrics,
# both without governance, alternating in paired rounds. Results go to
# perf/results/control.jsonl; a Markdown summary to stdout.
# Usage: perf/control.sh [ROUNDS] [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
. perf/lib.sh
out=perf/results/control.jsonl
: > "$out"
for round in $(seq "$rounds"); do
  for srv in on off; do
    flags=(--no-governance)
    [ $srv = off ] && flags+=(--no-metrics)
    start_cmd target/release/ringsoa-demo --listen "127.0.0.1:{port}" --cores 1 "${flags[@]}"
    run_load "$out" "$round" "control-$srv" --conns 16 --payload 64 --warmup-s 1 --duration-s "$secs"
    stop_server
  done
done
python3 perf/governance/summary.py "$out"
