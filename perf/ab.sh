#!/usr/bin/env bash
# One change, measured: CPU per call of a build from BASE against this tree's, the
# two alternating in paired rounds, one core each; echo of each size in PAYLOADS
# (default "64 4096") over each of TRANSPORTS (default "framed"), at each of CONNS
# (default "16 128") connections. Results go to OUT (default perf/results/ab.jsonl); a Markdown summary
# (median ratio this ÷ base per cell) to stdout.
#   SIDE=server (default): ringsoa-demo from BASE against this tree's, server CPU per
#     call, run with DEMO_FLAGS (default "--no-governance --no-metrics": the request
#     path alone; set DEMO_FLAGS= to measure with the metrics and governance threads).
#   SIDE=client: ringsoa-perf load --full-stack from BASE against this tree's, both
#     against this tree's ringsoa-demo; client CPU per call. CLIENT_FLAGS adds load
#     flags (e.g. --no-tracking).
# Usage: [SIDE=…] [PAYLOADS=…] [TRANSPORTS=…] [OUT=…] perf/ab.sh ROUNDS SECONDS BASE
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -eq 3 ] || { echo "usage: perf/ab.sh ROUNDS SECONDS BASE (a commit)" >&2; exit 2; }
. perf/lib.sh "$1" "$2"
base=$3
side=${SIDE:-server}
payloads=${PAYLOADS:-64 4096}
conns_list=${CONNS:-16 128}
transports=${TRANSPORTS:-framed}
out=${OUT:-perf/results/ab.jsonl}
read -r -a demo_flags <<< "${DEMO_FLAGS---no-governance --no-metrics}"
read -r -a client_flags <<< "${CLIENT_FLAGS-}"
case $side in
  server) bin=ringsoa-demo; metric=server_cpu_us_per_call ;;
  client) bin=ringsoa-perf; metric=client_cpu_us_per_call ;;
  *) echo "SIDE is server or client, not $side" >&2; exit 2 ;;
esac
# The base's tree is checked out outside this one: inside it, cargo took this
# tree's workspace for the base's, and a base from before the workspace (as
# perf/header-cost.sh's) did not build. Its builds stay in target/ab-base.
work=$PWD/target/ab-base
tree=$(mktemp -d)
git worktree add --detach --force "$tree" "$base" >/dev/null 2>&1
trap 'git worktree remove --force "$tree"' EXIT
(cd "$tree" && CARGO_TARGET_DIR="$work/target" cargo build --release --quiet --bin "$bin")
old="$work/target/release/$bin"
: > "$out"
for round in $(seq "$rounds"); do
  for transport in $transports; do
    for payload in $payloads; do
      for conns in $conns_list; do
        order="base this"
        [ $((round % 2)) -eq 0 ] && order="this base"
        for build in $order; do
          demo=target/release/ringsoa-demo
          LOAD_BIN=target/release/ringsoa-perf
          if [ $side = server ]; then
            [ $build = base ] && demo=$old
            flags=()
          else
            [ $build = base ] && LOAD_BIN=$old
            flags=(--full-stack "${client_flags[@]}")
          fi
          start_cmd "$demo" --listen "127.0.0.1:{port}" --cores 1 "${demo_flags[@]}"
          run_load "$out" "$round" "$build" --conns "$conns" \
            --payload "$payload" --transport "$transport" --warmup-s 0.5 \
            --duration-s "$secs" "${flags[@]}"
          stop_server
        done
      done
    done
  done
done
python3 - "$out" "$(git rev-parse --short "$base")" "$side" "$metric" <<'PY'
import json, statistics, sys
out, base, side, metric = sys.argv[1:]
rows = [json.loads(l) for l in open(out) if l.strip()]
cells = {}
for r in rows:
    key = (r["transport"], r["payload"], r["conns"])
    cells.setdefault(key, {}).setdefault(r["round"], {})[r["label"]] = r[metric]
print(f"{side.capitalize()} CPU per call, this tree ÷ base {base} (echo, one core each, paired rounds):\n")
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
