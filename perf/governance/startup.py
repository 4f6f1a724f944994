"""Start-up to first served request: spawns ringsoa-demo with the given flags and
times until a `ping` over framed binary gets its reply. Prints milliseconds.

Usage: python startup.py DEMO_BINARY PORT [DEMO FLAGS...]
"""
import socket
import struct
import subprocess
import sys
import time

demo, port, flags = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
ping = struct.pack(">I", 0x80010001) + struct.pack(">I", 4) + b"ping" + struct.pack(">i", 1) + b"\x00"
frame = struct.pack(">I", len(ping)) + ping
started = time.monotonic()
proc = subprocess.Popen([demo, "--listen", f"127.0.0.1:{port}", "--cores", "2", *flags],
                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
try:
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(frame)
                head = s.recv(8)
                if len(head) == 8 and head[7] == 2:
                    break
        except OSError:
            pass
        if time.monotonic() - started > 30:
            raise SystemExit("no reply within 30 s")
        time.sleep(0.001)
    print(round((time.monotonic() - started) * 1e3, 1))
finally:
    proc.terminate()
    proc.wait()
