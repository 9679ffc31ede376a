//! Nightly appends: the time to add one night to a database that already holds 1, 4
//! and 16 nights, next to SQLite's own ceiling for the same work, measured in the same
//! run.
//!
//!   cargo bench --bench append                          # nights of 2 M heap events
//!   HEAPDB_BENCH_EVENTS=500000 cargo bench --bench append
//!   HEAPDB_BENCH_DIR=/big/disk cargo bench --bench append
//!
//! 1. Synthesizes 17 nights (`heapdb synth --stacks`, one capture each; not timed).
//! 2. Builds databases holding the first 1, 4 and 16 nights (`heapdb ingest`).
//! 3. For each: appends the next night to a copy with `heapdb ingest` (wall time, peak
//!    RSS by /usr/bin/time), then measures the ceiling: the same night's rows (taken from
//!    the appended database into an unindexed staging database) inserted into another
//!    copy of the base with SQLite's `INSERT INTO … SELECT` in one transaction, with the
//!    same page cache as heapdb's writer.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

fn heapdb() -> Command {
    Command::new(env!("CARGO_BIN_EXE_heapdb"))
}

fn copy_db(from: &Path, to: &Path) {
    for ext in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{ext}", to.display()));
    }
    std::fs::copy(from, to).unwrap();
}

/// Runs `heapdb ingest` under /usr/bin/time: (seconds, peak RSS MB, summary line).
fn ingest(db: &Path, files: &[PathBuf]) -> (f64, u64, String) {
    let t = Instant::now();
    let out = Command::new("/usr/bin/time")
        .arg("-v")
        .arg(env!("CARGO_BIN_EXE_heapdb"))
        .args(["ingest", "--db"])
        .arg(db)
        .args(files)
        .output()
        .expect("/usr/bin/time");
    let secs = t.elapsed().as_secs_f64();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    let rss = err
        .lines()
        .find(|l| l.contains("Maximum resident set size"))
        .and_then(|l| l.rsplit(':').next())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or(0)
        / 1024;
    let summary = err
        .lines()
        .rfind(|l| l.starts_with("heapdb: ") && l.contains("file(s)"))
        .unwrap_or("")
        .to_string();
    (secs, rss, summary)
}

/// The ceiling: the rows of `capture` (in `appended`) inserted into a copy of `base`
/// with INSERT … SELECT. Returns seconds of the insert transaction.
fn ceiling(base: &Path, appended: &Path, capture: i64, work: &Path) -> f64 {
    let staging = work.with_extension("staging.db");
    let _ = std::fs::remove_file(&staging);
    {
        let c = rusqlite::Connection::open(&staging).unwrap();
        c.execute_batch(&format!(
            "ATTACH '{}' AS a;
             CREATE TABLE reallocs AS SELECT * FROM a.reallocs WHERE capture_id = {capture};
             CREATE TABLE heap_events AS SELECT * FROM a.heap_events WHERE capture_id = {capture};",
            appended.display()
        ))
        .unwrap();
    }
    copy_db(base, work);
    let c = rusqlite::Connection::open(work).unwrap();
    c.execute_batch(&format!(
        "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA cache_size=-32768;
         PRAGMA foreign_keys=OFF; ATTACH '{}' AS s;",
        staging.display()
    ))
    .unwrap();
    let t = Instant::now();
    c.execute_batch(
        "BEGIN;
         INSERT INTO main.reallocs SELECT * FROM s.reallocs;
         INSERT INTO main.heap_events SELECT * FROM s.heap_events;
         COMMIT;",
    )
    .unwrap();
    let secs = t.elapsed().as_secs_f64();
    drop(c);
    let _ = std::fs::remove_file(&staging);
    secs
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let events: u64 = std::env::var("HEAPDB_BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000_000);
    let base = std::env::var_os("HEAPDB_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir)
        .join(format!("heapdb-bench-append-{events}"));
    let nights_dir = base.join("nights");
    let nights = 17;
    let mut files: Vec<PathBuf> = std::fs::read_dir(&nights_dir)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "etl"))
                .collect()
        })
        .unwrap_or_default();
    if files.len() != nights {
        let _ = std::fs::remove_dir_all(&nights_dir);
        let t = Instant::now();
        let st = heapdb()
            .args(["synth", "--quiet", "--out"])
            .arg(&nights_dir)
            .args(["--files", &nights.to_string(), "--events-per-file"])
            .arg(events.to_string())
            .args(["--stacks", "--seed", "9"])
            .status()
            .unwrap();
        assert!(st.success());
        println!(
            "synthesized {nights} nights of {events} heap events in {:.1} s",
            t.elapsed().as_secs_f64()
        );
        files = std::fs::read_dir(&nights_dir)
            .unwrap()
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "etl"))
            .collect();
    }
    files.sort();
    let mut results = Vec::new();
    for held in [1usize, 4, 16] {
        let base_db = base.join(format!("base-{held}.db"));
        if !base_db.exists() {
            let t = Instant::now();
            let (s, _, _) = ingest(&base_db, &files[..held]);
            let _ = t;
            println!("built a database of {held} night(s) in {s:.1} s");
        }
        let db_mb = std::fs::metadata(&base_db).map(|m| m.len()).unwrap_or(0) as f64 / 1e6;
        let work = base.join("work.db");
        copy_db(&base_db, &work);
        let (append, rss, summary) = ingest(&work, &files[held..held + 1]);
        println!("{summary}");
        let ceil_work = base.join("ceiling.db");
        let ceil = ceiling(&base_db, &work, held as i64 + 1, &ceil_work);
        println!(
            "append to {held:>2} night(s) ({db_mb:.0} MB): heapdb {append:.2} s (peak RSS {rss} MB), INSERT...SELECT ceiling {ceil:.2} s, ratio {:.2}",
            append / ceil
        );
        results.push((held, append, ceil));
        for p in [&work, &ceil_work] {
            for ext in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{ext}", p.display()));
            }
        }
    }
    let one = results[0].1;
    for (held, append, ceil) in &results {
        println!(
            "| {held} | {append:.2} s | {ceil:.2} s | {:.2} | {:.2} |",
            append / ceil,
            append / one
        );
    }
}
