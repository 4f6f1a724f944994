#!/usr/bin/env python3
"""Golden bytes from thriftpy2 for every type of the demo IDL.

Writes tests/golden/demo.json: for each case, the value in ringsoa's JSON mapping
and the exact bytes thriftpy2 writes for it in TBinaryProtocol (strict) and
TCompactProtocol. `cargo test --test golden` checks that ringsoa writes the same
bytes and reads them back to the same values, with generated and dynamic code.

Usage: tools/golden.py [--check]   (run through tools/venv.sh's interpreter)
  --check  regenerate in memory and fail if the checked-in file differs.
"""
import base64
import json
import os
import sys

import thriftpy2
from thriftpy2.protocol import TCompactProtocolFactory, TCyBinaryProtocolFactory
from thriftpy2.protocol.binary import TBinaryProtocolFactory as PyBinaryFactory
from thriftpy2.thrift import TApplicationException, TMessageType
from thriftpy2.transport import TMemoryBuffer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
IDL = os.path.join(ROOT, "src", "bin", "ringsoa-demo", "demo.thrift")
OUT = os.path.join(ROOT, "tests", "golden", "demo.json")

demo = thriftpy2.load(IDL, module_name="demo_thrift")
Item, Inner, DemoError = demo.Item, demo.Inner, demo.DemoError
Color = demo.Color
Demo = demo.Demo


def write(obj, factory, message=None):
    buf = TMemoryBuffer()
    proto = factory.get_protocol(buf)
    if message is not None:
        name, mtype, seqid = message
        proto.write_message_begin(name, mtype, seqid)
    obj.write(proto)
    proto.write_message_end()
    return buf.getvalue()


def encodings(obj, message=None):
    cy = write(obj, TCyBinaryProtocolFactory(), message)
    py = write(obj, PyBinaryFactory(), message)
    assert cy == py, "thriftpy2's Cython and Python binary protocols disagree"
    return {
        "binary": cy.hex(),
        "compact": write(obj, TCompactProtocolFactory(), message).hex(),
    }


# Values: thriftpy2 objects and their JSON form (ringsoa's mapping: binary as
# base64, enums as integers, sets as arrays, maps with non-string keys as objects
# keyed by the key's JSON text). Maps and sets are given in sorted order, the order
# ringsoa's BTreeMap/BTreeSet write them in.
def inner(label=None, values=()):
    obj = Inner(label=label, values=list(values))
    js = {"values": list(values)}
    if label is not None:
        js["label"] = label
    return obj, js


def b64(b):
    return base64.b64encode(b).decode()


cases = []


def case(name, type_, obj, js, message=None):
    entry = {"name": name, "type": type_, "json": js}
    if message is not None:
        entry["message"] = {"name": message[0], "type": message[1], "seqid": message[2]}
    entry.update(encodings(obj, message))
    cases.append(entry)


# Item: minimal (defaults only), full, empty containers, large binary, extremes.
case("item_min", "Item", Item(id=1), {"id": 1, "flag": False, "color": 1})

in1, in1j = inner("in", [1, -1, 2**62])
c1, c1j = inner(None, [])
c2, c2j = inner("x", [5])
full = Item(
    id=-(2**63),
    name="héllo wörld ✓ 日本",
    scores=[1.5, -0.25, 1e300, 0.0],
    attrs={"a": 1, "b": -2, "zz": 2**31 - 1},
    tags=[-3, 1, 7, 32767],
    blob=bytes(range(256)),
    flag=True,
    tiny=-128,
    color=Color.BLUE,
    inner=in1,
    children=[c1, c2],
    nested={-1: ["a"], 2: [], 300: ["x", "y"]},
)
full_js = {
    "id": -(2**63),
    "name": "héllo wörld ✓ 日本",
    "scores": [1.5, -0.25, 1e300, 0.0],
    "attrs": {"a": 1, "b": -2, "zz": 2**31 - 1},
    "tags": [-3, 1, 7, 32767],
    "blob": b64(bytes(range(256))),
    "flag": True,
    "tiny": -128,
    "color": 3,
    "inner": in1j,
    "children": [c1j, c2j],
    "nested": {"-1": ["a"], "2": [], "300": ["x", "y"]},
}
case("item_full", "Item", full, full_js)

empty = Item(id=0, name="", scores=[], attrs={}, tags=[], blob=b"", tiny=0,
             children=[], nested={}, color=Color.GREEN)
case("item_empty", "Item", empty, {
    "id": 0, "name": "", "scores": [], "attrs": {}, "tags": [], "blob": "",
    "flag": False, "tiny": 0, "color": 2, "children": [], "nested": {},
})

big = bytes((i * 7 + 3) % 256 for i in range(100_000))
case("item_large_binary", "Item", Item(id=2**63 - 1, blob=big, flag=True),
     {"id": 2**63 - 1, "blob": b64(big), "flag": True, "color": 1})

# 20 children exercise the compact long-form list header (size >= 15).
many = [inner(str(i), range(i % 3)) for i in range(20)]
case("item_many_children", "Item",
     Item(id=5, children=[m[0] for m in many], color=Color.RED),
     {"id": 5, "children": [m[1] for m in many], "flag": False, "color": 1})

i_obj, i_js = inner("only", [])
case("inner", "Inner", i_obj, i_js)
case("demo_error", "DemoError", DemoError(code=7, message="fail 7"),
     {"code": 7, "message": "fail 7"})

# TApplicationException: every standard type code, with and without a message.
for code in range(11):
    exc = TApplicationException(type=code, message="boom %d" % code)
    case("app_exception_%d" % code, "TApplicationException", exc,
         {"message": "boom %d" % code, "type": code})
case("app_exception_no_message", "TApplicationException",
     TApplicationException(type=1), {"type": 1})


# Every method: args as a CALL (ONEWAY for fire) message, result as a REPLY.
def args(method, **kw):
    return getattr(Demo, method + "_args")(**kw)


def result(method, **kw):
    return getattr(Demo, method + "_result")(**kw)


CALL, REPLY, ONEWAY = TMessageType.CALL, TMessageType.REPLY, TMessageType.ONEWAY
who = {"client": "py", "core": "0", "meta.k": "v", "request_id": "r", "seq": "1", "version": "2"}
calls = [
    ("ping", {}, {}, None, None),
    ("echo", {"msg": "hi ✓"}, {"msg": "hi ✓"}, "hi ✓", "hi ✓"),
    ("roundtrip", {"item": full}, {"item": full_js}, full, full_js),
    ("add", {"a": -5, "b": 2**40}, {"a": -5, "b": 2**40}, 2**40 - 5, 2**40 - 5),
    ("fail", {"code": 0}, {"code": 0}, None, None),
    ("sleep_ms", {"ms": 10}, {"ms": 10}, "slept 10", "slept 10"),
    ("fired", {}, {}, 42, 42),
    ("whoami", {}, {}, who, who),
    ("relay_whoami", {"target": "127.0.0.1:9090"}, {"target": "127.0.0.1:9090"}, who, who),
]
for seq, (method, kw, kwj, ret, retj) in enumerate(calls, start=1):
    case("call_%s" % method, "Demo.%s_args" % method, args(method, **kw), kwj, (method, CALL, seq))
    rj = {} if ret is None else {"success": retj}
    robj = result(method) if ret is None else result(method, success=ret)
    case("reply_%s" % method, "Demo.%s_result" % method, robj, rj, (method, REPLY, seq))

case("call_fire", "Demo.fire_args", args("fire", note="n"), {"note": "n"}, ("fire", ONEWAY, 99))
case("reply_fail_error", "Demo.fail_result",
     result("fail", err=DemoError(code=3, message="fail 3")),
     {"err": {"code": 3, "message": "fail 3"}}, ("fail", REPLY, 5))
case("exception_unknown_method", "TApplicationException",
     TApplicationException(type=1, message="unknown method nope"),
     {"message": "unknown method nope", "type": 1}, ("nope", TMessageType.EXCEPTION, 2**31 - 1))

text = json.dumps({"thriftpy2": thriftpy2.__version__, "cases": cases}, indent=1, ensure_ascii=False) + "\n"
if "--check" in sys.argv:
    with open(OUT, encoding="utf-8") as f:
        if f.read() != text:
            sys.exit("tests/golden/demo.json differs from what thriftpy2 writes now: run tools/golden.py")
    print("golden fixtures match thriftpy2 %s (%d cases)" % (thriftpy2.__version__, len(cases)))
else:
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w", encoding="utf-8") as f:
        f.write(text)
    print("wrote %s: %d cases" % (os.path.relpath(OUT, ROOT), len(cases)))
