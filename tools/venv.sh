#!/usr/bin/env bash
# Creates (once) the project's Python venv with the real Thrift peers from PyPI and
# prints its interpreter's path. Usage: PY=$(tools/venv.sh)
#   thriftpy2 0.7.1         the Thrift library of the seed stack (clients and servers)
#   thrift_connector 0.24   its pooled client (pings on checkout), for the handover drill
#   prometheus_client 0.21.1  the reference parser of the Prometheus text format
#   hypothesis 6.170.27     generates the values thriftpy2 clients send in property checks
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
venv="$root/.venv"
want=("thriftpy2==0.7.1" "thrift_connector==0.24" "prometheus_client==0.21.1" "hypothesis==6.170.27")
check='import thriftpy2, thrift_connector, prometheus_client, hypothesis, sys; sys.exit(thriftpy2.__version__ != "0.7.1")'
if ! "$venv/bin/python" -c "$check" 2>/dev/null; then
  echo "tools/venv.sh: creating $venv with ${want[*]}" >&2
  python3 -m venv "$venv" >&2
  "$venv/bin/pip" install --quiet --disable-pip-version-check "${want[@]}" >&2
fi
echo "$venv/bin/python"
