# Shared by the perf scripts: arguments, build, start a pinned server, run one
# pinned load. Servers run on CPU 0, the load generator on CPU 1.
rounds=${1:-3}
secs=${2:-3}
cargo build --release --quiet --bin ringsoa-demo --bin ringsoa-perf
mkdir -p perf/results
# Below the ephemeral range (32768+), where the load's TIME_WAIT sockets would
# keep a server that does not set SO_REUSEADDR from binding.
port=$((20000 + RANDOM % 12000))

# start_cmd COMMAND...: starts COMMAND (with {port} replaced by the next port) pinned
# to CPU 0; returns once the port accepts. Sets $port, $server (the PID measured) and
# $started (the PID to stop).
start_cmd() {
  port=$((port + 1))
  local args=("${@//\{port\}/$port}")
  RUST_LOG=warn taskset -c 0 "${args[@]}" > /dev/null 2>&1 &
  started=$!
  server=$started
  for _ in $(seq 200); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return; sleep 0.05; done
  echo "server $* did not start" >&2; exit 1
}

# start_server raw|ringsoa [DIR]: the raw io_uring limit or ringsoa-demo on one core,
# from the build in DIR (default target/release).
start_server() {
  local dir=${2:-target/release}
  case $1 in
    raw) start_cmd "$dir/ringsoa-perf" echo-server --listen "127.0.0.1:{port}" ;;
    ringsoa) start_cmd "$dir/ringsoa-demo" --listen "127.0.0.1:{port}" --cores 1 ;;
  esac
}

# in_turn ROUND NAME...: the names in order, reversed in even rounds, so that whatever
# one run leaves behind (the load's sockets in TIME_WAIT, a warm page cache) falls on
# each of them in turn.
in_turn() {
  local round=$1; shift
  if [ $((round % 2)) -eq 0 ]; then
    local i
    for ((i = $#; i >= 1; i--)); do printf '%s ' "${!i}"; done
  else
    printf '%s ' "$@"
  fi
}

# run_load OUT ROUND LABEL [ringsoa-perf load flags...]: one run against $server,
# its JSON (with the round, the load average and the CPUs' cache-line round trip at
# its start) appended to OUT. The load generator is $LOAD_BIN when set (another
# build's ringsoa-perf).
run_load() {
  local out=$1 round=$2 label=$3; shift 3
  local load; load=$(cut -d' ' -f1 /proc/loadavg)
  # The machine's state: a cache line's round trip between the two CPUs (the host
  # places and moves the virtual CPUs; see src/bin/ringsoa-perf/cpu_latency.rs).
  local rtt; rtt=$(target/release/ringsoa-perf cpu-latency --a 0 --b 1)
  "${LOAD_BIN:-target/release/ringsoa-perf}" load --addr "127.0.0.1:$port" --cpu 1 --server-pid "$server" \
    --label "$label" --json "$@" \
    | python3 -c "import json,sys; d=json.load(sys.stdin); d['round']=$round; d['loadavg']=$load; d['cpu_rtt_ns']=$rtt; print(json.dumps(d))" >> "$out"
}

stop_server() {
  kill "$started" 2>/dev/null || true; wait "$started" 2>/dev/null || true
}
