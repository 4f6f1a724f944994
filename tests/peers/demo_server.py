#!/usr/bin/env python3
"""A thriftpy2 0.7.1 Demo server for client tests (run by tests/client_peers.rs, and
by tests/server_peers.rs for ringsoa-demo to relay to).

Usage: demo_server.py IDL PORT native|tracked|aio [binary|compact] [buffered|framed]
With DEMO_FAIL_ODD_SLEEPS=1 in the environment, sleep_ms of an odd ms raises an
undeclared exception (thriftpy2 then closes the connection): a node failing half
its calls.
`tracked` serves through TTrackedProcessor (one connection at a time: its version
state lives on the processor); whoami reports what the tracking header said. `aio`
is thriftpy2's asyncio server (`make_aio_server`: its own protocols and transports,
coroutine handlers), natively.
"""
import asyncio
import os
import sys

import thriftpy2
from thriftpy2.contrib.tracking import TTrackedProcessor
from thriftpy2.contrib.tracking.tracker import TrackerBase, ctx
from thriftpy2.protocol import TBinaryProtocolFactory, TCompactProtocolFactory
from thriftpy2.server import TThreadedServer
from thriftpy2.thrift import TProcessor
from thriftpy2.transport import TBufferedTransportFactory, TFramedTransportFactory, TServerSocket

idl, port, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3]
proto = sys.argv[4] if len(sys.argv) > 4 else "binary"
trans = sys.argv[5] if len(sys.argv) > 5 else "buffered"
demo = thriftpy2.load(idl, module_name="demo_thrift")
fired = [0]
seen = {"client": ""}


class Tracker(TrackerBase):
    def handle_handshake_info(self, args):
        seen["client"] = args.app_id or ""


class Handler:
    def ping(self):
        pass

    def echo(self, msg):
        return msg

    def roundtrip(self, item):
        return item

    def add(self, a, b):
        return a + b

    def fail(self, code):
        if code:
            raise demo.DemoError(code=code, message="fail %d" % code)

    def sleep_ms(self, ms):
        if ms % 2 and os.environ.get("DEMO_FAIL_ODD_SLEEPS") == "1":
            raise RuntimeError("odd sleeps fail")
        return "slept %d" % ms

    def fire(self, note):
        fired[0] += 1

    def fired(self):
        return fired[0]

    def whoami(self):
        h = getattr(ctx, "header", None)
        out = {"client": seen["client"], "core": "0", "version": "2" if mode == "tracked" else "0",
               "request_id": (h.request_id or "") if h else "", "seq": (h.seq or "") if h else ""}
        for k, v in ((h.meta or {}) if h else {}).items():
            out["meta." + k] = v
        if mode == "tracked":
            TrackerBase.add_response_meta(served_by="thriftpy2", seq=out["seq"])
        return out

    def relay_whoami(self, target):
        raise demo.DemoError(code=1, message="no relay in the Python server")


class AioHandler:
    """The same methods as coroutines, as thriftpy2's asyncio processor awaits them."""

    def __getattr__(self, name):
        method = getattr(Handler(), name)

        async def call(*args):
            return method(*args)

        return call


if mode == "aio":
    from thriftpy2.contrib.aio.protocol import (TAsyncBinaryProtocolFactory,
                                                TAsyncCompactProtocolFactory)
    from thriftpy2.contrib.aio.transport import (TAsyncBufferedTransportFactory,
                                                 TAsyncFramedTransportFactory)
    from thriftpy2.rpc import make_aio_server

    pf = TAsyncBinaryProtocolFactory() if proto == "binary" else TAsyncCompactProtocolFactory()
    tf = TAsyncBufferedTransportFactory() if trans == "buffered" else TAsyncFramedTransportFactory()
    # No idle limit (its default closes a connection after 3 s without a request).
    make_aio_server(demo.Demo, AioHandler(), "127.0.0.1", port, proto_factory=pf,
                    trans_factory=tf, client_timeout=None, loop=asyncio.new_event_loop()).serve()
    sys.exit(0)
if mode == "tracked":
    processor = TTrackedProcessor(Tracker(), demo.Demo, Handler())
else:
    processor = TProcessor(demo.Demo, Handler())
pf = TBinaryProtocolFactory() if proto == "binary" else TCompactProtocolFactory()
tf = TBufferedTransportFactory() if trans == "buffered" else TFramedTransportFactory()
server = TThreadedServer(processor, TServerSocket(host="127.0.0.1", port=port),
                         iprot_factory=pf, itrans_factory=tf)
server.serve()
