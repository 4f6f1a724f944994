#!/usr/bin/env python3
"""A mixed crowd against one ringsoa-demo (run by tests/bad_day.rs): thriftpy2 0.7.1
clients doing real work beside raw-socket clients that misbehave, all at once.

Usage: crowd.py IDL HOST:PORT SECONDS READ_TIMEOUT_S WRITE_TIMEOUT_S

Good clients (native and tracked, binary and compact, buffered and framed) call
echo (0 B to 1 MiB), roundtrip, add, fail, sleep_ms, fire and ping, and check every
answer. Bad clients, one thread per kind, over and over: random bytes; a frame that
claims 2 GiB; a request trickled a byte at a time; 1 MiB echoes sent and their
replies never read; requests cut off mid-way; 40 idle connections held for a while;
a request followed by a reset. Each kind whose fate is known checks it: the server
closes a connection that sent garbage or a huge claim, one that trickles past the
read timeout, and one whose replies make no progress for the write timeout.

Prints one JSON line (the counts, and every failure, at most 20); exits 1 when a
good call failed, a bad connection was not closed as it should be, or a kind or a
good client never got through one round.
"""
import json
import os
import random
import socket
import struct
import sys
import threading
import time

import thriftpy2
from thriftpy2.contrib.tracking import TTrackedClient
from thriftpy2.contrib.tracking.tracker import TrackerBase
from thriftpy2.protocol import TBinaryProtocolFactory, TCompactProtocolFactory
from thriftpy2.thrift import TClient
from thriftpy2.transport import TBufferedTransportFactory, TFramedTransportFactory, TSocket

idl, addr, secs, read_timeout, write_timeout = sys.argv[1:6]
host, port = addr.rsplit(":", 1)
port = int(port)
secs, read_timeout, write_timeout = float(secs), float(read_timeout), float(write_timeout)
demo = thriftpy2.load(idl, module_name="demo_thrift")
stop = time.time() + secs
lock = threading.Lock()
counts = {}
failures = []


def count(what):
    with lock:
        counts[what] = counts.get(what, 0) + 1


def fail(what):
    with lock:
        failures.append(what[:300])


class Tracker(TrackerBase):
    def __init__(self, offer):
        super().__init__(client="crowd", server="ringsoa-demo")
        self.offer = offer

    def init_handshake_info(self, args):
        args.app_id = "crowd"
        args.version = self.offer

    def handle_response_header(self, header):
        pass


def client(pf, tf, offer):
    sock = TSocket(host, port, socket_timeout=30000, connect_timeout=5000)
    trans = tf.get_transport(sock)
    trans.open()
    proto = pf.get_protocol(trans)
    if offer is None:
        return TClient(demo.Demo, proto), trans
    return TTrackedClient(Tracker(offer), demo.Demo, proto), trans


ITEM = demo.Item(
    id=7, name="crowd ✓", scores=[1.5], attrs={"a": 1}, tags={3}, blob=bytes(range(200)),
    inner=demo.Inner(label="in", values=[1, 2]), children=[demo.Inner(values=[])],
    nested={1: ["x"]},
)


def good(name, pf, tf, offer, seed):
    rnd = random.Random(seed)
    c, trans = client(pf, tf, offer)
    while time.time() < stop:
        r = rnd.random()
        try:
            if r < 0.45:
                msg = "é" * rnd.choice([0, 1, 32, 2048, 35000, 1 << 19])
                ok = c.echo(msg) == msg
            elif r < 0.55:
                back = c.roundtrip(ITEM)
                # thriftpy2 reads a set back as a list.
                back.tags = set(back.tags)
                ok = back == ITEM
            elif r < 0.7:
                a, b = rnd.randint(-1000, 1000), rnd.randint(-(2**40), 2**40)
                ok = c.add(a, b) == a + b
            elif r < 0.8:
                try:
                    c.fail(5)
                    ok = False
                except demo.DemoError as e:
                    ok = e.code == 5
            elif r < 0.9:
                ms = rnd.randint(0, 30)
                ok = c.sleep_ms(ms) == f"slept {ms}"
            elif r < 0.95:
                c.fire("crowd")
                ok = True
            else:
                ok = c.ping() is None
            if not ok:
                fail(f"{name}: a wrong answer")
            count(name)
        except Exception as e:  # noqa: BLE001 — any failure of a good call counts
            fail(f"{name}: {type(e).__name__}: {e}")
            trans.close()
            time.sleep(0.2)
            c, trans = client(pf, tf, offer)
    trans.close()


def echo_frame(n):
    """A framed strict-binary Demo.echo call of n bytes."""
    body = struct.pack("!iI", -2147418112 | 1, 4) + b"echo" + struct.pack("!i", 1)
    body += b"\x0b\x00\x01" + struct.pack("!i", n) + b"y" * n + b"\x00"
    return struct.pack("!i", len(body)) + body


def closed_by_server(s, within):
    """Whether the server closes `s` (EOF or reset) within `within` seconds, reading
    and dropping whatever comes before."""
    deadline = time.time() + within
    while time.time() < deadline:
        s.settimeout(max(0.05, deadline - time.time()))
        try:
            if not s.recv(1 << 16):
                return True
        except (ConnectionResetError, BrokenPipeError):
            return True
        except socket.timeout:
            return False
    return False


def connect():
    return socket.create_connection((host, port), timeout=5)


def bad(kind, seed):
    rnd = random.Random(seed)
    # How long the server may take to close: its timeout, plus room for a busy machine.
    grace = 15.0
    while time.time() < stop:
        try:
            s = connect()
        except OSError as e:
            fail(f"bad {kind}: connect: {e}")
            time.sleep(0.2)
            continue
        try:
            if kind == "garbage":
                # A frame of 1 byte, or non-strict binary, or noise, as the random
                # bytes fall: closed at once, or at the latest at the read timeout.
                s.sendall(b"\x00\x00\x00\x01" + os.urandom(rnd.randint(1, 2000)))
                if not closed_by_server(s, grace):
                    fail("garbage: the connection stayed open")
            elif kind == "huge claim":
                s.sendall(struct.pack("!i", 0x7FFFFF00) + b"\x80\x01\x00\x01")
                if not closed_by_server(s, grace):
                    fail("a frame claiming 2 GiB: the connection stayed open")
            elif kind == "trickle":
                frame = echo_frame(100)
                left = time.time() + read_timeout + grace
                closed = False
                for b in frame[:-1]:
                    try:
                        s.sendall(bytes([b]))
                    except OSError:
                        closed = True
                        break
                    if closed_by_server(s, 0.25) or time.time() > left:
                        closed = time.time() <= left
                        break
                if not closed:
                    fail("a trickled request: not closed at the read timeout")
            elif kind == "never reads":
                s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
                s.settimeout(1)
                try:
                    for _ in range(64):
                        s.sendall(echo_frame(1 << 20))
                except (socket.timeout, OSError):
                    pass
                # Replies pile up unread until the write timeout resets the connection.
                time.sleep(write_timeout + 1)
                if not closed_by_server(s, grace):
                    fail("replies never read: not closed at the write timeout")
            elif kind == "cut off":
                frame = echo_frame(rnd.randint(10, 200000))
                s.sendall(frame[: rnd.randint(1, len(frame) - 1)])
            elif kind == "idle crowd":
                held = [connect() for _ in range(40)]
                time.sleep(1)
                for h in held:
                    h.close()
            elif kind == "reset":
                s.sendall(echo_frame(5000))
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            count(kind)
        except OSError as e:
            fail(f"bad {kind}: {type(e).__name__}: {e}")
        finally:
            s.close()


goods = [
    ("native binary buffered", TBinaryProtocolFactory(), TBufferedTransportFactory(), None),
    ("native compact framed", TCompactProtocolFactory(), TFramedTransportFactory(), None),
    ("tracked v2 binary framed", TBinaryProtocolFactory(), TFramedTransportFactory(), 2),
    ("tracked v1 compact buffered", TCompactProtocolFactory(), TBufferedTransportFactory(), 1),
]
bads = ["garbage", "huge claim", "trickle", "never reads", "cut off", "idle crowd", "reset"]
threads = [threading.Thread(target=good, args=(*g, i)) for i, g in enumerate(goods)]
threads += [threading.Thread(target=bad, args=(k, 100 + i)) for i, k in enumerate(bads)]
for t in threads:
    t.daemon = True
    t.start()
for t in threads:
    t.join(secs + write_timeout + 60)
    if t.is_alive():
        fail(f"{t.name}: still running long after the end")
for what in [g[0] for g in goods] + bads:
    if counts.get(what, 0) == 0:
        fail(f"{what}: not one round got through")
print(json.dumps({"counts": counts, "failures": failures[:20], "failed": len(failures)}))
sys.exit(1 if failures else 0)
