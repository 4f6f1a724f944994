"""Summarises perf/results/peers.jsonl (written by perf/peers/run.sh) as Markdown,
printed, and with --into FILE also written into FILE between the
`<!-- peers:begin -->` and `<!-- peers:end -->` markers (appended if absent).

Usage: table.py RESULTS.jsonl SECONDS_TAKEN ROUNDS SECONDS_PER_RUN [--into FILE]
"""
import os
import platform
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from summary import (by_placement, cells as group, med, paired, paired_text,  # noqa: E402
                     placement_text, rows as read_rows)

rows = read_rows(sys.argv[1])
taken, rounds, secs = sys.argv[2], sys.argv[3], sys.argv[4]
ORDER = ["raw", "ringsoa", "tokio", "volo", "thrift-rs", "thriftpy2", "gunicorn"]
NAMES = {
    "raw": "raw monoio (limit)", "ringsoa": "ringsoa-demo", "tokio": "raw tokio",
    "volo": "volo-thrift", "thrift-rs": "thrift crate", "thriftpy2": "thriftpy2",
    "gunicorn": "gunicorn_thrift + gevent",
}

def cell_name(r):
    name = "ping" if r["method"] == "ping" else f"echo {r['payload'] if r['payload'] < 1024 else str(r['payload'] // 1024) + ' KiB'}{' B' if r['payload'] < 1024 else ''}"
    transport = r.get("transport", "framed")
    return name if transport == "framed" else f"{name} over {'TTHeader' if transport == 'ttheader' else transport}"

cells = group(rows, lambda r: (r.get("transport", "framed") != "framed", r["method"] != "echo",
                               r["payload"], r["conns"]))

def spread(rs, k):
    vals = [r[k] for r in rs]
    m = statistics.median(vals)
    return (max(vals) - min(vals)) / m if m else 0.0

cpu = "unknown CPU"
try:
    cpu = next(l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name"))
except (OSError, StopIteration):
    pass
ncpu = sum(1 for l in open("/proc/cpuinfo") if l.startswith("processor"))

out = []
out.append(f"Measured {time.strftime('%Y-%m-%d')} by `perf/peers/run.sh {rounds} {secs}` in {taken} s "
           f"({len(rows)} runs; {rounds} rounds, servers rotating within each cell, ringsoa-demo and the limit back to back in alternating order; {secs} s measured after 0.5 s warm-up) "
           f"on {ncpu} × {cpu}, Linux {platform.release()}. Server pinned to CPU 0, `ringsoa-perf load` to CPU 1; "
           "framed strict binary (the TTHeader cell: TTHeader around framed binary, as Volo's default codec sends). Medians over rounds. Server CPU per call is user + system time from `/proc/<pid>/stat` "
           "over the measured window (for gunicorn_thrift, its worker process).\n")
out.append("**Server CPU µs per call** (lower is better):\n")
out.append("| cell | conns | " + " | ".join(NAMES[s] for s in ORDER) + " |")
out.append("|---|---|" + "---|" * len(ORDER))
noisy = []
for key in sorted(cells):
    by = cells[key]
    any_row = next(iter(by.values()))[0]
    vals = {s: med(by[s], "server_cpu_us_per_call") for s in ORDER if s in by}
    for s in ORDER:
        if s in by and len(by[s]) > 1 and spread(by[s], "server_cpu_us_per_call") > 0.2:
            noisy.append(f"{cell_name(any_row)} / {any_row['conns']} / {NAMES[s]}")
    out.append(f"| {cell_name(any_row)} | {any_row['conns']} | " + " | ".join(f"{vals[s]:.2f}" if s in vals else "—" for s in ORDER) + " |")
out.append("")
others = [s for s in ORDER if s != "ringsoa"]
out.append("**ringsoa's CPU per call ÷ each server's** (below 1: ringsoa uses less):\n")
out.append("| cell | conns | " + " | ".join(NAMES[s] for s in others) + " |")
out.append("|---|---|" + "---|" * len(others))
for key in sorted(cells):
    by = cells[key]
    any_row = next(iter(by.values()))[0]
    if "ringsoa" not in by:
        continue
    mine = med(by["ringsoa"], "server_cpu_us_per_call")
    out.append(f"| {cell_name(any_row)} | {any_row['conns']} | " + " | ".join(
        f"{mine / med(by[s], 'server_cpu_us_per_call'):.2f}" if s in by else "—" for s in others) + " |")
out.append("")
out.append("**ringsoa ÷ the limit, paired by round** (each round's ringsoa run divided by the same round's "
           "raw monoio run, seconds apart, so on the same machine state; the host moves this VM's CPUs "
           "between near and far cores, which the cache-line round trip between the two CPUs shows):\n")
out.append("| cell | conns | ratio of medians | paired: median (range) | same-state pairs (round trips within 1.5×) | CPU round trip at run start, ns |")
out.append("|---|---|---|---|---|---|")
for key in sorted(cells):
    by = cells[key]
    any_row = next(iter(by.values()))[0]
    if "ringsoa" not in by or "raw" not in by:
        continue
    k = "server_cpu_us_per_call"
    rtts = [r["cpu_rtt_ns"] for rs in (by["ringsoa"], by["raw"]) for r in rs if r.get("cpu_rtt_ns")]
    rtt = f"{min(rtts):.0f}–{max(rtts):.0f}" if rtts else "—"
    out.append(f"| {cell_name(any_row)} | {any_row['conns']} | {med(by['ringsoa'], k) / med(by['raw'], k):.2f} "
               f"| {paired_text(paired(by['ringsoa'], by['raw'], k))} "
               f"| {paired_text(paired(by['ringsoa'], by['raw'], k, True), True)} | {rtt} |")
out.append("")
out.append("The same-state pairs of the echo cells at 16 and 128 connections, pooled by where the host "
           "had the CPUs (near: round trip under 200 ns): " + placement_text(by_placement(rows)) + ".")
out.append("")
out.append("**Throughput and latency** (kQPS, p50 / p99 / p99.9 µs; the load generator's one core bounds QPS, "
           "so QPS mostly measures it), and the load average at the start of the cell's runs:\n")
out.append("| cell | conns | " + " | ".join(NAMES[s] for s in ORDER) + " | load avg |")
out.append("|---|---|" + "---|" * len(ORDER) + "---|")
for key in sorted(cells):
    by = cells[key]
    any_row = next(iter(by.values()))[0]
    cell_loads = [r["loadavg"] for rs in by.values() for r in rs]
    out.append(f"| {cell_name(any_row)} | {any_row['conns']} | " + " | ".join(
        f"{med(by[s], 'qps') / 1000:.1f}k, {med(by[s], 'p50_us'):.0f} / {med(by[s], 'p99_us'):.0f} / {med(by[s], 'p999_us'):.0f}"
        if s in by else "—" for s in ORDER) + f" | {min(cell_loads):.1f}–{max(cell_loads):.1f} |")
loads = [r["loadavg"] for r in rows]
errors = sum(r["errors"] for r in rows)
out.append("")
out.append(f"Load average at run start: {min(loads):.2f}–{max(loads):.2f} (the load generator keeps one core busy by design). "
           f"Wrong or missing replies: {errors}.")
out.append("Noisy (server CPU per call spread over 20% between rounds): " + (", ".join(noisy) if noisy else "none") + ".\n")

# Targets, from DESIGN.md.
checks = []
for key in sorted(cells):
    by = cells[key]
    any_row = next(iter(by.values()))[0]
    if "ringsoa" not in by:
        continue
    c = lambda s: med(by[s], "server_cpu_us_per_call")
    name = f"{cell_name(any_row)} / {any_row['conns']}"
    # The targets of shared/DESIGN.md: ≤ 1.05× the limit, ≤ 0.6× volo-thrift, ≤ 0.2×
    # the seed, p99 at 128 connections ≤ 1.1× the limit's.
    for other, limit in (("raw", 1.05), ("volo", 0.6), ("gunicorn", 0.2)):
        if other in by:
            r = c("ringsoa") / c(other)
            if r > limit:
                pairs = paired(by["ringsoa"], by[other], "server_cpu_us_per_call")
                # Against a peer, what the limit itself gets: a target the limit
                # misses too is out of any server's reach on this machine.
                floor = (f", the limit itself: {c('raw') / c(other):.2f}"
                         if other != "raw" and "raw" in by else "")
                checks.append(f"{name}: ringsoa ÷ {NAMES[other]} = {r:.2f}, paired {paired_text(pairs)} "
                              f"(target ≤ {limit}{floor})")
    if any_row["conns"] == 128 and "raw" in by:
        r = med(by["ringsoa"], "p99_us") / med(by["raw"], "p99_us")
        if r > 1.1:
            checks.append(f"{name}: p99 ringsoa ÷ limit = {r:.2f} (target ≤ 1.1)")
out.append("**Targets missed in this run:** " + ("; ".join(checks) if checks else "none") + ".\n")
table = "\n".join(out) + "\n"
print(table, end="")
if "--into" in sys.argv:
    path = sys.argv[sys.argv.index("--into") + 1]
    text = open(path).read()
    begin, end = "<!-- peers:begin -->", "<!-- peers:end -->"
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        tail = rest.split(end, 1)[1]
    else:
        head, tail = text.rstrip() + "\n\n", "\n"
    open(path, "w").write(head + begin + "\n" + table + end + tail)
