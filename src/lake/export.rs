//! `heapdb export`: a database's captures into a lake, with the database's own ids.
//!
//! A lake written by export mirrors one database: every capture it holds must be the
//! database's capture of the same id and fingerprint (so ids in the lake mean what
//! they mean in the database, stacks and sites included). Captures already there are
//! skipped; the others are written one at a time, each published and then committed to
//! the catalog, so a killed export resumes where it stopped.

use super::{
    all_tables, capture_date, is_partitioned, table_columns, write_tables, Lake, PARTITIONED,
    ROW_TABLES,
};
use crate::cancel::Cancel;
use anyhow::{bail, Context as _, Result};
use rusqlite::{Connection, OptionalExtension};
use std::path::Path;
use std::time::Instant;

/// What an export did.
#[derive(Debug, Default, Clone)]
pub struct Exported {
    /// Captures written.
    pub captures: u64,
    /// Captures already in the lake.
    pub skipped: u64,
    /// Captures still being recorded (or whose `heapdb record` was killed, until
    /// `heapdb repair` finishes them): not exported yet.
    pub recording: Vec<i64>,
    /// Rows of `reallocs` + `heap_events` written.
    pub rows: u64,
    pub seconds: f64,
    pub interrupted: bool,
}

/// Called after each capture: (capture id, rows written or None when skipped).
pub type OnCapture<'a> = &'a mut dyn FnMut(i64, Option<u64>);

pub fn export(db: &Path, dir: &Path, cancel: &Cancel, on: OnCapture<'_>) -> Result<Exported> {
    let t0 = Instant::now();
    // Checks the database (exists, heapdb, this schema version) with the usual messages.
    drop(crate::db::open_ro(db)?);
    let lake = Lake::create_or_open(dir)?;
    let conn = crate::db::open_rw(&lake.catalog_path())?;
    conn.execute("ATTACH DATABASE ?1 AS src", [db.to_string_lossy()])
        .with_context(|| format!("{}: attaching", db.display()))?;
    check_mirror(&conn, db, dir)?;
    let mut out = Exported::default();
    copy_shared(&conn).with_context(|| format!("{}: copying the shared tables", db.display()))?;
    let ids: Vec<(i64, String, String)> = {
        let mut st = conn.prepare(
            "SELECT capture_id, fingerprint, status FROM src.captures ORDER BY capture_id",
        )?;
        let v = st
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        v
    };
    for (id, fingerprint, status) in ids {
        if cancel.requested() {
            out.interrupted = true;
            break;
        }
        if status == "recording" {
            // Half a capture now would stay half in the lake: a rerun skips what is
            // there.
            out.recording.push(id);
            continue;
        }
        let there: Option<i64> = conn
            .query_row(
                "SELECT capture_id FROM main.captures WHERE fingerprint = ?1",
                [&fingerprint],
                |r| r.get(0),
            )
            .optional()?;
        if there.is_some() {
            out.skipped += 1;
            on(id, None);
            continue;
        }
        let rows = export_capture(&conn, &lake, id)
            .with_context(|| format!("{}: exporting capture {id}", db.display()))?;
        out.captures += 1;
        out.rows += rows;
        on(id, Some(rows));
    }
    lake.write_shared(&conn)?;
    lake.describe(&conn)?;
    conn.execute_batch("DETACH DATABASE src")?;
    out.seconds = t0.elapsed().as_secs_f64();
    Ok(out)
}

/// Refuses a lake holding a capture that is not the database's capture of that id.
fn check_mirror(conn: &Connection, db: &Path, dir: &Path) -> Result<()> {
    let odd: Option<(i64, String)> = conn
        .query_row(
            "SELECT l.capture_id, l.path FROM main.captures l \
             LEFT JOIN src.captures d ON d.capture_id = l.capture_id AND d.fingerprint = l.fingerprint \
             WHERE d.capture_id IS NULL ORDER BY l.capture_id LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    if let Some((id, path)) = odd {
        bail!(
            "{}: its capture {id} ({path}) is not capture {id} of {}; a lake mirrors one database (export into a new directory)",
            dir.display(),
            db.display()
        );
    }
    Ok(())
}

/// The tables shared by all captures, replaced by the database's.
fn copy_shared(conn: &Connection) -> Result<()> {
    conn.execute_batch("BEGIN IMMEDIATE")?;
    let r = (|| -> Result<()> {
        for t in all_tables(conn)? {
            if is_partitioned(&t) {
                continue;
            }
            let cols = column_list(conn, &t)?;
            conn.execute_batch(&format!(
                "DELETE FROM main.{t}; INSERT INTO main.{t} ({cols}) SELECT {cols} FROM src.{t};"
            ))?;
        }
        Ok(())
    })();
    conn.execute_batch(if r.is_ok() { "COMMIT" } else { "ROLLBACK" })?;
    r
}

fn column_list(conn: &Connection, table: &str) -> Result<String> {
    Ok(table_columns(conn, "main", table)?
        .iter()
        .map(|(n, ..)| format!("\"{n}\""))
        .collect::<Vec<_>>()
        .join(", "))
}

/// One capture: its files, then its catalog rows, committed after the files are
/// published. Returns its event rows.
fn export_capture(conn: &Connection, lake: &Lake, id: i64) -> Result<u64> {
    lake.remove_capture(id)?;
    let tmp = lake.capture_tmp(id);
    conn.execute_batch("BEGIN IMMEDIATE")?;
    let r = (|| -> Result<u64> {
        for t in PARTITIONED.iter().filter(|t| !ROW_TABLES.contains(t)) {
            let cols = column_list(conn, t)?;
            conn.execute(
                &format!("INSERT INTO main.{t} ({cols}) SELECT {cols} FROM src.{t} WHERE capture_id = ?1"),
                [id],
            )?;
        }
        let files = write_tables(conn, "src", id, PARTITIONED, &tmp)?;
        let date = capture_date(conn, "src", id)?;
        lake.publish(id, &date, &files)?;
        let rows: i64 = conn.query_row(
            "SELECT (SELECT count(*) FROM src.reallocs WHERE capture_id = ?1) + (SELECT count(*) FROM src.heap_events WHERE capture_id = ?1)",
            [id],
            |r| r.get(0),
        )?;
        Ok(rows as u64)
    })();
    lake.clean_tmp(&tmp);
    match r {
        Ok(rows) => {
            conn.execute_batch("COMMIT")?;
            Ok(rows)
        }
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            let _ = lake.remove_capture(id);
            Err(e)
        }
    }
}
