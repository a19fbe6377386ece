"""Compare two ``lossnav validate --json`` outputs case by case (wall times aside).

    lossnav validate --all --json > before.json      # on the old code
    lossnav validate --all --json > after.json       # on the new code
    python benchmarks/compare_validate.py before.json after.json

Prints the cases missing on either side, how many cases are identical number for number,
the largest relative changes of every figure (a path into the JSON, old → new value) and
the pass counts. Used to check that a refactoring left every figure unchanged (the house
issue: after the move 72 of 81 cases bit-identical, the rest at 2e-16) and to see what an
engine change moved.
"""
from __future__ import annotations

import json
import math
import sys

IGNORED = {"seconds"}


def differences(old, new, path, out):
    """Append (relative change, path, (old, new)) for every number or value that differs."""
    if isinstance(old, dict) and isinstance(new, dict):
        for key in sorted(set(old) | set(new), key=str):
            if key in IGNORED:
                continue
            if key not in old or key not in new:
                out.append((math.inf, path + [key], "only in one"))
            else:
                differences(old[key], new[key], path + [key], out)
    elif isinstance(old, list) and isinstance(new, list):
        if len(old) != len(new):
            out.append((math.inf, path, f"length {len(old)} vs {len(new)}"))
        # unequal lengths are a difference reported above; the common prefix is still compared
        for index, (a, b) in enumerate(zip(old, new, strict=False)):
            differences(a, b, path + [index], out)
    elif all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (old, new)):
        if old != new and not (math.isnan(old) and math.isnan(new)):
            out.append((abs(old - new) / max(abs(old), abs(new), 1e-300), path, (old, new)))
    elif old != new:
        out.append((math.inf, path, (old, new)))


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2:
        print("usage: python benchmarks/compare_validate.py BEFORE.json AFTER.json", file=sys.stderr)
        return 2
    before, after = ({(row["problem"], row["case"]): row for row in json.load(open(path, encoding="utf-8"))}
                     for path in argv)
    print(f"cases: {len(before)} vs {len(after)}; only in one: {sorted(set(before) ^ set(after))}")
    found = []
    for key in sorted(set(before) & set(after)):
        differences(before[key], after[key], [key], found)
    found.sort(key=lambda item: -item[0])
    changed = {item[1][0] for item in found}
    print(f"differing values: {len(found)}; identical cases: {len(set(before) & set(after)) - len(changed)}")
    for change, path, values in found[:20]:
        print(f"  rel {change:.2e}  {path}  {values}")
    print("passed:", sum(row["passed"] for row in before.values()), "vs",
          sum(row["passed"] for row in after.values()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
