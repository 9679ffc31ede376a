//! The SQLite database: opening it the way each command needs, applying the versioned
//! schema in `schema/*.sql`, the secondary indexes, and the sink that stores captures.

pub mod history;
pub mod lifetimes;
pub mod prune;
pub mod recording;
pub mod sink;
pub mod sql;
pub mod symbolize;

use crate::ingest::observe::{Phase, Progress};
use crate::ingest::sink::Context as SinkContext;
use anyhow::{bail, Context, Result};
use rusqlite::{Connection, OpenFlags, OptionalExtension};
use std::path::Path;
use std::time::Duration;

/// Version of the schema this heapdb writes (PRAGMA user_version).
pub const SCHEMA_VERSION: i32 = 4;

/// Upgrades from each older version: `MIGRATIONS[i]` takes version `i + 1` to `i + 2`.
pub const MIGRATIONS: &[&str] = &[
    include_str!("../../schema/migrations/002.sql"),
    include_str!("../../schema/migrations/003.sql"),
    include_str!("../../schema/migrations/004.sql"),
];

pub const TABLES_SQL: &str = include_str!("../../schema/001_tables.sql");
pub const INDEXES_SQL: &str = include_str!("../../schema/002_indexes.sql");
pub const VIEWS_SQL: &str = include_str!("../../schema/003_views.sql");

/// Refuses paths that cannot be a database file, with a message naming them.
fn check_path(path: &Path) -> Result<()> {
    if path.is_dir() {
        bail!("{}: is a directory, not a database file", path.display());
    }
    Ok(())
}

/// Makes SQLite's float arithmetic (`round()`, text to float) the same on every thread.
///
/// Windows with the GNU toolchain only: there `long double` is the 80-bit x87 type, and
/// SQLite uses it when a test at initialization finds it more precise than double. But
/// Windows starts every thread except the main one with the x87 precision at 53 bits
/// (mingw's startup gives the main thread 64), so the same `round(x, 3)` gave 7.224 on
/// `heapdb report`'s worker threads and 7.223 in `heapdb query` (found by
/// tests/report_html.rs under Wine). Turning long double off gives SQLite's double-double
/// arithmetic everywhere, as in MSVC builds (whose long double is double). Elsewhere a
/// no-op. Called before any connection is opened; idempotent.
pub fn same_floats_on_every_thread() {
    #[cfg(all(windows, target_env = "gnu"))]
    {
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| {
            // SAFETY: sqlite3_initialize is safe to call at any time; the test control
            // takes one int argument for this op and only sets a global flag.
            let off: std::ffi::c_int = 0;
            unsafe {
                rusqlite::ffi::sqlite3_initialize();
                rusqlite::ffi::sqlite3_test_control(
                    rusqlite::ffi::SQLITE_TESTCTRL_USELONGDOUBLE,
                    off,
                );
            }
        });
    }
}

/// Opens (creating if needed) a database for writing: WAL, so readers are never
/// blocked by an ingest; schema applied or checked.
pub fn open_rw(path: &Path) -> Result<Connection> {
    same_floats_on_every_thread();
    check_path(path)?;
    let named = |e: rusqlite::Error| anyhow::anyhow!("{}: {e}", path.display());
    let conn = Connection::open(path).map_err(named)?;
    conn.busy_timeout(Duration::from_secs(60)).map_err(named)?;
    // A new database returns the pages a prune frees to the file system a few at a time
    // (`heapdb prune`); SQLite can only choose this before the first table exists, and
    // ignores it afterwards.
    conn.execute_batch("PRAGMA auto_vacuum = INCREMENTAL")
        .map_err(named)?;
    // Switching a new database to WAL takes an exclusive lock for a moment, and SQLite
    // answers "locked" at once (without its busy handler) when another process is
    // doing the same: two ingests starting on a new database. Try again for a while.
    let t = std::time::Instant::now();
    let mode: String = loop {
        match conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0)) {
            Ok(m) => break m,
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::DatabaseBusy
                    && t.elapsed() < Duration::from_secs(60) =>
            {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => return Err(named(e)),
        }
    };
    if !mode.eq_ignore_ascii_case("wal") {
        bail!(
            "{}: could not switch the database to WAL mode (got {mode})",
            path.display()
        );
    }
    // In WAL mode NORMAL keeps the database consistent after a power loss; the last
    // committed captures may roll back, and rerunning the ingest redoes them.
    conn.execute_batch("PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=OFF;")
        .map_err(named)?;
    apply_schema(&conn).with_context(|| format!("{}: applying the schema", path.display()))?;
    Ok(conn)
}

/// A database opened for reading, and what the reader should be told about it.
pub struct ReadOnly {
    pub conn: Connection,
    /// Notes for the user (an immutable open, missing indexes), one line each.
    pub notes: Vec<String>,
}

/// `file:` URI of a path (percent-encoding what URIs reserve).
fn file_uri(path: &Path, query: &str) -> String {
    let mut s = String::from("file:");
    for b in path.to_string_lossy().bytes() {
        match b {
            b'%' | b'?' | b'#' | b' ' => s.push_str(&format!("%{b:02X}")),
            _ => s.push(b as char),
        }
    }
    format!("{s}?{query}")
}

fn schema_version(conn: &Connection) -> rusqlite::Result<i32> {
    conn.query_row("PRAGMA user_version", [], |r| r.get(0))
}

/// Opens an existing database read-only: nothing a query does can change it.
///
/// A WAL database needs its `-shm` file, which SQLite creates next to it; in a
/// read-only directory (a shared archive, a mounted snapshot) that fails, and the
/// database is opened *immutable* instead: SQLite then reads the main file only,
/// without locks, so it must not be written meanwhile (a read-only directory cannot
/// be), and changes still in a `-wal` file are not seen (heapdb checkpoints the WAL at
/// the end of every ingest, so there are none unless an ingest was killed).
pub fn open_ro(path: &Path) -> Result<ReadOnly> {
    same_floats_on_every_thread();
    if !path.exists() {
        bail!(
            "{}: no such database (create one with `heapdb ingest --db {}`)",
            path.display(),
            path.display()
        );
    }
    check_path(path)?;
    let named = |e: rusqlite::Error| anyhow::anyhow!("{}: {e}", path.display());
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY
        | OpenFlags::SQLITE_OPEN_URI
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let mut notes = Vec::new();
    let mut conn = Connection::open_with_flags(path, flags).map_err(named)?;
    conn.busy_timeout(Duration::from_secs(10)).map_err(named)?;
    // Reports sort whole captures (GROUP BY over millions of rows): SQLite's sorter
    // may use helper threads. Measured on 2 cores, 20 M-ReAlloc database: outstanding-size
    // 2.25 -> 1.37 s, top-realloc-sites 1.71 -> 1.00 s, +5 MB (docs/performance.md).
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    conn.execute_batch(&format!("PRAGMA threads = {}", cores.min(4)))
        .map_err(named)?;
    let version = match schema_version(&conn) {
        Ok(v) => v,
        Err(rusqlite::Error::SqliteFailure(e, _))
            if matches!(
                e.code,
                rusqlite::ErrorCode::ReadOnly | rusqlite::ErrorCode::CannotOpen
            ) =>
        {
            conn =
                Connection::open_with_flags(file_uri(path, "immutable=1"), flags).map_err(named)?;
            notes.push(
                "opened immutable (its directory is read-only, so SQLite cannot create the shared-memory file)"
                    .to_string(),
            );
            let wal = path.with_file_name(format!(
                "{}-wal",
                path.file_name().unwrap_or_default().to_string_lossy()
            ));
            if std::fs::metadata(&wal).is_ok_and(|m| m.len() > 0) {
                notes.push(format!(
                    "{} holds changes an immutable open cannot read; copy the database and its -wal file to a writable directory to see them",
                    wal.display()
                ));
            }
            schema_version(&conn).map_err(named)?
        }
        Err(e) => return Err(named(e)),
    };
    if version == 0 {
        bail!(
            "{}: not a heapdb database (schema version 0)",
            path.display()
        );
    }
    if version < SCHEMA_VERSION {
        bail!(
            "{}: written by an older heapdb (schema {version}; this heapdb reads {SCHEMA_VERSION}); upgrade it once with: heapdb repair --db {}",
            path.display(),
            path.display()
        );
    }
    if version > SCHEMA_VERSION {
        bail!(
            "{}: written by a newer heapdb (schema {version}, this heapdb knows {SCHEMA_VERSION})",
            path.display()
        );
    }
    let missing =
        missing_indexes(&conn).map_err(|e| anyhow::anyhow!("{}: {e:#}", path.display()))?;
    if !missing.is_empty() {
        notes.push(format!(
            "{} of its {} indexes are missing ({}), so reports run slowly; an ingest was interrupted while it rebuilt them. Restore them with: heapdb repair --db {}",
            missing.len(),
            index_names().len(),
            missing.join(", "),
            path.display()
        ));
    }
    Ok(ReadOnly { conn, notes })
}

/// Creates the tables of a new database, upgrades an older one (schema/migrations/),
/// refuses a newer one, and (re)creates the views when they changed. Writes happen
/// under the write lock (`BEGIN IMMEDIATE`, waiting up to the busy timeout), and the
/// version is read again under it: two processes opening a new database at once must
/// not both create it.
pub fn apply_schema(conn: &Connection) -> Result<()> {
    let version: i32 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if version > SCHEMA_VERSION {
        bail!("database written by a newer heapdb (schema {version}, this heapdb knows {SCHEMA_VERSION})");
    }
    if version < SCHEMA_VERSION || !views_current(conn)? {
        conn.execute_batch("BEGIN IMMEDIATE")?;
        let r = upgrade(conn);
        conn.execute_batch(if r.is_ok() { "COMMIT" } else { "ROLLBACK" })?;
        r?;
    }
    Ok(())
}

/// Inside the write lock: creates or upgrades the tables, recreates the views.
fn upgrade(conn: &Connection) -> Result<()> {
    let version: i32 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if version == 0 {
        let tables: i64 = conn.query_row(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table'",
            [],
            |r| r.get(0),
        )?;
        if tables > 0 {
            bail!("not a heapdb database (it has tables but no heapdb schema version)");
        }
        conn.execute_batch(TABLES_SQL)?;
        conn.execute_batch(INDEXES_SQL)?;
    } else if version > SCHEMA_VERSION {
        bail!("database written by a newer heapdb (schema {version}, this heapdb knows {SCHEMA_VERSION})");
    } else {
        // New tables come from 001_tables.sql itself (every statement there is
        // idempotent), created before the migrations so that these can fill them; a
        // migration holds only what that cannot do: new columns, dropped or changed
        // objects, data.
        conn.execute_batch(TABLES_SQL)?;
        for (i, m) in MIGRATIONS.iter().enumerate() {
            let from = i as i32 + 1;
            if from >= version {
                run_migration(conn, m)
                    .with_context(|| format!("upgrading the schema from version {from}"))?;
            }
        }
    }
    conn.execute_batch(&format!("PRAGMA user_version = {SCHEMA_VERSION}"))?;
    conn.execute_batch(VIEWS_SQL)?;
    Ok(())
}

/// Runs a migration statement by statement. A table that a later schema version
/// created comes from 001_tables.sql with all its columns, so an `ALTER TABLE … ADD
/// COLUMN` of an older step finds the column there already (a version 1 database has no
/// site_stats; the upgrade creates it whole, then migration 003 adds live_bytes to it):
/// that statement is then done, not an error.
fn run_migration(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    // Migrations hold no ';' or '--' inside strings: statements split on ';' once the
    // comments are gone.
    let code: String = sql
        .lines()
        .map(|l| l.split("--").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n");
    for stmt in code.split(';').map(str::trim).filter(|s| !s.is_empty()) {
        let words: Vec<&str> = stmt.split_whitespace().collect();
        if let ["ALTER", "TABLE", table, "ADD", "COLUMN", column, ..] = words[..] {
            let have: i64 = conn.query_row(
                "SELECT count(*) FROM pragma_table_info(?1) WHERE name = ?2",
                [table, column],
                |r| r.get(0),
            )?;
            if have > 0 {
                continue;
            }
        }
        conn.execute_batch(stmt)?;
    }
    Ok(())
}

/// The `CREATE VIEW` statements of `schema/003_views.sql`, one per view, as SQLite
/// stores them in `sqlite_master.sql`.
pub fn view_statements() -> Vec<(String, String)> {
    let mut out = Vec::new();
    for stmt in VIEWS_SQL.split(';') {
        let code: Vec<&str> = stmt
            .lines()
            .skip_while(|l| !l.trim_start().starts_with("CREATE VIEW"))
            .collect();
        if let Some(first) = code.first() {
            let name = first
                .trim_start()
                .trim_start_matches("CREATE VIEW")
                .split_whitespace()
                .next()
                .unwrap_or("")
                .to_string();
            out.push((name, code.join("\n").trim().to_string()));
        }
    }
    out
}

/// Whether every view is there as this heapdb defines it (then nothing is written).
fn views_current(conn: &Connection) -> Result<bool> {
    for (name, sql) in view_statements() {
        let stored: Option<String> = conn
            .query_row(
                "SELECT sql FROM sqlite_master WHERE type = 'view' AND name = ?1",
                [&name],
                |r| r.get(0),
            )
            .optional()?;
        if stored.as_deref() != Some(sql.as_str()) {
            return Ok(false);
        }
    }
    Ok(true)
}

/// What `repair` did.
#[derive(Debug, Clone, Default)]
pub struct Repaired {
    pub rebuilt: Vec<String>,
    /// Still missing (the rebuild was interrupted).
    pub missing_after: Vec<String>,
    /// `PRAGMA quick_check`'s answer ("ok" for a sound database).
    pub check: String,
    /// Captures stored before schema 2 whose history tables were computed now.
    pub histories: usize,
    /// Captures stored before schema 3 whose block lifetimes were computed now.
    pub lifetimes: usize,
    /// Recordings whose recorder was gone, finished now (status `incomplete`).
    pub recordings_finished: Vec<i64>,
    /// Recordings still running (left alone).
    pub recordings_running: Vec<i64>,
}

/// Builds the missing indexes of a database and checks it.
pub fn repair(
    path: &Path,
    observer: &dyn crate::ingest::Observer,
    cancel: &crate::cancel::Cancel,
) -> Result<Repaired> {
    if !path.exists() {
        bail!("{}: no such database", path.display());
    }
    let conn = open_rw(path)?;
    let ctx = SinkContext { observer, cancel };
    let before: Vec<String> = missing_indexes(&conn)?
        .iter()
        .map(|s| s.to_string())
        .collect();
    let missing_after = build_indexes(&conn, path, ctx)?;
    let rebuilt = before
        .into_iter()
        .filter(|n| !missing_after.contains(n))
        .collect();
    // First: a finished recording then has its history and lifetimes computed below.
    let (gone, recordings_running) = recording::unfinished(&conn, path)?;
    let mut recordings_finished = Vec::new();
    for id in gone {
        if cancel.requested() {
            break;
        }
        recording::finish(&conn, path, id, ctx)?;
        recordings_finished.push(id);
    }
    let mut histories = 0;
    let todo = history::captures_without_history(&conn)?;
    for (i, id) in todo.iter().enumerate() {
        if cancel.requested() {
            break;
        }
        observer.progress(&Progress {
            phase: Phase::Storing {
                name: format!("history of capture {id} ({} of {})", i + 1, todo.len()),
                rows: 0,
            },
            bytes_done: i as u64,
            bytes_total: todo.len() as u64,
            rows: 0,
        });
        history::backfill(&conn, path, *id, ctx)?;
        histories += 1;
    }
    let mut lifetimes = 0;
    let todo = lifetimes::captures_without_lifetimes(&conn)?;
    for (i, id) in todo.iter().enumerate() {
        if cancel.requested() {
            break;
        }
        observer.progress(&Progress {
            phase: Phase::Storing {
                name: format!(
                    "block lifetimes of capture {id} ({} of {})",
                    i + 1,
                    todo.len()
                ),
                rows: 0,
            },
            bytes_done: i as u64,
            bytes_total: todo.len() as u64,
            rows: 0,
        });
        lifetimes::backfill(&conn, path, *id, ctx)?;
        lifetimes += 1;
    }
    let check: String = conn
        .query_row("PRAGMA quick_check", [], |r| r.get(0))
        .with_context(|| format!("{}: checking", path.display()))?;
    let _ = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
    Ok(Repaired {
        rebuilt,
        missing_after,
        check,
        histories,
        lifetimes,
        recordings_finished,
        recordings_running,
    })
}

/// A secondary index of `schema/002_indexes.sql`: its name and its statement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexDef {
    pub name: &'static str,
    pub sql: &'static str,
}

/// The secondary indexes, one `CREATE INDEX IF NOT EXISTS name ON ...;` per line.
pub fn index_defs() -> Vec<IndexDef> {
    INDEXES_SQL
        .lines()
        .filter_map(|l| {
            let rest = l.trim().strip_prefix("CREATE INDEX IF NOT EXISTS ")?;
            Some(IndexDef {
                name: rest.split_whitespace().next()?,
                sql: l.trim(),
            })
        })
        .collect()
}

/// Names of the secondary indexes.
pub fn index_names() -> Vec<&'static str> {
    index_defs().into_iter().map(|d| d.name).collect()
}

/// Indexes of the schema that are currently missing.
pub fn missing_indexes(conn: &Connection) -> Result<Vec<&'static str>> {
    let mut missing = Vec::new();
    for name in index_names() {
        let n: i64 = conn.query_row(
            "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name = ?1",
            [name],
            |r| r.get(0),
        )?;
        if n == 0 {
            missing.push(name);
        }
    }
    Ok(missing)
}

pub fn drop_indexes(conn: &Connection) -> Result<()> {
    for name in index_names() {
        conn.execute_batch(&format!("DROP INDEX IF EXISTS {name}"))?;
    }
    Ok(())
}

/// Builds indexes of the schema that are missing, one by one, with progress; a
/// second cancellation interrupts the build. Returns the indexes still missing.
pub fn build_indexes(conn: &Connection, db: &Path, ctx: SinkContext<'_>) -> Result<Vec<String>> {
    let missing = missing_indexes(conn)?;
    let total = missing.len();
    let _registered = ctx.cancel.register(conn.get_interrupt_handle(), 2);
    let cache: i64 = conn.query_row("PRAGMA cache_size", [], |r| r.get(0))?;
    // Measured on 5 M rows: SQLite's helper threads (PRAGMA threads=4) made the build
    // slower and tripled memory, and a small sort cache was fastest (docs/performance.md).
    conn.execute_batch("PRAGMA threads=0; PRAGMA cache_size=-8192;")?;
    let mut left = Vec::new();
    for (i, name) in missing.iter().enumerate() {
        let create = index_defs()
            .into_iter()
            .find(|d| d.name == *name)
            .map(|d| d.sql)
            .unwrap_or_default();
        if ctx.cancel.requests() >= 2 {
            left.push(name.to_string());
            continue;
        }
        ctx.observer.progress(&Progress {
            phase: Phase::Indexes {
                done: i,
                total,
                name: name.to_string(),
            },
            bytes_done: 0,
            bytes_total: 0,
            rows: 0,
        });
        sink::lock(conn, db, ctx)?;
        match conn.execute_batch(create) {
            Ok(()) => conn.execute_batch("COMMIT")?,
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::OperationInterrupted =>
            {
                conn.execute_batch("ROLLBACK")?;
                left.push(name.to_string());
            }
            Err(e) => {
                let _ = conn.execute_batch("ROLLBACK");
                return Err(e).with_context(|| format!("{}: building index {name}", db.display()));
            }
        }
    }
    conn.execute_batch(&format!("PRAGMA cache_size={cache};"))?;
    Ok(left)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_applies_and_is_versioned() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.db");
        let c = open_rw(&p).unwrap();
        assert!(views_current(&c).unwrap(), "a second open writes nothing");
        assert_eq!(
            view_statements().len(),
            14,
            "six views of events plus site_stats_v, site_frames_v, capture_labels_v, blocks_v, process_usage_v, pdbs_v, sites_v, stack_groups_v"
        );
        let v: i32 = c
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(v, SCHEMA_VERSION);
        let n: i64 = c
            .query_row("SELECT count(*) FROM sources", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 6);
        // The opcode names of the schema are the decoder's.
        let mut st = c.prepare("SELECT opcode, name FROM heap_opcodes").unwrap();
        let names: Vec<(u8, String)> = st
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(|r| r.unwrap())
            .collect();
        assert_eq!(names.len(), 27 + 5);
        for (op, name) in &names {
            assert_eq!(crate::heap::record::opcode_name(*op), Some(name.as_str()));
        }
        drop(st);
        assert!(index_names().len() >= 10);
        assert!(missing_indexes(&c).unwrap().is_empty());
        drop_indexes(&c).unwrap();
        assert_eq!(missing_indexes(&c).unwrap().len(), index_names().len());
        let ctx = SinkContext {
            observer: &crate::ingest::Silent,
            cancel: &crate::cancel::Cancel::new(),
        };
        assert!(build_indexes(&c, &p, ctx).unwrap().is_empty());
        assert!(missing_indexes(&c).unwrap().is_empty());
        drop(c);
        // Reopening is idempotent; read-only opening refuses writes.
        open_rw(&p).unwrap();
        let ro = open_ro(&p).unwrap().conn;
        assert!(ro.execute("DELETE FROM sources", []).is_err());
        // A newer schema is refused.
        let c = Connection::open(&p).unwrap();
        c.execute_batch("PRAGMA user_version = 99").unwrap();
        assert!(format!("{:#}", open_rw(&p).unwrap_err()).contains("newer heapdb"));
        // A foreign SQLite file is refused.
        let other = dir.path().join("other.db");
        Connection::open(&other)
            .unwrap()
            .execute_batch("CREATE TABLE x (a)")
            .unwrap();
        assert!(format!("{:#}", open_rw(&other).unwrap_err()).contains("not a heapdb database"));
    }
}
