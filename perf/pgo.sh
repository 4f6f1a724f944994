#!/usr/bin/env bash
# Profile-guided builds (PGO) of the two servers the peer matrix compares,
# ringsoa-demo and the limit (`ringsoa-perf echo-server`), and what they change.
#   1. builds both with -Cprofile-generate (target/pgo/gen);
#   2. trains each alone on CPU 0 under `ringsoa-perf load` on CPU 1 (echo 64 B and
#      4 KiB at 16 and 128 connections, TRAIN_SECS each, default 3), then stops it
#      with SIGTERM, on which both exit through `exit` and write their profile;
#   3. merges the profiles with llvm-profdata: LLVM_PROFDATA if set, else rustup's
#      llvm-tools component, else llvm-profdata-N or llvm-profdata in PATH (Debian's
#      llvm-19 reads the profiles of rustc 1.95's LLVM 22);
#   4. builds both with -Cprofile-use into target/pgo/use/release;
#   5. unless ROUNDS is 0: the default and the PGO builds of both servers, rotating
#      in paired rounds (echo 64 B and 4 KiB at 16 and 128 connections, SECONDS
#      each), server CPU per call (user + system) and user time per call, medians;
#      ringsoa-demo ÷ the limit within each build, and each PGO build ÷ its default.
#      Rows go to perf/results/pgo.jsonl.
# Instructions per call of the PGO builds: BIN_DIR=target/pgo/use/release
# perf/callgrind.sh 64 16 4.
# Usage: perf/pgo.sh [ROUNDS] [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
. perf/lib.sh "${1:-6}" "${2:-2}"
root=$PWD/target/pgo
data=$root/profiles
bins=(--bin ringsoa-demo --bin ringsoa-perf)
gen() { CARGO_TARGET_DIR=$root/gen RUSTFLAGS="-Cprofile-generate=$data" cargo build --release --quiet "${bins[@]}"; }
use() { CARGO_TARGET_DIR=$root/use RUSTFLAGS="-Cprofile-use=$root/merged.profdata" cargo build --release --quiet "${bins[@]}"; }

echo "== 1. instrumented builds (target/pgo/gen)"
gen
# The build scripts of the instrumented build write profiles too: only the servers'.
rm -rf "$data"

echo "== 2. training, ${TRAIN_SECS:-3} s a load"
for name in raw ringsoa; do
  start_server "$name" "$root/gen/release"
  for payload in 64 4096; do
    for conns in 16 128; do
      target/release/ringsoa-perf load --addr "127.0.0.1:$port" --cpu 1 --conns "$conns" \
        --payload "$payload" --warmup-s 0 --duration-s "${TRAIN_SECS:-3}" > /dev/null
    done
  done
  kill -TERM "$started"
  wait "$started" || { echo "perf/pgo.sh: $name did not exit cleanly: no profile" >&2; exit 1; }
done

echo "== 3. merging $(ls "$data" | wc -l) profiles"
llvm=$(rustc -vV | sed -n 's/^LLVM version: \([0-9]*\).*/\1/p')
candidates=("${LLVM_PROFDATA:-}")
candidates+=("$(rustc --print sysroot)"/lib/rustlib/*/bin/llvm-profdata)
for v in $(seq "$llvm" -1 19); do candidates+=("llvm-profdata-$v"); done
candidates+=(llvm-profdata)
merged=""
tried="none found"
for tool in "${candidates[@]}"; do
  [ -n "$tool" ] && command -v "$tool" > /dev/null || continue
  tried=$tool
  if "$tool" merge -o "$root/merged.profdata" "$data"/*.profraw 2> "$root/merge.err"; then
    merged=$tool
    break
  fi
done
[ -n "$merged" ] || {
  echo "perf/pgo.sh: no llvm-profdata here reads LLVM $llvm's profiles (last tried: $tried, $(tail -1 "$root/merge.err" 2>/dev/null)); install one: rustup component add llvm-tools, or apt-get install llvm-19" >&2
  exit 1
}
echo "merged with $merged"

echo "== 4. PGO builds (target/pgo/use/release)"
use

[ "$rounds" -gt 0 ] || exit 0
echo "== 5. default against PGO, $rounds rounds of $secs s"
out=perf/results/pgo.jsonl
: > "$out"
for round in $(seq "$rounds"); do
  for payload in 64 4096; do
    for conns in 16 128; do
      for build in $(in_turn "$round" limit ringsoa limit-pgo ringsoa-pgo); do
        dir=target/release
        [[ $build == *-pgo ]] && dir=$root/use/release
        kind=${build%-pgo}
        start_server "${kind/limit/raw}" "$dir"
        run_load "$out" "$round" "$build" --conns "$conns" --payload "$payload" \
          --warmup-s 0.5 --duration-s "$secs"
        stop_server
      done
    done
  done
done
python3 - "$out" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
cells = {}
for r in rows:
    cells.setdefault((r["payload"], r["conns"]), {}).setdefault(r["round"], {})[r["label"]] = r
builds = ["limit", "ringsoa", "limit-pgo", "ringsoa-pgo"]
def paired(rounds, a, b):
    x = [v[a]["server_cpu_us_per_call"] / v[b]["server_cpu_us_per_call"] for v in rounds]
    return f"{statistics.median(x):.3f} ({min(x):.2f}–{max(x):.2f})"
print("Server CPU µs per call (user µs per call), medians; ratios are medians of paired rounds (range):\n")
print("| echo | conns | rounds | limit | ringsoa-demo | limit, PGO | ringsoa-demo, PGO "
      "| ringsoa ÷ limit | ringsoa ÷ limit, PGO | PGO ÷ default: limit | PGO ÷ default: ringsoa |")
print("|---|---|---|---|---|---|---|---|---|---|---|")
for (payload, conns), by_round in sorted(cells.items()):
    rounds = [v for v in by_round.values() if all(b in v for b in builds)]
    if not rounds:
        continue
    med = lambda b, k: statistics.median(v[b][k] for v in rounds)
    cols = " | ".join(f"{med(b, 'server_cpu_us_per_call'):.2f} ({med(b, 'server_user_us_per_call'):.2f})"
                      for b in builds)
    print(f"| {payload} B | {conns} | {len(rounds)} | {cols} | {paired(rounds, 'ringsoa', 'limit')} | "
          f"{paired(rounds, 'ringsoa-pgo', 'limit-pgo')} | {paired(rounds, 'limit-pgo', 'limit')} | "
          f"{paired(rounds, 'ringsoa-pgo', 'ringsoa')} |")
PY
