//! The Parquet lake (`ingest --parquet`, `export`): table by table the same rows as the
//! SQLite database of the same captures (read back with the parquet crate's own
//! reader), idempotent reruns, a killed run's leftovers, bad input handled as the
//! SQLite ingest handles it, and directories that are not lakes refused.

mod common;

use common::{run, s, stderr, synth};
use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::record::Field;
use std::path::{Path, PathBuf};

/// A value as both stores hold it.
#[derive(Debug, Clone, PartialEq, PartialOrd)]
enum V {
    Null,
    Int(i64),
    Real(f64),
    Text(String),
    Blob(Vec<u8>),
}

fn from_sqlite(v: rusqlite::types::ValueRef<'_>) -> V {
    use rusqlite::types::ValueRef;
    match v {
        ValueRef::Null => V::Null,
        ValueRef::Integer(i) => V::Int(i),
        ValueRef::Real(f) => V::Real(f),
        ValueRef::Text(t) => V::Text(String::from_utf8_lossy(t).into_owned()),
        ValueRef::Blob(b) => V::Blob(b.to_vec()),
    }
}

fn from_parquet(f: &Field) -> V {
    match f {
        Field::Null => V::Null,
        Field::Long(i) => V::Int(*i),
        Field::Double(d) => V::Real(*d),
        Field::Str(s) => V::Text(s.clone()),
        Field::Bytes(b) => V::Blob(b.data().to_vec()),
        other => panic!("unexpected Parquet value {other:?}"),
    }
}

/// Columns of a table in the database: (name, declared type).
fn db_columns(c: &rusqlite::Connection, table: &str) -> Vec<String> {
    let mut st = c
        .prepare(&format!("SELECT name FROM pragma_table_info('{table}')"))
        .unwrap();
    st.query_map([], |r| r.get(0))
        .unwrap()
        .map(|r| r.unwrap())
        .collect()
}

fn db_tables(c: &rusqlite::Connection) -> Vec<String> {
    let mut st = c
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")
        .unwrap();
    st.query_map([], |r| r.get(0))
        .unwrap()
        .map(|r| r.unwrap())
        .collect()
}

/// Columns left out of the comparison: when each store ran its ingest.
fn ignored(col: &str) -> bool {
    col == "ingest_started" || col == "ingest_finished"
}

/// A table's rows in the database, sorted.
fn db_rows(db: &Path, table: &str) -> Vec<Vec<V>> {
    let c = rusqlite::Connection::open(db).unwrap();
    let cols: Vec<String> = db_columns(&c, table)
        .into_iter()
        .filter(|c| !ignored(c))
        .collect();
    let mut st = c
        .prepare(&format!("SELECT {} FROM {table}", cols.join(", ")))
        .unwrap();
    let n = cols.len();
    let mut rows: Vec<Vec<V>> = st
        .query_map([], |r| {
            Ok((0..n).map(|i| from_sqlite(r.get_ref(i).unwrap())).collect())
        })
        .unwrap()
        .map(|r| r.unwrap())
        .collect();
    rows.sort_by(|a, b| a.partial_cmp(b).unwrap());
    rows
}

fn parquet_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries {
        let p = e.unwrap().path();
        if p.is_dir() {
            parquet_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "parquet") {
            out.push(p);
        }
    }
}

/// A table's rows in the lake, columns in the database's order (`capture_id` from
/// the partition path), sorted; checks that every `*_utc` column is a UTC nanosecond
/// timestamp equal to its `*_ns` column.
fn lake_rows(lake: &Path, table: &str, db_cols: &[String]) -> Vec<Vec<V>> {
    let mut files = Vec::new();
    parquet_files(&lake.join(table), &mut files);
    assert!(!files.is_empty(), "{table}: no Parquet file in the lake");
    let mut rows = Vec::new();
    for f in files {
        let capture_id: Option<i64> = f
            .components()
            .filter_map(|c| {
                c.as_os_str()
                    .to_str()?
                    .strip_prefix("capture_id=")?
                    .parse()
                    .ok()
            })
            .next();
        let reader = SerializedFileReader::new(std::fs::File::open(&f).unwrap()).unwrap();
        let schema = reader.metadata().file_metadata().schema_descr_ptr();
        let names: Vec<String> = (0..schema.num_columns())
            .map(|i| schema.column(i).name().to_string())
            .collect();
        for (i, n) in names.iter().enumerate() {
            if n.ends_with("_utc") {
                assert_eq!(
                    format!("{:?}", schema.column(i).logical_type_ref()),
                    "Some(Timestamp(TimestampType { is_adjusted_to_u_t_c: true, unit: NANOS }))",
                    "{table}.{n}"
                );
            }
        }
        for row in reader.get_row_iter(None).unwrap() {
            let row = row.unwrap();
            let vals: Vec<(String, V)> = row
                .get_column_iter()
                .map(|(n, v)| (n.clone(), from_parquet(v)))
                .collect();
            let get = |n: &str| vals.iter().find(|(c, _)| c == n).map(|(_, v)| v.clone());
            for (n, v) in &vals {
                if let Some(base) = n.strip_suffix("_utc") {
                    assert_eq!(Some(v.clone()), get(&format!("{base}_ns")), "{table}.{n}");
                }
            }
            let mut out = Vec::new();
            for c in db_cols.iter().filter(|c| !ignored(c)) {
                match get(c) {
                    Some(v) => out.push(v),
                    None if c == "capture_id" => out.push(V::Int(
                        capture_id.unwrap_or_else(|| panic!("{}: no capture_id", f.display())),
                    )),
                    None => panic!("{}: no column {c}", f.display()),
                }
            }
            rows.push(out);
        }
    }
    rows.sort_by(|a, b| a.partial_cmp(b).unwrap());
    rows
}

/// Every table of the database has the same rows in the lake; returns the tables.
fn assert_same(db: &Path, lake: &Path) -> Vec<String> {
    let c = rusqlite::Connection::open(db).unwrap();
    let tables = db_tables(&c);
    let marker: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(lake.join("_heapdb/lake.json")).unwrap())
            .unwrap();
    let mut listed: Vec<String> = marker["tables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_string())
        .collect();
    listed.sort();
    assert_eq!(listed, tables, "lake.json lists every table");
    for t in &tables {
        let cols = db_columns(&c, t);
        let want = db_rows(db, t);
        let got = lake_rows(lake, t, &cols);
        assert_eq!(got.len(), want.len(), "{t}: row count");
        assert!(got == want, "{t}: rows differ");
    }
    tables
}

fn count(db: &Path, sql: &str) -> i64 {
    common::q(db, sql)
}

#[test]
fn ingest_parquet_writes_the_rows_of_the_sqlite_ingest() {
    let dir = tempfile::tempdir().unwrap();
    let caps = dir.path().join("caps");
    synth(
        &caps,
        &["--files", "2", "--events-per-file", "20000", "--stacks"],
    );
    let db = dir.path().join("heap.db");
    let lake = dir.path().join("lake");
    let o = run(&["ingest", "--quiet", "--db", s(&db), s(&caps)]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let o = run(&["ingest", "--quiet", "--parquet", s(&lake), s(&caps)]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("2 file(s): 2 ingested, 0 already in the lake, 0 failed"),
        "{}",
        stderr(&o)
    );
    // The comparison means something only if the tables hold rows.
    assert!(count(&db, "SELECT count(*) FROM reallocs") > 5000);
    assert!(count(&db, "SELECT count(*) FROM blocks") > 5000);
    assert!(count(&db, "SELECT count(*) FROM stacks") > 10);
    let tables = assert_same(&db, &lake);
    assert!(tables.len() >= 25, "{tables:?}");
    // Hive partitions by the capture's UTC start date and id.
    let ids: Vec<(i64, i64)> = {
        let c = rusqlite::Connection::open(&db).unwrap();
        let mut st = c
            .prepare("SELECT capture_id, start_time_ns FROM captures ORDER BY 1")
            .unwrap();
        st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(|r| r.unwrap())
            .collect()
    };
    assert_eq!(ids.len(), 2);
    for (id, ns) in ids {
        let date = heapdb::etl::time::rfc3339(ns)[..10].to_string();
        let p = lake.join(format!(
            "reallocs/capture_date={date}/capture_id={id}/part-0.parquet"
        ));
        assert!(p.is_file(), "{}", p.display());
    }
    // Statistics that let an engine skip row groups and pages by heap, address, source
    // and time: min/max per column chunk equal to the capture's own, and a page index.
    {
        let c = rusqlite::Connection::open(&db).unwrap();
        let (id, ns): (i64, i64) = c
            .query_row(
                "SELECT capture_id, start_time_ns FROM captures ORDER BY 1 LIMIT 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        let date = heapdb::etl::time::rfc3339(ns)[..10].to_string();
        let f = lake.join(format!(
            "reallocs/capture_date={date}/capture_id={id}/part-0.parquet"
        ));
        let reader = SerializedFileReader::new(std::fs::File::open(&f).unwrap()).unwrap();
        let rg = reader.metadata().row_group(0);
        assert_eq!(
            rg.num_rows(),
            count(
                &db,
                &format!("SELECT count(*) FROM reallocs WHERE capture_id = {id}")
            )
        );
        for col in ["heap", "new_address", "source", "time_ns", "id"] {
            let i = (0..rg.num_columns())
                .find(|&i| rg.column(i).column_path().string() == col)
                .unwrap();
            let chunk = rg.column(i);
            let st = chunk
                .statistics()
                .unwrap_or_else(|| panic!("reallocs.{col}: no statistics"));
            let min = i64::from_le_bytes(st.min_bytes_opt().unwrap().try_into().unwrap());
            let max = i64::from_le_bytes(st.max_bytes_opt().unwrap().try_into().unwrap());
            assert_eq!(
                (min, max),
                (
                    count(
                        &db,
                        &format!("SELECT min({col}) FROM reallocs WHERE capture_id = {id}")
                    ),
                    count(
                        &db,
                        &format!("SELECT max({col}) FROM reallocs WHERE capture_id = {id}")
                    )
                ),
                "reallocs.{col}"
            );
            assert!(
                chunk.column_index_offset().is_some(),
                "reallocs.{col}: no page index"
            );
        }
    }
    // Nothing is left in the temporary directory.
    let mut left = Vec::new();
    parquet_files(&lake.join("_tmp"), &mut left);
    assert!(left.is_empty(), "{left:?}");

    // A rerun skips both captures and changes nothing.
    let o = run(&["ingest", "--quiet", "--parquet", s(&lake), s(&caps)]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("2 file(s): 0 ingested, 2 already in the lake"),
        "{}",
        stderr(&o)
    );
    assert_same(&db, &lake);

    // lake-views names every table, with the lake's absolute path.
    let o = run(&["lake-views", s(&lake)]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let script = common::stdout(&o);
    let root = std::path::absolute(&lake)
        .unwrap()
        .to_string_lossy()
        .replace('\\', "/");
    for t in &tables {
        assert!(
            script.contains(&format!("CREATE OR REPLACE VIEW lake.\"{t}\" AS")),
            "{t} missing from the view script"
        );
    }
    assert!(script.contains(&format!(
        "read_parquet('{root}/reallocs/*/*/*.parquet', hive_partitioning = true"
    )));
    assert!(script.contains("CREATE VIEW reallocs_v AS"));
}

#[test]
fn export_copies_a_database_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let caps = dir.path().join("caps");
    let files = synth(
        &caps,
        &["--files", "3", "--events-per-file", "8000", "--stacks"],
    );
    let db = dir.path().join("heap.db");
    let lake = dir.path().join("lake");
    let o = run(&[
        "ingest",
        "--quiet",
        "--db",
        s(&db),
        "--label",
        "build=1",
        s(&files[0]),
        s(&files[1]),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let o = run(&["export", "--db", s(&db), "--parquet", s(&lake)]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("2 capture(s) exported, 0 already in the lake"),
        "{}",
        stderr(&o)
    );
    assert_same(&db, &lake);
    assert_eq!(count(&db, "SELECT count(*) FROM capture_labels"), 2);

    // The next night: one more capture; the export adds it only.
    let o = run(&["ingest", "--quiet", "--db", s(&db), s(&files[2])]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let o = run(&["export", "--db", s(&db), "--parquet", s(&lake)]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("1 capture(s) exported, 2 already in the lake"),
        "{}",
        stderr(&o)
    );
    assert_same(&db, &lake);

    // Another database's captures are refused: ids would mean two things.
    let other = dir.path().join("other.db");
    let o = run(&["ingest", "--quiet", "--db", s(&other), s(&files[2])]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let o = run(&["export", "--db", s(&other), "--parquet", s(&lake)]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("is not capture 1 of")
            && stderr(&o).contains("a lake mirrors one database"),
        "{}",
        stderr(&o)
    );
    assert_same(&db, &lake);

    // An ingest into an exported lake continues its ids.
    let more = dir.path().join("more");
    synth(
        &more,
        &["--files", "1", "--events-per-file", "3000", "--seed", "7"],
    );
    let o = run(&["ingest", "--quiet", "--parquet", s(&lake), s(&more)]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let o = run(&["ingest", "--quiet", "--db", s(&db), s(&more)]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_same(&db, &lake);
}

#[test]
fn leftovers_of_a_killed_run_are_removed_and_the_rerun_finishes() {
    let dir = tempfile::tempdir().unwrap();
    let caps = dir.path().join("caps");
    let files = synth(&caps, &["--files", "2", "--events-per-file", "6000"]);
    let db = dir.path().join("heap.db");
    let lake = dir.path().join("lake");
    let o = run(&["ingest", "--quiet", "--parquet", s(&lake), s(&files[0])]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    // What a run killed while publishing capture 2 leaves: a temporary file, and a
    // partition renamed into place before the catalog committed.
    let tmp = lake.join("_tmp/capture_id=2.999999");
    std::fs::create_dir_all(&tmp).unwrap();
    std::fs::write(tmp.join("reallocs.parquet"), b"half a file").unwrap();
    let stale = lake.join("reallocs/capture_date=2001-01-01/capture_id=2");
    std::fs::create_dir_all(&stale).unwrap();
    std::fs::write(
        stale.join("part-0.parquet"),
        b"not a capture the catalog knows",
    )
    .unwrap();
    let o = run(&["ingest", "--quiet", "--parquet", s(&lake), s(&caps)]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("2 file(s): 1 ingested, 1 already in the lake"),
        "{}",
        stderr(&o)
    );
    assert!(!stale.exists() && !tmp.exists());
    let o = run(&["ingest", "--quiet", "--db", s(&db), s(&caps)]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_same(&db, &lake);
}

#[test]
fn a_run_killed_at_any_moment_is_finished_by_the_next() {
    let dir = tempfile::tempdir().unwrap();
    let caps = dir.path().join("caps");
    synth(&caps, &["--files", "6", "--events-per-file", "60000"]);
    let db = dir.path().join("heap.db");
    let lake = dir.path().join("lake");
    let mut child = std::process::Command::new(common::heapdb_bin())
        .args([
            "ingest",
            "--quiet",
            "--jobs",
            "1",
            "--parquet",
            s(&lake),
            s(&caps),
        ])
        .spawn()
        .unwrap();
    // Killed (SIGKILL: no cleanup) as soon as the first capture is published, while
    // the next is being written.
    let first = lake.join("captures");
    let t = std::time::Instant::now();
    while std::fs::read_dir(&first).map_or(true, |mut d| d.next().is_none())
        && t.elapsed() < std::time::Duration::from_secs(60)
    {
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    let _ = child.kill();
    let _ = child.wait();
    let o = run(&["ingest", "--quiet", "--parquet", s(&lake), s(&caps)]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        !stderr(&o).contains("6 file(s): 0 ingested"),
        "the kill came too late to test anything: {}",
        stderr(&o)
    );
    let o = run(&["ingest", "--quiet", "--db", s(&db), s(&caps)]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_same(&db, &lake);
}

#[test]
fn bad_input_is_reported_as_by_the_sqlite_ingest() {
    let dir = tempfile::tempdir().unwrap();
    let caps = dir.path().join("caps");
    let files = synth(&caps, &["--files", "2", "--events-per-file", "5000"]);
    let full = std::fs::read(&files[1]).unwrap();
    std::fs::write(&files[1], &full[..full.len() / 2 + 100]).unwrap();
    std::fs::write(caps.join("zz-foreign.etl"), b"PK\x03\x04 this is no trace").unwrap();
    let db = dir.path().join("heap.db");
    let lake = dir.path().join("lake");
    let sq = run(&["ingest", "--quiet", "--db", s(&db), s(&caps)]);
    let pq = run(&["ingest", "--quiet", "--parquet", s(&lake), s(&caps)]);
    assert_eq!(sq.status.code(), Some(1), "{}", stderr(&sq));
    assert_eq!(pq.status.code(), Some(1), "{}", stderr(&pq));
    // The same messages, but the last lines (the summary names the store).
    let lines = |o: &std::process::Output| -> Vec<String> {
        stderr(o)
            .lines()
            .filter(|l| !l.contains("file(s):") && !l.contains("see the errors above"))
            .map(String::from)
            .collect()
    };
    assert!(!lines(&sq).is_empty());
    assert_eq!(lines(&pq), lines(&sq));
    assert!(stderr(&pq).contains("zz-foreign.etl"), "{}", stderr(&pq));
    assert_same(&db, &lake);
    assert!(count(&db, "SELECT count(*) FROM ingest_errors") >= 2);
}

#[test]
fn a_failed_publish_leaves_no_partition_visible() {
    let dir = tempfile::tempdir().unwrap();
    let caps = dir.path().join("caps");
    synth(&caps, &["--files", "1", "--events-per-file", "5000"]);
    let lake = dir.path().join("lake");
    let o = run(&["ingest", "--quiet", "--parquet", s(&lake), s(&caps)]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let again = dir.path().join("lake2");
    std::fs::create_dir_all(again.join("_heapdb")).unwrap();
    std::fs::copy(
        lake.join("_heapdb/lake.json"),
        again.join("_heapdb/lake.json"),
    )
    .unwrap();
    // `threads` cannot become a directory: publishing fails after the row tables and
    // processes were renamed into place (the same path as a disk that fills up).
    std::fs::write(again.join("threads"), b"in the way").unwrap();
    let o = run(&["ingest", "--quiet", "--parquet", s(&again), s(&caps)]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(stderr(&o).contains("threads"), "{}", stderr(&o));
    let mut visible = Vec::new();
    parquet_files(&again, &mut visible);
    assert!(
        visible
            .iter()
            .all(|p| !p.to_string_lossy().contains("capture_id=")),
        "{visible:?}"
    );
    assert_eq!(
        count(
            &again.join("_heapdb/catalog.sqlite"),
            "SELECT count(*) FROM captures"
        ),
        0
    );
    // Out of the way, the same command stores it.
    std::fs::remove_file(again.join("threads")).unwrap();
    let o = run(&["ingest", "--quiet", "--parquet", s(&again), s(&caps)]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
}

#[test]
fn directories_that_are_not_lakes_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let caps = dir.path().join("caps");
    synth(&caps, &["--files", "1", "--events-per-file", "1000"]);
    let other = dir.path().join("photos");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::write(other.join("cat.jpg"), b"meow").unwrap();
    let o = run(&["ingest", "--quiet", "--parquet", s(&other), s(&caps)]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(
        stderr(&o).contains(&format!("{}: not a heapdb lake", other.display())),
        "{}",
        stderr(&o)
    );
    assert_eq!(std::fs::read_dir(&other).unwrap().count(), 1);
    let o = run(&["lake-views", s(&other)]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(stderr(&o).contains("not a heapdb lake"), "{}", stderr(&o));

    let newer = dir.path().join("newer");
    std::fs::create_dir_all(newer.join("_heapdb")).unwrap();
    std::fs::write(
        newer.join("_heapdb/lake.json"),
        r#"{"format": "heapdb-lake", "version": 99, "heapdb": "9.0.0", "tables": []}"#,
    )
    .unwrap();
    for args in [
        vec!["ingest", "--quiet", "--parquet", s(&newer), s(&caps)],
        vec!["lake-views", s(&newer)],
    ] {
        let o = run(&args);
        assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
        assert!(
            stderr(&o).contains("written by a newer heapdb (9.0.0; lake version 99"),
            "{}",
            stderr(&o)
        );
    }
    assert!(!newer.join("_heapdb/catalog.sqlite").exists());

    let file = dir.path().join("lake.txt");
    std::fs::write(&file, b"x").unwrap();
    let o = run(&["ingest", "--quiet", "--parquet", s(&file), s(&caps)]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("is a file, not a lake directory"),
        "{}",
        stderr(&o)
    );
}
