#!/usr/bin/env python3
"""A stand-in for the Parquet lake, made from a heapdb SQLite database, to test the
canned reports on DuckDB (scripts/duckdb_reports.py) without `heapdb ingest --parquet`.

    duckdb_test_lake.py --db heap.db --heapdb target/release/heapdb --out DIR

writes DIR/<table>.parquet for every table of the database (read through
`heapdb query --format jsonl --no-hex`, typed as the lake types them: INTEGER -> BIGINT,
addresses included, as signed 64-bit; TEXT -> VARCHAR; REAL -> DOUBLE; BLOB -> BLOB) and
DIR/init.sql laid out as `heapdb lake-views DIR` prints it: schema/duckdb_prelude.sql,
one `CREATE VIEW <table> AS SELECT * FROM read_parquet(...)` per table, then
schema/003_views.sql. Uses only the duckdb package and the standard library.
"""

import argparse
import json
import os
import subprocess
import sys

import duckdb

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def duck_type(sqlite_type):
    """SQLite's type affinity rules, mapped to the lake's types."""
    t = (sqlite_type or "").upper()
    if "INT" in t:
        return "BIGINT"
    if "CHAR" in t or "CLOB" in t or "TEXT" in t:
        return "VARCHAR"
    if "BLOB" in t or t == "":
        return "BLOB"
    if "REAL" in t or "FLOA" in t or "DOUB" in t:
        return "DOUBLE"
    return "DOUBLE"  # NUMERIC affinity: heapdb has no such column


def heapdb_rows(heapdb, db, sql, fmt="json"):
    out = subprocess.run(
        [heapdb, "query", "-q", "--db", db, "--sql", sql, "--format", fmt, "--no-hex"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--db", required=True)
    ap.add_argument("--heapdb", required=True)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    cols = json.loads(
        heapdb_rows(
            a.heapdb,
            a.db,
            "SELECT m.name AS tbl, p.name AS col, p.type AS type FROM sqlite_master m, "
            "pragma_table_info(m.name) p WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%' "
            "ORDER BY m.name, p.cid",
        )
    )
    tables = {}
    for c in cols:
        tables.setdefault(c["tbl"], []).append((c["col"], duck_type(c["type"])))
    con = duckdb.connect()
    views = []
    for t, cs in tables.items():
        jsonl = os.path.join(a.out, t + ".jsonl")
        names = ", ".join('"%s"' % c for c, _ in cs)
        with open(jsonl, "w") as f:
            f.write(heapdb_rows(a.heapdb, a.db, "SELECT %s FROM %s" % (names, t), "jsonl"))
        parquet = os.path.abspath(os.path.join(a.out, t + ".parquet"))
        spec = "{%s}" % ", ".join("'%s': '%s'" % (c, ty) for c, ty in cs)
        if os.path.getsize(jsonl) == 0:
            con.execute(
                "COPY (SELECT %s FROM (SELECT 1) WHERE false) TO '%s' (FORMAT parquet)"
                % (", ".join("NULL::%s AS \"%s\"" % (ty, c) for c, ty in cs), parquet)
            )
        else:
            con.execute(
                "COPY (SELECT %s FROM read_json('%s', format = 'newline_delimited', columns = %s)) "
                "TO '%s' (FORMAT parquet)" % (names, jsonl, spec, parquet)
            )
        os.remove(jsonl)
        views.append("CREATE VIEW %s AS SELECT * FROM read_parquet('%s');" % (t, parquet))
    with open(os.path.join(REPO, "schema", "duckdb_prelude.sql")) as f:
        prelude = f.read()
    with open(os.path.join(REPO, "schema", "003_views.sql")) as f:
        sql_views = f.read()
    with open(os.path.join(a.out, "init.sql"), "w") as f:
        f.write(prelude + "\n" + "\n".join(views) + "\n\n" + sql_views)
    print("%s: %d tables" % (os.path.join(a.out, "init.sql"), len(tables)), file=sys.stderr)


if __name__ == "__main__":
    main()
