//! Recordings left unfinished (`heapdb record` killed, crashed, or the machine lost
//! power): `heapdb repair` finishes them from what their checkpoints committed.

use super::sink::{lock, RECORDING_RESERVE};
use crate::ingest::live::{lock_path, recording_alive};
use crate::ingest::sink::Context;
use anyhow::{Context as _, Result};
use rusqlite::{Connection, OptionalExtension};
use std::path::Path;

/// The captures still marked `recording`: (those whose recorder is gone, those whose
/// recorder still runs).
pub fn unfinished(conn: &Connection, db: &Path) -> rusqlite::Result<(Vec<i64>, Vec<i64>)> {
    let mut st = conn.prepare(
        "SELECT capture_id, fingerprint FROM captures WHERE status = 'recording' ORDER BY capture_id",
    )?;
    let rows: Vec<(i64, String)> = st
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    let (mut gone, mut alive) = (Vec::new(), Vec::new());
    for (id, fp) in rows {
        if recording_alive(&lock_path(db, &fp)) {
            alive.push(id);
        } else {
            gone.push(id);
        }
    }
    Ok((gone, alive))
}

/// Ends a recording whose recorder is gone, in one transaction: its event range is
/// what was committed, its status `incomplete`, and its block lifetimes and history
/// are left to compute ([`super::lifetimes::backfill`], [`super::history::backfill`],
/// which `heapdb repair` runs next) from its rows, as for a capture of an older heapdb.
pub fn finish(conn: &Connection, db: &Path, capture_id: i64, ctx: Context<'_>) -> Result<()> {
    lock(conn, db, ctx)?;
    let r = (|| -> Result<Option<String>> {
        let row: Option<(i64, Option<i64>, String)> = conn
            .query_row(
                "SELECT first_event_id, first_block_id, fingerprint FROM captures \
                 WHERE capture_id = ?1 AND status = 'recording'",
                [capture_id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()?;
        let Some((first, first_block, fingerprint)) = row else {
            return Ok(None); // finished meanwhile
        };
        let hi = first + RECORDING_RESERVE - 1;
        let (last, events): (i64, i64) = conn.query_row(
            "SELECT max(coalesce((SELECT max(id) FROM reallocs WHERE id BETWEEN ?1 AND ?2), 0), \
                        coalesce((SELECT max(id) FROM heap_events WHERE id BETWEEN ?1 AND ?2), 0), ?1 - 1), \
                    (SELECT count(*) FROM reallocs WHERE id BETWEEN ?1 AND ?2) \
                    + (SELECT count(*) FROM heap_events WHERE id BETWEEN ?1 AND ?2)",
            [first, hi],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        if let Some(b) = first_block {
            conn.execute(
                "DELETE FROM blocks WHERE block_id BETWEEN ?1 AND ?2",
                [b, b + RECORDING_RESERVE - 1],
            )?;
        }
        for t in ["block_counts", "process_usage", "heap_event_counts"] {
            conn.execute(
                &format!("DELETE FROM {t} WHERE capture_id = ?1"),
                [capture_id],
            )?;
        }
        conn.execute(
            "UPDATE captures SET last_event_id = ?2, events_decoded = ?3, first_block_id = NULL, \
             last_block_id = NULL, history = NULL, status = 'incomplete', ingest_finished = ?4 \
             WHERE capture_id = ?1",
            (capture_id, last, events, crate::ingest::now_rfc3339()),
        )?;
        Ok(Some(fingerprint))
    })();
    conn.execute_batch(if r.is_ok() { "COMMIT" } else { "ROLLBACK" })?;
    let fingerprint = r.with_context(|| {
        format!(
            "{}: finishing the recording of capture {capture_id}",
            db.display()
        )
    })?;
    if let Some(fp) = fingerprint {
        let _ = std::fs::remove_file(lock_path(db, &fp));
    }
    Ok(())
}
