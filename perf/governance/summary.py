"""Markdown summary of perf/governance.sh's results (perf/results/governance.jsonl)."""
import json
import statistics
import sys

rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
med = statistics.median


def pick(mode, key="change_to_every_consumer"):
    return [r[key] for r in rows if r.get("mode") == mode]


print("| measurement | runs | p50 ms (median of runs) | p99 ms (median of runs) | p99 ms (worst run) |")
print("|---|---|---|---|---|")
for label, mode, key in [
    ("ZooKeeper write → both cores (100 changes a run)", "propagation", "write_to_all_cores"),
    ("fan-out, ringsoa (1,000 providers, 100 sessions)", "fanout", "change_to_every_consumer"),
    ("fan-out, kazoo ChildrenWatch (same)", "fanout-kazoo", "change_to_every_consumer"),
]:
    rs = pick(mode, key)
    if rs:
        print(f"| {label} | {len(rs)} | {med(r['p50_ms'] for r in rs):.1f} | {med(r['p99_ms'] for r in rs):.1f} | {max(r['p99_ms'] for r in rs):.1f} |")
fan = [r for r in rows if r.get("mode") == "fanout"]
if fan:
    print()
    print(f"ZooKeeper per change (ringsoa fan-out, median of {len(fan)} runs): "
          f"{med(r['zk_packets_received_per_change'] for r in fan):.1f} packets received "
          f"({med(r['zk_packets_received_per_change_less_heartbeats'] for r in fan):.1f} less the sessions' heartbeats), "
          f"{med(r['zk_packets_sent_per_change'] for r in fan):.1f} sent, "
          f"{med(r['zk_cpu_ms_per_change'] for r in fan if r.get('zk_cpu_ms_per_change') is not None):.1f} ms of its CPU.")
print()
print("| start-up to first served request | runs | median ms | max ms |")
print("|---|---|---|---|")
for zk in ["up", "down (disk cache)"]:
    ms = [r["ms"] for r in rows if r.get("mode") == "startup" and r["zookeeper"] == zk]
    if ms:
        print(f"| ZooKeeper {zk} | {len(ms)} | {med(ms):.0f} | {max(ms):.0f} |")
for prefix, on_what in [("governance", "governance on (ZooKeeper, config and switches) ÷ off (--no-governance)"),
                        ("control", "recorders, breaker, ACL and rate-limit checks on ÷ all off (--no-governance --no-metrics)")]:
    runs = {}
    for r in rows:
        if r.get("label") in (f"{prefix}-on", f"{prefix}-off"):
            runs.setdefault(r["round"], {})[r["label"]] = r["server_cpu_us_per_call"]
    pairs = [(k, v[f"{prefix}-on"], v[f"{prefix}-off"]) for k, v in sorted(runs.items()) if len(v) == 2]
    if not pairs:
        continue
    # The machine flips between two speeds (about 25% apart) now and then, so each
    # round's on/off pair (run back to back) is compared, and the median taken.
    ratios = [on / off for _, on, off in pairs]
    print()
    print(f"Server CPU per call, echo 64 B, 16 connections, one core; {on_what}, each round's pair run back to back:")
    print()
    print("| round | on µs/call | off µs/call | on ÷ off |")
    print("|---|---|---|---|")
    for (k, on, off), r in zip(pairs, ratios):
        print(f"| {k} | {on:.2f} | {off:.2f} | {r:.3f} |")
    print()
    print(f"Median ratio over {len(pairs)} rounds: {med(ratios):.3f}.")
