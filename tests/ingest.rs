//! `heapdb ingest` against synthesized captures: table counts and sums equal the
//! synthesizer's manifest; idempotence; resume after kill -9; bad files in the middle
//! of a batch; readers during an ingest; --strict.

mod common;

use common::etl_files;
use heapdb::synth::{generate, Manifest, Options, PointerMode, StackMode};
use rusqlite::Connection;
use std::path::Path;
use std::process::Command;

fn heapdb(args: &[&str]) -> std::process::Output {
    Command::new(common::heapdb_bin())
        .args(args)
        .output()
        .unwrap()
}

fn q(c: &Connection, sql: &str) -> i64 {
    c.query_row(sql, [], |r| r.get::<_, Option<i64>>(0))
        .unwrap()
        .unwrap_or(0)
}

fn synth(dir: &Path, opts: Options) -> Manifest {
    generate(dir, &opts).unwrap()
}

#[test]
fn tables_match_the_manifest() {
    let d = tempfile::tempdir().unwrap();
    let caps = d.path().join("caps");
    let m = synth(
        &caps,
        Options {
            files: 2,
            events_per_file: 30_000,
            pointer_mode: PointerMode::Mixed,
            stacks: StackMode::Plain,
            processes: 5,
            seed: 21,
            ..Options::default()
        },
    );
    let db = d.path().join("heap.db");
    let out = heapdb(&[
        "ingest",
        "--quiet",
        "--db",
        db.to_str().unwrap(),
        caps.to_str().unwrap(),
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let c = Connection::open(&db).unwrap();
    assert_eq!(
        q(
            &c,
            "SELECT count(*) FROM captures WHERE status = 'complete'"
        ),
        2
    );
    for (i, f) in m.files.iter().enumerate() {
        let cid = q(
            &c,
            &format!("SELECT capture_id FROM captures WHERE path = '{}'", f.path),
        );
        assert_eq!(cid, i as i64 + 1, "captures in sorted order");
        let w = |sql: &str| q(&c, &sql.replace("$C", &cid.to_string()));
        let r = &f.reallocs;
        assert_eq!(
            w("SELECT count(*) FROM reallocs WHERE capture_id = $C") as u64,
            r.total
        );
        assert_eq!(
            w("SELECT count(*) FROM reallocs WHERE capture_id = $C") as u64
                + w("SELECT count(*) FROM heap_events WHERE capture_id = $C") as u64,
            f.heap_events
        );
        assert_eq!(
            w("SELECT sum(new_size) FROM reallocs WHERE capture_id = $C") as u64,
            r.sum_new_size
        );
        assert_eq!(
            w("SELECT sum(old_size) FROM reallocs WHERE capture_id = $C") as u64,
            r.sum_old_size
        );
        assert_eq!(
            w("SELECT sum(moved) FROM reallocs WHERE capture_id = $C") as u64,
            r.moved
        );
        assert_eq!(
            w("SELECT count(*) FROM reallocs WHERE capture_id = $C AND new_size > old_size") as u64,
            r.grown
        );
        assert_eq!(
            w("SELECT count(*) FROM reallocs WHERE capture_id = $C AND new_size < old_size") as u64,
            r.shrunk
        );
        assert_eq!(w("SELECT count(*) FROM reallocs WHERE capture_id = $C AND alloc_id IS NOT NULL AND free_id IS NOT NULL") as u64, r.with_internal_alloc_free);
        assert_eq!(w("SELECT count(*) FROM heap_events WHERE capture_id = $C AND realloc_internal = 1 AND opcode = 33") as u64, f.internal_allocs);
        assert_eq!(w("SELECT count(*) FROM heap_events WHERE capture_id = $C AND realloc_internal = 1 AND opcode = 36") as u64, f.internal_frees);
        assert_eq!(
            w("SELECT count(*) FROM heap_events WHERE capture_id = $C AND opcode = 33") as u64,
            f.alloc_count
        );
        assert_eq!(
            w("SELECT sum(size) FROM heap_events WHERE capture_id = $C AND opcode = 33") as u64,
            f.alloc_bytes
        );
        assert_eq!(
            w("SELECT count(*) FROM heap_events WHERE capture_id = $C AND opcode = 36") as u64,
            f.free_count
        );
        assert_eq!(
            w("SELECT count(*) FROM reallocs WHERE capture_id = $C AND pointer_size = 4") as u64
                + w("SELECT count(*) FROM heap_events WHERE capture_id = $C AND pointer_size = 4")
                    as u64,
            f.records_32bit
        );
        assert_eq!(w("SELECT count(*) FROM reallocs WHERE capture_id = $C AND stack_id IS NOT NULL") as u64 + w("SELECT count(*) FROM heap_events WHERE capture_id = $C AND stack_id IS NOT NULL") as u64, f.events_with_stack);
        for (name, n) in &r.by_source {
            let got = w(&format!(
                "SELECT count(*) FROM reallocs_v WHERE capture_id = $C AND source = '{name}'"
            ));
            assert_eq!(got as u64, *n, "source {name}");
        }
        for p in &f.processes {
            assert_eq!(
                w(&format!(
                    "SELECT count(*) FROM reallocs WHERE capture_id = $C AND pid = {}",
                    p.pid
                )) as u64,
                p.reallocs
            );
            let name: String = c
                .query_row(
                    &format!(
                        "SELECT name FROM process_names WHERE capture_id = {cid} AND pid = {}",
                        p.pid
                    ),
                    [],
                    |r| r.get(0),
                )
                .unwrap();
            assert_eq!(name, p.name);
        }
        for h in &f.heaps {
            let k = format!(
                "capture_id = $C AND pid = {} AND heap = {}",
                h.pid, h.handle
            );
            assert_eq!(
                w(&format!("SELECT count(*) FROM reallocs WHERE {k}")) as u64,
                h.reallocs,
                "heap {:#x}",
                h.handle
            );
            assert_eq!(
                w(&format!(
                    "SELECT count(*) FROM heap_events WHERE {k} AND opcode = 33"
                )) as u64,
                h.allocs
            );
            assert_eq!(
                w(&format!(
                    "SELECT count(*) FROM heap_events WHERE {k} AND opcode = 36"
                )) as u64,
                h.frees
            );
            assert_eq!(
                w(&format!(
                    "SELECT coalesce(sum(new_size), 0) FROM reallocs WHERE {k}"
                )) as u64,
                h.realloc_new_bytes
            );
            assert_eq!(
                w(&format!(
                    "SELECT count(*) FROM heap_events WHERE {k} AND opcode = 32"
                )) as u64,
                h.created as u64
            );
            assert_eq!(
                w(&format!(
                    "SELECT count(*) FROM heap_events WHERE {k} AND opcode = 35"
                )) as u64,
                h.destroyed as u64
            );
        }
        assert_eq!(
            w("SELECT events_decoded FROM captures WHERE capture_id = $C") as u64,
            f.heap_events
        );
        assert_eq!(
            w("SELECT events_seen FROM captures WHERE capture_id = $C") as u64,
            f.events
        );
        assert_eq!(
            w("SELECT events_bad FROM captures WHERE capture_id = $C"),
            0
        );
        assert_eq!(
            w("SELECT count(*) FROM images WHERE capture_id = $C AND pdb_guid IS NOT NULL")
                as usize,
            // exe, ntdll, kernelbase, ucrtbase and heapdemo.dll in every process.
            5 * f.processes.len()
        );
    }
    // Stacks are deduplicated across captures and their frames stored.
    let distinct = q(&c, "SELECT count(DISTINCT stack_id) FROM (SELECT stack_id FROM reallocs UNION ALL SELECT stack_id FROM heap_events) WHERE stack_id IS NOT NULL");
    assert_eq!(q(&c, "SELECT count(*) FROM stacks"), distinct);
    assert_eq!(q(&c, "SELECT count(*) FROM stacks s WHERE depth <> (SELECT count(*) FROM stack_frames f WHERE f.stack_id = s.stack_id)"), 0);
    // Views show hex addresses and names.
    let hex: String = c
        .query_row(
            "SELECT new_address_hex FROM reallocs_v ORDER BY id LIMIT 1",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(hex.starts_with("0x"));
    // Every index of the schema exists after the load.
    assert_eq!(
        q(
            &c,
            "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name LIKE 'reallocs_by_%'"
        ),
        6
    );
    // Moving reallocs point at their internal Alloc and Free.
    assert_eq!(
        q(&c, "SELECT count(*) FROM reallocs r JOIN heap_events a ON a.id = r.alloc_id JOIN heap_events f ON f.id = r.free_id WHERE a.address = r.new_address AND f.address = r.old_address AND a.opcode = 33 AND f.opcode = 36"),
        q(&c, "SELECT count(*) FROM reallocs WHERE alloc_id IS NOT NULL")
    );
}

use common::canonical;

#[test]
fn second_run_adds_nothing_and_copies_are_skipped() {
    let d = tempfile::tempdir().unwrap();
    let caps = d.path().join("caps");
    synth(
        &caps,
        Options {
            files: 2,
            events_per_file: 5_000,
            seed: 4,
            ..Options::default()
        },
    );
    let db = d.path().join("heap.db");
    let dbs = db.to_str().unwrap();
    assert_eq!(
        heapdb(&["ingest", "--quiet", "--db", dbs, caps.to_str().unwrap()])
            .status
            .code(),
        Some(0)
    );
    let before = canonical(&db);
    // Same files again, plus one of them copied under another name.
    let copy = d.path().join("renamed.etl");
    std::fs::copy(&etl_files(&caps)[0], &copy).unwrap();
    let out = heapdb(&[
        "ingest",
        "--db",
        dbs,
        caps.to_str().unwrap(),
        copy.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("renamed.etl: already ingested as capture 1"),
        "{err}"
    );
    assert!(
        err.contains("0 ingested, 3 already in the database"),
        "{err}"
    );
    assert_eq!(canonical(&db), before, "a second run changes nothing");
}

#[test]
fn resume_after_kill_gives_the_same_database() {
    let d = tempfile::tempdir().unwrap();
    let caps = d.path().join("caps");
    synth(
        &caps,
        Options {
            files: 6,
            events_per_file: 150_000,
            stacks: StackMode::Plain,
            seed: 8,
            ..Options::default()
        },
    );
    // Reference: one uninterrupted run.
    let reference = d.path().join("reference.db");
    assert_eq!(
        heapdb(&[
            "ingest",
            "--quiet",
            "--db",
            reference.to_str().unwrap(),
            caps.to_str().unwrap()
        ])
        .status
        .code(),
        Some(0)
    );
    let want = canonical(&reference);
    // Killed twice at different points, then finished.
    let db = d.path().join("killed.db");
    for wait_for in [1, 3] {
        let mut child = Command::new(common::heapdb_bin())
            .args([
                "ingest",
                "--quiet",
                "--db",
                db.to_str().unwrap(),
                caps.to_str().unwrap(),
            ])
            .spawn()
            .unwrap();
        // Kill as soon as `wait_for` captures are committed (a reader polls, read-only).
        let t = std::time::Instant::now();
        loop {
            std::thread::sleep(std::time::Duration::from_millis(5));
            let committed =
                Connection::open_with_flags(&db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
                    .ok()
                    .and_then(|c| {
                        c.query_row("SELECT count(*) FROM captures", [], |r| r.get::<_, i64>(0))
                            .ok()
                    })
                    .unwrap_or(0);
            if committed >= wait_for || t.elapsed().as_secs() > 60 {
                break;
            }
            if let Ok(Some(_)) = child.try_wait() {
                break;
            }
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let c = Connection::open(&db).unwrap();
        let n = q(&c, "SELECT count(*) FROM captures");
        assert!(
            n >= wait_for && n < 6,
            "killed mid-batch ({n} captures committed)"
        );
        assert_eq!(
            q(
                &c,
                "SELECT count(*) FROM captures WHERE status NOT LIKE 'complete%'"
            ),
            0,
            "no half capture"
        );
        assert_eq!(q(&c, "SELECT count(*) FROM reallocs WHERE capture_id NOT IN (SELECT capture_id FROM captures)"), 0);
    }
    let out = heapdb(&[
        "ingest",
        "--db",
        db.to_str().unwrap(),
        caps.to_str().unwrap(),
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        canonical(&db),
        want,
        "resumed database equals the uninterrupted one"
    );
}

#[test]
fn bad_files_in_the_middle_of_a_batch() {
    let d = tempfile::tempdir().unwrap();
    let caps = d.path().join("caps");
    let m = synth(
        &caps,
        Options {
            files: 2,
            events_per_file: 20_000,
            cpus: 2,
            seed: 5,
            ..Options::default()
        },
    );
    let files = etl_files(&caps);
    // b-truncated.etl: the second capture cut in the middle of a buffer; c-empty.etl;
    // d-notetl.etl: text.
    let whole = std::fs::read(&files[1]).unwrap();
    let cut = 5 * 65536 + 1234;
    std::fs::write(caps.join("b-truncated.etl"), &whole[..cut]).unwrap();
    std::fs::write(caps.join("c-empty.etl"), b"").unwrap();
    std::fs::write(
        caps.join("d-notetl.etl"),
        b"this is not a trace\n".repeat(100),
    )
    .unwrap();
    let db = d.path().join("heap.db");
    let out = heapdb(&[
        "ingest",
        "--db",
        db.to_str().unwrap(),
        caps.to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(1),
        "exit 1 = done with errors: {err}"
    );
    assert!(
        err.contains("c-empty.etl: byte offset 0: empty file"),
        "{err}"
    );
    assert!(
        err.contains("d-notetl.etl: byte offset 0: not an ETL file"),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "b-truncated.etl: byte offset {}: truncated",
            5 * 65536
        )),
        "{err}"
    );
    let c = Connection::open(&db).unwrap();
    // Both good captures and the readable part of the truncated one are in.
    assert_eq!(
        q(
            &c,
            "SELECT count(*) FROM captures WHERE status = 'complete'"
        ),
        2
    );
    assert_eq!(q(&c, "SELECT count(*) FROM captures WHERE status = 'complete_with_errors' AND file_name = 'b-truncated.etl'"), 1);
    let good: u64 = m.files.iter().map(|f| f.reallocs.total).sum();
    assert!(
        q(&c, "SELECT count(*) FROM reallocs") as u64 > good,
        "truncated capture's complete buffers kept"
    );
    assert_eq!(q(&c, &format!("SELECT count(*) FROM ingest_errors WHERE path LIKE '%b-truncated.etl' AND byte_offset = {}", 5 * 65536)), 1);
    assert_eq!(q(&c, "SELECT count(*) FROM ingest_errors WHERE capture_id IS NULL AND byte_offset = 0 AND path LIKE '%c-empty.etl'"), 1);
    assert_eq!(q(&c, "SELECT count(*) FROM ingest_errors WHERE capture_id IS NULL AND path LIKE '%d-notetl.etl'"), 1);
    // Idempotent with bad files too: a rerun adds no error rows.
    let n = q(&c, "SELECT count(*) FROM ingest_errors");
    assert_eq!(
        heapdb(&[
            "ingest",
            "--quiet",
            "--db",
            db.to_str().unwrap(),
            caps.to_str().unwrap()
        ])
        .status
        .code(),
        Some(1)
    );
    assert_eq!(q(&c, "SELECT count(*) FROM ingest_errors"), n);
}

#[test]
fn strict_stops_at_the_first_bad_file() {
    let d = tempfile::tempdir().unwrap();
    let caps = d.path().join("caps");
    synth(
        &caps,
        Options {
            files: 2,
            events_per_file: 3_000,
            seed: 6,
            ..Options::default()
        },
    );
    std::fs::write(caps.join("a-bad.etl"), b"garbage").unwrap(); // sorts first
    let db = d.path().join("heap.db");
    let out = heapdb(&[
        "ingest",
        "--strict",
        "--db",
        db.to_str().unwrap(),
        caps.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("stopped early"));
    let c = Connection::open(&db).unwrap();
    assert_eq!(q(&c, "SELECT count(*) FROM captures"), 0);
}

/// A capture with bad records in the middle of a batch, with --strict: the captures
/// before it are stored, it and those after it are not, the bad file is named and the
/// exit code says bad input. (The decoding threads decode several files at once: a bad
/// file decoded early stopped the batch before the loader stored the good ones before
/// it, named nothing and exited 0.)
#[test]
fn strict_stores_what_comes_before_a_bad_capture_and_says_so() {
    let d = tempfile::tempdir().unwrap();
    let caps = d.path().join("caps");
    synth(
        &caps,
        Options {
            files: 3,
            events_per_file: 5_000,
            seed: 6,
            ..Options::default()
        },
    );
    let mut files: Vec<_> = std::fs::read_dir(&caps)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "etl"))
        .collect();
    files.sort();
    let bad = &files[1];
    let full = std::fs::read(bad).unwrap();
    std::fs::write(bad, &full[..full.len() / 2 + 100]).unwrap();
    for round in 0..3 {
        let db = d.path().join(format!("heap{round}.db"));
        let out = heapdb(&[
            "ingest",
            "--strict",
            "--db",
            db.to_str().unwrap(),
            caps.to_str().unwrap(),
        ]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(err.contains("stopped early"), "{err}");
        assert!(
            err.contains(&format!(
                "{}: bad records; --strict: capture not committed, stopping",
                bad.display()
            )),
            "{err}"
        );
        let c = Connection::open(&db).unwrap();
        let stored: Vec<String> = c
            .prepare("SELECT path FROM captures ORDER BY capture_id")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(|r| r.unwrap())
            .collect();
        assert_eq!(stored, vec![files[0].display().to_string()], "{err}");
    }
}

#[test]
fn readers_are_not_blocked_during_an_ingest() {
    let d = tempfile::tempdir().unwrap();
    let caps = d.path().join("caps");
    let m = synth(
        &caps,
        Options {
            files: 4,
            events_per_file: 120_000,
            seed: 9,
            ..Options::default()
        },
    );
    let db = d.path().join("heap.db");
    // Create the database first so the reader can open it.
    assert_eq!(
        heapdb(&[
            "ingest",
            "--quiet",
            "--db",
            db.to_str().unwrap(),
            etl_files(&caps)[0].to_str().unwrap()
        ])
        .status
        .code(),
        Some(0)
    );
    let mut child = Command::new(common::heapdb_bin())
        .args([
            "ingest",
            "--quiet",
            "--db",
            db.to_str().unwrap(),
            caps.to_str().unwrap(),
        ])
        .spawn()
        .unwrap();
    let reader =
        Connection::open_with_flags(&db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    reader
        .busy_timeout(std::time::Duration::from_millis(0))
        .unwrap(); // fail instead of waiting
    let per_capture: Vec<u64> = m.files.iter().map(|f| f.reallocs.total).collect();
    let mut queries = 0;
    while child.try_wait().unwrap().is_none() {
        // Each snapshot shows whole captures only.
        let (caps_n, reallocs): (i64, i64) = reader
            .query_row(
                "SELECT (SELECT count(*) FROM captures), (SELECT count(*) FROM reallocs)",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .expect("a reader is never blocked by the ingest");
        let want: u64 = per_capture[..caps_n as usize].iter().sum();
        assert_eq!(reallocs as u64, want, "reader sees {caps_n} whole captures");
        queries += 1;
    }
    assert!(child.wait().unwrap().success());
    assert!(
        queries > 3,
        "the reader ran during the ingest ({queries} queries)"
    );
}

#[test]
fn database_failure_is_exit_code_3() {
    let d = tempfile::tempdir().unwrap();
    let caps = d.path().join("caps");
    synth(
        &caps,
        Options {
            files: 1,
            events_per_file: 100,
            ..Options::default()
        },
    );
    // The database path is a directory.
    let out = heapdb(&[
        "ingest",
        "--db",
        d.path().to_str().unwrap(),
        caps.to_str().unwrap(),
    ]);
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A foreign SQLite database is refused, not modified.
    let foreign = d.path().join("foreign.db");
    Connection::open(&foreign)
        .unwrap()
        .execute_batch("CREATE TABLE mine (x); INSERT INTO mine VALUES (1);")
        .unwrap();
    let out = heapdb(&[
        "ingest",
        "--db",
        foreign.to_str().unwrap(),
        caps.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a heapdb database"));
}
