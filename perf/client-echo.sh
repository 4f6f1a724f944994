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
python3 - "$out" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
cells = {}
for r in rows:
    cells.setdefault(r["conns"], {}).setdefault(r["label"], []).append(r)
med = lambda rs, k: statistics.median(r[k] for r in rs)
print("| calls in flight | load generator | client CPU µs/call | ratio to raw | p50 µs | p99 µs | server CPU µs/call | kQPS |")
print("|---|---|---|---|---|---|---|---|")
names = {"raw": "raw, pre-encoded", "tracked": "ringsoa client, tracked", "native": "ringsoa client, native"}
for conns, by in sorted(cells.items()):
    base = med(by["raw"], "client_cpu_us_per_call")
    for label in ("raw", "tracked", "native"):
        rs = by[label]
        c = med(rs, "client_cpu_us_per_call")
        print(f"| {conns} | {names[label]} | {c:.2f} | {c/base:.2f} | {med(rs,'p50_us'):.0f} | {med(rs,'p99_us'):.0f} | {med(rs,'server_cpu_us_per_call'):.2f} | {med(rs,'qps')/1000:.1f} |")
print(f"\n{len(rows)} runs; load average at run start {min(r['loadavg'] for r in rows):.2f}–{max(r['loadavg'] for r in rows):.2f}")
PY
