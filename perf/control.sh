#!/usr/bin/env bash
# Interface control's cost: server CPU per call (echo 64 B, 16 connections, one
# core) with everything on — per-core recorders, breaker checks, an ACL (a deny
# list) and rate limits (echo's far above the load, so every call is checked and
# none refused), from a state file — against everything off (--no-governance
# --no-metrics), alternating in paired rounds. Results go to
# perf/results/control.jsonl; a Markdown summary to stdout.
# Usage: perf/control.sh [ROUNDS] [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
. perf/lib.sh
out=perf/results/control.jsonl
: > "$out"
state=$(mktemp --suffix .toml)
trap 'rm -f "$state"' EXIT
cat > "$state" <<'TOML'
[apps.ringsoa-demo.config]
"acl.deny" = "nobody"
"limit.echo.qps" = "100000000"
"limit.echo.concurrency" = "100000"
TOML
for round in $(seq "$rounds"); do
  for srv in on off; do
    if [ $srv = on ]; then
      start_cmd target/release/ringsoa-demo --listen "127.0.0.1:{port}" --cores 1 --state "$state"
    else
      start_cmd target/release/ringsoa-demo --listen "127.0.0.1:{port}" --cores 1 --no-governance --no-metrics
    fi
    run_load "$out" "$round" "control-$srv" --conns 16 --payload 64 --warmup-s 1 --duration-s "$secs"
    stop_server
  done
done
python3 perf/governance/summary.py "$out"
