#!/usr/bin/env python3
"""Where a benchmark's Postgres time goes, per 1000 transactions.

    perf script -F comm,ip,sym,dso -i perf.data | python3 sql/bench/perf_costs.py TXNS

Reads `perf record -a -g` samples, keeps those of `postgres` processes, and counts for each
group below the samples whose call stack passes through it (inclusive: groups overlap, e.g.
triggers run inside the statement that fires them). TXNS is the number of transactions pgbench
completed while perf recorded, so the figures compare across cases (E, S, R) whatever their tps.

perf unwinds stacks by frame pointers. The Rust code and OpenSSL's SHA-256 keep none, so a
sample taken inside them has no callers: it counts in "all Postgres samples" and in the two
rows of innermost frames at the end, not in the inclusive groups above them (the transcript
trigger's check and hash, for instance, are missing from "BEFORE row triggers").
"""
import collections
import re
import sys

GROUPS = [
    ("all Postgres samples", None),
    ("SPI statements inside functions", r"\bSPI_execute_plan|\bSPI_execute\b"),
    ("PL/pgSQL (functions and triggers)", r"\bplpgsql_exec_(function|trigger)\b"),
    ("calls through a SET clause (fmgr_security_definer)", r"\bfmgr_security_definer\b"),
    ("planning (standard_planner)", r"\bstandard_planner\b"),
    ("executor start-up (standard_ExecutorStart)", r"\bstandard_ExecutorStart\b"),
    ("CHECK constraints (ExecConstraints)", r"\bExecConstraints\b"),
    ("reading stored node trees (stringToNode)", r"\bstringToNode\b"),
    ("BEFORE row triggers", r"\bExecBR(Insert|Update)Triggers\b"),
    ("AFTER triggers", r"\bAfterTriggerEndQuery\b|\bExecAR(Insert|Update)Triggers\b"),
    ("index inserts (ExecInsertIndexTuples)", r"\bExecInsertIndexTuples\b"),
    ("TOAST (compress, store, read)", r"\bheap_toast_insert_or_update\b|\btoast_|\bdetoast_"),
    ("under a call into the extension (fred.so on the stack)", r"fred\.so"),
]
# Self time: the sample's innermost frame is in this library.
LEAVES = [
    ("Rust code itself (innermost frame in fred.so)", r"fred\.so"),
    ("SHA-256 itself (innermost frame in libcrypto)", r"libcrypto"),
]


def main() -> None:
    txns = float(sys.argv[1])
    counts = collections.Counter()
    comm, stack = None, []

    def flush() -> None:
        if comm != "postgres":
            return
        counts["all Postgres samples"] += 1
        text = "\n".join(stack)
        for name, pattern in GROUPS[1:]:
            if re.search(pattern, text):
                counts[name] += 1
        for name, pattern in LEAVES:
            if stack and re.search(pattern, stack[0]):
                counts[name] += 1

    # A sample: its command (right-aligned), then one tab-indented line per frame, then a blank line.
    for line in sys.stdin:
        if not line.strip():
            flush()
            comm, stack = None, []
        elif line.startswith("\t"):
            stack.append(line.strip())
        else:
            comm = line.split()[0]
    flush()
    total = counts["all Postgres samples"] or 1
    print(f"| where (inclusive) | samples per 1000 txns | share |")
    print(f"|---|---:|---:|")
    for name, _ in GROUPS + LEAVES:
        print(f"| {name} | {1000 * counts[name] / txns:.1f} | {100 * counts[name] / total:.1f} % |")


if __name__ == "__main__":
    main()
