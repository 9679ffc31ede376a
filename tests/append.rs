//! Nightly appends: a night added to a database that keeps its indexes goes through
//! staging tables and one set-based move per capture; the result is the same database,
//! ids included, as loading every night at once, and it keeps the guarantees of a
//! capture-per-transaction ingest (kill -9, readers).

mod common;

use common::{canonical, run as heapdb, s, synth};
use rusqlite::Connection;
use std::path::{Path, PathBuf};

fn nights(dir: &Path, n: &str, events: &str) -> Vec<PathBuf> {
    synth(
        dir,
        &[
            "--files",
            n,
            "--events-per-file",
            events,
            "--stacks",
            "--pointer-size",
            "mixed",
            "--seed",
            "17",
        ],
    )
}

#[test]
fn appending_night_by_night_equals_loading_at_once() {
    let d = tempfile::tempdir().unwrap();
    let files = nights(&d.path().join("n"), "4", "20000");
    let bulk = d.path().join("bulk.db");
    let mut args = vec![
        "ingest",
        "--quiet",
        "--indexes",
        "rebuild",
        "--db",
        s(&bulk),
    ];
    args.extend(files.iter().map(|f| s(f)));
    assert!(heapdb(&args).status.success());
    let nightly = d.path().join("nightly.db");
    for f in &files {
        let out = heapdb(&["ingest", "--indexes", "keep", "--db", s(&nightly), s(f)]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{err}");
        // The summary line says where the time went; an append moves staged rows.
        assert!(err.contains("insert ") && err.contains("commit "), "{err}");
    }
    assert_eq!(canonical(&nightly), canonical(&bulk));
    let c = Connection::open(&nightly).unwrap();
    let missing: i64 = c
        .query_row(
            "SELECT count(*) FROM pragma_index_list('reallocs')",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(missing, 6, "the appends kept every index");
    // Nothing is left in a staging table of the database file (they are TEMP).
    let staged: i64 = c
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE name LIKE 'stage%'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(staged, 0);
}

#[cfg(unix)]
#[test]
fn a_killed_append_leaves_the_database_as_it_was() {
    let d = tempfile::tempdir().unwrap();
    let files = nights(&d.path().join("n"), "2", "400000");
    let db = d.path().join("heap.db");
    assert!(heapdb(&["ingest", "--quiet", "--db", s(&db), s(&files[0])])
        .status
        .success());
    let before = canonical(&db);
    // Kill the append while it loads (the staged rows are in the capture's transaction).
    let mut child = std::process::Command::new(common::heapdb_bin())
        .args([
            "ingest",
            "--quiet",
            "--indexes",
            "keep",
            "--db",
            s(&db),
            s(&files[1]),
        ])
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(700));
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(canonical(&db), before, "nothing of the killed night");
    // Rerunning finishes the job: the same as an append that was never killed.
    assert!(heapdb(&[
        "ingest",
        "--quiet",
        "--indexes",
        "keep",
        "--db",
        s(&db),
        s(&files[1])
    ])
    .status
    .success());
    let reference = d.path().join("reference.db");
    assert!(
        heapdb(&["ingest", "--quiet", "--db", s(&reference), s(&files[0])])
            .status
            .success()
    );
    assert!(heapdb(&[
        "ingest",
        "--quiet",
        "--indexes",
        "keep",
        "--db",
        s(&reference),
        s(&files[1])
    ])
    .status
    .success());
    assert_eq!(canonical(&db), canonical(&reference));
}
