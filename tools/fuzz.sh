#!/usr/bin/env bash
# Smoke-runs every fuzz target (cargo fuzz, libFuzzer) for a short time each.
# Usage: tools/fuzz.sh [SECONDS_PER_TARGET]   (default 20)
# Installs cargo-fuzz when missing. Needs a nightly toolchain (present on these machines).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
secs=${1:-20}
if ! command -v cargo-fuzz >/dev/null 2>&1; then
  echo "tools/fuzz.sh: installing cargo-fuzz" >&2
  cargo install cargo-fuzz --locked --quiet
fi
cd "$root"
corpus="$root/target/fuzz-corpus"
for target in binary compact scanner idl header tracking dynamic; do
  mkdir -p "$corpus/$target"
  echo "fuzz: $target for ${secs}s"
  cargo +nightly fuzz run --fuzz-dir tools/fuzz "$target" "$corpus/$target" -- \
    -max_total_time="$secs" -rss_limit_mb=1024 -max_len=4096 -print_final_stats=1 2>&1 \
    | grep -E "stat::number_of_executed_units|Done|ERROR|panicked|SUMMARY" || true
  # cargo fuzz exits non-zero on a crash; PIPESTATUS keeps that.
  [ "${PIPESTATUS[0]}" -eq 0 ] || { echo "fuzz: $target found a crash (see tools/fuzz/artifacts/$target)"; exit 1; }
done
echo "fuzz: all targets ran clean"
