#!/usr/bin/env bash
# What an idle ringsoa-demo costs: started with 2 cores and its defaults (metrics,
# governance from the embedded defaults), loaded for a second, then left alone. Prints,
# over SECONDS, each core thread's wake-ups a second (its voluntary context
# switches) and the whole process's CPU milliseconds a second (every thread).
# BIN_DIR: where ringsoa-demo is (default target/release; e.g. target/ab-base/release,
# perf/ab.sh's build of another commit, to compare).
# Usage: perf/idle.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-20}
bin_dir=${BIN_DIR:-target/release}
cargo build --release --quiet --bin ringsoa-demo --bin ringsoa-perf
port=$((20000 + RANDOM % 12000))
RUST_LOG=warn "$bin_dir/ringsoa-demo" --listen "127.0.0.1:$port" --cores 2 > /dev/null 2>&1 &
pid=$!
trap 'kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null || true' EXIT
for _ in $(seq 200); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.05; done
target/release/ringsoa-perf load --addr "127.0.0.1:$port" --conns 4 --payload 64 \
  --warmup-s 0 --duration-s 1 > /dev/null
# The calls' last delta, and the start's own work, done.
sleep 3
wakeups() {
  for t in /proc/"$pid"/task/*; do
    case $(cat "$t/comm") in
      ringsoa-core-*) awk -v c="$(cat "$t/comm")" '/^voluntary_ctxt_switches/ {print c, $2}' "$t/status" ;;
    esac
  done
}
# Each thread's time on a CPU in nanoseconds (schedstat), summed: the process's
# stat counts in clock ticks of 10 ms, too coarse for an idle process.
cpu() { cat /proc/"$pid"/task/*/schedstat | awk '{s += $1} END {print s}'; }
before=$(wakeups); c0=$(cpu)
sleep "$secs"
after=$(wakeups); c1=$(cpu)
python3 - "$secs" "$c0" "$c1" "$before" "$after" <<'PY'
import sys
secs, c0, c1 = float(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
parse = lambda text: dict((l.split()[0], int(l.split()[1])) for l in text.splitlines() if l.strip())
before, after = parse(sys.argv[4]), parse(sys.argv[5])
for core in sorted(after):
    print(f"{core}: {(after[core] - before.get(core, 0)) / secs:.1f} wake-ups a second")
print(f"process CPU: {(c1 - c0) / 1e6 / secs:.3f} ms a second ({secs:g} s idle)")
PY
