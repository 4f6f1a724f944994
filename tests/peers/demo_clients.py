#!/usr/bin/env python3
"""thriftpy2 0.7.1 clients against ringsoa-demo servers (run by tests/server_peers.rs).

Usage: demo_clients.py IDL HOST:PORT_A HOST:PORT_B HOST:PORT_C
(C: a thriftpy2 TTrackedProcessor server, tests/peers/demo_server.py in tracked mode)
Asserts every Demo method in {binary, compact} x {buffered, framed} with native and
tracked (version 2 and version 1) clients and thriftpy2's asyncio client
(`make_aio_client`, its own protocol and transport code), the relay chain A -> B, DemoError,
oneway + fired(), the chain thriftpy2 -> ringsoa A -> thriftpy2 C, that an unknown method's EXCEPTION reply keeps a v2
connection usable, and that a request over the server's size limit is answered.
Prints one line per check; exits non-zero on the first failure.
"""
import asyncio
import copy
import sys
import uuid

import thriftpy2
from thriftpy2.contrib.aio.protocol import TAsyncBinaryProtocolFactory, TAsyncCompactProtocolFactory
from thriftpy2.contrib.aio.transport import TAsyncBufferedTransportFactory, TAsyncFramedTransportFactory
from thriftpy2.contrib.tracking import TTrackedClient
from thriftpy2.contrib.tracking.tracker import TrackerBase
from thriftpy2.protocol import TBinaryProtocolFactory, TCompactProtocolFactory
from thriftpy2.rpc import make_aio_client
from thriftpy2.thrift import TApplicationException, TClient
from thriftpy2.transport import TBufferedTransportFactory, TFramedTransportFactory, TSocket

idl, a, b, c_addr = sys.argv[1:5]
demo = thriftpy2.load(idl, module_name="demo_thrift")
# The same service with one method the server lacks (a client with a newer IDL).
newer_src = open(idl).read().replace("service Demo {", "service Demo {\n  void nope(),", 1)
with open("/tmp/ringsoa_demo_newer.thrift", "w") as f:
    f.write(newer_src)
newer = thriftpy2.load("/tmp/ringsoa_demo_newer.thrift", module_name="demo_newer_thrift")


def hostport(s):
    h, p = s.rsplit(":", 1)
    return h, int(p)


class Tracker(TrackerBase):
    """Offers `offer` as the handshake version (None: a version-1 client)."""

    def __init__(self, offer):
        super().__init__(client="py-tracked", server="ringsoa-demo")
        self.offer = offer
        self.response_meta = []

    def init_handshake_info(self, args):
        args.app_id = "py-tracked"
        args.version = self.offer

    def handle_response_header(self, header):
        self.response_meta.append(dict(header.meta or {}))


def connect(addr, pf, tf, tracker=None, service=None):
    sock = TSocket(*hostport(addr), socket_timeout=5000, connect_timeout=3000)
    trans = tf.get_transport(sock)
    trans.open()
    proto = pf.get_protocol(trans)
    service = service or demo.Demo
    if tracker is None:
        return TClient(service, proto), trans
    return TTrackedClient(tracker, service, proto), trans


def check(cond, what):
    if not cond:
        print("FAIL:", what)
        sys.exit(1)
    print("ok:", what)


full = demo.Item(
    id=-(2**63), name="héllo ✓", scores=[1.5, -0.25], attrs={"a": 1, "b": -2},
    tags={-3, 1, 7}, blob=bytes(range(256)), flag=True, tiny=-128, color=demo.Color.BLUE,
    inner=demo.Inner(label="in", values=[1, 2**62]),
    children=[demo.Inner(values=[]), demo.Inner(label="x", values=[5])],
    nested={-1: ["a"], 2: [], 300: ["x", "y"]},
)


def every_method(c, tag, item=full):
    check(c.ping() is None, f"{tag} ping")
    check(c.echo("hi ✓") == "hi ✓", f"{tag} echo")
    back = c.roundtrip(item)
    back.tags = set(back.tags)  # thriftpy2 reads a set back as a list
    check(back == item, f"{tag} roundtrip")
    check(c.add(-5, 2**40) == 2**40 - 5, f"{tag} add")
    check(c.fail(0) is None, f"{tag} fail(0)")
    try:
        c.fail(3)
        check(False, f"{tag} fail(3) raises")
    except demo.DemoError as e:
        check(e.code == 3 and e.message == "fail 3", f"{tag} fail(3) raises DemoError")
    check(c.sleep_ms(5) == "slept 5", f"{tag} sleep_ms")
    before = c.fired()
    c.fire("note")
    # oneway: the count is process-wide; another call orders it after the fire.
    check(c.fired() >= before + 1, f"{tag} fire + fired")


def unknown_method(c, tag):
    """`c` (of the newer IDL) calls the method the server lacks, then another."""
    try:
        c.nope()
        check(False, f"{tag} unknown method raises")
    except TApplicationException as e:
        check(e.type == TApplicationException.UNKNOWN_METHOD, f"{tag} unknown method -> UNKNOWN_METHOD")
    check(c.echo("still") == "still", f"{tag} connection usable after EXCEPTION reply")


protocols = [("binary", TBinaryProtocolFactory()), ("compact", TCompactProtocolFactory())]
transports = [("buffered", TBufferedTransportFactory()), ("framed", TFramedTransportFactory())]
for pname, pf in protocols:
    for tname, tf in transports:
        tag = f"{pname}/{tname}"
        c, t = connect(a, pf, tf)
        every_method(c, f"native {tag}")
        w = c.whoami()
        check(w["version"] == "0" and w["client"] == "" and w["seq"] == "", f"native {tag} whoami is untracked")
        t.close()

        tracker = Tracker(2)
        c, t = connect(a, pf, tf, tracker)
        check(c.current_version == 2, f"tracked v2 {tag} negotiated 2")
        every_method(c, f"tracked v2 {tag}")
        with TrackerBase.add_meta(k="v"):
            w = c.whoami()
        check(w["client"] == "py-tracked" and w["version"] == "2", f"tracked v2 {tag} whoami caller/version")
        check(w.get("meta.k") == "v", f"tracked v2 {tag} meta reaches the server")
        uuid.UUID(w["request_id"])
        check(w["seq"].isdigit(), f"tracked v2 {tag} root seq {w['seq']}")
        check(tracker.response_meta and tracker.response_meta[-1].get("core") == w["core"],
              f"tracked v2 {tag} response header carries core")
        t.close()

        tracker = Tracker(None)
        c, t = connect(a, pf, tf, tracker)
        check(c.current_version == 1, f"tracked v1 {tag} stays at 1")
        every_method(c, f"tracked v1 {tag}")
        w = c.whoami()
        check(w["version"] == "1" and w["client"] == "py-tracked", f"tracked v1 {tag} whoami")
        check(tracker.response_meta == [], f"tracked v1 {tag} gets no response header")
        t.close()

        # A v2 client with a newer IDL: UNKNOWN_METHOD comes with a response header, so
        # the connection stays in sync (the Python server's bug poisons it).
        c, t = connect(a, pf, tf, Tracker(2), service=newer.Demo)
        unknown_method(c, f"tracked v2 {tag}")
        t.close()


class Blocking:
    """thriftpy2's asyncio client with its calls run one at a time to their end."""

    def __init__(self, loop, client):
        self.loop, self.client = loop, client

    def __getattr__(self, name):
        method = getattr(self.client, name)
        return lambda *args: self.loop.run_until_complete(method(*args))

    def close(self):
        self.client.close()


# thriftpy2 0.7.1's asyncio compact reader drops every map with string keys or values
# (its threaded one does not; an asyncio server answers one with an empty map too):
# the roundtrip leaves that map out there, and whoami's map is looked at in binary.
loop = asyncio.new_event_loop()
aio_protocols = [("binary", TAsyncBinaryProtocolFactory()), ("compact", TAsyncCompactProtocolFactory())]
aio_transports = [("buffered", TAsyncBufferedTransportFactory()), ("framed", TAsyncFramedTransportFactory())]
for pname, pf in aio_protocols:
    item = copy.deepcopy(full)
    if pname == "compact":
        item.attrs = None
    for tname, tf in aio_transports:
        tag = f"asyncio {pname}/{tname}"
        for service in (demo.Demo, newer.Demo):
            c = Blocking(loop, loop.run_until_complete(make_aio_client(
                service, *hostport(a), proto_factory=pf, trans_factory=tf, timeout=5000)))
            if service is newer.Demo:
                unknown_method(c, tag)
            else:
                every_method(c, tag, item)
                if pname == "binary":
                    w = c.whoami()
                    check(w["version"] == "0" and w["client"] == "", f"{tag} whoami is untracked")
            c.close()

# A request over the server's maximum message size (16 MiB): PROTOCOL_ERROR naming
# the sizes, not a reset; a framed connection goes on, a buffered one is closed.
big = "a" * (17 << 20)
for pname, pf in protocols:
    for tname, tf in transports:
        for who, offer in (("native", False), ("tracked v2", 2), ("tracked v1", None)):
            tag = f"{who} {pname}/{tname}"
            c, t = connect(a, pf, tf, None if offer is False else Tracker(offer))
            try:
                c.echo(big)
                check(False, f"{tag} a request over the limit is refused")
            except TApplicationException as e:
                check(e.type == TApplicationException.PROTOCOL_ERROR
                      and e.message.startswith("ringsoa: the request is too large: ")
                      and e.message.endswith("exceeds the maximum of 16777216"),
                      f"{tag} a request over the limit gets PROTOCOL_ERROR ({e.message})")
            if tname == "framed":
                check(c.echo("next") == "next", f"{tag} the connection goes on after a refused frame")
            t.close()

# The relay chain: client -> A.relay_whoami(B) -> B.whoami, across two servers.
for pname, pf in protocols:
    tracker = Tracker(2)
    c, t = connect(a, pf, TBufferedTransportFactory(), tracker)
    rid = str(uuid.uuid4())
    tracker.get_request_id = lambda: rid
    with TrackerBase.add_meta(trace="abc"):
        first = c.whoami()
        w = c.relay_whoami(b)
    check(w["client"] == "ringsoa-demo" and w["version"] == "2", f"relay {pname}: B saw A as a v2 caller")
    check(w["request_id"] == rid, f"relay {pname}: request id carried")
    check(w["seq"] == str(int(first["seq"]) + 1) + ".1", f"relay {pname}: seq {w['seq']} is the child of the call")
    check(w.get("meta.trace") == "abc", f"relay {pname}: meta carried")
    t.close()

# Python -> ringsoa -> Python: a tracked client calls A.relay_whoami(C), and A calls
# thriftpy2's TTrackedProcessor at C, which sees the chain's ids and meta. One call:
# C's processor holds one connection's tracking state.
tracker = Tracker(2)
c, t = connect(a, TBinaryProtocolFactory(), TBufferedTransportFactory(), tracker)
rid = str(uuid.uuid4())
tracker.get_request_id = lambda: rid
with TrackerBase.add_meta(trace="py-rs-py"):
    first = c.whoami()
    w = c.relay_whoami(c_addr)
check(w["client"] == "ringsoa-demo", f"relay to thriftpy2: C saw A's app id ({w['client']})")
check(w["request_id"] == rid, "relay to thriftpy2: request id carried")
check(w["seq"] == str(int(first["seq"]) + 1) + ".1", f"relay to thriftpy2: seq {w['seq']} is the child of the call")
check(w.get("meta.trace") == "py-rs-py", "relay to thriftpy2: meta carried")
t.close()

print("all thriftpy2 checks passed")
