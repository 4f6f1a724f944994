#!/usr/bin/env bash
# One change, measured: server CPU per call of ringsoa-demo built from BASE against
# this tree's, one core, the two alternating in paired rounds; echo of each size in
# PAYLOADS (default "64 4096") over each of TRANSPORTS (default "framed"), 16 and 128
# connections. Results go to OUT (default perf/results/ab.jsonl); a Markdown summary
# (median ratio this ÷ base per cell) to stdout.
# Usage: [PAYLOADS=…] [TRANSPORTS=…] [OUT=…] perf/ab.sh ROUNDS SECONDS BASE
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -eq 3 ] || { echo "usage: perf/ab.sh ROUNDS SECONDS BASE (a commit)" >&2; exit 2; }
. perf/lib.sh "$1" "$2"
base=$3
payloads=${PAYLOADS:-64 4096}
transports=${TRANSPORTS:-framed}
out=${OUT:-perf/results/ab.jsonl}
work=target/ab-base
rm -rf "$work/tree"
mkdir -p "$work"
git worktree add --detach --force "$work/tree" "$base" >/dev/null 2>&1
trap 'git worktree remove --force "$work/tree"' EXIT
(cd "$work/tree" && CARGO_TARGET_DIR="$PWD/../target" cargo build --release --quiet --bin ringsoa-demo)
old="$work/target/release/ringsoa-demo"
: > "$out"
for round in $(seq "$rounds"); do
  for transport in $transports; do
    for payload in $payloads; do
      for conns in 16 128; do
        for build in base this; do
          demo=target/release/ringsoa-demo
          [ $build = base ] && demo=$old
          start_cmd "$demo" --listen "127.0.0.1:{port}" --cores 1 --no-governance --no-metrics
          run_load "$out" "$round" "$build" --conns "$conns" --payload "$payload" \
            --transport "$transport" --warmup-s 0.5 --duration-s "$secs"
          stop_server
        done
      done
    done
  done
done
python3 - "$out" "$(git rev-parse --short "$base")" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
cells = {}
for r in rows:
    key = (r["transport"], r["payload"], r["conns"])
    cells.setdefault(key, {}).setdefault(r["round"], {})[r["label"]] = r["server_cpu_us_per_call"]
print(f"Server CPU per call, this tree ÷ base {sys.argv[2]} (echo, one core, paired rounds):\n")
print("| transport | echo | conns | rounds | base µs/call (median) | this µs/call (median) | ratio (median of paired) | ratio range |")
print("|---|---|---|---|---|---|---|---|")
for (t, p, c), by_round in cells.items():
    pairs = [v for v in by_round.values() if "base" in v and "this" in v]
    ratios = [v["this"] / v["base"] for v in pairs]
    if ratios:
        print(f"| {t} | {p} B | {c} | {len(ratios)} | {statistics.median(v['base'] for v in pairs):.2f} | "
              f"{statistics.median(v['this'] for v in pairs):.2f} | {statistics.median(ratios):.3f} | "
              f"{min(ratios):.3f}–{max(ratios):.3f} |")
PY
