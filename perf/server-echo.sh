#!/usr/bin/env bash
# Server benchmark: ringsoa-demo against the raw monoio echo server (the limit), same
# bytes on the wire. Echo of 64 B and 4 KiB over framed binary at 1, 16 and 128
# connections; each server pinned to CPU 0 (one core), the load generator to CPU 1;
# servers alternate, ROUNDS rounds; the medians go to stdout as a Markdown table and
# every run's JSON to perf/results/server-echo.jsonl.
# Usage: perf/server-echo.sh [ROUNDS] [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
. perf/lib.sh
out=perf/results/server-echo.jsonl
: > "$out"
for round in $(seq "$rounds"); do
  for payload in 64 4096; do
    for conns in 1 16 128; do
      for srv in raw ringsoa; do
        start_server "$srv"
        run_load "$out" "$round" "$srv" --conns "$conns" --payload "$payload" \
          --warmup-s 1 --duration-s "$secs"
        stop_server
      done
    done
  done
done
python3 - "$out" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
cells = {}
for r in rows:
    cells.setdefault((r["payload"], r["conns"]), {}).setdefault(r["label"], []).append(r)
med = lambda rs, k: statistics.median(r[k] for r in rs)
print("| echo | conns | raw CPU µs/call | ringsoa CPU µs/call | ratio | raw p50/p99 µs | ringsoa p50/p99 µs | p99 ratio | raw kQPS | ringsoa kQPS |")
print("|---|---|---|---|---|---|---|---|---|---|")
for (payload, conns), by in sorted(cells.items()):
    raw, rs = by["raw"], by["ringsoa"]
    rc, sc = med(raw, "server_cpu_us_per_call"), med(rs, "server_cpu_us_per_call")
    print(f"| {payload} B | {conns} | {rc:.2f} | {sc:.2f} | {sc/rc:.2f} | {med(raw,'p50_us'):.0f}/{med(raw,'p99_us'):.0f} | {med(rs,'p50_us'):.0f}/{med(rs,'p99_us'):.0f} | {med(rs,'p99_us')/med(raw,'p99_us'):.2f} | {med(raw,'qps')/1000:.1f} | {med(rs,'qps')/1000:.1f} |")
print(f"\n{len(rows)} runs; load average at run start {min(r['loadavg'] for r in rows):.2f}–{max(r['loadavg'] for r in rows):.2f}")
PY
