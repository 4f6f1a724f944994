"""Markdown summaries of the perf scripts' results (one JSON object per line, as
`ringsoa-perf load` prints them, with `round` and `loadavg` added by perf/lib.sh).

Usage: summary.py server-echo|client-echo RESULTS.jsonl  (server-echo also splits
       each server's CPU per call into user and system time)
       summary.py placement RESULTS.jsonl...  (ringsoa ÷ raw by where the CPUs sit)
(perf/peers/table.py uses the helpers for the peer matrix.)
"""
import json
import statistics
import sys


def rows(path):
    """Every result in the file."""
    return [json.loads(line) for line in open(path) if line.strip()]


def cells(results, key):
    """Results grouped by `key(result)`, then by label."""
    out = {}
    for r in results:
        out.setdefault(key(r), {}).setdefault(r["label"], []).append(r)
    return out


def med(rs, k):
    """The median of field `k` over results `rs` (NaN if none has it)."""
    vals = [r[k] for r in rs if r.get(k) is not None]
    return statistics.median(vals) if vals else float("nan")


def paired(a, b, k, same_state=False):
    """The ratios a/b of field `k` round by round (runs of one round are seconds
    apart), sorted. With `same_state`, only pairs whose CPU round trips at run
    start are within 1.5× of each other (the host had the CPUs equally near)."""
    bs = {r["round"]: r for r in b if r.get(k) is not None}

    def same(x, y):
        rx, ry = x.get("cpu_rtt_ns"), y.get("cpu_rtt_ns")
        return rx is not None and ry is not None and max(rx, ry) <= 1.5 * min(rx, ry)

    return sorted(r[k] / bs[r["round"]][k] for r in a
                  if r.get(k) is not None and r["round"] in bs
                  and (not same_state or same(r, bs[r["round"]])))


def paired_text(ratios, count=False):
    """A paired ratio's median and range, e.g. "1.12 (1.06–1.19)" (with `count`,
    how many pairs: "1.12 (1.06–1.19, 4 pairs)")."""
    if not ratios:
        return "—"
    n = f", {len(ratios)} pair{'' if len(ratios) == 1 else 's'}" if count else ""
    return f"{statistics.median(ratios):.2f} ({ratios[0]:.2f}–{ratios[-1]:.2f}{n})"


def rtt_line(results):
    """The range of the CPUs' cache-line round trip recorded beside the runs."""
    rtts = [r["cpu_rtt_ns"] for r in results if r.get("cpu_rtt_ns") is not None]
    if not rtts:
        return ""
    return (f"; cache-line round trip between the two CPUs at run start "
            f"{min(rtts):.0f}–{max(rtts):.0f} ns")


def load_line(results):
    """How many runs and the load average range at their start."""
    loads = [r["loadavg"] for r in results]
    return (f"{len(results)} runs; load average at run start {min(loads):.2f}–{max(loads):.2f}"
            + rtt_line(results))


def server_echo(results):
    print("| echo | conns | raw CPU µs/call | ringsoa CPU µs/call | ratio | raw p50/p99 µs | ringsoa p50/p99 µs | p99 ratio | raw kQPS | ringsoa kQPS |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for (payload, conns), by in sorted(cells(results, lambda r: (r["payload"], r["conns"])).items()):
        raw, rs = by["raw"], by["ringsoa"]
        rc, sc = med(raw, "server_cpu_us_per_call"), med(rs, "server_cpu_us_per_call")
        print(f"| {payload} B | {conns} | {rc:.2f} | {sc:.2f} | {sc / rc:.2f} "
              f"| {med(raw, 'p50_us'):.0f}/{med(raw, 'p99_us'):.0f} | {med(rs, 'p50_us'):.0f}/{med(rs, 'p99_us'):.0f} "
              f"| {med(rs, 'p99_us') / med(raw, 'p99_us'):.2f} | {med(raw, 'qps') / 1000:.1f} | {med(rs, 'qps') / 1000:.1f} |")


def client_echo(results):
    names = {"raw": "raw, pre-encoded", "tracked": "ringsoa client, tracked", "native": "ringsoa client, native"}
    print("| calls in flight | load generator | client CPU µs/call | ratio to raw | paired ratio, median (range) | same-state pairs | p50 µs | p99 µs | server CPU µs/call | kQPS |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    k = "client_cpu_us_per_call"
    for conns, by in sorted(cells(results, lambda r: r["conns"]).items()):
        base = med(by["raw"], k)
        for label in ("raw", "tracked", "native"):
            rs = by[label]
            c = med(rs, k)
            print(f"| {conns} | {names[label]} | {c:.2f} | {c / base:.2f} | {paired_text(paired(rs, by['raw'], k))} "
                  f"| {paired_text(paired(rs, by['raw'], k, True), True)} "
                  f"| {med(rs, 'p50_us'):.0f} | {med(rs, 'p99_us'):.0f} | {med(rs, 'server_cpu_us_per_call'):.2f} "
                  f"| {med(rs, 'qps') / 1000:.1f} |")
    print("\nThe paired ratio divides each run by the raw generator's run of the same round"
          " (seconds apart); same-state pairs are those whose CPU round trips at run start"
          " are within 1.5× of each other (the host had the two CPUs equally near).")


def split(results):
    """Where the server's CPU per call goes: user and system time of each server,
    and ringsoa − raw round by round (runs without the split are left out)."""
    keys = ("server_user_us_per_call", "server_system_us_per_call", "server_cpu_us_per_call")
    results = [r for r in results if all(r.get(k) is not None for k in keys)]
    if not results:
        return
    print("\n| echo | conns | raw user / system µs/call | ringsoa user / system µs/call "
          "| ringsoa − raw, paired medians: user / system / total µs | total ratio |")
    print("|---|---|---|---|---|---|")
    for (payload, conns), by in sorted(cells(results, lambda r: (r["payload"], r["conns"])).items()):
        raw, rs = by.get("raw", []), by.get("ringsoa", [])
        if not raw or not rs:
            continue
        base = {r["round"]: r for r in raw}

        def diff(k):
            d = [r[k] - base[r["round"]][k] for r in rs if r["round"] in base]
            return statistics.median(d) if d else float("nan")

        u, s, t = keys
        print(f"| {payload} B | {conns} | {med(raw, u):.2f} / {med(raw, s):.2f} "
              f"| {med(rs, u):.2f} / {med(rs, s):.2f} "
              f"| {diff(u):+.2f} / {diff(s):+.2f} / {diff(t):+.2f} | {med(rs, t) / med(raw, t):.2f} |")
    print("\nUser and system time as /proc/<pid>/stat gives them: with tick-based"
          " accounting (the kernel's default) the split between the two is sampled at the"
          " kernel's ticks (250 a second on the project's machines), so a 2 s run's user"
          " figure rests on some fifty samples; read the medians over rounds.")


NEAR_NS = 200


def by_placement(results):
    """ringsoa ÷ raw server CPU per call over the same-state pairs of the echo cells
    at 16 and 128 connections of one script's results (server-echo or peers),
    sorted into the CPUs' state: near (round trip under NEAR_NS) or far."""
    k = "server_cpu_us_per_call"
    pools = {"near": [], "far": []}
    runs = {}
    for r in results:
        if (r["method"] == "echo" and r["conns"] in (16, 128)
                and r.get("transport", "framed") == "framed" and r.get(k) is not None):
            runs.setdefault((r["payload"], r["conns"], r["round"]), {})[r["label"]] = r
    for pair in runs.values():
        a, b = pair.get("ringsoa"), pair.get("raw")
        if a is None or b is None or not paired([a], [b], k, same_state=True):
            continue
        state = "near" if max(a["cpu_rtt_ns"], b["cpu_rtt_ns"]) < NEAR_NS else "far"
        pools[state].append(a[k] / b[k])
    return {state: sorted(ratios) for state, ratios in pools.items()}


def placement_text(pools):
    """The pooled ratios, e.g. "CPUs near: 1.06 (0.86–1.32, 42 pairs); CPUs far: …"."""
    return "; ".join(f"CPUs {state}: {paired_text(r, True)}" for state, r in pools.items())


def placement(paths):
    """Prints ringsoa ÷ raw by the CPUs' state, pooled over the files' runs."""
    pools = {"near": [], "far": []}
    for path in paths:
        for state, ratios in by_placement(rows(path)).items():
            pools[state] += ratios
    print("ringsoa ÷ raw, same-state pairs, echo at 16 and 128 connections: "
          + placement_text({state: sorted(r) for state, r in pools.items()}))

if __name__ == "__main__":
    kind, path = sys.argv[1], sys.argv[2]
    if kind == "placement":
        placement(sys.argv[2:])
        sys.exit()
    results = rows(path)
    {"server-echo": server_echo, "client-echo": client_echo}[kind](results)
    if kind == "server-echo":
        split(results)
    print("\n" + load_line(results))
