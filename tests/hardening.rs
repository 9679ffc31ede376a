//! Faults found by attacking heapdb as a hostile user and a hostile night would (the
//! hardening issue). Each test reproduces one fault through the command line and
//! asserts the behaviour users rely on: a clear message naming the thing, the exit code
//! scripts check, the rest of the batch going on, and a consistent database.

mod common;

use common::{content_by_fingerprint as content, q, run, s, stderr, stdout, synth};
use rusqlite::Connection;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

fn heapdb() -> Command {
    Command::new(common::heapdb_bin())
}

/// Waits for `child` at most `secs`; kills it (and returns None) when it takes longer:
/// a hang is a failure, never a stuck test run.
fn wait_or_kill(mut child: Child, secs: u64) -> Option<Output> {
    let t = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            return Some(child.wait_with_output().unwrap());
        }
        if t.elapsed() > Duration::from_secs(secs) {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn run_with_timeout(args: &[&str], secs: u64) -> Option<Output> {
    let child = heapdb()
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_or_kill(child, secs)
}

/// A small ingested database for the query tests.
fn small_db(dir: &Path) -> PathBuf {
    let caps = synth(
        &dir.join("caps"),
        &["--events-per-file", "2000", "--seed", "3"],
    );
    let db = dir.join("heap.db");
    let o = run(&["ingest", "--quiet", "--db", s(&db), s(&caps[0])]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    db
}

// ---------------------------------------------------------------------------------
// Crashes and hangs

/// A capture that shrinks while heapdb reads it (a nightly copy still in progress, a
/// rotated file) used to kill heapdb with SIGBUS (exit 135, no message).
#[test]
fn a_file_that_shrinks_while_read_is_an_error_for_that_file_only() {
    let d = tempfile::tempdir().unwrap();
    let big_dir = d.path().join("big");
    let big = synth(
        &big_dir,
        &["--events-per-file", "4000000", "--seed", "5", "--cpus", "2"],
    )
    .remove(0);
    let small = synth(&d.path().join("small"), &["--events-per-file", "3000"]).remove(0);
    for cmd in ["ingest", "dump"] {
        let victim = d.path().join(format!("victim-{cmd}.etl"));
        std::fs::copy(&big, &victim).unwrap();
        let db = d.path().join(format!("{cmd}.db"));
        let args: Vec<&str> = if cmd == "ingest" {
            vec![
                "ingest",
                "--quiet",
                "--jobs",
                "1",
                "--db",
                s(&db),
                s(&victim),
                s(&small),
            ]
        } else {
            vec!["dump", s(&victim), s(&small)]
        };
        let child = heapdb()
            .args(&args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(600));
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(&victim)
            .unwrap();
        f.set_len(10 << 20).unwrap();
        drop(f);
        let out = wait_or_kill(child, 120).expect("heapdb finished");
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{cmd}: {err}");
        assert!(
            err.contains(&format!("victim-{cmd}.etl")) && err.contains("offset"),
            "{cmd}: the message names the file and the offset: {err}"
        );
        if cmd == "ingest" {
            // The rest of the batch went on; the shrunken capture is not half there.
            assert_eq!(
                q(
                    &db,
                    "SELECT count(*) FROM captures WHERE file_name = 'synth-0000-seed1.etl'"
                ),
                1,
                "{err}"
            );
            assert_eq!(
                q(&db, "SELECT count(*) FROM reallocs WHERE capture_id NOT IN (SELECT capture_id FROM captures)"),
                0
            );
        }
    }
}

/// Two symbolic links to their own directory made discovery recurse forever.
#[cfg(unix)]
#[test]
fn symlink_loops_are_followed_once_and_reported() {
    let d = tempfile::tempdir().unwrap();
    let caps = d.path().join("caps");
    let files = synth(&caps, &["--events-per-file", "1000"]);
    std::os::unix::fs::symlink(&caps, caps.join("self-a")).unwrap();
    std::os::unix::fs::symlink(&caps, caps.join("self-b")).unwrap();
    // The same file reached twice is read once.
    std::os::unix::fs::symlink(&files[0], caps.join("again.etl")).unwrap();
    let db = d.path().join("heap.db");
    let out = run_with_timeout(&["ingest", "--db", s(&db), s(&caps)], 60)
        .expect("discovery ends despite the loops");
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert_eq!(
        err.matches("loop").count(),
        1,
        "the loop is reported once: {err}"
    );
    assert!(err.contains("1 file(s): 1 ingested"), "{err}");
    assert_eq!(q(&db, "SELECT count(*) FROM captures"), 1);
}

/// A FIFO (or any non-regular file) named on the command line blocked forever.
#[cfg(unix)]
#[test]
fn non_regular_files_are_refused_not_waited_on() {
    let d = tempfile::tempdir().unwrap();
    let fifo = d.path().join("pipe.etl");
    let st = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(st.success());
    let db = d.path().join("heap.db");
    for args in [
        vec!["ingest", "--db", s(&db), s(&fifo)],
        vec!["dump", s(&fifo)],
        vec!["dump", "--summary", s(&fifo)],
    ] {
        let out = run_with_timeout(&args, 30).unwrap_or_else(|| panic!("{args:?} hung"));
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert!(
            err.contains("pipe.etl") && err.contains("not a regular file"),
            "{args:?}: {err}"
        );
    }
    // Inside a directory it is skipped, and the summary line says so.
    let caps = d.path().join("caps");
    synth(&caps, &["--events-per-file", "500"]);
    let st = Command::new("mkfifo")
        .arg(caps.join("fifo.etl"))
        .status()
        .unwrap();
    assert!(st.success());
    let out = run_with_timeout(&["ingest", "--db", s(&db), s(&caps)], 30).expect("no hang");
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(
        err.contains("1 skipped (not a regular file)"),
        "summary names what was skipped: {err}"
    );
}

/// `--timeout -1`, `inf` and `nan` panicked (exit 101).
#[test]
fn bad_timeouts_are_usage_errors() {
    let d = tempfile::tempdir().unwrap();
    let db = small_db(d.path());
    for t in ["-1", "inf", "nan", "0", "abc", "1e400"] {
        let out = run(&["query", "--db", s(&db), "--timeout", t, "--sql", "SELECT 1"]);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "--timeout {t}: {err}");
        assert!(err.contains("timeout"), "--timeout {t}: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
    let out = run(&[
        "query",
        "--db",
        s(&db),
        "--timeout",
        "2.5",
        "--sql",
        "SELECT 1",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

/// `query --file /dev/zero` read without bound (11 GB in 30 s).
#[test]
fn sql_files_must_be_regular_and_bounded() {
    let d = tempfile::tempdir().unwrap();
    let db = small_db(d.path());
    let out = run_with_timeout(&["query", "--db", s(&db), "--file", "/dev/zero"], 30)
        .expect("/dev/zero is refused, not read");
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("/dev/zero"), "{}", stderr(&out));
    // Over 16 MiB: refused with the limit in the message, from a file and from stdin.
    let big = d.path().join("big.sql");
    let mut text = String::from("SELECT 1;\n");
    while text.len() <= 16 << 20 {
        text.push_str("-- padding padding padding padding padding padding padding\n");
    }
    std::fs::write(&big, &text).unwrap();
    let out = run(&["query", "--db", s(&db), "--file", s(&big)]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("16 MiB"), "{}", stderr(&out));
    let mut child = heapdb()
        .args(["query", "--db", s(&db), "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let feeder = std::thread::spawn(move || {
        let _ = stdin.write_all(text.as_bytes());
    });
    let out = wait_or_kill(child, 30).expect("no hang");
    let _ = feeder.join();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("16 MiB"), "{}", stderr(&out));
}

/// Peak resident memory of a running process, in KiB (Linux).
#[cfg(target_os = "linux")]
fn vm_hwm_kib(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// `--format table` and `markdown` held the whole result in memory before printing the
/// first line (10 M rows: 3.9 GB).
#[cfg(target_os = "linux")]
#[test]
fn table_and_markdown_stream_with_flat_memory() {
    use std::io::Read;
    let d = tempfile::tempdir().unwrap();
    let db = small_db(d.path());
    let sql = "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 3000000) \
               SELECT i, 'a fairly long text value number ' || i AS label, i * 16 AS heap FROM n";
    for format in ["table", "markdown"] {
        let mut child = heapdb()
            .args(["query", "--db", s(&db), "--format", format, "--sql", sql])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut out = child.stdout.take().unwrap();
        let mut first = vec![0u8; 4096];
        let mut got = 0;
        while got < 2048 {
            let n = out.read(&mut first[got..]).unwrap();
            assert!(n > 0, "{format}: output ended early");
            got += n;
        }
        // The first lines are out while the query is still producing rows: memory
        // must not have grown with the 3 M rows.
        let hwm = vm_hwm_kib(child.id()).unwrap_or(0);
        let _ = child.kill();
        let _ = child.wait();
        let text = String::from_utf8_lossy(&first[..got]);
        assert!(text.contains("label"), "{format}: {text}");
        assert!(
            hwm < 200 * 1024,
            "{format}: {hwm} KiB resident before the first lines came out"
        );
    }
}

// ---------------------------------------------------------------------------------
// Concurrency and signals

/// Two `heapdb ingest` on one database: the loser exited 3 ("UNIQUE constraint failed").
#[test]
fn two_ingests_on_one_database_both_succeed() {
    let d = tempfile::tempdir().unwrap();
    let caps = synth(
        &d.path().join("caps"),
        &[
            "--files",
            "6",
            "--events-per-file",
            "40000",
            "--stacks",
            "--seed",
            "12",
        ],
    );
    let reference = d.path().join("reference.db");
    let mut args = vec!["ingest", "--quiet", "--db", s(&reference)];
    args.extend(caps.iter().map(|p| s(p)));
    assert_eq!(run(&args).status.code(), Some(0));
    let want = content(&reference);

    // Same inputs at once, then different inputs at once.
    let (a, b): (Vec<&PathBuf>, Vec<&PathBuf>) = caps.iter().partition(|p| {
        let n = p.file_name().unwrap().to_string_lossy().into_owned();
        n.contains("0000") || n.contains("0002") || n.contains("0004")
    });
    let all: Vec<&PathBuf> = caps.iter().collect();
    for (case, left, right) in [("same", &all, &all), ("different", &a, &b)] {
        let db = d.path().join(format!("{case}.db"));
        let spawn = |files: &Vec<&PathBuf>| {
            let mut args = vec!["ingest".to_string(), "--db".into(), s(&db).into()];
            args.extend(files.iter().map(|p| s(p).to_string()));
            heapdb()
                .args(&args)
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        };
        let (c1, c2) = (spawn(left), spawn(right));
        let o1 = wait_or_kill(c1, 300).expect("first ingest finished");
        let o2 = wait_or_kill(c2, 300).expect("second ingest finished");
        assert_eq!(o1.status.code(), Some(0), "{case}: {}", stderr(&o1));
        assert_eq!(o2.status.code(), Some(0), "{case}: {}", stderr(&o2));
        assert_eq!(content(&db), want, "{case}: equal to one sequential run");
        assert_eq!(
            q(&db, "SELECT count(*) FROM pragma_index_list('reallocs')"),
            q(
                &reference,
                "SELECT count(*) FROM pragma_index_list('reallocs')"
            ),
            "{case}: every index is there"
        );
    }
}

#[cfg(unix)]
fn signal(pid: u32, sig: &str) {
    let st = Command::new("kill")
        .args([format!("-{sig}"), pid.to_string()])
        .status()
        .unwrap();
    assert!(st.success());
}

/// SIGINT / SIGTERM during an ingest exited 130/143 without a word, and during the
/// index rebuild left the database with some of its indexes.
#[cfg(unix)]
#[test]
fn interrupted_ingest_rolls_back_the_capture_and_keeps_the_indexes() {
    let d = tempfile::tempdir().unwrap();
    let caps = synth(
        &d.path().join("caps"),
        &[
            "--files",
            "3",
            "--events-per-file",
            "600000",
            "--seed",
            "31",
        ],
    );
    let reference = d.path().join("reference.db");
    let mut args = vec!["ingest", "--quiet", "--db", s(&reference)];
    args.extend(caps.iter().map(|p| s(p)));
    assert_eq!(run(&args).status.code(), Some(0));
    let indexes = q(
        &reference,
        "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL",
    );
    for (sig, delay_ms) in [("INT", 700u64), ("TERM", 1500)] {
        let db = d.path().join(format!("{sig}.db"));
        let mut args = vec!["ingest".to_string(), "--db".into(), s(&db).into()];
        args.extend(caps.iter().map(|p| s(p).to_string()));
        let child = heapdb()
            .args(&args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        signal(child.id(), sig);
        let out = wait_or_kill(child, 120).expect("stops after the signal");
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(4), "SIG{sig}: {err}");
        assert!(err.contains("interrupted"), "SIG{sig}: {err}");
        let kept = q(&db, "SELECT count(*) FROM captures");
        assert!(
            err.contains(&format!("{kept} capture(s) committed")),
            "SIG{sig} says what was kept ({kept}): {err}"
        );
        assert_eq!(
            q(
                &db,
                "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL"
            ),
            indexes,
            "SIG{sig}: the indexes were restored"
        );
        assert_eq!(
            q(&db, "SELECT count(*) FROM reallocs WHERE capture_id NOT IN (SELECT capture_id FROM captures)"),
            0,
            "SIG{sig}: the capture in progress was rolled back"
        );
    }
}

/// A database left without some of its indexes (kill -9 or a full disk during the
/// rebuild) makes `heapdb query` warn once, and `heapdb repair` restores them.
#[test]
fn missing_indexes_are_reported_and_repaired() {
    let d = tempfile::tempdir().unwrap();
    let db = small_db(d.path());
    let all = q(
        &db,
        "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL",
    );
    Connection::open(&db)
        .unwrap()
        .execute_batch("DROP INDEX reallocs_by_heap; DROP INDEX heap_events_by_address;")
        .unwrap();
    let out = run(&[
        "query",
        "--db",
        s(&db),
        "--sql",
        "SELECT count(*) FROM reallocs",
    ]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert_eq!(err.matches("missing").count(), 1, "warned once: {err}");
    assert!(
        err.contains("heapdb repair --db"),
        "says how to fix it: {err}"
    );
    let out = run(&["repair", "--db", s(&db)]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        q(
            &db,
            "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL"
        ),
        all
    );
    let out = run(&["query", "--db", s(&db), "--sql", "SELECT 1"]);
    assert!(!stderr(&out).contains("missing"), "{}", stderr(&out));
}

// ---------------------------------------------------------------------------------
// Read-only must mean read-only, and work everywhere

/// Ad hoc SQL could write files (`VACUUM INTO`) or read other databases (`ATTACH`).
#[test]
fn ad_hoc_sql_cannot_write_or_reach_other_files() {
    let d = tempfile::tempdir().unwrap();
    let db = small_db(d.path());
    let copy = d.path().join("copy.db");
    let other = d.path().join("other.db");
    Connection::open(&other)
        .unwrap()
        .execute_batch("CREATE TABLE secret (x); INSERT INTO secret VALUES (42);")
        .unwrap();
    let denied = [
        format!("VACUUM INTO '{}'", s(&copy)),
        "VACUUM".to_string(),
        format!("ATTACH '{}' AS o", s(&other)),
        format!("ATTACH '{}' AS o; SELECT * FROM o.secret", s(&other)),
        "CREATE TABLE main.t (x)".to_string(),
        "CREATE VIEW v AS SELECT 1".to_string(),
        "INSERT INTO sources VALUES (9, 'x', 'y')".to_string(),
        "UPDATE captures SET path = 'x'".to_string(),
        "DELETE FROM reallocs".to_string(),
        "DROP TABLE reallocs".to_string(),
        "ALTER TABLE captures ADD COLUMN x".to_string(),
        "PRAGMA user_version = 7".to_string(),
        "PRAGMA journal_mode = DELETE".to_string(),
        "REINDEX".to_string(),
        "ANALYZE".to_string(),
        "SELECT load_extension('/tmp/x.so')".to_string(),
    ];
    let before = std::fs::read(&db).unwrap();
    for sql in &denied {
        let out = run(&["query", "--db", s(&db), "--sql", sql]);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(3), "{sql}: {err}");
        assert!(
            err.contains("not allowed")
                || err.contains("not authorized")
                || err.contains("read-only")
                || err.contains("readonly"),
            "{sql}: {err}"
        );
    }
    assert!(!copy.exists(), "VACUUM INTO wrote a copy");
    assert_eq!(
        std::fs::read(&db).unwrap(),
        before,
        "the database is untouched"
    );
    // What analysts need still works: TEMP objects, reads, functions, table_info.
    let out = run(&[
        "query",
        "--db",
        s(&db),
        "--format",
        "csv",
        "--sql",
        "CREATE TEMP TABLE t AS SELECT source, count(*) AS n FROM reallocs GROUP BY source; \
         CREATE INDEX temp.t_n ON t (n); \
         SELECT count(*) > 0 AS ok, max(length(printf('%x', 255))) AS w FROM t; \
         SELECT count(*) AS cols FROM pragma_table_info('reallocs'); \
         PRAGMA table_info(captures); DROP TABLE temp.t",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains("ok,w\n1,2\n"), "{}", stdout(&out));
}

/// A database in a read-only directory (a shared archive, a mounted snapshot) could not
/// be queried: WAL needs its -shm file.
#[cfg(unix)]
#[test]
fn a_database_in_a_read_only_directory_can_be_queried() {
    use std::os::unix::fs::PermissionsExt;
    let d = tempfile::tempdir().unwrap();
    let db = small_db(d.path());
    let archive = d.path().join("archive");
    std::fs::create_dir(&archive).unwrap();
    let ro = archive.join("heap.db");
    std::fs::copy(&db, &ro).unwrap();
    std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o444)).unwrap();
    std::fs::set_permissions(&archive, std::fs::Permissions::from_mode(0o555)).unwrap();
    std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut cmd = heapdb_as_ordinary_user(d.path());
    cmd.args([
        "query",
        "--db",
        s(&ro),
        "--format",
        "csv",
        "--sql",
        "SELECT count(*) AS n FROM reallocs",
    ]);
    let out = cmd.output().unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    let want = q(&db, "SELECT count(*) FROM reallocs");
    assert_eq!(stdout(&out), format!("n\n{want}\n"), "{err}");
    assert!(!archive.join("heap.db-shm").exists());
}

/// Root ignores file and directory permissions: tests of permission faults run heapdb
/// as `nobody` when they run as root.
#[cfg(unix)]
/// heapdb as an ordinary user: when the tests run as root, as nobody (uid 65534), from a
/// copy of the binary in `dir` (world-readable), since nobody may not be able to reach the
/// build directory (a checkout in a 0700 directory such as `mktemp -d`'s).
fn heapdb_as_ordinary_user(dir: &Path) -> Command {
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::CommandExt;
    let root = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false);
    if !root {
        return heapdb();
    }
    let bin = dir.join("heapdb-as-nobody");
    if !bin.exists() {
        std::fs::copy(common::heapdb_bin(), &bin).unwrap();
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let mut cmd = Command::new(bin);
    cmd.uid(65534).gid(65534);
    cmd
}

// ---------------------------------------------------------------------------------
// Messages that name the thing

#[test]
fn database_errors_name_the_database() {
    let d = tempfile::tempdir().unwrap();
    let junk = d.path().join("junk.db");
    std::fs::write(&junk, vec![0x5au8; 8192]).unwrap();
    let out = run(&["query", "--db", s(&junk), "--sql", "SELECT 1"]);
    assert_eq!(out.status.code(), Some(3));
    let err = stderr(&out);
    assert!(
        err.contains("junk.db") && err.contains("not a database"),
        "{err}"
    );

    let caps = synth(&d.path().join("caps"), &["--events-per-file", "100"]);
    let dir_db = d.path().join("a-directory");
    std::fs::create_dir(&dir_db).unwrap();
    for args in [
        vec!["ingest", "--db", s(&dir_db), s(&caps[0])],
        vec!["query", "--db", s(&dir_db), "--sql", "SELECT 1"],
    ] {
        let out = run(&args);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(3), "{args:?}: {err}");
        assert!(
            err.contains("a-directory") && err.contains("is a directory"),
            "{args:?}: {err}"
        );
    }
}

#[test]
fn parameter_and_sql_file_errors_say_which() {
    let d = tempfile::tempdir().unwrap();
    let db = small_db(d.path());
    let out = run(&[
        "query",
        "--db",
        s(&db),
        "top-realloc-sites",
        "--param",
        "limit=99999999999999999999",
    ]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("limit") && err.contains("out of range"),
        "{err}"
    );
    // (Not "nul.sql": NUL is a device name on Windows.)
    let nul = d.path().join("binary.sql");
    std::fs::write(&nul, b"SELECT 1;\0SELECT 2;").unwrap();
    let out = run(&["query", "--db", s(&db), "--file", s(&nul)]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("binary.sql") && err.contains("not text"),
        "{err}"
    );
}

/// An unreadable capture added one more identical `ingest_errors` row on every rerun.
#[cfg(unix)]
#[test]
fn an_unreadable_file_is_recorded_once() {
    use std::os::unix::fs::PermissionsExt;
    let d = tempfile::tempdir().unwrap();
    let caps = synth(&d.path().join("caps"), &["--events-per-file", "100"]);
    let work = d.path().join("work");
    std::fs::create_dir(&work).unwrap();
    let perm = |p: &Path, mode| std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode));
    for p in [d.path(), &work, &caps[0]] {
        perm(p, 0o777).unwrap();
    }
    perm(caps[0].parent().unwrap(), 0o777).unwrap();
    let locked = work.join("locked.etl");
    std::fs::copy(&caps[0], &locked).unwrap();
    perm(&locked, 0o000).unwrap();
    let junk = work.join("junk.etl");
    std::fs::write(&junk, b"not an etl file at all, not at all").unwrap();
    perm(&junk, 0o644).unwrap();
    let db = work.join("heap.db");
    for _ in 0..3 {
        let mut cmd = heapdb_as_ordinary_user(d.path());
        cmd.args(["ingest", "--db", s(&db), s(&caps[0]), s(&locked), s(&junk)]);
        let out = cmd.output().unwrap();
        assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
        assert!(stderr(&out).contains("locked.etl"), "{}", stderr(&out));
    }
    assert_eq!(
        q(&db, "SELECT count(*) FROM ingest_errors"),
        2,
        "one row per bad input, whatever the number of reruns"
    );
}
