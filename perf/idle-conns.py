#!/usr/bin/env python3
"""Memory per idle connection: starts target/release/ringsoa-demo (2 cores), opens N
silent connections (default 10,000), and prints the server's RSS before and after.

Usage: perf/idle-conns.py [N]   (needs `ulimit -n` above N + 100 for this process)
"""
import resource, socket, subprocess, sys, time

n = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
probe = socket.socket(); probe.bind(("127.0.0.1", 0)); port = probe.getsockname()[1]; probe.close()
demo = subprocess.Popen(["target/release/ringsoa-demo", "--listen", f"127.0.0.1:{port}",
                         "--cores", "2", "--max-connections", str(n)],
                        stderr=subprocess.DEVNULL)
def rss_kb():
    for line in open(f"/proc/{demo.pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
try:
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port)).close(); break
        except OSError:
            time.sleep(0.05)
    time.sleep(0.3)
    before = rss_kb()
    conns = [socket.create_connection(("127.0.0.1", port)) for _ in range(n)]
    time.sleep(1.0)
    after = rss_kb()
    print(f"{n} idle connections: RSS {before} kB -> {after} kB, "
          f"{(after - before) * 1024 / n:.0f} bytes per connection "
          f"({(after - before) / 1024:.1f} MiB in all)")
finally:
    demo.kill(); demo.wait()
