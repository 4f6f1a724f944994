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
log=$(mktemp)
trap 'rm -f "$log"' EXIT
for target in binary compact scanner idl header tracking dynamic; do
  mkdir -p "$corpus/$target"
  echo "fuzz: $target for ${secs}s"
  # cargo fuzz exits non-zero when the target does not build and when it finds a
  # crash. Its status is taken directly: read through a filter that matched
  # nothing, a build error once passed here as a clean run.
  status=0
  cargo +nightly fuzz run --fuzz-dir tools/fuzz "$target" "$corpus/$target" -- \
    -max_total_time="$secs" -rss_limit_mb=1024 -max_len=4096 -print_final_stats=1 \
    > "$log" 2>&1 || status=$?
  grep -E "stat::number_of_executed_units|Done|ERROR|panicked|SUMMARY" "$log" || true
  if [ "$status" -ne 0 ]; then
    if grep -q "failed to build fuzz script" "$log"; then
      grep -E -A8 "^error" "$log" | head -n 60
      echo "fuzz: $target does not build (the compiler's errors are above)"
    else
      tail -n 40 "$log"
      echo "fuzz: $target failed with status $status (a crash is saved under tools/fuzz/artifacts/$target)"
    fi
    exit 1
  fi
  # A run that ended some other way than its time running out did not fuzz.
  grep -q "^Done [0-9]* runs" "$log" || { tail -n 40 "$log"; echo "fuzz: $target did not run"; exit 1; }
done
echo "fuzz: all targets ran clean"
