#!/usr/bin/env bash
# What the header transports cost the paths that existed before them: server CPU per
# call of ringsoa-demo built from BASE (default: the commit before TTHeader/THeader
# came in) against this tree's, echo 64 B, framed and buffered, 16 and 128
# connections, one core, alternating in paired rounds. Results go to
# perf/results/header-cost.jsonl; a Markdown summary (median ratio this ÷ base per
# cell) to stdout.
# Usage: perf/header-cost.sh [ROUNDS] [SECONDS] [BASE]
set -euo pipefail
cd "$(dirname "$0")/.."
. perf/lib.sh "${1:-5}" "${2:-2}"
first=$(git log --diff-filter=A --format=%H -- src/transport/header.rs | tail -1)
base=${3:-$first~1}
work=target/header-base
rm -rf "$work/tree"
mkdir -p "$work"
git worktree add --detach --force "$work/tree" "$base" >/dev/null 2>&1
trap 'git worktree remove --force "$work/tree"' EXIT
(cd "$work/tree" && CARGO_TARGET_DIR="$PWD/../target" cargo build --release --quiet --bin ringsoa-demo)
old="$work/target/release/ringsoa-demo"
out=perf/results/header-cost.jsonl
: > "$out"
for round in $(seq "$rounds"); do
  for transport in framed buffered; do
    for conns in 16 128; do
      for build in base this; do
        demo=target/release/ringsoa-demo
        [ $build = base ] && demo=$old
        start_cmd "$demo" --listen "127.0.0.1:{port}" --cores 1 --no-governance --no-metrics
        run_load "$out" "$round" "$build" --conns "$conns" --payload 64 --transport "$transport" \
          --warmup-s 0.5 --duration-s "$secs"
        stop_server
      done
    done
  done
done
python3 - "$out" "$(git rev-parse --short "$base")" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
cells = {}
for r in rows:
    cells.setdefault((r["transport"], r["conns"], r["round"]), {})[r["label"]] = r["server_cpu_us_per_call"]
print(f"Server CPU per call, this tree ÷ base {sys.argv[2]} (echo 64 B, one core, paired rounds):\n")
print("| transport | conns | rounds | base µs/call (median) | this µs/call (median) | ratio (median of paired) | ratio range |")
print("|---|---|---|---|---|---|---|")
for t in ["framed", "buffered"]:
    for c in [16, 128]:
        pairs = [v for (tt, cc, _), v in cells.items() if tt == t and cc == c and "base" in v and "this" in v]
        ratios = [p["this"] / p["base"] for p in pairs]
        if ratios:
            print(f"| {t} | {c} | {len(ratios)} | {statistics.median(p['base'] for p in pairs):.2f} | "
                  f"{statistics.median(p['this'] for p in pairs):.2f} | {statistics.median(ratios):.3f} | "
                  f"{min(ratios):.3f}–{max(ratios):.3f} |")
PY
