#!/usr/bin/env python3
"""Property checks: thriftpy2 0.7.1 clients send generated values to ringsoa-demo
(run by tests/server_peers.rs).

Usage: demo_props.py IDL HOST:PORT [EXAMPLES]
For every protocol and transport thriftpy2 has (pure and Cython binary, compact;
buffered and framed), hypothesis generates Items over each field's whole range
(i64 and i16 extremes, any Unicode text, NaN and signed zeros, bytes, unknown enum
values, empty and nested containers), strings and integer pairs, and checks that
`roundtrip` and `echo` give back exactly what was sent (doubles bit for bit),
that `add` answers the sum, or an application exception when it overflows i64, and
that a tracked (version 2) client's meta (any Unicode keys and values) reaches the
handler as sent.
The examples are derandomized (the same ones every run) unless PROPS_RANDOM=1.
Prints one line per combination; exits non-zero on the first failure.
"""
import os
import struct
import sys
import tempfile

# Hypothesis keeps a cache (of Unicode data) on disk: not in the source tree.
os.environ.setdefault("HYPOTHESIS_STORAGE_DIRECTORY",
                      os.path.join(tempfile.gettempdir(), "ringsoa-hypothesis"))

import thriftpy2  # noqa: E402 (after the setting above)
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from thriftpy2.protocol import (TBinaryProtocolFactory, TCompactProtocolFactory,
                                TCyBinaryProtocolFactory)
from thriftpy2.contrib.tracking import TTrackedClient
from thriftpy2.contrib.tracking.tracker import TrackerBase
from thriftpy2.thrift import TApplicationException, TClient
from thriftpy2.transport import TBufferedTransportFactory, TFramedTransportFactory, TSocket

idl, addr = sys.argv[1:3]
examples = int(sys.argv[3]) if len(sys.argv) > 3 else 200
demo = thriftpy2.load(idl, module_name="demo_props_thrift")
host, port = addr.rsplit(":", 1)

i16 = st.integers(-(2**15), 2**15 - 1)
i32 = st.integers(-(2**31), 2**31 - 1)
i64 = st.integers(-(2**63), 2**63 - 1)
text = st.text(max_size=40)
small = dict(max_size=6)

inner = st.builds(demo.Inner, label=st.none() | text, values=st.lists(i64, **small))
item = st.builds(
    demo.Item,
    id=i64,
    name=st.none() | text,
    scores=st.lists(st.floats(allow_nan=True, allow_infinity=True), **small),
    attrs=st.dictionaries(text, i32, **small),
    tags=st.sets(i16, **small),
    blob=st.binary(max_size=64),
    flag=st.booleans(),
    tiny=st.integers(-128, 127),
    color=st.sampled_from([1, 2, 3]) | i32,
    inner=st.none() | inner,
    children=st.lists(inner, max_size=3),
    nested=st.dictionaries(i32, st.lists(text, max_size=3), **small),
)


class Tracker(TrackerBase):
    """Offers tracking version 2."""

    def __init__(self):
        super().__init__(client="py-props", server="ringsoa-demo")

    def init_handshake_info(self, args):
        args.app_id = "py-props"
        args.version = 2


def canon(v):
    """A value as comparable data: doubles by their bits, sets sorted (thriftpy2
    reads a set back as a list), structs as their fields."""
    if isinstance(v, float):
        return ("double", struct.pack(">d", v))
    if isinstance(v, (list, tuple)):
        return [canon(x) for x in v]
    if isinstance(v, (set, frozenset)):
        return sorted(canon(x) for x in v)
    if isinstance(v, dict):
        return sorted((canon(k), canon(x)) for k, x in v.items())
    if hasattr(v, "thrift_spec"):
        return {k: canon(x) for k, x in sorted(vars(v).items())}
    return v


def canon_item(it):
    it = canon(it)
    it["tags"] = sorted(it["tags"])
    return it


protocols = [("binary", TBinaryProtocolFactory()), ("cybinary", TCyBinaryProtocolFactory()),
             ("compact", TCompactProtocolFactory())]
transports = [("buffered", TBufferedTransportFactory()), ("framed", TFramedTransportFactory())]
derandomize = os.environ.get("PROPS_RANDOM") != "1"
for pname, pf in protocols:
    for tname, tf in transports:
        sock = TSocket(host, int(port), socket_timeout=10000, connect_timeout=3000)
        trans = tf.get_transport(sock)
        trans.open()
        c = TClient(demo.Demo, pf.get_protocol(trans))
        tag = f"{pname}/{tname}"
        runs = settings(max_examples=examples, derandomize=derandomize, deadline=None,
                        database=None, suppress_health_check=list(HealthCheck))

        @runs
        @given(item)
        def roundtrip(it):
            back = c.roundtrip(it)
            assert canon_item(back) == canon_item(it), f"{it!r}\n  came back as\n{back!r}"

        @runs
        @given(st.text(max_size=300))
        def echo(s):
            assert c.echo(s) == s

        @runs
        @given(i32, i64)
        def add(a, b):
            if -(2**63) <= a + b < 2**63:
                assert c.add(a, b) == a + b
            else:
                try:
                    c.add(a, b)
                    raise AssertionError(f"{a} + {b} overflows, and was answered")
                except TApplicationException as e:
                    assert "overflows i64" in e.message, e.message

        sock = TSocket(host, int(port), socket_timeout=10000, connect_timeout=3000)
        tracked_trans = tf.get_transport(sock)
        tracked_trans.open()
        tracked = TTrackedClient(Tracker(), demo.Demo, pf.get_protocol(tracked_trans))

        @runs
        @given(st.dictionaries(st.text(min_size=1, max_size=30), st.text(max_size=60),
                               max_size=8))
        def meta(sent):
            with TrackerBase.add_meta(**sent):
                who = tracked.whoami()
            got = {k[len("meta."):]: v for k, v in who.items() if k.startswith("meta.")}
            assert got == sent, f"sent {sent!r}, the server saw {got!r}"
            assert who["client"] == "py-props" and who["version"] == "2", who

        try:
            roundtrip()
            echo()
            add()
            meta()
        except Exception as e:  # hypothesis prints the falsifying example above
            print(f"FAIL: {tag}: {type(e).__name__}: {e}")
            sys.exit(1)
        trans.close()
        tracked_trans.close()
        print(f"ok: {tag}: {examples} items, strings, sums and tracked metas each")
print("all property checks passed")
