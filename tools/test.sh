#!/usr/bin/env bash
# The one test command (README, .ci/run): installs what the tests need when it is
# missing (ZooKeeper, the Python venv, Apache Thrift's source and compiler), then runs
# every check. Takes a few minutes on a fresh 2-core machine.
#   FUZZ_SECONDS=N   seconds per fuzz target in the smoke run (default 10)
set -euo pipefail
cd "$(dirname "$0")/.."
step() { printf '\n== %s\n' "$*"; }

# One full run gains nothing from incremental caches (gigabytes on disk), and the
# crates the tests build beside ringsoa (peers, scaffold, Apache's) take the
# workspace's line-tables-only debug info too. The free disk is printed so that a
# linker killed by a full disk (SIGBUS) can be told from a real failure.
export CARGO_INCREMENTAL=0 CARGO_PROFILE_DEV_DEBUG=line-tables-only
df -h . | awk 'NR == 2 { print "tools/test.sh: " $4 " free on the disk of target/" }'

step "Python venv with thriftpy2 (real peer)"
PY=$(tools/venv.sh)

step "ZooKeeper (Debian's package) for the governance tests, which start their own"
tools/zk.sh install

step "golden fixtures still equal what thriftpy2 writes"
"$PY" tools/golden.py --check

step "format and lints"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --quiet -- -D warnings
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --quiet

step "the library as a service builds it (default-features = false: no CLI, no TLS)"
cargo clippy -p ringsoa --no-default-features --lib --tests --quiet -- -D warnings
if cargo tree -p ringsoa --no-default-features -e normal --prefix none | grep -E '^(rustls|aws-lc-sys|aws-lc-rs) '; then
  echo "tools/test.sh: without its zk-tls feature the library still depends on the crates above" >&2
  exit 1
fi
cargo test -p ringsoa --no-default-features --lib --quiet governance::

step "fuzz smoke run"
tools/fuzz.sh "${FUZZ_SECONDS:-10}"

step "cargo test"
cargo test --workspace

# In most containers io_uring is blocked (Docker's and containerd's default seccomp
# profiles) and every runtime falls back to epoll: the servers, clients and shared
# clients run again on it.
step "cargo test on the epoll driver (RINGSOA_RING=epoll)"
RINGSOA_RING=epoll cargo test --test server_peers --test server_inprocess \
  --test client_pool --test client_nodes --test client_peers --test shared_client \
  --test bad_day --test linked_replies --test examples

step "Apache Thrift conformance: its IDL corpus and its cross-language test"
tools/apache/conformance.sh
