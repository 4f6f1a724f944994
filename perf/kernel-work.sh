#!/usr/bin/env bash
# What each server asks of the kernel a call: the raw io_uring limit and ringsoa-demo
# in turn, each alone on CPU 0 under `ringsoa-perf load` (CPU 1), with `perf stat`
# counting the kernel's tracepoints on the server's process while the load runs:
# io_uring_enter calls, SQEs submitted, completions, polls armed (a receive that
# found no data), task work added and run, and all system calls. Prints each run's
# counts divided by its calls. Needs perf (Debian's linux-perf) and the right to
# read tracepoints (root, or kernel.perf_event_paranoid ≤ -1).
# Usage: perf/kernel-work.sh [ROUNDS] [SECONDS] [PAYLOAD] [CONNS]
set -euo pipefail
cd "$(dirname "$0")/.."
command -v perf > /dev/null || { echo "perf/kernel-work.sh: needs perf (apt-get install linux-perf)" >&2; exit 1; }
. perf/lib.sh "${1:-2}" "${2:-3}"
payload=${3:-64}
conns=${4:-16}
events=syscalls:sys_enter_io_uring_enter,io_uring:io_uring_submit_req,io_uring:io_uring_complete
events+=,io_uring:io_uring_poll_arm,io_uring:io_uring_task_add,io_uring:io_uring_task_work_run
events+=,raw_syscalls:sys_enter
work=$(mktemp -d)
trap 'stop_server; rm -rf "$work"' EXIT
echo "per call, echo $payload B over $conns connections, $secs s a run:"
for round in $(seq "$rounds"); do
  for name in $(in_turn "$round" raw ringsoa); do
    start_server "$name"
    target/release/ringsoa-perf load --addr "127.0.0.1:$port" --cpu 1 --conns "$conns" \
      --payload "$payload" --warmup-s 0 --duration-s 1 > /dev/null
    perf stat -x, -e "$events" -p "$server" -o "$work/stat" &
    counting=$!
    sleep 0.5 # attached before the load starts: every call is counted
    target/release/ringsoa-perf load --addr "127.0.0.1:$port" --cpu 1 --conns "$conns" \
      --payload "$payload" --warmup-s 0 --duration-s "$secs" --json > "$work/load.json"
    kill -INT "$counting"; wait "$counting" || true
    stop_server
    python3 - "$work" "$round" "$name" <<'EOF'
import json, sys
work, round_, name = sys.argv[1:]
calls = json.load(open(f"{work}/load.json"))["calls"]
counts = []
for line in open(f"{work}/stat"):
    fields = line.strip().split(",")
    if len(fields) > 2 and fields[0].replace(".", "").isdigit():
        counts.append(f"{fields[2].split(':')[-1]} {int(float(fields[0])) / calls:.3f}")
print(f"round {round_} {name:8s} {calls} calls: " + ", ".join(counts))
EOF
  done
done
