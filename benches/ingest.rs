//! Ingest throughput, end to end, against the raw ceiling.
//!
//!   cargo bench --bench ingest                       # >= 20 M ReAllocs (~1.3 GB of captures)
//!   HEAPDB_BENCH_REALLOCS=5000000 cargo bench --bench ingest
//!   HEAPDB_BENCH_DIR=/big/disk cargo bench --bench ingest
//!   HEAPDB_BENCH_BIN=/tmp/old/target/release/heapdb cargo bench --bench ingest
//!                        # the same captures ingested by another build (same-run
//!                        # comparisons; its database is bench-<build>.db beside)
//!
//! 1. Synthesizes captures with `--realloc-share 0.9` until they hold the requested
//!    number of ReAllocs (not timed).
//! 2. End to end: runs `heapdb ingest` on them into a fresh database (decode, insert,
//!    index build, checkpoint), measuring wall time and peak RSS (/usr/bin/time -v).
//! 3. Raw ceiling: the same ReAlloc rows, decoded beforehand, inserted into a bare table
//!    with the same columns and no index, same pragmas, one transaction per capture;
//!    only the inserts are timed.

use heapdb::etl::EtlFile;
use heapdb::heap::capture::{decode_buffers, key_definitions};
use heapdb::ingest::rows::HeapEventRow as EventRow;
use heapdb::synth::{generate, Options};
use rusqlite::{params, Connection};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let want: u64 = std::env::var("HEAPDB_BENCH_REALLOCS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000_000);
    let base = std::env::var_os("HEAPDB_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir)
        .join("heapdb-bench-ingest");
    let caps = base.join("captures");
    let files = 8u32;
    // ReAllocs are ~0.65 of the heap events at --realloc-share 0.9 (the internal
    // Alloc/Free of moving reallocs and the rundown come on top).
    let per_file = (want as f64 / 0.62 / files as f64) as u64;
    let manifest = caps.join("manifest.json");
    let have: u64 = std::fs::read(&manifest)
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .map(|m| {
            m["files"]
                .as_array()
                .map(|f| {
                    f.iter()
                        .map(|x| x["reallocs"]["total"].as_u64().unwrap_or(0))
                        .sum()
                })
                .unwrap_or(0)
        })
        .unwrap_or(0);
    if have < want {
        let _ = std::fs::remove_dir_all(&caps);
        let t = Instant::now();
        let m = generate(
            &caps,
            &Options {
                files,
                events_per_file: per_file,
                realloc_share: 0.9,
                processes: 8,
                seed: 77,
                ..Options::default()
            },
        )
        .unwrap();
        let reallocs: u64 = m.files.iter().map(|f| f.reallocs.total).sum();
        println!(
            "synthesized {} files, {reallocs} reallocs in {:.1} s",
            files,
            t.elapsed().as_secs_f64()
        );
    }
    let bytes: u64 = std::fs::read_dir(&caps)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().extension().is_some_and(|x| x == "etl"))
        .map(|e| e.metadata().unwrap().len())
        .sum();

    // End to end.
    let other = std::env::var_os("HEAPDB_BENCH_BIN").map(PathBuf::from);
    let bin = other
        .clone()
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_heapdb")));
    let db = match &other {
        None => base.join("bench.db"),
        Some(_) => base.join("bench-other.db"),
    };
    for ext in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{ext}", db.display()));
    }
    let t = Instant::now();
    let out = Command::new("/usr/bin/time")
        .arg("-v")
        .arg(&bin)
        .args(["ingest", "--quiet", "--db"])
        .arg(&db)
        .arg(&caps)
        .output()
        .expect("/usr/bin/time");
    let secs = t.elapsed().as_secs_f64();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let rss_kb: u64 = stderr
        .lines()
        .find(|l| l.contains("Maximum resident set size"))
        .and_then(|l| l.rsplit(':').next())
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    let summary = stderr
        .lines()
        .find(|l| l.starts_with("heapdb: "))
        .unwrap_or("")
        .to_string();
    let c = Connection::open(&db).unwrap();
    let reallocs: i64 = c
        .query_row("SELECT count(*) FROM reallocs", [], |r| r.get(0))
        .unwrap();
    let events: i64 = c
        .query_row("SELECT count(*) FROM heap_events", [], |r| r.get(0))
        .unwrap();
    drop(c);
    let db_mb = std::fs::metadata(&db).map(|m| m.len()).unwrap_or(0) as f64 / 1e6;
    println!("{summary}");
    println!("build: {}", bin.display());
    println!(
        "end to end: {reallocs} reallocs + {events} other heap events, {:.0} MB of captures in {secs:.2} s: {:.2} M reallocs/s, {:.2} M rows/s, {:.0} MB/s; peak RSS {} MB; database {db_mb:.0} MB",
        bytes as f64 / 1e6,
        reallocs as f64 / secs / 1e6,
        (reallocs + events) as f64 / secs / 1e6,
        bytes as f64 / 1e6 / secs,
        rss_kb / 1024
    );
    if other.is_some() {
        return; // the ceiling does not depend on the build
    }

    // Raw ceiling: the same ReAlloc rows into a bare table; only inserts are timed.
    let raw = base.join("raw.db");
    for ext in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{ext}", raw.display()));
    }
    let c = Connection::open(&raw).unwrap();
    c.execute_batch(
        "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA cache_size=-32768;
         CREATE TABLE reallocs (id INTEGER PRIMARY KEY, capture_id INTEGER, time_ns INTEGER, ts_raw INTEGER, pid INTEGER, tid INTEGER, cpu INTEGER, heap INTEGER, new_address INTEGER, old_address INTEGER, new_size INTEGER, old_size INTEGER, source INTEGER, moved INTEGER, pointer_size INTEGER, stack_id INTEGER, alloc_id INTEGER, free_id INTEGER, file_offset INTEGER);",
    )
    .unwrap();
    let mut insert_time = Duration::ZERO;
    let mut n = 0i64;
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&caps)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "etl"))
        .collect();
    paths.sort();
    for (cid, p) in paths.iter().enumerate() {
        let map = std::fs::read(p).unwrap();
        let file = EtlFile::parse(&map[..]).unwrap();
        let clock = *file.clock();
        let (keys, _) = key_definitions(&file);
        let mut rows: Vec<EventRow> = Vec::new();
        decode_buffers(&file, &keys, 64, |b| {
            rows.extend(
                b.rows
                    .iter()
                    .filter(|r| r.event.info.opcode == 34)
                    .map(|r| EventRow::from_heap(r, &clock)),
            )
        });
        let t = Instant::now();
        c.execute_batch("BEGIN").unwrap();
        {
            let mut st = c.prepare_cached("INSERT INTO reallocs VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19)").unwrap();
            for r in &rows {
                n += 1;
                let (na, oa) = (r.address.unwrap_or(0), r.old_address.unwrap_or(0));
                st.execute(params![
                    n,
                    cid as i64 + 1,
                    r.time_ns,
                    r.ts_raw as i64,
                    r.pid,
                    r.tid,
                    r.cpu,
                    r.heap as i64,
                    na as i64,
                    oa as i64,
                    r.size.unwrap_or(0) as i64,
                    r.old_size.unwrap_or(0) as i64,
                    r.source.unwrap_or(0),
                    (na != oa) as i32,
                    r.pointer_size,
                    r.stack_id,
                    None::<i64>,
                    None::<i64>,
                    r.file_offset as i64
                ])
                .unwrap();
            }
        }
        c.execute_batch("COMMIT").unwrap();
        insert_time += t.elapsed();
    }
    let ceiling = n as f64 / insert_time.as_secs_f64();
    println!(
        "raw ceiling: {n} ReAlloc rows into a bare table in {:.2} s: {:.2} M rows/s",
        insert_time.as_secs_f64(),
        ceiling / 1e6
    );
    println!(
        "end to end / raw ceiling (ReAlloc rows/s): {:.0}%",
        reallocs as f64 / secs / ceiling * 100.0
    );
}
