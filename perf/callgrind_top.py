"""Reads a callgrind dump; prints its events per call and the top functions by
their own (exclusive) instructions per call. Used by perf/callgrind.sh.
Usage: callgrind_top.py DUMP CALLS [TOP]"""

import re
import sys

NAME = re.compile(r"^(c?fn)=\((\d+)\)(?: (.*))?$")


def exclusive_costs(path):
    """Event names, and each function's own costs (calls' costs left out)."""
    names, costs = {}, {}
    events, current, after_call = [], None, False
    positions = 1  # columns before the costs: "line", or "instr line"
    with open(path) as f:
        for line in f:
            line = line.rstrip("\n")
            if line.startswith("positions:"):
                positions = len(line.split()) - 1
                continue
            if line.startswith("events:"):
                events = line.split()[1:]
                continue
            m = NAME.match(line)
            if m:
                kind, key, name = m.groups()
                if name:
                    names[key] = name
                if kind == "fn":
                    current = names.get(key, key)
                continue
            if line.startswith("calls="):
                # The next cost line is the call's inclusive cost: not this function's.
                after_call = True
                continue
            if line and (line[0].isdigit() or line[0] in "+-*"):
                if after_call:
                    after_call = False
                    continue
                values = [int(v) for v in line.split()[positions:]]
                c = costs.setdefault(current, [0] * len(events))
                for i, v in enumerate(values):
                    c[i] += v
    return events, costs


def main():
    path, calls = sys.argv[1], int(sys.argv[2])
    top = int(sys.argv[3]) if len(sys.argv) > 3 else 25
    events, costs = exclusive_costs(path)
    totals = [sum(c[i] for c in costs.values()) for i in range(len(events))]
    labels = {"Ir": "instructions", "Dr": "data reads", "Dw": "data writes",
              "I1mr": "L1i misses", "D1mr": "L1d read misses", "D1mw": "L1d write misses"}
    print("per call: " + ", ".join(
        f"{labels[e]} {t / calls:,.0f}" for e, t in zip(events, totals) if e in labels))
    ir = events.index("Ir")
    print("  Ir/call  function")
    for fn, c in sorted(costs.items(), key=lambda kv: -kv[1][ir])[:top]:
        print(f"{c[ir] / calls:9.0f}  {fn[:130]}")


if __name__ == "__main__":
    main()
