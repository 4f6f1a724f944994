#!/usr/bin/env bash
# The client's instructions per call, which machine noise does not move:
# `ringsoa-perf load --full-stack` (ringsoa's Client) under valgrind's callgrind on
# CPU 1, echoing 64 B to ringsoa-demo (native, one core, CPU 0). Two runs, of 2 s
# and 5 s: their difference in instructions over their difference in calls leaves
# out the start-up and the exit. Needs valgrind (Debian's package).
#   CONNS        calls in flight (default 128)
#   CLIENT_FLAGS more load flags (e.g. --no-tracking: native Thrift)
#   BIN_DIR      where the client's ringsoa-perf is (default target/release; e.g.
#                target/ab-base/release, perf/ab.sh's build of another commit)
# Usage: perf/callgrind-client.sh
set -euo pipefail
cd "$(dirname "$0")/.."
command -v valgrind > /dev/null || { echo "perf/callgrind-client.sh: needs valgrind (apt-get install valgrind)" >&2; exit 1; }
. perf/lib.sh 1 1
read -r -a flags <<< "${CLIENT_FLAGS-}"
bin_dir=${BIN_DIR:-target/release}
work=$(mktemp -d)
trap 'stop_server; rm -rf "$work"' EXIT
start_server ringsoa
for secs in 2 5; do
  taskset -c 1 valgrind --tool=callgrind --callgrind-out-file="$work/$secs.out" \
    "$bin_dir/ringsoa-perf" load --addr "127.0.0.1:$port" --full-stack "${flags[@]}" \
    --conns "${CONNS:-128}" --payload 64 --warmup-s 0 --duration-s "$secs" --json \
    > "$work/$secs.json" 2> /dev/null
done
python3 - "$work" <<'PY'
import json, sys
work = sys.argv[1]
def instructions(secs):
    for line in open(f"{work}/{secs}.out"):
        if line.startswith(("summary:", "totals:")):
            return int(line.split()[1])
def calls(secs):
    return json.load(open(f"{work}/{secs}.json"))["calls"]
per_call = (instructions(5) - instructions(2)) / (calls(5) - calls(2))
print(f"client instructions a call: {per_call:,.0f} ({calls(2)} and {calls(5)} calls)")
PY
