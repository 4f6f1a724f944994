#!/usr/bin/env bash
# Apache Thrift conformance, with Apache's own test material downloaded at run time
# (tools/apache/fetch.sh; nothing of it is committed):
#   1. the IDL corpus: every .thrift file of Apache's source through Debian's
#      thrift-compiler and ringsoa's parser (fails on any file Apache accepts and
#      ringsoa refuses), then the Rust generated for each, built;
#   2. the cross-language test both ways (tools/apache/cross.py), with the ThriftTest
#      crate (tests/apache/crosstest) built from the downloaded ThriftTest.thrift.
# Run by tools/test.sh after cargo test; alone: tools/apache/conformance.sh
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
src=$(tools/apache/fetch.sh)
[ -f "$src/test/ThriftTest.thrift" ] || { echo "conformance: fetch.sh gave no source directory: $src" >&2; exit 1; }
work="$root/target/apache-thrift"
# One target directory for ringsoa and the two throw-away crates: ringsoa builds once.
export CARGO_TARGET_DIR="$root/target"
cargo build --quiet --bin ringsoa
ringsoa="$root/target/debug/ringsoa"

echo "== Apache's IDL corpus"
rm -rf "$work/corpus"
"$work/venv/bin/python" tools/apache/corpus.py "$src" "$ringsoa" "$work/corpus" "$root"

echo "== Apache's cross-language test"
cp Cargo.lock tests/apache/crosstest/Cargo.lock
export APACHE_THRIFT_TEST_IDL="$src/test/ThriftTest.thrift"
crosstest=(--manifest-path tests/apache/crosstest/Cargo.toml)
cargo fmt "${crosstest[@]}" -- --check
cargo clippy --quiet "${crosstest[@]}" -- -D warnings
cargo build --quiet "${crosstest[@]}"
"$work/venv/bin/python" tools/apache/cross.py "$src" "$work/gen-py" "$work/venv/bin/python" \
    "$ringsoa" "$root/target/debug/ringsoa-crosstest"
