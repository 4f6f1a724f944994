"""Apache Thrift's cross-language test, ringsoa on one side, in every protocol and
transport both speak. Prints a pass table (markdown) and exits 1 if a cell failed.

- Apache's test/py/TestClient.py against ringsoa's ThriftTest server (one server
  answers every protocol and transport, multiplexed or not, on one port).
- ringsoa's generated client (ringsoa-crosstest client) against Apache's
  test/py/TestServer.py.
- `ringsoa call` (dynamic mode, the IDL parsed at run time) against TestServer.py,
  every method.
- Apache's Node.js and Go libraries, two more implementations of the same wire:
  their cross-test clients (lib/nodejs/test/client.js, test/go's testclient) against
  ringsoa's server, and ringsoa's generated client against their servers, in binary,
  compact and THeader (not json); Node.js's plain and multiplexed too.

Usage: cross.py APACHE_SRC GEN_PY APACHE_PYTHON RINGSOA_BIN CROSSTEST_BIN
"""
import json
import os
import socket
import subprocess
import sys
import time

SRC, GEN_PY, PY, RINGSOA, CROSSTEST = sys.argv[1:6]
TEST_PY = os.path.join(SRC, "test", "py")
IDL = os.path.join(SRC, "test", "ThriftTest.thrift")
# TestClient.py/TestServer.py protocol names ringsoa speaks: accel* are the same
# wire through Apache's C codec; multi* are TMultiplexedProtocol over them; header
# is THeader (binary or compact inside), multih multiplexed over it.
PROTOCOLS = ["binary", "accel", "compact", "accelc", "multi", "multia", "multic", "multiac",
             "header", "multih"]
TRANSPORTS = ["buffered", "framed"]
HEADERS = ("header", "multih")
NODE_TEST = os.path.join(SRC, "lib", "nodejs", "test")
# require("thrift") is the library of this source; its dependencies come from npm
# (tools/apache/fetch.sh).
NODE_ENV = dict(os.environ, NODE_PATH=os.pathsep.join([
    os.path.join(SRC, "lib", "nodejs", "lib"),
    os.path.join(os.path.dirname(SRC), "node", "node_modules")]))
GO_BIN = os.path.join(os.path.dirname(SRC), "go", "bin")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc, what):
    deadline = time.time() + 30
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"cross: {what} exited with {proc.returncode} before listening")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"cross: {what} did not listen on {port} within 30 s")


def stop(proc):
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


# Apache's test protocol name → ringsoa's protocol, and whether calls are multiplexed.
WIRE = {"binary": ("binary", False), "accel": ("binary", False),
        "compact": ("compact", False), "accelc": ("compact", False),
        "multi": ("binary", True), "multia": ("binary", True),
        "multic": ("compact", True), "multiac": ("compact", True),
        "header": ("binary", False), "multih": ("binary", True)}


def wire(proto):
    return WIRE[proto]


def apache_client_vs_ringsoa_server():
    port, server = ringsoa_server()
    results = {}
    try:
        for proto in PROTOCOLS:
            for trans in TRANSPORTS:
                run = subprocess.run(
                    [PY, os.path.join(TEST_PY, "TestClient.py"), "--genpydir", GEN_PY,
                     "--host", "127.0.0.1", "--port", str(port), "--protocol", proto,
                     "--transport", trans],
                    capture_output=True, text=True, timeout=120)
                ok = run.returncode == 0 and "OK" in run.stderr
                if not ok:
                    print(f"--- TestClient.py --protocol {proto} --transport {trans}\n"
                          f"{run.stdout}{run.stderr}")
                results[(proto, trans)] = ok
        # TestClient.py sends binary inside THeader only: compact too, by hand.
        for payload, transform in [(p, t) for t in ("plain", "zlib")
                                   for p in ("binary", "compact")]:
            for trans in TRANSPORTS:
                run = subprocess.run(
                    [PY, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                      "header_client.py"), GEN_PY, str(port), payload, trans,
                     transform],
                    capture_output=True, text=True, timeout=60)
                if run.returncode != 0:
                    print(f"--- header_client.py {payload} {trans} {transform}\n"
                          f"{run.stdout}{run.stderr}")
                zlib = ", zlib" if transform == "zlib" else ""
                results[(f"header, {payload} payload{zlib} (header_client.py)", trans)] = \
                    run.returncode == 0
    finally:
        stop(server)
    return results


def serve(cmd, port, cwd=None, env=None, stderr=subprocess.DEVNULL):
    """Starts the server `cmd` and returns its process once it listens on `port`
    (stopped, and the run ended, if it never does)."""
    server = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL,
                              stderr=stderr)
    try:
        wait_port(port, server, " ".join(cmd))
    except BaseException:
        stop(server)
        raise
    return server


def ringsoa_server():
    """ringsoa's ThriftTest server, every protocol and transport on one port: its
    port and process (its log lines go to ours)."""
    port = free_port()
    return port, serve([CROSSTEST, "server", "--port", str(port)], port, stderr=None)


def apache_server(proto, trans):
    port = free_port()
    return port, serve(
        [PY, os.path.join(TEST_PY, "TestServer.py"), "--genpydir", GEN_PY, "--port",
         str(port), "--protocol", proto, "--transport", trans, "-q", "TThreadedServer"], port)


def header_transport(trans):
    """ringsoa's transport for Apache's header protocol over `trans`: THeader in
    one frame, or (framed: THeaderTransport over TFramedTransport) each header frame
    inside a frame of its own."""
    return "theader-in-frame" if trans == "framed" else "theader"


def ringsoa_client_vs_apache_server():
    """For header protocols ringsoa's client speaks THeader as Apache's server
    reads it (`header_transport`), with a binary and with a compact payload, each
    plain and with the zlib transform."""
    results = {}
    for proto in PROTOCOLS:
        for trans in TRANSPORTS:
            port, server = apache_server(proto, trans)
            try:
                ours, multiplexed = wire(proto)
                if proto in HEADERS:
                    # Binary and compact payloads, plain and with the zlib transform.
                    runs = [(p, header_transport(trans), z) for p in ("binary", "compact")
                            for z in ([], ["--zlib"])]
                else:
                    runs = [(ours, trans, [])]
                results[(proto, trans)] = crosstest_client(
                    port, runs, multiplexed,
                    f"TestServer.py --protocol {proto} --transport {trans}")
            finally:
                stop(server)
    return results


def crosstest_client(port, runs, multiplexed, against):
    """Runs ringsoa's generated client once per (protocol, transport, extra flags)
    of `runs` against the server on `port`; true if every run passed."""
    ok = True
    for p, t, z in runs:
        cmd = [CROSSTEST, "client", "--port", str(port), "--protocol", p,
               "--transport", t] + z + (["--multiplex"] if multiplexed else [])
        run = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        if run.returncode != 0:
            print(f"--- ringsoa-crosstest client --protocol {p} --transport {t} {z}"
                  f" vs {against}\n{run.stdout}{run.stderr}")
        ok = ok and run.returncode == 0
    return ok


INSANITY = {"userMap": {"5": 5, "8": 8},
            "xtructs": [{"string_thing": "Zero", "byte_thing": 1, "i32_thing": -3, "i64_thing": -5}]}
XTRUCT = {"string_thing": "Zero", "byte_thing": 1, "i32_thing": -3, "i64_thing": -5}
# (method, arguments, expected result on stdout, expected exit status)
CALLS = [
    ("testVoid", {}, None, 0),
    ("testString", {"thing": "パイソン \"q\""}, "パイソン \"q\"", 0),
    ("testBool", {"thing": True}, True, 0),
    ("testByte", {"thing": -127}, -127, 0),
    ("testI32", {"thing": -1}, -1, 0),
    ("testI64", {"thing": -34359738368}, -34359738368, 0),
    ("testDouble", {"thing": -5.235098235}, -5.235098235, 0),
    ("testBinary", {"thing": "AAEC/w=="}, "AAEC/w==", 0),
    ("testStruct", {"thing": XTRUCT}, XTRUCT, 0),
    ("testNest", {"thing": {"byte_thing": 0, "struct_thing": XTRUCT, "i32_thing": 0}},
     {"byte_thing": 0, "struct_thing": XTRUCT, "i32_thing": 0}, 0),
    ("testMap", {"thing": {"0": 1, "-1": -2}}, {"-1": -2, "0": 1}, 0),
    ("testStringMap", {"thing": {"a": "b"}}, {"a": "b"}, 0),
    ("testSet", {"thing": [8, 1, 42]}, [1, 8, 42], 0),
    ("testList", {"thing": [1, 4, 9, -42]}, [1, 4, 9, -42], 0),
    ("testEnum", {"thing": "FIVE"}, 5, 0),
    ("testTypedef", {"thing": 72057594037927935}, 72057594037927935, 0),
    ("testMapMap", {"hello": 42},
     {"-4": {"-4": -4, "-3": -3, "-2": -2, "-1": -1}, "4": {"1": 1, "2": 2, "3": 3, "4": 4}}, 0),
    ("testInsanity", {"argument": INSANITY},
     {"1": {"2": INSANITY, "3": INSANITY}, "2": {"6": {}}}, 0),
    ("testMulti", {"arg0": 74, "arg1": 16711935, "arg2": 281474976698576, "arg3": {"0": "abc"},
                   "arg4": 5, "arg5": 15790320},
     {"string_thing": "Hello2", "byte_thing": 74, "i32_thing": 16711935,
      "i64_thing": 281474976698576}, 0),
    ("testException", {"arg": "Xception"}, {"err1": {"errorCode": 1001, "message": "Xception"}}, 1),
    ("testMultiException", {"arg0": "Xception2", "arg1": "x"},
     {"err2": {"errorCode": 2002, "struct_thing": {"string_thing": "This is an Xception2"}}}, 1),
    ("testOneway", {"secondsToSleep": 1}, None, 0),
]

# Go's server writes every field of default requiredness, empty or zero too, where
# Python's leaves unset ones out: both are right.
GO_ANSWERS = {
    "testInsanity": {"1": {"2": INSANITY, "3": INSANITY},
                     "2": {"6": {"userMap": {}, "xtructs": []}}},
    "testMultiException": {"err2": {"errorCode": 2002, "struct_thing": {
        "string_thing": "This is an Xception2", "byte_thing": 0, "i32_thing": 0,
        "i64_thing": 0}}},
}


class Peer:
    """Another language's Apache library and its cross-test programs: `protocols`
    are (protocol, multiplexed) pairs; `client` and `server` give the command line
    for a protocol, whether multiplexed, a transport and a port; `passed` reads a
    client's run; `zlib` says whether its THeader has the zlib transform;
    `texception` is the TApplicationException kind its server answers a handler's
    plain TException with; `answers` are its server's answers where they differ
    from Python's (by method); `header_client`, if any, gives the command line of a
    THeader client of ours on its library for a payload protocol, a transport,
    whether zlib, and a port."""

    def __init__(self, protocols, client, server, cwd, env, passed, zlib, texception,
                 answers, header_client=None):
        self.protocols, self.cwd, self.env = protocols, cwd, env
        self.client, self.server, self.passed, self.zlib = client, server, passed, zlib
        self.texception, self.answers = texception, answers
        self.header_client = header_client


def label(proto, multiplexed):
    return f"multiplexed {proto}" if multiplexed else proto


def node_kind(multiplexed):
    return "--type=multiplex" if multiplexed else "--type=tcp"


# Apache's Node.js library: its test client runs a tape suite over ThriftTest and
# passes when every assertion did and it says so.
NODE = Peer(
    [(p, m) for m in (False, True) for p in ("binary", "compact", "header")],
    client=lambda p, m, t, port: ["node", "client.js", node_kind(m), "--port", str(port),
                                  "--protocol", p, "--transport", t],
    server=lambda p, m, t, port: ["node", "server.js", node_kind(m), "--port", str(port),
                                  "--protocol", p, "--transport", t],
    cwd=NODE_TEST, env=NODE_ENV,
    passed=lambda run: (run.returncode == 0 and "Server successfully tested!" in run.stdout
                        and "\nnot ok" not in run.stdout),
    zlib=False, texception="Unknown", answers={})

# Apache's Go library (built by tools/apache/fetch.sh); its test programs have no
# multiplexing. Its client exits non-zero on the first wrong answer.
GO = Peer(
    [(p, False) for p in ("binary", "compact", "header")],
    client=lambda p, m, t, port: [os.path.join(GO_BIN, "testclient"), "--host", "127.0.0.1",
                                  "--port", str(port), "--protocol", p, "--transport", t],
    server=lambda p, m, t, port: [os.path.join(GO_BIN, "testserver"), "--port", str(port),
                                  "--protocol", p, "--transport", t],
    cwd=None, env=None, passed=lambda run: run.returncode == 0, zlib=True,
    texception="InternalError", answers=GO_ANSWERS,
    # tools/apache/go/header_client.go: compact payloads and the zlib transform
    # too, and a header pair that must come back.
    header_client=lambda p, t, z, port: [
        os.path.join(GO_BIN, "ringsoa_header_client"), "-port", str(port), "-protocol", p,
        "-transport", t] + (["-zlib"] if z else []))


def peer_client_vs_ringsoa_server(peer):
    """The peer's test client against one ringsoa server."""
    port, server = ringsoa_server()
    results = {}
    try:
        for proto, multiplexed in peer.protocols:
            for trans in TRANSPORTS:
                cmd = peer.client(proto, multiplexed, trans, port)
                run = subprocess.run(cmd, cwd=peer.cwd, env=peer.env, capture_output=True,
                                     text=True, timeout=120)
                ok = peer.passed(run)
                if not ok:
                    print(f"--- {' '.join(cmd)}\n{run.stdout}{run.stderr}")
                results[(label(proto, multiplexed), trans)] = ok
        for payload, z in [(p, z) for z in (False, True) for p in ("binary", "compact")]:
            for trans in TRANSPORTS if peer.header_client else []:
                cmd = peer.header_client(payload, trans, z, port)
                run = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
                if run.returncode != 0:
                    print(f"--- {' '.join(cmd)}\n{run.stdout}{run.stderr}")
                zlib = ", zlib" if z else ""
                results[(f"header, {payload} payload{zlib} (header_client.go)", trans)] = \
                    run.returncode == 0
    finally:
        stop(server)
    return results


def peer_server(peer, proto, multiplexed, trans):
    """Starts the peer's test server: its port, process and command line."""
    port = free_port()
    cmd = peer.server(proto, multiplexed, trans, port)
    return port, serve(cmd, port, peer.cwd, peer.env), cmd


def ringsoa_client_vs_peer_server(peer):
    """For THeader ringsoa's client speaks as the peer's server reads it
    (`header_transport`), with a binary and a compact payload, each also with the
    zlib transform where the peer has it."""
    results = {}
    for proto, multiplexed in peer.protocols:
        for trans in TRANSPORTS:
            port, server, cmd = peer_server(peer, proto, multiplexed, trans)
            try:
                if proto == "header":
                    zlib = [[], ["--zlib"]] if peer.zlib else [[]]
                    runs = [(p, header_transport(trans), z) for p in ("binary", "compact")
                            for z in zlib]
                else:
                    runs = [(proto, trans, [])]
                results[(label(proto, multiplexed), trans)] = crosstest_client(
                    port, runs, multiplexed, " ".join(cmd))
            finally:
                stop(server)
    return results


def dynamic_calls(port, ours, transport, multiplexed, zlib, texception, answers):
    """`ringsoa call` against the ThriftTest server on `port`: every method of CALLS
    (with the server's own `answers` where they differ), a TException (answered as a
    TApplicationException of kind `texception`), and with `zlib` testStruct through
    the zlib transform with persistent pairs. Returns what failed."""
    failed = []
    # --multiplex before the rest: it takes an optional value.
    call = [RINGSOA, "call"] + (["--multiplex"] if multiplexed else []) + [
        "--idl", IDL, "--addr", f"127.0.0.1:{port}", "--protocol", ours,
        "--transport", transport, "--no-tracking"]
    for method, args, want, status in CALLS:
        want = answers.get(method, want)
        run = subprocess.run(call + [f"ThriftTest.{method}", json.dumps(args)],
                             capture_output=True, text=True, timeout=60)
        got = json.loads(run.stdout) if run.stdout.strip() else None
        if method == "testSet" and isinstance(got, list):
            got = sorted(got)
        if run.returncode != status or got != want:
            failed.append(f"{method}: exit {run.returncode}, got {run.stdout.strip()}"
                          f" {run.stderr.strip()}, want {json.dumps(want)}")
    # A TException raised by the handler arrives as its processor sends it (a
    # TApplicationException): one line, exit 2.
    run = subprocess.run(call + ["ThriftTest.testException", '{"arg": "TException"}'],
                         capture_output=True, text=True, timeout=60)
    if run.returncode != 2 or f"TApplicationException {texception}:" not in run.stderr:
        failed.append(f"testException(TException): exit {run.returncode}, {run.stderr.strip()}")
    if zlib:
        # The same through the zlib transform, with persistent pairs (which Apache's
        # readers ignore).
        method, args, want, _ = next(c for c in CALLS if c[0] == "testStruct")
        run = subprocess.run(call + ["--zlib", "--persistent-meta", "p=kept", "--meta", "k=v",
                                     f"ThriftTest.{method}", json.dumps(args)],
                             capture_output=True, text=True, timeout=60)
        if run.returncode != 0 or json.loads(run.stdout or "null") != want:
            failed.append(f"{method} --zlib --persistent-meta: exit {run.returncode}, "
                          f"{run.stdout.strip()} {run.stderr.strip()}")
    return failed


def dynamic_vs_apache_server():
    results = {}
    for proto in ["binary", "compact", "multi", "multic", "header", "multih"]:
        for trans in TRANSPORTS:
            port, server = apache_server(proto, trans)
            ours, multiplexed = wire(proto)
            transport = header_transport(trans) if proto in HEADERS else trans
            try:
                failed = dynamic_calls(port, ours, transport, multiplexed, proto in HEADERS,
                                       "InternalError", {})
            finally:
                stop(server)
            for f in failed:
                print(f"--- ringsoa call vs TestServer.py --protocol {proto} --transport {trans}: {f}")
            results[(proto, trans)] = not failed
    return results


def dynamic_vs_peer_server(peer):
    """`ringsoa call` against the peer's server, as `dynamic_vs_apache_server`."""
    results = {}
    for proto, multiplexed in peer.protocols:
        for trans in TRANSPORTS:
            port, server, cmd = peer_server(peer, proto, multiplexed, trans)
            header = proto == "header"
            try:
                failed = dynamic_calls(port, "binary" if header else proto,
                                       header_transport(trans) if header else trans,
                                       multiplexed, header and peer.zlib, peer.texception,
                                       peer.answers)
            finally:
                stop(server)
            for f in failed:
                print(f"--- ringsoa call vs {' '.join(cmd)}: {f}")
            results[(label(proto, multiplexed), trans)] = not failed
    return results


def table(title, results):
    print(f"\n{title}\n")
    print("| protocol | " + " | ".join(TRANSPORTS) + " |")
    print("| --- | " + " | ".join("---" for _ in TRANSPORTS) + " |")
    protos = list(dict.fromkeys(p for p, _ in results))
    for p in protos:
        cells = {True: "pass", False: "FAIL"}
        print(f"| {p} | " + " | ".join(cells[results[(p, t)]] for t in TRANSPORTS) + " |")


def main():
    rows = [
        ("Apache TestClient.py → ringsoa ThriftTest server", apache_client_vs_ringsoa_server()),
        ("ringsoa generated client → Apache TestServer.py", ringsoa_client_vs_apache_server()),
        ("`ringsoa call` (dynamic, 22 methods and a TException) → Apache TestServer.py",
         dynamic_vs_apache_server()),
        ("Apache Node.js client.js → ringsoa ThriftTest server",
         peer_client_vs_ringsoa_server(NODE)),
        ("ringsoa generated client → Apache Node.js server.js",
         ringsoa_client_vs_peer_server(NODE)),
        ("`ringsoa call` → Apache Node.js server.js", dynamic_vs_peer_server(NODE)),
        ("Apache Go testclient → ringsoa ThriftTest server", peer_client_vs_ringsoa_server(GO)),
        ("ringsoa generated client → Apache Go testserver", ringsoa_client_vs_peer_server(GO)),
        ("`ringsoa call` → Apache Go testserver", dynamic_vs_peer_server(GO)),
    ]
    failed = 0
    for title, results in rows:
        table(title, results)
        failed += sum(1 for ok in results.values() if ok is False)
    print(f"\ncross: {failed} failed cells")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
