#!/usr/bin/env bash
# Flamegraph of ringsoa-demo under load: the server (one core, CPU 0) runs under
# `perf record` with the software cpu-clock event (hardware counters are often
# unavailable on virtual machines) while `ringsoa-perf load` drives it from CPU 1;
# the samples are folded and drawn by inferno into perf/results/flamegraph.svg.
# Installs perf (Debian's linux-perf) and inferno (crates.io) when missing.
# Usage: perf/flamegraph.sh [SECONDS] [extra ringsoa-perf load flags, e.g. --conns 128 --payload 4096]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-5}
shift || true
if ! command -v perf >/dev/null; then
  sudo=$([ "$(id -u)" = 0 ] || echo sudo)
  $sudo apt-get install -y linux-perf
fi
export PATH="$HOME/.cargo/bin:$PATH"
if ! command -v inferno-flamegraph >/dev/null; then
  cargo install --locked inferno
fi
cargo build --release --quiet --bin ringsoa-demo --bin ringsoa-perf
mkdir -p perf/results
data=perf/results/flamegraph.perf.data
# Below the ephemeral range (32768+), where the load's TIME_WAIT sockets would
# keep a server that does not set SO_REUSEADDR from binding.
port=$((20000 + RANDOM % 12000))
RUST_LOG=warn perf record -q -e cpu-clock -g -o "$data" -- \
  taskset -c 0 target/release/ringsoa-demo --listen "127.0.0.1:$port" --cores 1 &
recorder=$!
for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.05; done
target/release/ringsoa-perf load --addr "127.0.0.1:$port" --cpu 1 --warmup-s 1 \
  --duration-s "$secs" --label flamegraph --json "$@" > perf/results/flamegraph.json
# SIGINT drains the demo; perf then writes its data and exits.
pkill -INT -f "^target/release/ringsoa-demo --listen 127.0.0.1:$port" || true
wait "$recorder" || true
perf script -i "$data" 2>/dev/null | inferno-collapse-perf > perf/results/flamegraph.folded
inferno-flamegraph --title "ringsoa-demo under ringsoa-perf load $*" \
  < perf/results/flamegraph.folded > perf/results/flamegraph.svg
rm -f "$data" "$data.old"
echo "perf/results/flamegraph.svg ($(wc -l < perf/results/flamegraph.folded) stacks); load: $(cat perf/results/flamegraph.json | cut -c1-160)"
