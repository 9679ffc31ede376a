//! Retention: `heapdb prune` removes whole captures from every table; a pruned
//! database equals one that never had those nights, and re-ingesting them equals one
//! that always had them (content compared capture by capture, ids aside).

mod common;

use common::{content_by_fingerprint as content, q, run, s, stderr, synth};
use rusqlite::Connection;
use std::path::{Path, PathBuf};

fn nights(dir: &Path) -> Vec<PathBuf> {
    // Stacks shared between nights (same seed, same sites) and stacks of one night only.
    synth(
        dir,
        &[
            "--files",
            "4",
            "--events-per-file",
            "20000",
            "--stacks",
            "--seed",
            "23",
        ],
    )
}

fn ingest(db: &Path, files: &[PathBuf]) {
    let mut args = vec!["ingest", "--quiet", "--db", s(db)];
    args.extend(files.iter().map(|f| s(f)));
    let o = run(&args);
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn pruned_nights_are_gone_from_every_table_and_come_back_the_same() {
    let d = tempfile::tempdir().unwrap();
    let files = nights(&d.path().join("n"));
    let all = d.path().join("all.db");
    ingest(&all, &files);
    let last_two = d.path().join("last-two.db");
    ingest(&last_two, &files[2..]);

    // Captures start a day apart: --before the third night removes the first two.
    let third: i64 = q(
        &all,
        "SELECT start_time_ns FROM captures WHERE capture_id = 3",
    );
    let day = 86_400i64 * 1_000_000_000;
    let date = {
        let days = third / day; // midnight of the third night's day, as YYYY-MM-DD
                                // (heapdb's own RFC 3339 formatting: no `date` program on Windows)
        heapdb::etl::time::rfc3339(days * day)[..10].to_string()
    };
    let pruned = d.path().join("pruned.db");
    std::fs::copy(&all, &pruned).unwrap();
    let out = run(&["prune", "--db", s(&pruned), "--before", &date]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(
        err.contains("removed 2 capture(s): 1 (synth-0000-seed23.etl), 2 (synth-0001-seed23.etl)"),
        "{err}"
    );
    assert_eq!(content(&pruned), content(&last_two), "as if never ingested");
    for t in ["reallocs", "heap_events", "processes", "threads", "images"] {
        assert_eq!(
            q(
                &pruned,
                &format!("SELECT count(*) FROM {t} WHERE capture_id IN (1, 2)")
            ),
            0,
            "{t}"
        );
    }
    // Re-ingesting the pruned nights gives back the whole history.
    ingest(&pruned, &files[..2]);
    assert_eq!(content(&pruned), content(&all));
    // A query sees every index, and repair finds nothing to do.
    let out = run(&["repair", "--db", s(&pruned)]);
    assert!(
        stderr(&out).contains("every index is there"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn keep_last_capture_ids_and_nothing_to_prune() {
    let d = tempfile::tempdir().unwrap();
    let files = nights(&d.path().join("n"));
    let db = d.path().join("heap.db");
    ingest(&db, &files);
    // Nothing matches: refused, nothing changes.
    let before = content(&db);
    let out = run(&["prune", "--db", s(&db), "--before", "1999-01-01"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("nothing to prune: no capture started before 1999-01-01"));
    let out = run(&["prune", "--db", s(&db), "--capture", "9"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("no capture with id 9"),
        "{}",
        stderr(&out)
    );
    // --keep-last with no more captures than that is the steady state of a nightly job.
    let out = run(&["prune", "--db", s(&db), "--keep-last", "10"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stderr(&out).contains("holds 4 capture(s), keeping the last 10"));
    assert_eq!(content(&db), before);
    // --keep-last 1 keeps the latest night; --capture removes by id.
    let out = run(&["prune", "--db", s(&db), "--keep-last", "3"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(q(&db, "SELECT CAST(group_concat(capture_id, '') AS INTEGER) FROM (SELECT capture_id FROM captures ORDER BY capture_id)"), 234);
    let size = std::fs::metadata(&db).unwrap().len();
    let out = run(&[
        "prune",
        "--db",
        s(&db),
        "--capture",
        "2",
        "--capture",
        "3",
        "--vacuum",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("(vacuumed)"));
    assert_eq!(q(&db, "SELECT CAST(group_concat(capture_id, '') AS INTEGER) FROM (SELECT capture_id FROM captures ORDER BY capture_id)"), 4);
    let only_last = d.path().join("last.db");
    ingest(&only_last, &files[3..]);
    assert_eq!(content(&db), content(&only_last));
    // Space went back to the file system.
    assert!(std::fs::metadata(&db).unwrap().len() < size);
}

/// A prune killed after a capture's row went (its events not yet) leaves rows that no
/// report sees; the next prune removes them.
#[test]
fn rows_left_by_an_interrupted_prune_are_swept() {
    let d = tempfile::tempdir().unwrap();
    let files = nights(&d.path().join("n"));
    let db = d.path().join("heap.db");
    ingest(&db, &files[..3]);
    // As a killed prune leaves it: the capture row gone, its events still there.
    Connection::open(&db)
        .unwrap()
        .execute_batch("PRAGMA foreign_keys = OFF; DELETE FROM captures WHERE capture_id = 1; DELETE FROM processes WHERE capture_id = 1;")
        .unwrap();
    assert!(q(&db, "SELECT count(*) FROM reallocs WHERE capture_id = 1") > 0);
    let out = run(&["prune", "--db", s(&db), "--capture", "2"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        q(
            &db,
            "SELECT count(*) FROM reallocs WHERE capture_id IN (1, 2)"
        ),
        0
    );
    assert_eq!(
        q(
            &db,
            "SELECT count(*) FROM heap_events WHERE capture_id IN (1, 2)"
        ),
        0
    );
    let only = d.path().join("only.db");
    ingest(&only, &files[2..3]);
    assert_eq!(content(&db), content(&only));
}
