#!/usr/bin/env bash
# Instructions per call, which machine noise does not move: ringsoa-demo and the raw
# io_uring limit (`ringsoa-perf echo-server`) each run under valgrind's callgrind,
# pinned to CPU 0, while `ringsoa-perf load` (CPU 1) echoes PAYLOAD bytes over CONNS
# connections. The counts are zeroed after a warm-up load and dumped after the
# measured one, then divided by its calls. Prints per call: instructions (Ir), data
# reads and writes, and the simulated L1 misses, with each server's top functions by
# their own instructions. Valgrind sees user space only, and its cache simulation
# does not see the kernel's copies into the buffers: the misses are a hint, the
# instruction counts are exact. Needs valgrind (Debian's package).
# Usage: perf/callgrind.sh [PAYLOAD] [CONNS] [SECONDS]
#   DEMO_FLAGS  ringsoa-demo's flags besides --listen/--cores (default: none, the
#               demo's defaults with governance and metrics)
#   TOP         functions listed per server (default 25)
#   BIN_DIR     where both servers' binaries are (default target/release; e.g. the
#               PGO builds of perf/pgo.sh, target/pgo/use/release)
#   FOOTPRINT=1 also the hot code's footprint (perf/footprint.py): the cache lines
#               of the instructions run at least every other call, and how they
#               fall on a 32 KiB 8-way L1 instruction cache's sets
#   CORES       ringsoa-demo's cores (default 1). valgrind runs a process's threads
#               one at a time, so the count a call with 2 cores against 1 shows what
#               a second core adds to each call's work, not what it costs in time
#   THREADS=1   each thread's instructions a call apart (valgrind's
#               --separate-threads, threads numbered as valgrind made them), and the
#               top functions of each thread with over a tenth of the instructions
#               (FOOTPRINT is then left out)
set -euo pipefail
cd "$(dirname "$0")/.."
command -v valgrind > /dev/null || { echo "perf/callgrind.sh: needs valgrind (apt-get install valgrind)" >&2; exit 1; }
payload=${1:-4096}
conns=${2:-128}
. perf/lib.sh 1 "${3:-10}"
read -r -a demo_flags <<< "${DEMO_FLAGS-}"
bin_dir=${BIN_DIR:-target/release}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
load() {
  target/release/ringsoa-perf load --addr "127.0.0.1:$port" --cpu 1 --conns "$conns" \
    --payload "$payload" --warmup-s 0 "$@"
}
for name in limit ringsoa; do
  case $name in
    limit) cmd=("$bin_dir/ringsoa-perf" echo-server --listen "127.0.0.1:{port}") ;;
    ringsoa) cmd=("$bin_dir/ringsoa-demo" --listen "127.0.0.1:{port}" --cores "${CORES:-1}" "${demo_flags[@]}") ;;
  esac
  extra=()
  [ "${FOOTPRINT:-}" = 1 ] && extra+=(--dump-instr=yes)
  [ "${THREADS:-}" = 1 ] && extra+=(--separate-threads=yes)
  start_cmd valgrind --tool=callgrind --cache-sim=yes "${extra[@]}" --callgrind-out-file="$work/$name.out" "${cmd[@]}"
  load --duration-s 2 > /dev/null
  callgrind_control --zero "$started" > /dev/null 2>&1
  load --duration-s "$secs" --json > "$work/$name.json"
  callgrind_control --dump "$started" > /dev/null 2>&1
  # Killed, not asked: under valgrind a server idle in io_uring_enter never sees a
  # SIGTERM, and the counts are already written.
  kill -KILL "$started"; wait "$started" 2>/dev/null || true
  calls=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['calls'])" "$work/$name.json")
  echo "== $name: echo $payload B, $conns connections, $calls calls measured"
  if [ "${THREADS:-}" = 1 ]; then
    python3 perf/callgrind_top.py --threads "$calls" "${TOP:-25}" "$work/$name.out".*
    continue
  fi
  python3 perf/callgrind_top.py "$work/$name.out".* "$calls" "${TOP:-25}"
  if [ "${FOOTPRINT:-}" = 1 ]; then
    python3 perf/footprint.py "$work/$name.out".* "$calls"
  fi
done
