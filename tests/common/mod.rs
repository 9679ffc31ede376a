//! Shared helpers of the integration tests.
#![allow(dead_code)]

use std::path::PathBuf;

/// The shared test data: $HEAPDB_TESTDATA, else `../shared/testdata` next to the
/// repository, else the workplace's `/work/shared/testdata`. The real captures are not
/// copied into the repository; a missing directory is a test failure with a clear
/// message, never a silent skip.
pub fn testdata() -> PathBuf {
    let candidates: Vec<PathBuf> = match std::env::var_os("HEAPDB_TESTDATA") {
        Some(d) => vec![PathBuf::from(d)],
        None => vec![
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/testdata"),
            PathBuf::from("/work/shared/testdata"),
        ],
    };
    candidates.iter().find(|d| d.join("etl/real").is_dir()).cloned().unwrap_or_else(|| {
        panic!(
            "real captures not found in {candidates:?} (set HEAPDB_TESTDATA to the shared testdata directory)"
        )
    })
}

pub fn real_dir() -> PathBuf {
    testdata().join("etl/real")
}

/// Every real capture with its expected/ reference file, sorted by name.
pub fn real_captures() -> Vec<(String, PathBuf, serde_json::Value)> {
    let dir = real_dir();
    let mut out = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("etl") {
            continue;
        }
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let reference = dir.join("expected").join(format!("{name}.reference.json"));
        let json: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&reference).unwrap()).unwrap();
        out.push((name, path, json));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// The heapdb binary under test: this build's, or the one `HEAPDB_TEST_BIN` names (to
/// run the suite against an older build and see which tests it fails).
pub fn heapdb_bin() -> PathBuf {
    match std::env::var_os("HEAPDB_TEST_BIN") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => PathBuf::from(env!("CARGO_BIN_EXE_heapdb")),
    }
}

/// Every table's content in id order, leaving out the ingest's own timestamps.
pub fn canonical(db: &std::path::Path) -> Vec<String> {
    let c = rusqlite::Connection::open(db).unwrap();
    let mut out = Vec::new();
    let tables: Vec<String> = {
        let mut st = c.prepare("SELECT name FROM sqlite_master WHERE type IN ('table', 'index', 'view') ORDER BY name").unwrap();
        st.query_map([], |r| r.get(0))
            .unwrap()
            .map(|r| r.unwrap())
            .collect()
    };
    out.push(format!("schema: {tables:?}"));
    for t in [
        "captures",
        "reallocs",
        "heap_events",
        "stacks",
        "stack_frames",
        "processes",
        "threads",
        "images",
        "ingest_errors",
        "sites",
        "site_frames",
        "capture_stacks",
        "heaps",
        "site_stats",
        "capture_labels",
        "blocks",
        "block_counts",
        "process_usage",
        "heap_event_counts",
    ] {
        let ncols: usize = c
            .query_row(
                &format!("SELECT count(*) FROM pragma_table_info('{t}')"),
                [],
                |r| r.get(0),
            )
            .unwrap();
        let order: Vec<String> = (1..=ncols).map(|i| i.to_string()).collect();
        let mut st = c
            .prepare(&format!("SELECT * FROM {t} ORDER BY {}", order.join(", ")))
            .unwrap();
        let names: Vec<String> = st.column_names().iter().map(|s| s.to_string()).collect();
        let n = names.len();
        let rows = st
            .query_map([], |r| {
                let mut s = String::new();
                for (i, name) in names.iter().enumerate().take(n) {
                    if name == "ingest_started" || name == "ingest_finished" {
                        continue;
                    }
                    let v: rusqlite::types::Value = r.get(i)?;
                    s.push_str(&format!("{v:?}|"));
                }
                Ok(s)
            })
            .unwrap();
        for r in rows {
            out.push(format!("{t}: {}", r.unwrap()));
        }
    }
    out
}

/// Runs the heapdb binary under test.
pub fn run(args: &[&str]) -> std::process::Output {
    std::process::Command::new(heapdb_bin())
        .args(args)
        .output()
        .unwrap()
}

pub fn s(p: &std::path::Path) -> &str {
    p.to_str().unwrap()
}

pub fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The `.etl` files of a directory, sorted.
pub fn etl_files(dir: &std::path::Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "etl"))
        .collect();
    v.sort();
    v
}

/// `heapdb synth --quiet --out dir` with extra arguments; the capture paths, sorted.
pub fn synth(dir: &std::path::Path, extra: &[&str]) -> Vec<PathBuf> {
    let mut args = vec!["synth", "--quiet", "--out", s(dir)];
    args.extend_from_slice(extra);
    let o = run(&args);
    assert_eq!(o.status.code(), Some(0), "synth: {}", stderr(&o));
    etl_files(dir)
}

/// One integer from a query (NULL reads 0).
pub fn q(db: &std::path::Path, sql: &str) -> i64 {
    rusqlite::Connection::open(db)
        .unwrap()
        .query_row(sql, [], |r| r.get::<_, Option<i64>>(0))
        .unwrap()
        .unwrap_or(0)
}

/// Every table's rows keyed by capture fingerprint instead of capture ids, sorted: two
/// databases that hold the same captures compare equal whatever order (and ids) they
/// were loaded in.
pub fn content_by_fingerprint(db: &std::path::Path) -> Vec<String> {
    let c = rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .unwrap();
    let mut out = Vec::new();
    for sql in [
        "SELECT fingerprint, file_name, size_bytes, events_decoded, first_event_ns, status, history FROM captures",
        "SELECT c.fingerprint, r.time_ns, r.pid, r.tid, r.heap, r.new_address, r.old_address, r.new_size, r.old_size, r.source, r.stack_id, r.alloc_id IS NULL FROM reallocs r JOIN captures c USING (capture_id)",
        "SELECT c.fingerprint, e.time_ns, e.pid, e.opcode, e.heap, e.address, e.size, e.stack_id, e.realloc_internal FROM heap_events e JOIN captures c USING (capture_id)",
        "SELECT c.fingerprint, p.pid, p.name, p.seen_as, p.identity FROM processes p JOIN captures c USING (capture_id)",
        "SELECT c.fingerprint, t.pid, t.tid FROM threads t JOIN captures c USING (capture_id)",
        "SELECT c.fingerprint, i.pid, i.base, i.name FROM images i JOIN captures c USING (capture_id)",
        "SELECT stack_id, depth, leaf FROM stacks",
        "SELECT stack_id, depth, address FROM stack_frames",
        "SELECT site_id, depth, call_depth, call_site, caller_module FROM sites",
        "SELECT site_id, depth, module, rva, address FROM site_frames",
        "SELECT c.fingerprint, x.pid, x.stack_id, x.site_id FROM capture_stacks x JOIN captures c USING (capture_id)",
        "SELECT c.fingerprint, h.pid, h.heap, h.process, h.identity, h.kind, h.created_ns, h.destroyed_ns, h.create_site_id, h.events FROM heaps h JOIN captures c USING (capture_id)",
        "SELECT c.fingerprint, x.pid, x.heap, x.process, x.heap_identity, x.site_id, x.allocs, x.alloc_bytes, x.reallocs, x.moves, x.bytes_copied, x.bytes_grown FROM site_stats x JOIN captures c USING (capture_id)",
        "SELECT c.fingerprint, l.key, l.value FROM capture_labels l JOIN captures c USING (capture_id)",
        // Ids relative to the capture's first: another load order shifts them.
        "SELECT c.fingerprint, b.block_id - c.first_block_id, b.pid, b.heap, b.address, b.size, b.source, b.start_kind, b.start_ns, b.start_event_id - c.first_event_id, b.start_stack_id, b.end_kind, b.end_ns, b.end_event_id - c.first_event_id, b.prev_block_id - c.first_block_id, b.chain_id - c.first_block_id, b.chain_index FROM blocks b JOIN captures c USING (capture_id)",
        "SELECT c.fingerprint, k.pid, k.heap, k.start_kind, k.end_kind, k.blocks, k.bytes FROM block_counts k JOIN captures c USING (capture_id)",
        "SELECT c.fingerprint, u.pid, u.peak_bytes, u.peak_blocks, u.peak_ns, u.peak_event_id - c.first_event_id, u.end_bytes, u.end_blocks FROM process_usage u JOIN captures c USING (capture_id)",
        "SELECT c.fingerprint, e.pid, e.heap, e.opcode, e.source, e.realloc_internal, e.events, e.bytes FROM heap_event_counts e JOIN captures c USING (capture_id)",
    ] {
        let mut st = c.prepare(sql).unwrap();
        let n = st.column_count();
        let mut rows: Vec<String> = st
            .query_map([], |r| {
                let mut s = String::new();
                for i in 0..n {
                    let v: rusqlite::types::Value = r.get(i)?;
                    s.push_str(&format!("{v:?}|"));
                }
                Ok(s)
            })
            .unwrap()
            .map(|r| r.unwrap())
            .collect();
        rows.sort();
        out.push(format!("{sql}: {} rows", rows.len()));
        out.extend(rows);
    }
    out
}
