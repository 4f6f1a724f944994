#!/usr/bin/env bash
# The peer matrix: ringsoa-demo beside the raw io_uring limit, a raw tokio echo
# server, volo-thrift, the Apache thrift crate's threaded server, thriftpy2's
# threaded server and the seed's gunicorn_thrift with gevent workers — each serving
# Demo.ping/Demo.echo over framed strict binary, pinned to CPU 0, driven by
# `ringsoa-perf load` pinned to CPU 1 (framed everywhere: thriftpy2's server never
# sets TCP_NODELAY, so a buffered 4 KiB reply would wait for a delayed ACK).
# Cells: echo 64 B and 4 KiB at 1, 16 and 128 connections, and ping at 16; then
# echo 64 B at 16 connections over TTHeader (Volo's default codec; ringsoa-demo and
# volo-thrift only, the others do not speak it); servers rotate within each cell
# (ringsoa-demo and the limit back to back, their order swapped every round),
# ROUNDS rounds, medians. Writes every run to
# perf/results/peers.jsonl and the table into perf/RESULTS.md (between the
# peers:begin/end markers), and prints it.
# Usage: perf/peers/run.sh [ROUNDS] [SECONDS]
#   CELLS="echo 64 16 ttheader;ping 0 16"  only these cells (the table is printed,
#                                           perf/RESULTS.md left alone)
set -euo pipefail
cd "$(dirname "$0")/../.."
. perf/lib.sh "${1:-3}" "${2:-2}"
(cd perf/peers/rust && cargo build --release --quiet)
bash perf/peers/venv.sh
peers=perf/peers/rust/target/release
py=perf/peers/.venv/bin

start_peer() {
  case $1 in
    raw|ringsoa) start_server "$1" ;;
    tokio) start_cmd "$peers/tokio-echo" "127.0.0.1:{port}" ;;
    volo) start_cmd "$peers/volo-demo" "127.0.0.1:{port}" ;;
    thrift-rs) start_cmd "$peers/thrift-demo" "127.0.0.1:{port}" ;;
    thriftpy2) start_cmd "$py/python" tests/peers/demo_server.py \
      src/bin/ringsoa-demo/demo.thrift "{port}" native binary framed ;;
    gunicorn)
      start_cmd "$py/gunicorn_thrift" --chdir perf/peers/python gunicorn_app:app \
        -k thriftpy_gevent -w 1 --bind "127.0.0.1:{port}" --log-level warning \
        --thrift-transport-factory thriftpy2.transport:TFramedTransportFactory \
        --thrift-protocol-factory thriftpy2.protocol:TBinaryProtocolFactory
      # The worker serves; the master only supervises. It listens before it forks
      # the worker: wait for the worker (a bare pgrep here ended a run now and then).
      server=
      for _ in $(seq 200); do
        server=$(pgrep -P "$started" | head -1 || true)
        [ -n "$server" ] && break
        sleep 0.05
      done
      [ -n "$server" ] || { echo "gunicorn_thrift started no worker" >&2; exit 1; } ;;
  esac
}

out=perf/results/peers.jsonl
: > "$out"
others=(tokio volo thrift-rs thriftpy2 gunicorn)
cells=("echo 64 1" "echo 64 16" "echo 64 128" "echo 4096 1" "echo 4096 16" "echo 4096 128" "ping 0 16"
       "echo 64 16 ttheader")
into=(--into perf/RESULTS.md)
if [ -n "${CELLS:-}" ]; then IFS=';' read -ra cells <<< "$CELLS"; into=(); fi
started_at=$(date +%s)
for round in $(seq "$rounds"); do
  for cell in "${cells[@]}"; do
    read -r method payload conns transport <<< "$cell"
    transport=${transport:-framed}
    # The servers rotate within the cell from round to round; ringsoa and the limit
    # it is held to run back to back, the one first in one round second in the
    # next, so that neither always inherits what the run before it left behind.
    pair="raw ringsoa"
    [ $((round % 2)) -eq 0 ] && pair="ringsoa raw"
    in_cell=("$pair" "${others[@]}")
    [ "$transport" = framed ] || in_cell=(ringsoa volo)
    order=()
    for i in "${!in_cell[@]}"; do
      read -r -a runs <<< "${in_cell[$(( (i + round) % ${#in_cell[@]} ))]}"
      order+=("${runs[@]}")
    done
    for srv in "${order[@]}"; do
      start_peer "$srv"
      run_load "$out" "$round" "$srv" --method "$method" --payload "$payload" \
        --conns "$conns" --transport "$transport" --warmup-s 0.5 --duration-s "$secs"
      stop_server
    done
  done
  echo "round $round done after $(( $(date +%s) - started_at )) s" >&2
done
python3 perf/peers/table.py "$out" "$(( $(date +%s) - started_at ))" "$rounds" "$secs" \
  "${into[@]}" | tee perf/results/peers.md
