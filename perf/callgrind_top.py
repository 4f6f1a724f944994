"""Reads a callgrind dump; prints its events per call and the top functions by
their own (exclusive) instructions per call. Used by perf/callgrind.sh.
Usage: callgrind_top.py DUMP CALLS [TOP]"""

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
