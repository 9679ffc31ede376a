#!/usr/bin/env python3
"""Runs every canned report (queries/*.sql) on DuckDB and through `heapdb query` on the
SQLite database, and checks that both give the same rows.

    heapdb lake-views LAKE > views.sql
    duckdb_reports.py --init views.sql --db heap.db --heapdb PATH/TO/heapdb
                      [--report NAME]... [--verbose]

INIT.sql is executed first in an in-memory DuckDB: the output of `heapdb lake-views DIR`
(schema/duckdb_prelude.sql, the lake's tables as views over read_parquet, then
schema/003_views.sql) for a lake holding the database's captures with the same ids
(`heapdb export`, or `ingest --parquet` of the same files in the same order). This
script adds no SQL of its own: each report's SQL is what `heapdb lake-sql REPORT
--param ...` prints (its :name parameters written in as literals, label filters as a
TEMP captures view: the one rewrite, in src/lake/sql.rs). tests/lake_duckdb.rs runs the
same comparison in CI; this script is the wider developer check (more variants, the
views).

Each report runs with its defaults and with a set of parameter variants chosen from the
data (every capture id, latest/previous, a busy process, heap and address, a time window,
every choice of group/order/by/metric, small limits, a label filter, ...). Rows are
compared in order (every report orders its rows totally): same columns, integers equal,
reals within a relative 1e-9, text equal (a DuckDB BOOLEAN differs from SQLite's 0/1:
the SQL casts its flags). Every view of schema/003_views.sql is compared too, as a
multiset (a view has no order).

One line per report and variant, then a summary. Exit status: 0 every variant matched,
1 some did not, 2 usage or setup error. Uses only the duckdb package and the standard
library.
"""

import argparse
import json
import math
import os
import re
import subprocess
import sys

import duckdb

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

class SetupError(Exception):
    pass


# --- parameters, as heapdb reads them (src/query/params.rs) ---------------------------

NULL_WORDS = {"all", "latest", "previous", "null", "none", ""}


def parse_value(s):
    """heapdb's parse_value: 0x hex and decimal integers (64-bit, unsigned bit patterns
    kept as signed), reals, the words all/latest/previous/null/none as NULL, else text."""
    t = s.strip()
    if t[:2] in ("0x", "0X") and t[2:] and all(c in "0123456789abcdefABCDEF" for c in t[2:]):
        v = int(t[2:], 16)
        if v >= 1 << 64:
            raise ValueError("%s is out of range" % t)
        return v - (1 << 64) if v >= 1 << 63 else v
    digits = t[1:] if t[:1] in "+-" else t
    if digits and digits.isascii() and digits.isdigit():
        v = int(t)
        if -(1 << 63) <= v < 1 << 63:
            return v
        if 0 <= v < 1 << 64:
            return v - (1 << 64)
        raise ValueError("%s is out of range" % t)
    if any(c.isdigit() for c in t):
        try:
            v = float(t)
            if math.isfinite(v):
                return v
        except ValueError:
            pass
    if t.lower() in NULL_WORDS:
        return None
    return s


def bind(report, given):
    """heapdb's Report::bind: the given values, then the defaults (a choice parameter's
    default is its text)."""
    out = {}
    for k, v in given.items():
        if not k.startswith("label."):
            out[k] = parse_value(v)
    for p in report["params"]:
        if p["name"] in out:
            continue
        if p["default"] == "required":
            raise SetupError("%s needs --param %s" % (report["name"], p["name"]))
        out[p["name"]] = p["default"] if p.get("choices") else parse_value(p["default"])
    return out


def load_reports(heapdb):
    try:
        listed = json.loads(run([heapdb, "reports", "--format", "json"]))
    except (OSError, subprocess.CalledProcessError, ValueError) as e:
        raise SetupError("%s reports: %s" % (heapdb, e))
    texts = {}
    qdir = os.path.join(REPO, "queries")
    for f in sorted(os.listdir(qdir)):
        if f.endswith(".sql"):
            with open(os.path.join(qdir, f)) as fh:
                sql = fh.read()
            m = re.search(r"^-- name:\s*(\S+)", sql, re.M)
            if m:
                texts[m.group(1)] = sql
    for r in listed:
        if r["name"] not in texts:
            raise SetupError("report %s: no queries/*.sql names it" % r["name"])
        r["sql"] = texts[r["name"]]
    return listed


def run(cmd):
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout


# --- parameter variants, from the data ----------------------------------------------


def one(con, sql):
    row = con.execute(sql).fetchone()
    return None if row is None else row[0]


def facts(con):
    """Values worth running the reports with, read from the data."""
    f = {}
    f["captures"] = [r[0] for r in con.execute("SELECT capture_id FROM captures ORDER BY capture_id").fetchall()]
    if not f["captures"]:
        raise SetupError("the database holds no capture")
    latest = f["captures"][-1]
    f["pid"] = one(
        con,
        "SELECT pid FROM reallocs WHERE capture_id = %d GROUP BY pid ORDER BY count(*) DESC, pid LIMIT 1" % latest,
    ) or one(con, "SELECT min(pid) FROM processes WHERE capture_id = %d" % latest)
    f["heap"] = one(
        con,
        "SELECT heap FROM reallocs WHERE capture_id = %d GROUP BY heap ORDER BY count(*) DESC, heap LIMIT 1" % latest,
    )
    f["address"] = one(
        con, "SELECT new_address FROM reallocs GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT 1"
    )
    f["event_address"] = one(
        con,
        "SELECT address FROM heap_events WHERE address IS NOT NULL GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT 1",
    )
    secs = one(
        con,
        "SELECT (last_event_ns - start_time_ns) / 1e9 FROM captures WHERE capture_id = %d" % latest,
    )
    f["window"] = (round(secs * 0.25, 3), round(secs * 0.75, 3)) if secs else None
    f["labels"] = con.execute(
        "SELECT key, min(value) FROM capture_labels GROUP BY key ORDER BY key"
    ).fetchall()
    return f


def variants(report, f):
    """(label, {param: text}) pairs: the defaults, then one parameter at a time, then a
    few combinations."""
    params = {p["name"]: p for p in report["params"]}
    base = {}
    if "address" in params:
        if f["address"] is None and f["event_address"] is None:
            return []
        base["address"] = str(f["address"] if f["address"] is not None else f["event_address"])
    out = [dict(base)]

    def add(**kw):
        v = dict(base)
        v.update({k.replace("__", "."): str(x) for k, x in kw.items()})
        if v not in out:
            out.append(v)

    caps = f["captures"]
    for name, p in params.items():
        for c in p.get("choices") or []:
            add(**{name: c})
        if name == "capture":
            for c in caps:
                add(capture=c)
            add(capture="latest")
            add(capture="all")
        elif name == "a":
            add(a=caps[0], b=caps[-1])
            if len(caps) >= 3:
                add(b=caps[len(caps) // 2])
            add(a="previous", b="latest")
        elif name == "pid" and f["pid"] is not None:
            add(pid=f["pid"])
        elif name == "heap" and f["heap"] is not None:
            add(heap=f["heap"])
            add(heap=hex(f["heap"] & (2**64 - 1)))
        elif name == "address":
            for a in (f["address"], f["event_address"]):
                if a is not None:
                    add(address=a)
                    add(address=hex(a & (2**64 - 1)))
        elif name == "since" and f["window"]:
            add(since=f["window"][0])
            add(since=f["window"][0], until=f["window"][1])
        elif name == "until" and f["window"]:
            add(until=f["window"][1])
        elif name == "limit":
            add(limit=3)
        elif name == "by" and not p.get("choices"):
            for k, _ in f["labels"]:
                add(by=k)
        elif name in ("buckets",):
            add(buckets=7)
        elif name == "bucket_ms":
            add(bucket_ms=250)
            add(bucket_ms=0.5)
        elif name in ("top", "sites", "slices", "last"):
            add(**{name: 2})
        elif name == "min_length":
            add(min_length=1)
            add(min_length=4)
        elif name == "min_run":
            add(min_run=1, min_rise=0)
        elif name == "only_rising":
            add(only_rising=1)
            add(only_rising=1, min_run=1, min_rise=0)
        elif name == "max_step":
            add(max_step=16)
        elif name == "min_reallocs":
            add(min_reallocs=1)
    # Combinations.
    if "group" in params:
        if "limit" in params:
            add(group="stack", limit=5)
        if "pid" in params and f["pid"] is not None:
            add(group="module", pid=f["pid"])
    if report["name"] == "outstanding-size":
        add(by="site", group="stack", top=3)
        add(by="heap", top=2, buckets=5)
        if f["pid"] is not None:
            add(by="site", pid=f["pid"])
    if report["name"] == "growth-chains":
        add(order="copied", min_length=1, limit=50)
    if report["name"] == "trend":
        for k, _ in f["labels"]:
            add(by=k, group="module")
        add(metric="live_bytes", only_rising=1, min_run=1, min_rise=0)
    # Labels (--param label.K=V): heapdb narrows `captures`; emulated below.
    for k, v in f["labels"][:1]:
        add(**{"label__" + k: v})
        if len(v) > 1:
            add(**{"label__" + k: v[:-1] + "*"})
    return out


# --- running -----------------------------------------------------------------------


def run_duckdb(con, heapdb, report, given):
    """The report as `heapdb lake-sql` writes it for DuckDB, run after INIT.sql."""
    cmd = [heapdb, "lake-sql", report["name"]]
    for k, v in given.items():
        cmd += ["--param", "%s=%s" % (k, v)]
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError("heapdb lake-sql exit %d: %s" % (p.returncode, p.stderr.strip()))
    cur = con.execute(p.stdout)
    cols = [d[0] for d in cur.description]
    return cols, cur.fetchall()


def run_heapdb(heapdb, db, report, given):
    cmd = [heapdb, "query", "-q", "--db", db, report["name"], "--format", "json", "--no-hex"]
    for k, v in given.items():
        cmd += ["--param", "%s=%s" % (k, v)]
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError("heapdb exit %d: %s" % (p.returncode, p.stderr.strip()))
    data = json.loads(p.stdout, object_pairs_hook=lambda pairs: pairs)
    cols = [k for k, _ in data[0]] if data else None
    return cols, [tuple(v for _, v in r) for r in data]


def view_names():
    with open(os.path.join(REPO, "schema", "003_views.sql")) as fh:
        return re.findall(r"^CREATE VIEW (\w+)", fh.read(), re.M)


def check_view(con, heapdb, db, name):
    """A view of schema/003_views.sql, whole, on both: views have no order, so the rows
    are compared as multisets (sorted the same way on both sides first)."""
    p = subprocess.run(
        [heapdb, "query", "-q", "--db", db, "--sql", "SELECT * FROM %s" % name, "--format", "json", "--no-hex"],
        capture_output=True,
        text=True,
    )
    if p.returncode != 0:
        raise RuntimeError("heapdb exit %d: %s" % (p.returncode, p.stderr.strip()))
    data = json.loads(p.stdout, object_pairs_hook=lambda pairs: pairs)
    hcols = [k for k, _ in data[0]] if data else None
    hrows = [tuple(v for _, v in r) for r in data]
    cur = con.execute("SELECT * FROM %s" % name)
    dcols = [d[0] for d in cur.description]
    drows = cur.fetchall()
    key = lambda r: json.dumps([norm(x) for x in r], default=str)
    return compare(dcols, sorted(drows, key=key), hcols, sorted(hrows, key=key)), len(hrows)


def norm(v):
    if v is not None and not isinstance(v, (bool, int, float, str)):
        try:
            return float(v)  # Decimal
        except (TypeError, ValueError):
            return str(v)
    return v


def same(a, b):
    a, b = norm(a), norm(b)
    if isinstance(a, bool) != isinstance(b, bool):
        return False  # a DuckDB BOOLEAN is not SQLite's 0/1 (Python would say True == 1)
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, int) and isinstance(b, int):
        return a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)
    return type(a) is type(b) and a == b


def compare(dcols, drows, hcols, hrows):
    """None when equal, else what differs."""
    if hcols is not None and list(dcols) != hcols:
        return "columns differ: duckdb %s, sqlite %s" % (dcols, hcols)
    if len(drows) != len(hrows):
        return "%d rows on duckdb, %d on sqlite" % (len(drows), len(hrows))
    for i, (d, h) in enumerate(zip(drows, hrows)):
        if len(d) != len(h) or not all(same(x, y) for x, y in zip(d, h)):
            bad = [
                "%s: duckdb %r, sqlite %r" % (dcols[j], norm(x), y)
                for j, (x, y) in enumerate(zip(d, h))
                if not same(x, y)
            ]
            key = lambda r: json.dumps([norm(x) for x in r], default=str)
            hint = ""
            if sorted(map(key, drows)) == sorted(map(key, hrows)):
                hint = " (the same rows in another order)"
            return "row %d: %s%s" % (i + 1, "; ".join(bad), hint)
    return None


def main():
    ap = argparse.ArgumentParser(description="Canned reports on DuckDB against heapdb query")
    ap.add_argument("--init", required=True, help="SQL run first (heapdb lake-views output)")
    ap.add_argument("--db", required=True, help="the SQLite database heapdb queries")
    ap.add_argument("--heapdb", required=True, help="the heapdb binary")
    ap.add_argument("--report", action="append", help="only this report (repeatable)")
    ap.add_argument(
        "--timezone",
        default="America/New_York",
        help="DuckDB session TimeZone while the reports run; not UTC on purpose, as the "
        "answers must not depend on it (default: %(default)s; '' keeps the machine's)",
    )
    ap.add_argument("--verbose", action="store_true", help="print the parameters bound and the SQL errors in full")
    try:
        a = ap.parse_args()
    except SystemExit as e:
        return 2 if e.code else 0
    try:
        reports = load_reports(a.heapdb)
        if a.report:
            unknown = set(a.report) - {r["name"] for r in reports}
            if unknown:
                raise SetupError("no report named %s" % ", ".join(sorted(unknown)))
            reports = [r for r in reports if r["name"] in a.report]
        if not os.path.exists(a.db):
            raise SetupError("%s: no such database" % a.db)
        con = duckdb.connect()
        with open(a.init) as fh:
            con.execute(fh.read())
        if a.timezone:
            con.execute("SET TimeZone = '%s'" % a.timezone.replace("'", "''"))
        f = facts(con)
    except (SetupError, OSError, duckdb.Error) as e:
        print("setup: %s" % (e if a.verbose else str(e).splitlines()[0]), file=sys.stderr)
        return 2
    print(
        "duckdb %s; %s; TimeZone %s; SQL from heapdb lake-sql"
        % (
            duckdb.__version__,
            a.db,
            one(con, "SELECT current_setting('TimeZone')"),
        )
    )
    total = ok = skipped = 0
    per_report = {}
    counts = {}
    for r in reports:
        vs = variants(r, f)
        counts[r["name"]] = len(vs)
        if not vs:
            print("SKIP  %s (no data to run it with)" % r["name"])
            skipped += 1
            continue
        for given in vs:
            total += 1
            label = " ".join("%s=%s" % kv for kv in given.items()) or "(defaults)"
            try:
                hcols, hrows = run_heapdb(a.heapdb, a.db, r, given)
            except (RuntimeError, ValueError) as e:
                print("ERROR %-20s %s: heapdb: %s" % (r["name"], label, e))
                continue
            try:
                dcols, drows = run_duckdb(con, a.heapdb, r, given)
            except duckdb.Error as e:
                msg = str(e) if a.verbose else str(e).splitlines()[0]
                print("FAIL  %-20s %s: duckdb: %s" % (r["name"], label, msg))
                continue
            diff = compare(dcols, drows, hcols, hrows)
            if diff:
                print("FAIL  %-20s %s: %s" % (r["name"], label, diff))
            else:
                ok += 1
                per_report[r["name"]] = per_report.get(r["name"], 0) + 1
                print("ok    %-20s %s (%d rows)" % (r["name"], label, len(hrows)))
            if a.verbose:
                print("      bound: %s" % bind(r, given))
    vok = 0
    views = [] if a.report else view_names()
    for v in views:
        try:
            diff, n = check_view(con, a.heapdb, a.db, v)
        except (RuntimeError, ValueError, duckdb.Error) as e:
            diff, n = str(e).splitlines()[0], 0
        if diff:
            print("FAIL  view %-15s %s" % (v, diff))
        else:
            vok += 1
            print("ok    view %-15s (%d rows, compared as a multiset: a view has no order)" % (v, n))
    if views:
        print("summary: %d of %d views matched" % (vok, len(views)))
    print(
        "summary: %d of %d variants matched; %d of %d reports matched in every variant%s"
        % (
            ok,
            total,
            sum(1 for n, c in counts.items() if c and per_report.get(n, 0) == c),
            len(reports),
            " (%d skipped: no data to run it with)" % skipped if skipped else "",
        )
    )
    return 0 if ok == total and vok == len(views) else 1


if __name__ == "__main__":
    sys.exit(main())
