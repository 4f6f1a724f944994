"""Apache's Python THeaderProtocol as a client with a chosen payload protocol (the
cross test's TestClient.py only sends binary inside THeader). Calls ThriftTest
methods on HOST:PORT and checks each answer; exit 1 on any failure. `framed` puts
the header transport over TFramedTransport (each header frame inside a frame);
`zlib` adds the zlib transform to every request (and checks the replies came
compressed too).

Usage: header_client.py GEN_PY PORT binary|compact [buffered|framed] [plain|zlib]
"""
import sys
from zlib import decompress

sys.path.insert(0, sys.argv[1])
from thrift.protocol import THeaderProtocol  # noqa: E402
from thrift.transport import TSocket, TTransport  # noqa: E402
from thrift.transport import THeaderTransport  # noqa: E402
from thrift.transport.THeaderTransport import (  # noqa: E402
    THeaderClientType, THeaderSubprotocolID, THeaderTransformID)
from ThriftTest import ThriftTest  # noqa: E402
from ThriftTest.ttypes import Xception, Xtruct  # noqa: E402

port, proto = int(sys.argv[2]), sys.argv[3]
framing = sys.argv[4] if len(sys.argv) > 4 else "buffered"
zlib = len(sys.argv) > 5 and sys.argv[5] == "zlib"
payload = {"binary": THeaderSubprotocolID.BINARY, "compact": THeaderSubprotocolID.COMPACT}[proto]
sock = TSocket.TSocket("127.0.0.1", port)
trans = TTransport.TFramedTransport(sock) if framing == "framed" else sock
protocol = THeaderProtocol.THeaderProtocol(trans, (THeaderClientType.HEADERS,), default_protocol=payload)
client = ThriftTest.Client(protocol)
inflated = []
if zlib:
    protocol.trans.add_transform(THeaderTransformID.ZLIB)
    # Apache's reader inflates what a reply's header names zlib: count those.
    def counting_decompress(data):
        inflated.append(len(data))
        return decompress(data)
    THeaderTransport.READ_TRANSFORMS_BY_ID[THeaderTransformID.ZLIB] = counting_decompress
sock.open()
# A header of our own on every request: the server must read past it.
protocol.trans.set_header(b"RPC_TRANSIT_from", b"apache-python")
failed = 0


def check(name, ok):
    global failed
    print(("ok   " if ok else "FAIL ") + name)
    failed += 0 if ok else 1


check("testString", client.testString("héader " + proto) == "héader " + proto)
x = Xtruct(string_thing="Zero", byte_thing=1, i32_thing=-3, i64_thing=-5)
check("testStruct", client.testStruct(x) == x)
check("testMapMap", client.testMapMap(1)[4] == {1: 1, 2: 2, 3: 3, 4: 4})
try:
    client.testException("Xception")
    check("testException", False)
except Xception as e:
    check("testException", e.errorCode == 1001)
client.testOneway(0)
check("testOneway then testI32", client.testI32(-7) == -7)
check("the reply came back in THeader with the same payload protocol",
      protocol.trans._client_type == THeaderClientType.HEADERS
      and protocol.trans.protocol_id == payload)
if zlib:
    # testOneway has no reply: 5 replies to 6 calls.
    check(f"every reply came compressed ({len(inflated)} of 5)", len(inflated) == 5)
sock.close()
print(f"header_client {proto} {framing}{' zlib' if zlib else ''}: {failed} failed")
sys.exit(1 if failed else 0)
