#!/usr/bin/env python3
"""thrift_connector 0.24 (the seed stack's pooled client, which pings on every
checkout) calling Demo.echo in THREADS threads through one pool until the file STOP
exists (run by tests/handover.rs while it restarts the server under it).

Usage: handover_load.py IDL HOST:PORT THREADS STOP
Prints one JSON line: {"calls": N, "failures": N, "errors": [first few]}.
"""
import json
import os
import sys
import threading
import time

import thriftpy2
from thrift_connector import ClientPool, ThriftPyClient

idl, addr, threads, stop = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
host, port = addr.rsplit(":", 1)
demo = thriftpy2.load(idl, module_name="demo_thrift")
pool = ClientPool(demo.Demo, host, int(port), timeout=5, max_conn=threads,
                  connection_class=ThriftPyClient)
lock = threading.Lock()
counts = {"calls": 0, "failures": 0, "errors": []}


def caller(i):
    n = 0
    while not os.path.exists(stop):
        n += 1
        msg = f"{i}-{n}"
        try:
            with pool.connection_ctx() as c:
                ok = c.echo(msg) == msg
            err = None if ok else "wrong answer"
        except Exception as e:  # every failure counts, whatever it is
            err = f"{type(e).__name__}: {e}"
        with lock:
            counts["calls"] += 1
            if err:
                counts["failures"] += 1
                if len(counts["errors"]) < 5:
                    counts["errors"].append(err)


workers = [threading.Thread(target=caller, args=(i,)) for i in range(threads)]
for w in workers:
    w.start()
for w in workers:
    w.join()
print(json.dumps(counts))
