#!/usr/bin/env bash
# Creates (once) the project's Python venv with the real Thrift peers from PyPI and
# prints its interpreter's path. Usage: PY=$(tools/venv.sh)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
venv="$root/.venv"
want="thriftpy2==0.7.1"
if ! "$venv/bin/python" -c 'import thriftpy2, sys; sys.exit(thriftpy2.__version__ != "0.7.1")' 2>/dev/null; then
  echo "tools/venv.sh: creating $venv with $want" >&2
  python3 -m venv "$venv" >&2
  "$venv/bin/pip" install --quiet --disable-pip-version-check "$want" >&2
fi
echo "$venv/bin/python"
