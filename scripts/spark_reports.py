#!/usr/bin/env python3
"""Run heapdb's canned reports with PySpark (local mode) on a Parquet lake and check
that they return the same rows as `heapdb query` on the SQLite database holding the
same captures.

Usage: spark_reports.py LAKE_DIR DB [--heapdb BIN] [--only REPORT[,REPORT...]]
       spark_reports.py --self-test [--heapdb BIN]

Exit codes: 0 every report matched, 1 a mismatch (or a report Spark could not run),
2 usage or setup error.

How the lake becomes tables (see docs/scale-out.md):
  * one temp view per table of DIR/_heapdb/lake.json; partitioned tables are read with
    spark.read.parquet(DIR/<table>, basePath=DIR/<table>) so capture_date and
    capture_id come from the directory names (capture_id cast to BIGINT, the columns
    selected in lake.json's order; capture_date is dropped: the reports never use it);
  * the *_utc columns (Parquet TIMESTAMP(NANOS, isAdjustedToUTC)) are read as plain
    BIGINT nanoseconds (spark.sql.legacy.parquet.nanosAsLong=true: Spark has no
    nanosecond timestamp and otherwise refuses the files); the reports use the *_ns
    twins anyway;
  * heapdb's views (schema/003_views.sql) that the chosen reports need, rewritten
    like the reports.

The reports' SQL is what `heapdb lake-sql REPORT --param k=v` prints: the portable SQL
of queries/*.sql (it runs unchanged on SQLite and DuckDB, docs/lake-sql.md) with each
:name parameter written in as a literal (src/lake/sql.rs: the one place that handles
parameters). Label filters (label.KEY=VALUE) are not run here. What Spark SQL still
lacks or spells differently is rewritten by the REWRITES table below, the one place
that lists every difference, each with its reason. Each rewrite names the SQL files it
applies to and must match there (a report that changed so a rewrite no longer applies
fails loudly instead of silently running different SQL).
"""

import argparse
import json
import math
import os
import re
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)

# ---------------------------------------------------------------------------------
# The reports run and their parameter variants. Every report's ORDER BY is total
# (it ends with the group's keys), so rows are compared in order; `ordered: False`
# would compare them as sorted multisets instead.
REPORTS = [
    ("source-breakdown", [{}, {"capture": "1"}, {"pid": "@pid"}]),
    ("size-histogram", [{}, {"capture": "2", "since": "0.5"}]),
    ("heap-inventory", [{}, {"capture": "1"}, {"pid": "@pid"}]),
    ("move-ratio", [{}, {"capture": "1", "since": "0.25", "until": "1.5", "limit": "5"}]),
    ("top-realloc-sites", [{}, {"order": "bytes_copied", "limit": "50"},
                           {"group": "module", "capture": "1"}, {"group": "stack", "pid": "@pid"}]),
    ("outstanding-at-end", [{}, {"group": "module"}, {"capture": "2", "limit": "100"},
                            {"group": "stack", "limit": "10"}]),
    ("leak-suspects", [{}, {"slices": "4", "capture": "1"}, {"group": "module", "since": "0.5"}]),
]
# "@pid": a process of the latest capture (the one with the most reallocs), looked up
# in the database, so the pid filters are exercised whatever the captures.
ORDERED = {name: True for name, _ in REPORTS}

# Views of schema/003_views.sql the reports above use (directly or through each other).
VIEWS = ["process_names", "stack_groups_v", "site_frames_v", "sites_v"]

# ---------------------------------------------------------------------------------
# Portable (SQLite/DuckDB) SQL -> Spark SQL rewrites: (name, files, kind, pattern,
# replacement, reason).
#   files: report names and view names ("view:NAME") it applies to, or "*" for all;
#          outside "*" the pattern must match at least once.
#   kind:  "text" (exact text), "re" (Python regex), "fn" (a function of the SQL).
# Applied in this order to the SQL of `heapdb lake-sql` (parameters written in as
# literals), comments removed.


def _split_args(s):
    """Top-level comma-separated arguments of the text inside a call's parentheses."""
    args, depth, cur, quote = [], 0, [], None
    for ch in s:
        if quote:
            cur.append(ch)
            if ch == quote:
                quote = None
            continue
        if ch in "'\"":
            quote = ch
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == "," and depth == 0:
            args.append("".join(cur))
            cur = []
            continue
        cur.append(ch)
    args.append("".join(cur))
    return args


def _rewrite_calls(sql, names, handler):
    """Rewrite every call of the functions `names` (innermost first): handler(name,
    args) returns the new text, or None to keep the call."""
    out, i = [], 0
    pat = re.compile(r"\b(" + "|".join(names) + r")\s*\(", re.I)
    while True:
        m = pat.search(sql, i)
        if not m:
            out.append(sql[i:])
            return "".join(out)
        depth, j, quote = 1, m.end(), None
        while depth and j < len(sql):
            ch = sql[j]
            if quote:
                if ch == quote:
                    quote = None
            elif ch in "'\"":
                quote = ch
            elif ch == "(":
                depth += 1
            elif ch == ")":
                depth -= 1
            j += 1
        args = [_rewrite_calls(x.strip(), names, handler) for x in _split_args(sql[m.end():j - 1])]
        new = handler(m.group(1).lower(), args)
        out.append(sql[i:m.start()])
        out.append(new if new is not None else m.group(1) + "(" + ", ".join(args) + ")")
        i = j


def _scalar_min_max(sql):
    def h(fn, args):
        if len(args) != 2:
            return None
        a, b = args
        g = "least" if fn == "min" else "greatest"
        return f"(CASE WHEN ({a}) IS NULL OR ({b}) IS NULL THEN NULL ELSE {g}({a}, {b}) END)"
    return _rewrite_calls(sql, ["min", "max"], h)


def _round(sql):
    return _rewrite_calls(sql, ["round"], lambda fn, args: "sqlite_round(" + ", ".join(args + ["0"] * (2 - len(args))) + ")")


def sqlite_round(x, n):
    """SQLite's round(): half away from zero on the double's exact binary value
    (round(1110.8035, 3) is 1110.803: the double is 1110.80349999...)."""
    if x is None or n is None:
        return None
    import decimal
    q = decimal.Decimal(1).scaleb(-int(n))
    return float(decimal.Decimal(x).quantize(q, rounding=decimal.ROUND_HALF_UP))


REWRITES = [
    ("cast-text", "*", "re", r"\bAS\s+TEXT\)", "AS STRING)",
     "Spark has no TEXT type"),
    ("scalar-min-max", "*", "fn", _scalar_min_max, None,
     "SQLite's two-argument min()/max() are scalar (NULL if an argument is NULL); Spark's "
     "are aggregates only: least()/greatest() wrapped in a NULL check"),
    ("double-literals", "*", "re", r"(?<![\w.'])(\d+\.\d+)(?![\w.'])", r"\1D",
     "SQLite's 100.0 is a REAL (double); Spark's is a DECIMAL (exact decimal division, "
     "other results at ties): the D suffix makes it a DOUBLE"),
    ("round", "*", "fn", _round, None,
     "Spark's round() rounds the shortest decimal form half up (1110.8035 -> 1110.804); "
     "SQLite rounds the double's exact binary value (1110.80349999.. -> 1110.803): a "
     "Python UDF sqlite_round does what SQLite does"),
    ("order-by-aggregate-alias", ["top-realloc-sites"], "text",
     "THEN sum(bytes_copied) WHEN 'bytes_grown' THEN sum(bytes_grown) ELSE sum(reallocs) END DESC",
     "THEN bytes_copied WHEN 'bytes_grown' THEN bytes_grown ELSE reallocs END DESC",
     "the ORDER BY of an aggregate repeats sums whose aliases shadow input columns of "
     "the same name; Spark fails to resolve that mix, so order by the aliases (the same values)"),
    ("moved-as-bool", ["top-realloc-sites", "move-ratio"], "re", r"WHEN (r\.)?moved THEN",
     r"WHEN \1moved <> 0 THEN",
     "SQLite and DuckDB take an integer as a truth value; Spark wants a BOOLEAN after WHEN"),
    ("bool-sum", ["leak-suspects"], "text", "sum(coalesce(g.grew, 0))",
     "sum(coalesce(CAST(g.grew AS BIGINT), 0))",
     "g.grew is NOT EXISTS(...): an integer in SQLite, a BOOLEAN in Spark, whose "
     "coalesce() refuses a BOOLEAN beside an INT (DuckDB casts it)"),
    ("integer-division", ["leak-suspects"], "re",
     r"s\.aifo_bytes \* s\.slices_growing / (\(CASE WHEN .*? END\)) AS score",
     r"s.aifo_bytes * s.slices_growing div \1 AS score",
     "SQLite divides integers as integers (truncating; DuckDB's prelude sets "
     "integer_division); Spark's `/` always gives a DOUBLE, `div` is the integer division. "
     "(The slice, CAST(x * slices / span AS BIGINT), needs none: the cast truncates the "
     "DOUBLE quotient to the same integer, x >= 0 and x * slices exact below 2^53)"),
    ("group-concat-ordered", ["heap-inventory", "view:sites_v", "view:site_frames_v"], "re",
     r"group_concat\((.*?), ('[^']*') ORDER BY ([^)]*)\)",
     r"listagg(\1, \2) WITHIN GROUP (ORDER BY \3)",
     "SQLite's and DuckDB's group_concat(x, sep ORDER BY k) is Spark's "
     "listagg(x, sep) WITHIN GROUP (ORDER BY k) (Spark has no group_concat)"),
]


SKIPPED = set()  # --without: rewrites left out, to see that each is still needed


def apply_rewrites(sql, target, check=True):
    """Apply REWRITES to `sql` of `target` (a report name or 'view:NAME')."""
    for name, files, kind, pat, repl, _reason in REWRITES:
        if name in SKIPPED or (files != "*" and target not in files):
            continue
        if kind == "fn":
            new = pat(sql)
        elif kind == "text":
            new = sql.replace(pat, repl)
        else:
            new = re.sub(pat, repl, sql, flags=re.S)
        if check and files != "*" and new == sql:
            raise RuntimeError(f"rewrite {name!r} no longer matches {target}: check the SQL and the rewrite")
        sql = new
    return sql


# ---------------------------------------------------------------------------------
# Comments, parameters.

def strip_comments(sql):
    """Remove -- comments (outside string literals)."""
    out, i, quote = [], 0, None
    while i < len(sql):
        ch = sql[i]
        if quote:
            out.append(ch)
            if ch == quote:
                quote = None
        elif ch in "'\"":
            quote = ch
            out.append(ch)
        elif sql.startswith("--", i):
            j = sql.find("\n", i)
            i = len(sql) if j < 0 else j
            continue
        else:
            out.append(ch)
        i += 1
    return "".join(out)


def lake_sql(heapdb, report, params):
    """The report's SQL as `heapdb lake-sql` prints it (each :name parameter written in
    as a literal, the one place that does so: src/lake/sql.rs), comments removed, as one
    statement without its `;`. Label filters (label.KEY=VALUE) add statements over
    DuckDB's schema `lake`: not supported here."""
    if any(k.startswith("label.") for k in params):
        raise RuntimeError(f"{report}: label.* parameters are not supported by the Spark check")
    cmd = [heapdb, "lake-sql", "-q", report]
    for k, v in params.items():
        cmd += ["--param", f"{k}={v}"]
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: exit {p.returncode}: {p.stderr.strip()}")
    sql = strip_comments(p.stdout).strip()
    if sql.endswith(";"):
        sql = sql[:-1].rstrip()
    if not sql or ";" in _outside_strings(sql):
        raise RuntimeError(f"{' '.join(cmd)}: not one statement")
    return sql


def _outside_strings(sql):
    """`sql` without its string literals (to look for a `;` between statements)."""
    return re.sub(r"'(?:[^']|'')*'", "''", sql)


# ---------------------------------------------------------------------------------
# Comparison.

REL_TOL = 1e-9


def norm(v):
    """A value as compared: booleans as 0/1 (SQLite has none), decimals as floats."""
    if isinstance(v, bool):
        return int(v)
    if v is not None and type(v).__name__ == "Decimal":
        return int(v) if v == v.to_integral_value() and "." not in str(v) else float(v)
    if isinstance(v, (bytes, bytearray)):
        return v.hex()
    return v


def same(a, b):
    if isinstance(a, float) or isinstance(b, float):
        if a is None or b is None:
            return a is b
        try:
            a, b = float(a), float(b)
        except (TypeError, ValueError):
            return False
        return math.isclose(a, b, rel_tol=REL_TOL, abs_tol=1e-12)
    return a == b


def compare(cols_sqlite, rows_sqlite, cols_spark, rows_spark, ordered):
    """A list of differences (empty: the same)."""
    if [c.lower() for c in cols_sqlite] != [c.lower() for c in cols_spark]:
        return [f"columns differ: sqlite {cols_sqlite} vs spark {cols_spark}"]
    if not ordered:
        key = lambda r: [(x is None, str(x)) for x in r]
        rows_sqlite, rows_spark = sorted(rows_sqlite, key=key), sorted(rows_spark, key=key)
    diffs = []
    if len(rows_sqlite) != len(rows_spark):
        diffs.append(f"{len(rows_sqlite)} rows in sqlite, {len(rows_spark)} in spark")
    for n, (a, b) in enumerate(zip(rows_sqlite, rows_spark)):
        bad = [f"{c}: sqlite {x!r} spark {y!r}" for c, x, y in zip(cols_sqlite, a, b) if not same(x, y)]
        if bad:
            diffs.append(f"row {n + 1}: " + "; ".join(bad))
        if len(diffs) >= 5:
            diffs.append("...")
            break
    return diffs


# ---------------------------------------------------------------------------------
# Spark.

def views_sql():
    """{view name: its SELECT} from schema/003_views.sql."""
    text = strip_comments(open(os.path.join(REPO, "schema", "003_views.sql")).read())
    out = {}
    for stmt in text.split(";"):
        m = re.match(r"\s*CREATE VIEW (\w+) AS\s+(.*)", stmt, re.S)
        if m:
            out[m.group(1)] = m.group(2).strip()
    return out


def spark_session():
    from pyspark.sql import SparkSession
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)  # the UDF's workers: this venv
    return (SparkSession.builder.master("local[2]").appName("heapdb-check-spark")
            .config("spark.sql.legacy.parquet.nanosAsLong", "true")
            .config("spark.sql.session.timeZone", "UTC")
            .config("spark.sql.shuffle.partitions", "4")
            .config("spark.ui.enabled", "false")
            .config("spark.ui.showConsoleProgress", "false")
            .config("spark.driver.memory", os.environ.get("SPARK_DRIVER_MEMORY", "2g"))
            .getOrCreate())


def register_lake(spark, lake):
    from pyspark.sql import functions as F
    marker = json.load(open(os.path.join(lake, "_heapdb", "lake.json")))
    if marker.get("format") != "heapdb-lake":
        raise SystemExit(f"{lake}: not a heapdb lake (format {marker.get('format')!r})")
    for t in marker["tables"]:
        d = os.path.join(lake, t["name"])
        cols = [c["name"] for c in t["columns"]]
        if t["partitioned"]:
            df = spark.read.option("basePath", d).parquet(d)
            df = df.withColumn("capture_id", F.col("capture_id").cast("bigint"))
        else:
            df = spark.read.parquet(d)
        missing = [c for c in cols if c not in df.columns]
        if missing:
            raise SystemExit(f"{d}: columns of lake.json missing from the files: {missing}")
        df.select(*cols).createOrReplaceTempView(t["name"])
    vs = views_sql()
    for v in VIEWS:
        spark.sql(f"CREATE OR REPLACE TEMP VIEW {v} AS " + apply_rewrites(vs[v], "view:" + v))
    return marker


def spark_rows(spark, sql):
    df = spark.sql(sql)
    cols = df.columns
    return cols, [[norm(v) for v in r] for r in df.collect()]


def sqlite_rows(heapdb, db, report, params):
    cmd = [heapdb, "query", "-q", "--db", db, report, "--format", "json", "--no-hex"]
    for k, v in params.items():
        cmd += ["--param", f"{k}={v}"]
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: exit {p.returncode}: {p.stderr.strip()}")
    rows = json.loads(p.stdout) if p.stdout.strip() else []
    if not rows:
        return None, []
    cols = list(rows[0].keys())
    return cols, [[norm(r[c]) for c in cols] for r in rows]


# ---------------------------------------------------------------------------------

def self_test(heapdb):
    fails = []

    def check(what, got, want):
        if got != want:
            fails.append(f"{what}:\n  got  {got!r}\n  want {want!r}")

    check("min2", apply_rewrites("SELECT min(a, b)", "x"),
          "SELECT (CASE WHEN (a) IS NULL OR (b) IS NULL THEN NULL ELSE least(a, b) END)")
    check("min1 kept", apply_rewrites("SELECT min(a), max(f(x, y))", "x"), "SELECT min(a), max(f(x, y))")
    check("nested max in max", apply_rewrites("max(max(a), 1)", "x"),
          "(CASE WHEN (max(a)) IS NULL OR (1) IS NULL THEN NULL ELSE greatest(max(a), 1) END)")
    check("string arg", apply_rewrites("max(',', x)", "x"),
          "(CASE WHEN (',') IS NULL OR (x) IS NULL THEN NULL ELSE greatest(',', x) END)")
    check("cast", apply_rewrites("CAST(x AS INTEGER), CAST(y AS TEXT)", "x"),
          "CAST(x AS INTEGER), CAST(y AS STRING)")
    check("null-safe equality kept", apply_rewrites("p.heap IS NOT DISTINCT FROM r.heap", "x"),
          "p.heap IS NOT DISTINCT FROM r.heap")
    check("moved", apply_rewrites("CASE WHEN r.moved THEN 1 END", "move-ratio", check=False),
          "CASE WHEN r.moved <> 0 THEN 1 END")
    check("div", apply_rewrites("s.aifo_bytes * s.slices_growing / max(10, 1) AS score", "leak-suspects",
                                check=False),
          "s.aifo_bytes * s.slices_growing div (CASE WHEN (10) IS NULL OR (1) IS NULL THEN NULL "
          "ELSE greatest(10, 1) END) AS score")
    check("listagg", apply_rewrites("(SELECT group_concat(n.frame, ' <- ' ORDER BY n.depth) FROM t)",
                                    "view:sites_v", check=False),
          "(SELECT listagg(n.frame, ' <- ') WITHIN GROUP (ORDER BY n.depth) FROM t)")
    check("listagg nested", apply_rewrites(
        "group_concat(i.name || coalesce(' (' || i.line || ')', ''), ' in ' ORDER BY i.d DESC)",
        "view:site_frames_v", check=False),
        "listagg(i.name || coalesce(' (' || i.line || ')', ''), ' in ') WITHIN GROUP (ORDER BY i.d DESC)")
    check("one statement", _outside_strings("SELECT ';' FROM t WHERE a = 'it''s'"), "SELECT '' FROM t WHERE a = ''")
    check("round", apply_rewrites("round(100.0 * a / b, 1), round(x)", "x"),
          "sqlite_round(100.0D * a / b, 1), sqlite_round(x, 0)")
    check("sqlite_round", [sqlite_round(1110.8035, 3), sqlite_round(2.5, 0), sqlite_round(-2.5, 0), sqlite_round(0.125, 2)],
          [1110.803, 3.0, -3.0, 0.13])
    check("comments", strip_comments("a -- x 'y\nb '--' c"), "a \nb '--' c")
    try:
        apply_rewrites("SELECT 1", "heap-inventory")
        fails.append("a rewrite that no longer matches must fail")
    except RuntimeError:
        pass
    check("compare floats", compare(["a"], [[1.0000000001]], ["a"], [[1.0]], True), [])
    check("compare ints", bool(compare(["a"], [[7299650041647382727]], ["a"], [[7299650041647382728]], True)), True)
    # Every variant's SQL (from `heapdb lake-sql`) rewrites without a stale rewrite.
    for name, variants in REPORTS:
        for v in variants:
            v = {k: ("1" if x == "@pid" else x) for k, x in v.items()}
            try:
                apply_rewrites(lake_sql(heapdb, name, v), name)
            except (RuntimeError, OSError) as e:
                fails.append(f"{name} {v}: {e}")
    vs = views_sql()
    for v in VIEWS:
        try:
            apply_rewrites(vs[v], "view:" + v)
        except RuntimeError as e:
            fails.append(str(e))
    for f in fails:
        print("self-test FAILED:", f)
    print(f"self-test: {'ok' if not fails else str(len(fails)) + ' failure(s)'}")
    return 0 if not fails else 1


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("lake", nargs="?")
    ap.add_argument("db", nargs="?")
    ap.add_argument("--heapdb", default=os.environ.get("HEAPDB", "heapdb"))
    ap.add_argument("--only", help="comma-separated report names")
    ap.add_argument("--self-test", action="store_true")
    ap.add_argument("--list-rewrites", action="store_true", help="print the rewrites to Spark SQL")
    ap.add_argument("--show-sql", action="store_true", help="print the rewritten SQL of each run")
    ap.add_argument("--without", metavar="REWRITE[,REWRITE...]",
                    help="leave these rewrites out (to check that each is still needed)")
    a = ap.parse_args()
    if a.without:
        names = {r[0] for r in REWRITES}
        SKIPPED.update(a.without.split(","))
        if SKIPPED - names:
            print(f"error: no such rewrite: {', '.join(sorted(SKIPPED - names))}", file=sys.stderr)
            return 2
    if a.self_test:
        return self_test(a.heapdb)
    if a.list_rewrites:
        for name, files, _k, _p, _r, reason in REWRITES:
            print(f"{name} ({'all' if files == '*' else ', '.join(files)}): {reason}")
        return 0
    if not a.lake or not a.db:
        ap.print_usage(sys.stderr)
        return 2
    if not os.path.isfile(os.path.join(a.lake, "_heapdb", "lake.json")):
        print(f"error: {a.lake}: no _heapdb/lake.json (not a heapdb lake)", file=sys.stderr)
        return 2
    if not os.path.isfile(a.db):
        print(f"error: {a.db}: no such database", file=sys.stderr)
        return 2
    only = set(a.only.split(",")) if a.only else None
    t0 = time.time()
    import pyspark
    spark = spark_session()
    spark.sparkContext.setLogLevel("ERROR")
    jver = spark.sparkContext._jvm.java.lang.System.getProperty("java.version")
    print(f"spark {pyspark.__version__} (local[2]), java {jver}, lake {a.lake}, db {a.db}")
    spark.udf.register("sqlite_round", sqlite_round, "double")
    register_lake(spark, a.lake)
    # The same captures on both sides (ids and fingerprints), else every report differs.
    p = subprocess.run([a.heapdb, "query", "-q", "--db", a.db, "--sql",
                        "SELECT capture_id, fingerprint FROM captures ORDER BY capture_id", "--format", "json"],
                       capture_output=True, text=True)
    if p.returncode != 0:
        print(f"error: {a.heapdb} query --db {a.db}: exit {p.returncode}: {p.stderr.strip()}", file=sys.stderr)
        return 2
    in_db = [(r["capture_id"], r["fingerprint"]) for r in json.loads(p.stdout or "[]")]
    in_lake = [(r[0], r[1]) for r in spark.sql(
        "SELECT capture_id, fingerprint FROM captures ORDER BY capture_id").collect()]
    if in_db != in_lake:
        print(f"error: the lake and the database hold different captures (capture_id, fingerprint):\n"
              f"  db   {in_db}\n  lake {in_lake}\n"
              f"make the lake with `heapdb export --db {a.db}` to compare them", file=sys.stderr)
        spark.stop()
        return 2
    print(f"{len(in_db)} capture(s), the same ids and fingerprints in the lake and the database")
    ok = bad = 0
    pid_sql = ("SELECT pid FROM reallocs WHERE capture_id = (SELECT max(capture_id) FROM captures) "
               "GROUP BY pid ORDER BY count(*) DESC, pid LIMIT 1")
    p = subprocess.run([a.heapdb, "query", "-q", "--db", a.db, "--sql", pid_sql, "--format", "json"],
                       capture_output=True, text=True)
    if p.returncode != 0:
        print(f"error: {a.heapdb} query --db {a.db}: exit {p.returncode}: {p.stderr.strip()}", file=sys.stderr)
        return 2
    rows = json.loads(p.stdout or "[]")
    some_pid = str(rows[0]["pid"]) if rows else "all"
    for name, variants in REPORTS:
        if only and name not in only:
            continue
        for v in variants:
            v = {k: (some_pid if x == "@pid" else x) for k, x in v.items()}
            label = name + ("" if not v else " " + " ".join(f"{k}={x}" for k, x in v.items()))
            t = time.time()
            try:
                sql = apply_rewrites(lake_sql(a.heapdb, name, v), name)
                if a.show_sql:
                    print(sql)
                cs, rs = sqlite_rows(a.heapdb, a.db, name, v)
                cp, rp = spark_rows(spark, sql)
                if cs is None:
                    cs = cp
                diffs = compare(cs, rs, cp, rp, ORDERED[name])
            except Exception as e:  # a report Spark cannot run is a failure too
                diffs = [f"error: {str(e).strip().splitlines()[0][:400]}"]
                rs = []
            if diffs:
                bad += 1
                print(f"MISMATCH {label}")
                for d in diffs:
                    print("    " + d)
            else:
                ok += 1
                print(f"ok       {label}: {len(rs)} rows ({time.time() - t:.1f} s)")
    spark.stop()
    print(f"{ok} of {ok + bad} report runs matched ({time.time() - t0:.0f} s)")
    return 0 if bad == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
