"""Reads a callgrind dump made with --dump-instr=yes; prints the hot code's footprint:
the instructions run at least once every two calls, the 64-byte cache lines that hold
them, how those lines fall on the 64 sets of a 32 KiB 8-way L1 instruction cache, and
the functions with the most hot lines. Used by perf/callgrind.sh (FOOTPRINT=1).
Usage: footprint.py DUMP CALLS [TOP]"""

import collections
import sys

from callgrind_top import self_costs

SETS, WAYS, LINE = 64, 8, 64


def instruction_costs(path):
    """Each instruction's own Ir, keyed by (object, address), and its function."""
    records = self_costs(path)
    ir = next(records, []).index("Ir")
    cost, owner = collections.Counter(), {}
    for obj, fn, addr, values in records:
        if len(values) > ir:
            cost[(obj, addr)] += values[ir]
            owner[(obj, addr)] = fn
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
