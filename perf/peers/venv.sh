#!/usr/bin/env bash
# The Python peers' environment, perf/peers/.venv: thriftpy2 0.7.1, and the seed's
# server, gunicorn_thrift 0.2.25 with gevent workers. gunicorn_thrift's own pins
# (gevent < 1.5, an old setproctitle) do not install on current Pythons, so it goes in
# with --no-deps beside gunicorn 19.9.0 (it imports gunicorn.six, gone in gunicorn 20)
# and a current gevent.
set -euo pipefail
cd "$(dirname "$0")"
if [ -x .venv/bin/gunicorn_thrift ] && .venv/bin/python -c "import thriftpy2, gevent, gunicorn_thrift" 2>/dev/null; then
  exit 0
fi
python3 -m venv .venv
.venv/bin/pip install --quiet --upgrade pip
.venv/bin/pip install --quiet "thriftpy2==0.7.1" "gunicorn==19.9.0" gevent
.venv/bin/pip install --quiet --no-deps "gunicorn_thrift==0.2.25"
