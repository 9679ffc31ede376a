//! A database written by an older heapdb (schema version 1, frozen in
//! tests/fixtures/schema-v1-*.sql) is upgraded by the migrations to exactly the schema
//! a new database gets, keeps its data, and is refused by `query` until then.

mod common;

use rusqlite::Connection;
use std::path::Path;
use std::process::Command;

fn run(args: &[&str]) -> std::process::Output {
    Command::new(common::heapdb_bin())
        .args(args)
        .output()
        .unwrap()
}

/// Every table's and index's columns, in order.
fn shape(db: &Path) -> Vec<String> {
    let c = Connection::open(db).unwrap();
    let names: Vec<(String, String)> = {
        let mut st = c
            .prepare("SELECT type, name FROM sqlite_master WHERE type IN ('table', 'index') AND name NOT LIKE 'sqlite_%' ORDER BY type, name")
            .unwrap();
        st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(|r| r.unwrap())
            .collect()
    };
    let mut out = Vec::new();
    for (ty, name) in names {
        let pragma = if ty == "table" {
            "table_info"
        } else {
            "index_info"
        };
        let mut st = c.prepare(&format!("PRAGMA {pragma}({name})")).unwrap();
        let cols: Vec<String> = st
            .query_map([], |r| {
                let name: Option<String> = r.get(if ty == "table" { 1 } else { 2 })?;
                let extra: String = if ty == "table" {
                    format!(
                        "{} notnull={} pk={}",
                        r.get::<_, String>(2)?,
                        r.get::<_, i64>(3)?,
                        r.get::<_, i64>(5)?
                    )
                } else {
                    String::new()
                };
                Ok(format!("{} {extra}", name.unwrap_or_default()))
            })
            .unwrap()
            .map(|r| r.unwrap())
            .collect();
        out.push(format!("{ty} {name}: {}", cols.join(", ")));
    }
    out
}

#[test]
fn version_1_databases_are_upgraded_in_place() {
    let d = tempfile::tempdir().unwrap();
    let old = d.path().join("old.db");
    {
        let c = Connection::open(&old).unwrap();
        c.execute_batch(include_str!("fixtures/schema-v1-tables.sql"))
            .unwrap();
        c.execute_batch(include_str!("fixtures/schema-v1-indexes.sql"))
            .unwrap();
        c.execute_batch(
            "PRAGMA user_version = 1; PRAGMA journal_mode = WAL;
             INSERT INTO captures (capture_id, path, file_name, size_bytes, fingerprint, ingest_started, heapdb_version, status)
                VALUES (1, '/n/1.etl', '1.etl', 10, 'abc', 't', '0.1.0', 'complete');
             INSERT INTO reallocs (id, capture_id, time_ns, ts_raw, pid, tid, cpu, heap, new_address, old_address, new_size, old_size, source, moved, pointer_size, file_offset)
                VALUES (1, 1, 5, 5, 100, 101, 0, 4096, 8192, 8192, 32, 16, 2, 0, 8, 72);",
        )
        .unwrap();
    }
    // Reading it says how to upgrade it, and changes nothing.
    let out = run(&["query", "--db", old.to_str().unwrap(), "--sql", "SELECT 1"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(
        err.contains("older heapdb (schema 1") && err.contains("heapdb repair --db"),
        "{err}"
    );
    // repair upgrades it.
    let out = run(&["repair", "--db", old.to_str().unwrap()]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let fresh = d.path().join("fresh.db");
    heapdb::db::open_rw(&fresh).unwrap();
    assert_eq!(shape(&old), shape(&fresh), "upgraded = created");
    let c = Connection::open(&old).unwrap();
    let v: i64 = c
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(v, heapdb::db::SCHEMA_VERSION as i64);
    let kept: (i64, i64) = c
        .query_row(
            "SELECT new_size, (SELECT count(*) FROM captures) FROM reallocs",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(kept, (32, 1), "the data stays");
    let out = run(&[
        "query",
        "--db",
        old.to_str().unwrap(),
        "data-quality",
        "--format",
        "csv",
    ]);
    assert_eq!(out.status.code(), Some(0));
}
