//! The SQLite database: opening it the way each command needs, applying the versioned
//! schema in `schema/*.sql`, and the index strategy of bulk loads.

use anyhow::{bail, Context, Result};
use rusqlite::{Connection, OpenFlags};
use std::path::Path;
use std::time::Duration;

/// Version of the schema this heapdb writes (PRAGMA user_version).
pub const SCHEMA_VERSION: i32 = 1;

pub const TABLES_SQL: &str = include_str!("../../schema/001_tables.sql");
pub const INDEXES_SQL: &str = include_str!("../../schema/002_indexes.sql");
pub const VIEWS_SQL: &str = include_str!("../../schema/003_views.sql");

/// Opens (creating if needed) a database for writing: WAL, so readers are never
/// blocked by an ingest; schema applied or checked.
pub fn open_rw(path: &Path) -> Result<Connection> {
    let conn =
        Connection::open(path).with_context(|| format!("opening database {}", path.display()))?;
    conn.busy_timeout(Duration::from_secs(60))?;
    let mode: String = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        bail!(
            "{}: could not switch the database to WAL mode (got {mode})",
            path.display()
        );
    }
    // In WAL mode NORMAL keeps the database consistent after a power loss; the last
    // committed captures may roll back, and rerunning the ingest redoes them.
    conn.execute_batch("PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=OFF;")?;
    apply_schema(&conn).with_context(|| format!("applying the schema to {}", path.display()))?;
    Ok(conn)
}

/// Opens an existing database read-only: nothing a query does can change it.
pub fn open_ro(path: &Path) -> Result<Connection> {
    if !path.exists() {
        bail!(
            "{}: no such database (create one with `heapdb ingest --db {}`)",
            path.display(),
            path.display()
        );
    }
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY
            | OpenFlags::SQLITE_OPEN_URI
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .with_context(|| format!("opening database {}", path.display()))?;
    conn.busy_timeout(Duration::from_secs(10))?;
    // The file is opened read-only: nothing can write it. TEMP tables stay allowed
    // (reports use them for intermediate results with an index); they live in a
    // separate temporary database that disappears with the connection.
    let version: i32 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if version == 0 {
        bail!(
            "{}: not a heapdb database (schema version 0)",
            path.display()
        );
    }
    if version > SCHEMA_VERSION {
        bail!(
            "{}: written by a newer heapdb (schema {version}, this heapdb knows {SCHEMA_VERSION})",
            path.display()
        );
    }
    Ok(conn)
}

/// Creates the tables of a new database, checks the version of an existing one and
/// (re)creates the views.
pub fn apply_schema(conn: &Connection) -> Result<()> {
    let version: i32 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if version > SCHEMA_VERSION {
        bail!("database written by a newer heapdb (schema {version}, this heapdb knows {SCHEMA_VERSION})");
    }
    if version == 0 {
        let tables: i64 = conn.query_row(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table'",
            [],
            |r| r.get(0),
        )?;
        if tables > 0 {
            bail!("not a heapdb database (it has tables but no heapdb schema version)");
        }
        let tx = conn.unchecked_transaction()?;
        tx.execute_batch(TABLES_SQL)?;
        {
            let mut st =
                tx.prepare("INSERT OR IGNORE INTO heap_opcodes (opcode, name) VALUES (?1, ?2)")?;
            for op in (32u8..=58).chain(100..=104) {
                if let Some(name) = crate::heap::record::opcode_name(op) {
                    st.execute(rusqlite::params![op, name])?;
                }
            }
        }
        tx.execute_batch(INDEXES_SQL)?;
        tx.execute_batch(&format!("PRAGMA user_version = {SCHEMA_VERSION}"))?;
        tx.commit()?;
    }
    conn.execute_batch(VIEWS_SQL)?;
    Ok(())
}

/// Names of the secondary indexes of `schema/002_indexes.sql`.
pub fn index_names() -> Vec<&'static str> {
    INDEXES_SQL
        .lines()
        .filter_map(|l| l.trim().strip_prefix("CREATE INDEX IF NOT EXISTS "))
        .filter_map(|rest| rest.split_whitespace().next())
        .collect()
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

/// Builds the missing secondary indexes. Measured on 5 M rows: SQLite's helper threads
/// (PRAGMA threads=4) made the build slower (12.1 s vs 10.7 s) and tripled memory
/// (165 MB), and a small sort cache was fastest (8 MB: 9.0 s, 21 MB RSS; 64 MB: 12.9 s);
/// see docs/performance.md.
pub fn create_indexes(conn: &Connection) -> Result<()> {
    let cache: i64 = conn.query_row("PRAGMA cache_size", [], |r| r.get(0))?;
    conn.execute_batch("PRAGMA threads=0; PRAGMA cache_size=-8192;")?;
    let result = conn.execute_batch(INDEXES_SQL);
    conn.execute_batch(&format!("PRAGMA cache_size={cache};"))?;
    result?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_applies_and_is_versioned() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.db");
        let c = open_rw(&p).unwrap();
        let v: i32 = c
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(v, SCHEMA_VERSION);
        let n: i64 = c
            .query_row("SELECT count(*) FROM sources", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 6);
        let n: i64 = c
            .query_row("SELECT count(*) FROM heap_opcodes", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 27 + 5);
        assert!(index_names().len() >= 10);
        assert!(missing_indexes(&c).unwrap().is_empty());
        drop_indexes(&c).unwrap();
        assert_eq!(missing_indexes(&c).unwrap().len(), index_names().len());
        create_indexes(&c).unwrap();
        drop(c);
        // Reopening is idempotent; read-only opening refuses writes.
        open_rw(&p).unwrap();
        let ro = open_ro(&p).unwrap();
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
