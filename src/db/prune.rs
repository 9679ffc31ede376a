//! Retention: removing whole captures from every table.
//!
//! A capture disappears for readers at once (its `captures` row and its small per-capture
//! rows go in one short transaction, and every report starts from `captures`), then its
//! event rows are deleted in bounded transactions by id range, so a concurrent ingest or
//! reader never waits long; stacks no other capture uses go last, and the freed pages are
//! returned to the file system. A prune that is killed leaves event rows without a
//! capture: invisible to the reports, and removed by the next prune (which always sweeps
//! rows whose capture is gone).

use super::sink::lock;
use crate::cancel::Cancel;
use crate::ingest::observe::{Level, Note, Observer};
use crate::ingest::sink::Context;
use anyhow::{bail, Context as _, Result};
use rusqlite::Connection;
use std::path::Path;

/// Event rows deleted per transaction.
const CHUNK_ROWS: i64 = 200_000;
/// Free pages returned per transaction by the incremental vacuum.
const VACUUM_PAGES: i64 = 4096;

/// Which captures to remove.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    /// Captures whose session started before this instant (UTC ns).
    Before(i64),
    /// All but the N most recent (by session start).
    KeepLast(u64),
    /// These capture ids.
    Ids(Vec<i64>),
}

/// A removed capture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pruned {
    pub capture_id: i64,
    pub file_name: String,
    pub start_time_ns: Option<i64>,
}

/// What a prune did.
#[derive(Debug, Clone, Default)]
pub struct PruneReport {
    pub captures: Vec<Pruned>,
    pub reallocs: u64,
    pub heap_events: u64,
    /// Rows of `blocks` (lifetimes).
    pub blocks: u64,
    pub other_rows: u64,
    pub stacks: u64,
    /// Bytes the database file shrank by.
    pub bytes_freed: u64,
    /// True when a full VACUUM was run.
    pub vacuumed: bool,
    /// Nothing matched (and nothing was changed).
    pub nothing: Option<String>,
}

/// Tables with a `capture_id` column, apart from `captures` itself: every table a
/// capture has rows in, whatever later schema versions add.
fn capture_tables(conn: &Connection) -> Result<Vec<String>> {
    let mut st = conn.prepare(
        "SELECT m.name FROM sqlite_master m, pragma_table_info(m.name) c
         WHERE m.type = 'table' AND c.name = 'capture_id' AND m.name <> 'captures'
         ORDER BY m.name",
    )?;
    let names = st
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<Vec<String>>>()?;
    Ok(names)
}

/// The big tables, deleted in chunks by id range: (table, id column, the captures
/// columns holding the capture's first and last id).
const BIG: [(&str, &str, &str, &str); 3] = [
    ("reallocs", "id", "first_event_id", "last_event_id"),
    ("heap_events", "id", "first_event_id", "last_event_id"),
    ("blocks", "block_id", "first_block_id", "last_block_id"),
];

fn select(conn: &Connection, sel: &Selection) -> Result<(Vec<Pruned>, Option<String>)> {
    let row = |r: &rusqlite::Row<'_>| -> rusqlite::Result<Pruned> {
        Ok(Pruned {
            capture_id: r.get(0)?,
            file_name: r.get(1)?,
            start_time_ns: r.get(2)?,
        })
    };
    let cols = "capture_id, file_name, start_time_ns";
    let (found, why) = match sel {
        Selection::Before(t) => {
            let mut st = conn.prepare(&format!(
                "SELECT {cols} FROM captures WHERE start_time_ns < ?1 ORDER BY capture_id"
            ))?;
            let v = st
                .query_map([t], row)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            (
                v,
                format!(
                    "no capture started before {}",
                    crate::etl::time::rfc3339(*t)
                ),
            )
        }
        Selection::KeepLast(n) => {
            let mut st = conn.prepare(&format!(
                "SELECT {cols} FROM captures ORDER BY coalesce(start_time_ns, 0) DESC, capture_id DESC LIMIT -1 OFFSET ?1"
            ))?;
            let mut v = st
                .query_map([*n as i64], row)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            v.sort_by_key(|p| p.capture_id);
            let total: i64 = conn.query_row("SELECT count(*) FROM captures", [], |r| r.get(0))?;
            (
                v,
                format!("the database holds {total} capture(s), keeping the last {n}"),
            )
        }
        Selection::Ids(ids) => {
            let mut v = Vec::new();
            let mut st = conn.prepare(&format!(
                "SELECT {cols} FROM captures WHERE capture_id = ?1"
            ))?;
            let mut missing = Vec::new();
            for id in ids {
                match st.query_row([id], row) {
                    Ok(p) => v.push(p),
                    Err(rusqlite::Error::QueryReturnedNoRows) => missing.push(id.to_string()),
                    Err(e) => return Err(e.into()),
                }
            }
            if !missing.is_empty() {
                bail!(
                    "no capture with id {} (see: heapdb query --sql 'SELECT capture_id, file_name FROM captures_v'); nothing was removed",
                    missing.join(", ")
                );
            }
            (v, String::new())
        }
    };
    Ok(if found.is_empty() {
        (found, Some(why))
    } else {
        (found, None)
    })
}

/// Removes the selected captures. With `vacuum`, rewrites the file afterwards (VACUUM:
/// it needs as much free disk as the database and locks it meanwhile); otherwise free
/// pages are returned incrementally when the database allows it (databases created by
/// heapdb do), else reused by the next ingest.
pub fn prune(
    path: &Path,
    sel: &Selection,
    vacuum: bool,
    observer: &dyn Observer,
    cancel: &Cancel,
) -> Result<PruneReport> {
    let conn = super::open_rw(path)?;
    let ctx = Context { observer, cancel };
    let size_before = file_size(path);
    let (mut captures, nothing) = select(&conn, sel)?;
    // A recording still running keeps its capture: its recorder goes on writing to it.
    let (_, alive) = super::recording::unfinished(&conn, path)?;
    if !alive.is_empty() {
        let live: Vec<i64> = captures
            .iter()
            .map(|c| c.capture_id)
            .filter(|id| alive.contains(id))
            .collect();
        if !live.is_empty() && matches!(sel, Selection::Ids(_)) {
            bail!(
                "capture {} is being recorded (its heapdb record still runs): end the recording first; nothing was removed",
                live.iter().map(i64::to_string).collect::<Vec<_>>().join(", ")
            );
        }
        for id in &live {
            observer.note(&crate::ingest::Note::about(
                crate::ingest::Level::Warning,
                &path.display().to_string(),
                format!("capture {id} is being recorded: kept"),
            ));
        }
        captures.retain(|c| !live.contains(&c.capture_id));
    }
    let mut report = PruneReport {
        nothing,
        ..PruneReport::default()
    };
    let tables = capture_tables(&conn)?;
    for c in &captures {
        let mut ranges = Vec::new();
        for (_, _, first, last) in BIG {
            let r: (Option<i64>, Option<i64>) = conn.query_row(
                &format!("SELECT {first}, {last} FROM captures WHERE capture_id = ?1"),
                [c.capture_id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?;
            ranges.push(r);
        }
        // 1. Gone for readers, with its small rows, in one short transaction.
        lock(&conn, path, ctx)?;
        let r = (|| -> Result<u64> {
            let mut n = 0;
            for t in tables
                .iter()
                .filter(|t| !BIG.iter().any(|b| b.0 == t.as_str()))
            {
                n += conn.execute(
                    &format!("DELETE FROM {t} WHERE capture_id = ?1"),
                    [c.capture_id],
                )? as u64;
            }
            conn.execute("DELETE FROM captures WHERE capture_id = ?1", [c.capture_id])?;
            Ok(n)
        })();
        conn.execute_batch(if r.is_ok() { "COMMIT" } else { "ROLLBACK" })?;
        report.other_rows += r?;
        report.captures.push(c.clone());
        // 2. Its events and lifetimes, in chunks.
        for (i, (table, id, _, _)) in BIG.iter().enumerate() {
            if let (Some(lo), Some(hi)) = ranges[i] {
                let n = delete_range(&conn, path, ctx, (table, id), c.capture_id, lo, hi)?;
                match i {
                    0 => report.reallocs += n,
                    1 => report.heap_events += n,
                    _ => report.blocks += n,
                }
            }
        }
        observer.note(&Note::about(
            Level::Info,
            &path.display().to_string(),
            format!("removed capture {} ({})", c.capture_id, c.file_name),
        ));
        if cancel.requested() {
            break;
        }
    }
    if captures.is_empty() && report.nothing.is_some() {
        return Ok(report);
    }
    // 3. Rows of captures that are gone (an earlier prune that was killed), and stacks
    //    no event uses any more.
    report.reallocs += sweep(&conn, path, ctx, ("reallocs", "id"))?;
    report.heap_events += sweep(&conn, path, ctx, ("heap_events", "id"))?;
    report.blocks += sweep(&conn, path, ctx, ("blocks", "block_id"))?;
    lock(&conn, path, ctx)?;
    let r = (|| -> Result<u64> {
        conn.execute_batch(
            "CREATE TEMP TABLE IF NOT EXISTS used_stacks (stack_id INTEGER PRIMARY KEY);
             DELETE FROM temp.used_stacks;
             INSERT OR IGNORE INTO temp.used_stacks SELECT stack_id FROM reallocs WHERE stack_id IS NOT NULL;
             INSERT OR IGNORE INTO temp.used_stacks SELECT stack_id FROM heap_events WHERE stack_id IS NOT NULL;",
        )?;
        conn.execute(
            "DELETE FROM stack_frames WHERE stack_id NOT IN (SELECT stack_id FROM temp.used_stacks)",
            [],
        )?;
        let n = conn.execute(
            "DELETE FROM stacks WHERE stack_id NOT IN (SELECT stack_id FROM temp.used_stacks)",
            [],
        )?;
        // Sites no capture uses any more (their symbols go with them).
        conn.execute_batch(
            "DELETE FROM site_frames WHERE site_id NOT IN (SELECT site_id FROM capture_stacks);
             DELETE FROM sites WHERE site_id NOT IN (SELECT site_id FROM capture_stacks);
             UPDATE stacks SET site_id = (SELECT cs.site_id FROM capture_stacks cs
                                          WHERE cs.stack_id = stacks.stack_id
                                          ORDER BY cs.capture_id LIMIT 1)
             WHERE site_id IS NOT NULL AND site_id NOT IN (SELECT site_id FROM sites);",
        )?;
        // PDBs no image and no site frame names any more, and what they resolved.
        conn.execute_batch(
            "CREATE TEMP TABLE IF NOT EXISTS used_pdbs (pdb_id INTEGER PRIMARY KEY);
             DELETE FROM temp.used_pdbs;
             INSERT OR IGNORE INTO temp.used_pdbs SELECT pdb_id FROM images WHERE pdb_id IS NOT NULL;
             INSERT OR IGNORE INTO temp.used_pdbs SELECT pdb_id FROM site_frames WHERE pdb_id IS NOT NULL;
             DELETE FROM symbols WHERE pdb_id NOT IN (SELECT pdb_id FROM temp.used_pdbs);
             DELETE FROM pdbs WHERE pdb_id NOT IN (SELECT pdb_id FROM temp.used_pdbs);",
        )?;
        Ok(n as u64)
    })();
    conn.execute_batch(if r.is_ok() { "COMMIT" } else { "ROLLBACK" })?;
    report.stacks = r?;
    // 4. Space.
    let auto: i64 = conn.query_row("PRAGMA auto_vacuum", [], |r| r.get(0))?;
    if vacuum {
        conn.execute_batch("VACUUM")
            .with_context(|| format!("{}: VACUUM", path.display()))?;
        report.vacuumed = true;
    } else if auto == 2 {
        loop {
            let free: i64 = conn.query_row("PRAGMA freelist_count", [], |r| r.get(0))?;
            if free == 0 || cancel.requested() {
                break;
            }
            lock(&conn, path, ctx)?;
            conn.execute_batch(&format!("PRAGMA incremental_vacuum({VACUUM_PAGES})"))?;
            conn.execute_batch("COMMIT")?;
        }
    }
    let _ = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
    report.bytes_freed = size_before.saturating_sub(file_size(path));
    Ok(report)
}

fn file_size(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

/// Deletes the rows of `capture` with ids in `lo..=hi`, `CHUNK_ROWS` per transaction.
fn delete_range(
    conn: &Connection,
    path: &Path,
    ctx: Context<'_>,
    (table, id): (&str, &str),
    capture: i64,
    lo: i64,
    hi: i64,
) -> Result<u64> {
    let mut n = 0u64;
    let mut from = lo;
    while from <= hi {
        let to = (from + CHUNK_ROWS - 1).min(hi);
        lock(conn, path, ctx)?;
        let r = conn.execute(
            &format!("DELETE FROM {table} WHERE {id} BETWEEN ?1 AND ?2 AND capture_id = ?3"),
            [from, to, capture],
        );
        conn.execute_batch(if r.is_ok() { "COMMIT" } else { "ROLLBACK" })?;
        n += r? as u64;
        from = to + 1;
    }
    Ok(n)
}

/// Deletes rows whose capture no longer exists (a prune killed before it finished), in
/// chunks. The captures that are gone are the gaps in the capture ids; each is looked up
/// through the capture-led indexes, so the sweep costs a few index seeks, not a scan.
fn sweep(
    conn: &Connection,
    path: &Path,
    ctx: Context<'_>,
    (table, id): (&str, &str),
) -> Result<u64> {
    let top: Option<i64> =
        conn.query_row(&format!("SELECT max(capture_id) FROM {table}"), [], |r| {
            r.get(0)
        })?;
    let Some(top) = top else {
        return Ok(0);
    };
    let gone: Vec<i64> = {
        let mut st = conn.prepare(
            "WITH RECURSIVE n(id) AS (SELECT 1 UNION ALL SELECT id + 1 FROM n WHERE id < ?1)
             SELECT id FROM n WHERE id NOT IN (SELECT capture_id FROM captures)",
        )?;
        let v = st
            .query_map([top], |r| r.get(0))?
            .collect::<rusqlite::Result<Vec<i64>>>()?;
        v
    };
    let mut n = 0u64;
    for capture in gone {
        loop {
            lock(conn, path, ctx)?;
            let r = conn.execute(
                &format!(
                    "DELETE FROM {table} WHERE {id} IN (SELECT {id} FROM {table} WHERE capture_id = ?1 LIMIT {CHUNK_ROWS})"
                ),
                [capture],
            );
            conn.execute_batch(if r.is_ok() { "COMMIT" } else { "ROLLBACK" })?;
            let k = r? as u64;
            n += k;
            if k == 0 {
                break;
            }
        }
    }
    Ok(n)
}
