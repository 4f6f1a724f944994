#!/usr/bin/env bash
# Governance benchmarks, against a ZooKeeper started here (tools/zk.sh):
#   1. a ZooKeeper write → seen on both cores (ringsoa-perf governance propagation),
#      100 changes per round;
#   2. fan-out: 1,000 providers, 100 consumer sessions in one process, 40 changes;
#      ringsoa's governance threads and the seed's kazoo (one ChildrenWatch each)
#      alternate, with ZooKeeper's packets and CPU per change;
#   3. start-up to the first served request: with ZooKeeper, and from the disk cache
#      with ZooKeeper down;
#   4. server CPU per call (echo 64 B, 16 connections, one core): governance on
#      (ZooKeeper connected, config and switches present) against --no-governance,
#      alternating.
# Every result goes to perf/results/governance.jsonl; a Markdown summary to stdout.
# Usage: perf/governance.sh [ROUNDS] [SECONDS]   (ONLY=cpu: part 4 alone)
set -euo pipefail
cd "$(dirname "$0")/.."
. perf/lib.sh
PY=$(tools/venv.sh)
"$PY" -c "import kazoo" 2>/dev/null || "$PY" -m pip install --quiet --disable-pip-version-check "kazoo==2.10.0"
zkdir=$(mktemp -d)
cache=$(mktemp -d)
trap 'tools/zk.sh stop --dir "$zkdir"; rm -rf "$zkdir" "$cache"' EXIT
ZK=$(tools/zk.sh start --dir "$zkdir" --port $((30000 + RANDOM % 20000)))
zkpid() { cat "$zkdir/node-1/pid"; }
out=perf/results/governance.jsonl
: > "$out"
tag() { python3 -c "import json,sys; d=json.loads(sys.stdin.read()); d.update(json.loads(sys.argv[1])); print(json.dumps(d))" "$1" >> "$out"; }

parts=${ONLY:-all}
[ "$parts" = all ] && for round in $(seq "$rounds"); do
  target/release/ringsoa-perf governance propagation --zk "$ZK" --changes 100 --cores 2 2>/dev/null \
    | tag "{\"round\": $round}"
  target/release/ringsoa-perf governance fanout --zk "$ZK" --zk-pid "$(zkpid)" 2>/dev/null \
    | tag "{\"round\": $round}"
  "$PY" perf/governance/kazoo_fanout.py "$ZK" 1000 100 40 2>/dev/null | tag "{\"round\": $round}"
done

[ "$parts" = all ] && for round in $(seq "$rounds"); do
  port=$((port + 1))
  ms=$("$PY" perf/governance/startup.py target/release/ringsoa-demo "$port" --zk "$ZK" --cache-dir "$cache")
  echo "{\"mode\": \"startup\", \"zookeeper\": \"up\", \"ms\": $ms}" | tag "{\"round\": $round}"
done
[ "$parts" = all ] && kill "$(zkpid)" && sleep 1
[ "$parts" = all ] && for round in $(seq "$rounds"); do
  port=$((port + 1))
  ms=$("$PY" perf/governance/startup.py target/release/ringsoa-demo "$port" --zk "$ZK" --cache-dir "$cache")
  echo "{\"mode\": \"startup\", \"zookeeper\": \"down (disk cache)\", \"ms\": $ms}" | tag "{\"round\": $round}"
done
[ "$parts" = all ] && tools/zk.sh start-node 1 --dir "$zkdir"
target/release/ringsoa config set ringsoa-demo greeting hello --zk "$ZK" > /dev/null
target/release/ringsoa switch set ringsoa-demo relay on --zk "$ZK" > /dev/null

for round in $(seq "$rounds"); do
  for srv in on off; do
    if [ $srv = on ]; then
      start_cmd target/release/ringsoa-demo --listen "127.0.0.1:{port}" --cores 1 --zk "$ZK" --cluster main
    else
      start_cmd target/release/ringsoa-demo --listen "127.0.0.1:{port}" --cores 1 --no-governance
    fi
    run_load "$out" "$round" "governance-$srv" --conns 16 --payload 64 --warmup-s 1 --duration-s "$secs"
    stop_server
  done
done
python3 perf/governance/summary.py "$out"
