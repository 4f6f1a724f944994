"""Reads a callgrind dump; prints its events per call and the top functions by
their own (exclusive) instructions per call. Used by perf/callgrind.sh.
Usage: callgrind_top.py DUMP CALLS [TOP]
       callgrind_top.py --threads CALLS TOP DUMP... (one dump per thread, as
       valgrind's --separate-threads writes them: each thread's instructions a
       call, then the top functions of each with over a tenth of the total)"""

import re
import sys

NAME = re.compile(r"^(c?ob|c?fn)=\((\d+)\)(?: (.*))?$")


def self_costs(path):
    """Yields the dump's event names once (a list), then, for each cost line that is
    a function's own (a call's inclusive cost left out), (object, function, first
    position, costs): the first position is the instruction address in a dump made
    with --dump-instr=yes, else the source line."""
    names = {"ob": {}, "fn": {}}
    obj = fn = None
    positions, last, after_call = 1, 0, False
    with open(path) as f:
        for line in f:
            line = line.rstrip("\n")
            if line.startswith("positions:"):
                positions = len(line.split()) - 1
                continue
            if line.startswith("events:"):
                yield line.split()[1:]
                continue
            m = NAME.match(line)
            if m:
                kind, key, name = m.groups()
                table = names["ob" if "ob" in kind else "fn"]
                if name:
                    table[key] = name
                if kind == "ob":
                    obj = table[key]
                elif kind == "fn":
                    fn = table.get(key, key)
                continue
            if line.startswith("calls="):
                # The next cost line is the call's inclusive cost: not this function's.
                after_call = True
                continue
            if not line or not (line[0].isdigit() or line[0] in "+-*"):
                continue
            parts = line.split()
            at = parts[0]
            if at.startswith("0x"):
                last = int(at, 16)
            elif at[0] in "+-":
                last += int(at)
            elif at != "*":
                last = int(at)
            if after_call:
                after_call = False
                continue
            yield obj, fn, last, [int(v) for v in parts[positions:]]


def exclusive_costs(path):
    """Event names, and each function's own costs."""
    records = self_costs(path)
    events = next(records, [])
    costs = {}
    for _, fn, _, values in records:
        c = costs.setdefault(fn, [0] * len(events))
        for i, v in enumerate(values):
            c[i] += v
    return events, costs


LABELS = {"Ir": "instructions", "Dr": "data reads", "Dw": "data writes",
          "I1mr": "L1i misses", "D1mr": "L1d read misses", "D1mw": "L1d write misses"}


def report(events, costs, calls, top):
    """Prints the events per call and the `top` functions by own instructions."""
    totals = [sum(c[i] for c in costs.values()) for i in range(len(events))]
    print("per call: " + ", ".join(
        f"{LABELS[e]} {t / calls:,.0f}" for e, t in zip(events, totals) if e in LABELS))
    ir = events.index("Ir")
    print("  Ir/call  function")
    for fn, c in sorted(costs.items(), key=lambda kv: -kv[1][ir])[:top]:
        print(f"{c[ir] / calls:9.0f}  {fn[:130]}")


def threads(calls, top, paths):
    """Each thread's instructions a call, and the top functions of the busy ones."""
    dumps = []
    for path in sorted(paths):
        events, costs = exclusive_costs(path)
        if events:
            ir = events.index("Ir")
            dumps.append((path.rsplit("-", 1)[-1], events, costs,
                          sum(c[ir] for c in costs.values())))
    total = sum(d[3] for d in dumps)
    print(f"all threads: {total / calls:,.1f} instructions a call")
    for thread, _, _, ir in dumps:
        if ir:
            print(f"  thread {thread}: {ir / calls:,.1f}")
    for thread, events, costs, ir in dumps:
        if ir * 10 > total:
            print(f"-- thread {thread}")
            report(events, costs, calls, top)


def main():
    if sys.argv[1] == "--threads":
        threads(int(sys.argv[2]), int(sys.argv[3]), sys.argv[4:])
        return
    path, calls = sys.argv[1], int(sys.argv[2])
    top = int(sys.argv[3]) if len(sys.argv) > 3 else 25
    report(*exclusive_costs(path), calls, top)


if __name__ == "__main__":
    main()
