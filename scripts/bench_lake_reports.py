#!/usr/bin/env python3
"""Times every canned report with its defaults on DuckDB over a lake and on heapdb
(SQLite), side by side: part of scripts/bench-lake.sh (docs/performance.md).

  bench_lake_reports.py --heapdb BIN --db DB --lake DIR [--rounds N]

DuckDB: the views of `heapdb lake-views DIR` are created once (not timed), then each
report's SQL from `heapdb lake-sql` runs N times in one connection; the best wall time
of execute + fetchall counts. SQLite: `heapdb query --db DB REPORT --format csv` N
times; the best wall time of the whole process counts (start-up included, ~5 ms).
Row counts of both are printed as a sanity check (tests/lake_duckdb.rs compares the
rows themselves)."""
import argparse
import subprocess
import sys
import time

import duckdb


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--heapdb", required=True)
    ap.add_argument("--db", required=True)
    ap.add_argument("--lake", required=True)
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    run = lambda *args: subprocess.run([a.heapdb, *args], check=True, capture_output=True, text=True).stdout
    import json
    reports = json.loads(run("reports", "--format", "json"))
    # address-history needs an address: the latest capture's first ReAlloc's.
    addr = run("query", "--db", a.db, "--format", "csv", "--no-hex", "--sql",
               "SELECT new_address FROM reallocs ORDER BY id DESC LIMIT 1").split()[1]
    con = duckdb.connect()
    t = time.perf_counter()
    con.execute(run("lake-views", a.lake))
    views = time.perf_counter() - t
    print(f"DuckDB {duckdb.__version__}, views created in {views:.3f} s")
    print("| report | heapdb on SQLite (s) | DuckDB on the lake (s) | rows (SQLite / DuckDB) |")
    print("|---|---:|---:|---|")
    tot_s = tot_d = 0.0
    for r in reports:
        params = []
        if any(p["name"] == "address" and p["default"] == "required" for p in r["params"]):
            params = ["--param", f"address={addr}"]
        best_s = best_d = float("inf")
        rows_s = rows_d = None
        for _ in range(a.rounds):
            t = time.perf_counter()
            out = run("query", "--db", a.db, r["name"], *params, "--format", "csv")
            best_s = min(best_s, time.perf_counter() - t)
            rows_s = max(0, len(out.splitlines()) - 1)
        sql = run("lake-sql", r["name"], *params)
        for _ in range(a.rounds):
            t = time.perf_counter()
            rows = con.execute(sql).fetchall()
            best_d = min(best_d, time.perf_counter() - t)
            rows_d = len(rows)
        tot_s += best_s
        tot_d += best_d
        print(f"| {r['name']} | {best_s:.3f} | {best_d:.3f} | {rows_s} / {rows_d} |")
        sys.stdout.flush()
    print(f"| **all {len(reports)}** | **{tot_s:.2f}** | **{tot_d:.2f}** | |")


if __name__ == "__main__":
    main()
