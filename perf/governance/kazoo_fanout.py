"""The fan-out baseline with the seed stack's ZooKeeper library: CONSUMERS kazoo
clients in one process (one session each), each with a ChildrenWatch on a service's
providers folder holding PROVIDERS nodes; a provider is added or removed CHANGES
times and each change is timed until every watch has seen the new count.
Prints the same JSON fields as `ringsoa-perf governance fanout`.

Usage: python kazoo_fanout.py ZK_HOSTS [PROVIDERS] [CONSUMERS] [CHANGES]
"""
import json
import os
import sys
import threading
import time

from kazoo.client import KazooClient

hosts = sys.argv[1]
providers = int(sys.argv[2]) if len(sys.argv) > 2 else 1000
consumers = int(sys.argv[3]) if len(sys.argv) > 3 else 100
changes = int(sys.argv[4]) if len(sys.argv) > 4 else 40
folder = f"/kazoo-perf-{os.getpid()}/apps/fan/clusters/main/providers"

writer = KazooClient(hosts=hosts)
writer.start()
writer.ensure_path(folder)
for i in range(providers):
    writer.create(f"{folder}/127.0.0.1:{10000 + i}", b'{"host":"127.0.0.1","port":%d}' % (10000 + i))

counts = [None] * consumers
lock = threading.Condition()
clients = []
for c in range(consumers):
    zk = KazooClient(hosts=hosts)
    zk.start()
    clients.append(zk)

    def watch(children, c=c):
        with lock:
            counts[c] = len(children)
            lock.notify_all()

    zk.ChildrenWatch(folder)(watch)


def wait_for(n, limit=30.0):
    deadline = time.monotonic() + limit
    with lock:
        while any(x != n for x in counts):
            left = deadline - time.monotonic()
            if left <= 0:
                raise SystemExit(f"not every consumer saw {n} providers")
            lock.wait(left)


wait_for(providers, 120)
extra = f"{folder}/127.0.0.1:{10000 + providers}"
times = []
for n in range(changes):
    add = n % 2 == 0
    started = time.monotonic()
    if add:
        writer.create(extra, b'{"host":"127.0.0.1","port":1}')
    else:
        writer.delete(extra)
    wait_for(providers + (1 if add else 0))
    times.append((time.monotonic() - started) * 1e3)
    time.sleep(0.05)

times.sort()
at = lambda q: times[round((len(times) - 1) * q)]
print(json.dumps({
    "mode": "fanout-kazoo", "providers": providers, "consumers": consumers,
    "change_to_every_consumer": {"n": len(times), "p50_ms": at(0.5), "p90_ms": at(0.9),
                                 "p99_ms": at(0.99), "max_ms": at(1.0)},
}))
for zk in clients:
    zk.stop()
writer.delete(f"/kazoo-perf-{os.getpid()}", recursive=True)
writer.stop()
