//! Same reports, other engine: every canned report, with its variants, run on DuckDB
//! over a Parquet lake (the views of `heapdb lake-views`, the SQL of `heapdb lake-sql`)
//! returns the rows `heapdb query` returns on the SQLite database of the same captures:
//! a lake written by `ingest --parquet` beside the database ingested from the same files,
//! and a lake written by `export` from a symbolized database.
//!
//! DuckDB comes from the Python package index: the `duckdb` package in a cached venv
//! (`~/.cache/heapdb-duckdb-venv`, made on first use; $HEAPDB_DUCKDB_PYTHON names another
//! python that has it). Without network or python the test is skipped with a message,
//! unless HEAPDB_REQUIRE_DUCKDB=1 (set by .ci/run).

mod common;

use common::{run, s, stderr, stdout, synth};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The DuckDB version the venv gets (the one these tests were written against).
const DUCKDB_VERSION: &str = "2.0.1";

fn skip_or_fail(why: &str) -> Option<PathBuf> {
    if std::env::var("HEAPDB_REQUIRE_DUCKDB").is_ok_and(|v| v == "1") {
        panic!("DuckDB is required (HEAPDB_REQUIRE_DUCKDB=1) but {why}");
    }
    eprintln!("lake_duckdb: skipped: {why}");
    None
}

fn has_duckdb(python: &Path) -> bool {
    Command::new(python)
        .args(["-c", "import duckdb"])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// A python with the `duckdb` package, made if needed.
fn duckdb_python() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("HEAPDB_DUCKDB_PYTHON") {
        let p = PathBuf::from(p);
        return if has_duckdb(&p) {
            Some(p)
        } else {
            skip_or_fail(&format!(
                "$HEAPDB_DUCKDB_PYTHON ({}) cannot import duckdb",
                p.display()
            ))
        };
    }
    let Some(home) = std::env::var_os("HOME") else {
        return skip_or_fail("$HOME is not set (no place for the cached venv)");
    };
    let venv = PathBuf::from(home).join(".cache/heapdb-duckdb-venv");
    let python = venv.join("bin/python");
    if has_duckdb(&python) {
        return Some(python);
    }
    eprintln!(
        "lake_duckdb: installing duckdb {DUCKDB_VERSION} into {}",
        venv.display()
    );
    let made = Command::new("python3")
        .args(["-m", "venv", s(&venv)])
        .output();
    match made {
        Ok(o) if o.status.success() => {}
        Ok(o) => return skip_or_fail(&format!("python3 -m venv failed: {}", stderr(&o))),
        Err(e) => return skip_or_fail(&format!("python3 cannot run: {e}")),
    }
    let pip = Command::new(&python)
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            &format!("duckdb=={DUCKDB_VERSION}"),
        ])
        .output();
    match pip {
        Ok(o) if o.status.success() && has_duckdb(&python) => Some(python),
        Ok(o) => skip_or_fail(&format!(
            "pip install duckdb failed (no network?): {}",
            stderr(&o)
        )),
        Err(e) => skip_or_fail(&format!("pip cannot run: {e}")),
    }
}

/// Runs each (name, SQL) on DuckDB after the view script; one JSON result per line:
/// {"name", "columns", "rows"} or {"name", "error"}. DuckDB's BOOLEAN becomes 0/1 and
/// HUGEINT a plain integer (SQLite's comparisons and sums give integers), dates text.
const EXECUTOR: &str = r#"
import datetime, decimal, json, sys
import duckdb
views, jobs = sys.argv[1], json.load(open(sys.argv[2]))
con = duckdb.connect()
con.execute(open(views).read())
def conv(v):
    if isinstance(v, bool): return int(v)
    if isinstance(v, decimal.Decimal): return int(v) if v == v.to_integral_value() else float(v)
    if isinstance(v, (bytes, bytearray)): return v.hex()
    if isinstance(v, (datetime.date, datetime.datetime)): return str(v)
    return v
for name, sql in jobs:
    try:
        cur = con.execute(sql)
        rows = cur.fetchall()
        cols = [d[0] for d in cur.description] if cur.description else []
        print(json.dumps({"name": name, "columns": cols, "rows": [[conv(v) for v in r] for r in rows]}))
    except Exception as e:
        print(json.dumps({"name": name, "error": str(e)}))
"#;

/// One run of a report: a label and its `--param`s.
struct Variant {
    label: String,
    params: Vec<String>,
}

/// The rows of a query as CSV lines, without the header.
fn q_all(db: &Path, sql: &str) -> Vec<String> {
    let o = run(&[
        "query",
        "--db",
        s(db),
        "--format",
        "csv",
        "--no-hex",
        "--sql",
        sql,
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    stdout(&o).lines().skip(1).map(String::from).collect()
}

fn q1(db: &Path, sql: &str) -> String {
    q_all(db, sql).into_iter().next().unwrap_or_default()
}

/// The reports and the variants to run: the defaults, every capture, a process, every
/// choice of a choice parameter, and the cross-capture ones' own.
fn variants(db: &Path) -> Vec<(String, Variant)> {
    let o = run(&["reports", "--format", "json"]);
    let reports: Value = serde_json::from_str(&stdout(&o)).unwrap();
    let captures = q_all(db, "SELECT capture_id FROM captures ORDER BY 1");
    let pid = q1(
        db,
        "SELECT pid FROM reallocs GROUP BY pid ORDER BY count(*) DESC, pid LIMIT 1",
    );
    let address = q1(
        db,
        "SELECT new_address FROM reallocs WHERE moved = 1 ORDER BY id LIMIT 1 OFFSET 100",
    );
    let heap = q1(
        db,
        "SELECT heap FROM reallocs GROUP BY heap ORDER BY count(*) DESC, heap LIMIT 1",
    );
    let mut out = Vec::new();
    for r in reports.as_array().unwrap() {
        let name = r["name"].as_str().unwrap().to_string();
        let params: Vec<&Value> = r["params"].as_array().unwrap().iter().collect();
        let has = |p: &str| params.iter().any(|x| x["name"] == p);
        let base: Vec<String> = if has("address") {
            vec![format!("address={address}")]
        } else {
            Vec::new()
        };
        let mut v = vec![Variant {
            label: "defaults".into(),
            params: base.clone(),
        }];
        let mut add = |label: String, extra: Vec<String>| {
            let mut p = base.clone();
            p.extend(extra);
            v.push(Variant { label, params: p });
        };
        if has("capture") {
            for c in &captures {
                add(format!("capture={c}"), vec![format!("capture={c}")]);
            }
        }
        if has("pid") {
            add(format!("pid={pid}"), vec![format!("pid={pid}")]);
        }
        if has("heap") {
            add(format!("heap={heap}"), vec![format!("heap={heap}")]);
        }
        for p in &params {
            let pname = p["name"].as_str().unwrap();
            if let Some(choices) = p["choices"].as_array() {
                for c in choices {
                    let c = c.as_str().unwrap();
                    if Some(c) != p["default"].as_str() {
                        add(format!("{pname}={c}"), vec![format!("{pname}={c}")]);
                    }
                }
            }
        }
        if name == "capture-diff" {
            add("a=1 b=3".into(), vec!["a=1".into(), "b=3".into()]);
            add("label.build=2".into(), vec!["label.build=2".into()]);
        }
        if name == "trend" {
            add(
                "metric=live_bytes only_rising=1 min_run=2".into(),
                vec![
                    "metric=live_bytes".into(),
                    "only_rising=1".into(),
                    "min_run=2".into(),
                ],
            );
            add("label.host=lab-*".into(), vec!["label.host=lab-*".into()]);
        }
        if name == "outstanding-size" {
            // One bucket: a whole capture's bytes in one row, past 2^31 (an INTEGER
            // literal in a UNION with such a sum failed on DuckDB).
            add("buckets=1".into(), vec!["buckets=1".into()]);
        }
        if name == "timeline" {
            add("bucket_ms=250".into(), vec!["bucket_ms=250".into()]);
        }
        if name == "top-realloc-sites" || name == "leak-suspects" {
            add("limit=5".into(), vec!["limit=5".into()]);
        }
        for x in v {
            out.push((name.clone(), x));
        }
    }
    out
}

/// Two values equal: integers exactly, reals to 1e-9 relative, the rest exactly.
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            if let (Some(i), Some(j)) = (x.as_i64(), y.as_i64()) {
                return i == j;
            }
            match (x.as_f64(), y.as_f64()) {
                (Some(f), Some(g)) => f == g || (f - g).abs() <= 1e-9 * f.abs().max(g.abs()),
                _ => false,
            }
        }
        _ => a == b,
    }
}

/// Runs every variant on DuckDB over `lake` and through `heapdb query` on `db`; returns
/// the number of variants compared.
fn check(python: &Path, db: &Path, lake: &Path, work: &Path) -> usize {
    let o = run(&["lake-views", s(lake)]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let views = work.join("views.sql");
    std::fs::write(&views, stdout(&o)).unwrap();
    let vs = variants(db);
    let mut jobs = Vec::new();
    let mut expected = Vec::new();
    for (name, v) in &vs {
        let mut args = vec!["lake-sql".to_string(), name.clone()];
        let mut qargs = vec![
            "query".to_string(),
            "--db".into(),
            s(db).into(),
            name.clone(),
            "--format".into(),
            "json".into(),
            "--no-hex".into(),
        ];
        for p in &v.params {
            args.extend(["--param".to_string(), p.clone()]);
            qargs.extend(["--param".to_string(), p.clone()]);
        }
        let ok = |args: &[String]| {
            let a: Vec<&str> = args.iter().map(String::as_str).collect();
            let o = run(&a);
            assert_eq!(
                o.status.code(),
                Some(0),
                "{name} {}: {}",
                v.label,
                stderr(&o)
            );
            stdout(&o)
        };
        jobs.push((format!("{name} {}", v.label), ok(&args)));
        let rows: Value = serde_json::from_str(&ok(&qargs)).unwrap();
        expected.push(rows);
    }
    let jobs_file = work.join("jobs.json");
    std::fs::write(&jobs_file, serde_json::to_string(&jobs).unwrap()).unwrap();
    let o = Command::new(python)
        .args(["-c", EXECUTOR, s(&views), s(&jobs_file)])
        .output()
        .unwrap();
    assert!(o.status.success(), "DuckDB: {}", stderr(&o));
    let results: Vec<Value> = stdout(&o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(results.len(), jobs.len());
    let mut failures = Vec::new();
    let mut nonempty = 0;
    for ((job, res), want) in jobs.iter().zip(&results).zip(&expected) {
        let name = &job.0;
        if let Some(e) = res.get("error") {
            failures.push(format!("{name}: DuckDB error: {e}"));
            continue;
        }
        let want = want.as_array().unwrap();
        let cols: Vec<&str> = res["columns"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_str().unwrap())
            .collect();
        let rows = res["rows"].as_array().unwrap();
        if rows.len() != want.len() {
            failures.push(format!(
                "{name}: {} rows on DuckDB, {} on SQLite",
                rows.len(),
                want.len()
            ));
            continue;
        }
        if !rows.is_empty() {
            nonempty += 1;
        }
        'rows: for (i, (got, exp)) in rows.iter().zip(want).enumerate() {
            let exp = exp.as_object().unwrap();
            let exp_cols: Vec<&str> = exp.keys().map(String::as_str).collect();
            if exp_cols != cols {
                failures.push(format!("{name}: columns {cols:?} vs {exp_cols:?}"));
                break;
            }
            for (j, c) in cols.iter().enumerate() {
                if !same(&got[j], &exp[*c]) {
                    failures.push(format!(
                        "{name}: row {i} column {c}: DuckDB {} vs SQLite {}",
                        got[j], exp[*c]
                    ));
                    break 'rows;
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} report runs differ:\n{}",
        failures.len(),
        jobs.len(),
        failures.join("\n")
    );
    // Most runs return rows: the comparison is not of empty results.
    assert!(
        nonempty * 10 >= jobs.len() * 8,
        "only {nonempty} of {} runs returned rows",
        jobs.len()
    );
    jobs.len()
}

#[test]
fn every_report_returns_the_same_rows_on_duckdb_over_the_lake() {
    let Some(python) = duckdb_python() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let caps = dir.path().join("caps");
    let files = synth(
        &caps,
        &["--files", "3", "--events-per-file", "30000", "--stacks"],
    );
    let db = dir.path().join("heap.db");
    let lake = dir.path().join("lake");
    for (i, f) in files.iter().enumerate() {
        let build = format!("build={}", i + 1);
        let host = format!("host=lab-{}", i % 2);
        for target in [["--db", s(&db)], ["--parquet", s(&lake)]] {
            let o = run(&[
                "ingest",
                "--quiet",
                target[0],
                target[1],
                "--label",
                &build,
                "--label",
                &host,
                s(f),
            ]);
            assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        }
    }
    // The latest capture: one process, so its sums pass 2^31 (a 32-bit INTEGER on
    // DuckDB where SQLite's integers are 64-bit).
    let big = dir.path().join("big");
    let more = synth(
        &big,
        &[
            "--files",
            "1",
            "--events-per-file",
            "200000",
            "--processes",
            "1",
            "--seed",
            "5",
        ],
    );
    for target in [["--db", s(&db)], ["--parquet", s(&lake)]] {
        let o = run(&["ingest", "--quiet", target[0], target[1], s(&more[0])]);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    }
    assert!(
        common::q(
            &db,
            "SELECT sum(size) FROM blocks WHERE capture_id = 4 AND end_kind IS NOT NULL"
        ) > 1 << 31
    );
    let n = check(&python, &db, &lake, dir.path());
    assert!(n >= 80, "{n} report runs");

    // A symbolized database, exported: function names, sites by function.
    let sym = dir.path().join("sym.db");
    std::fs::copy(&db, &sym).unwrap();
    let o = run(&[
        "symbolize",
        "--quiet",
        "--db",
        s(&sym),
        "--symbols",
        concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/symbols/x64"),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(common::q(&sym, "SELECT count(*) FROM symbols") > 0);
    let exported = dir.path().join("exported");
    let o = run(&["export", "--db", s(&sym), "--parquet", s(&exported)]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    check(&python, &sym, &exported, dir.path());
}
