"""Reads a callgrind dump made with --dump-instr=yes; prints the hot code's footprint:
the instructions run at least once every two calls, the 64-byte cache lines that hold
them, how those lines fall on the 64 sets of a 32 KiB 8-way L1 instruction cache, and
the functions with the most hot lines. Used by perf/callgrind.sh (FOOTPRINT=1).
Usage: footprint.py DUMP CALLS [TOP]"""

import collections
import re
import sys

NAME = re.compile(r"^(c?ob|c?fn)=\((\d+)\)(?: (.*))?$")
SETS, WAYS, LINE = 64, 8, 64


def instruction_costs(path):
    """Each instruction's own Ir, keyed by (object, address), and its function."""
    names = {"ob": {}, "fn": {}}
    obj = fn = None
    last, after_call = 0, False
    cost, owner = collections.Counter(), {}
    with open(path) as f:
        for line in f:
            m = NAME.match(line.rstrip("\n"))
            if m:
                kind, key, name = m.groups()
                table = names["ob" if "ob" in kind else "fn"]
                if name:
                    table[key] = name
                if kind == "ob":
                    obj = table[key]
                elif kind == "fn":
                    fn = table[key]
                continue
            if line.startswith("calls="):
                # The next cost line is the call's inclusive cost: not this one's.
                after_call = True
                continue
            if not line[:1] or not (line[0] == "0" or line[0] in "+-*"):
                continue
            parts = line.split()
            a = parts[0]
            if a.startswith("0x"):
                last = int(a, 16)
            elif a[0] in "+-":
                last += int(a)
            if after_call:
                after_call = False
                continue
            if len(parts) >= 3:
                cost[(obj, last)] += int(parts[2])
                owner[(obj, last)] = fn
    return cost, owner


def main():
    path, calls = sys.argv[1], int(sys.argv[2])
    top = int(sys.argv[3]) if len(sys.argv) > 3 else 12
    cost, owner = instruction_costs(path)
    hot = [k for k, v in cost.items() if 2 * v >= calls]
    lines = collections.defaultdict(set)
    for obj, addr in hot:
        lines[(obj, addr // LINE)].add(owner[(obj, addr)])
    per_set = collections.Counter(line % SETS for _, line in lines)
    print(
        f"hot code: {len(hot):,} instructions on {len(lines)} lines "
        f"({len(lines) * LINE / 1024:.1f} KiB); at most {max(per_set.values(), default=0)} "
        f"lines in one set, {sum(n > WAYS for n in per_set.values())} sets over {WAYS}"
    )
    by_fn = collections.Counter()
    for fns in lines.values():
        for f in fns:
            by_fn[f] += 1 / len(fns)
    for f, n in by_fn.most_common(top):
        print(f"  {n:5.0f}  {f[:110]}")


if __name__ == "__main__":
    main()
