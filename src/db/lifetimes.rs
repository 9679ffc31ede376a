//! Block lifetimes of captures stored before they existed (schema 3): `heapdb repair`
//! computes them from the stored events with the same [`Tracker`] an ingest uses, fed
//! in the same (id) order, so the rows are the ones an ingest of the capture writes.

use super::sink::{insert, lock};
use super::sql;
use crate::ingest::lifetimes::{BlockRow, Summary, Tracker};
use crate::ingest::sink::Context;
use anyhow::{Context as _, Result};
use rusqlite::Connection;
use std::collections::HashMap;
use std::path::Path;

/// Rows of `blocks` written per INSERT batch while a capture is followed.
const FLUSH_BLOCKS: usize = 64 * 1024;

/// Captures whose lifetimes are not computed yet.
pub fn captures_without_lifetimes(conn: &Connection) -> rusqlite::Result<Vec<i64>> {
    let mut st = conn.prepare(
        "SELECT capture_id FROM captures WHERE first_block_id IS NULL AND ingest_finished IS NOT NULL ORDER BY capture_id",
    )?;
    let v = st.query_map([], |r| r.get(0))?.collect();
    v
}

/// Computes the lifetimes of a stored capture, in one transaction.
pub fn backfill(conn: &Connection, db: &Path, capture_id: i64, ctx: Context<'_>) -> Result<()> {
    lock(conn, db, ctx)?;
    let r = (|| -> Result<()> {
        let cpus: Option<u32> = conn.query_row(
            "SELECT cpu_count FROM captures WHERE capture_id = ?1",
            [capture_id],
            |r| r.get(0),
        )?;
        let first: i64 = conn.query_row(sql::NEXT_BLOCK_ID, [], |r| r.get(0))?;
        let mut tracker = Tracker::new(capture_id, first, cpus.unwrap_or(1));
        let mut pending: Vec<BlockRow> = Vec::new();
        let mut failed = None;
        super::history::stored_rows(conn, capture_id, |row, id| {
            tracker.row(row, id);
            if id % 4096 == 0 && failed.is_none() {
                pending.extend(tracker.take());
                if pending.len() >= FLUSH_BLOCKS {
                    failed = insert(conn, &sql::BLOCKS, &pending).err();
                    pending.clear();
                }
            }
        })?;
        if let Some(e) = failed {
            return Err(e.into());
        }
        pending.extend(tracker.take());
        let ends = process_ends(conn, capture_id)?;
        let (last, summary) = tracker.finish(|pid| ends.get(&pid).copied().flatten());
        pending.extend(last);
        insert(conn, &sql::BLOCKS, &pending)?;
        write_summary(conn, capture_id, &summary)?;
        fill_site_live(conn, capture_id)?;
        conn.execute(
            "UPDATE captures SET first_block_id = ?2, last_block_id = ?3, events_out_of_order = ?4 WHERE capture_id = ?1",
            (
                capture_id,
                summary.first_block_id,
                summary.next_block_id - 1,
                summary.stats.out_of_order as i64,
            ),
        )?;
        Ok(())
    })();
    conn.execute_batch(if r.is_ok() { "COMMIT" } else { "ROLLBACK" })?;
    r.with_context(|| {
        format!(
            "{}: computing the block lifetimes of capture {capture_id}",
            db.display()
        )
    })
}

/// Writes a capture's lifetime summaries (block_counts, process_usage,
/// heap_event_counts).
pub(crate) fn write_summary(
    conn: &Connection,
    capture_id: i64,
    summary: &Summary,
) -> rusqlite::Result<()> {
    let counts: Vec<sql::BlockCountRow> = summary
        .counts
        .iter()
        .map(|(k, c)| (capture_id, *k, *c))
        .collect();
    insert(conn, &sql::BLOCK_COUNTS, &counts)?;
    let usage: Vec<sql::UsageRow> = summary
        .usage
        .iter()
        .map(|(p, u)| (capture_id, *p, *u))
        .collect();
    insert(conn, &sql::PROCESS_USAGE, &usage)?;
    let events: Vec<sql::EventCountRow> = summary
        .events
        .iter()
        .map(|(k, c)| (capture_id, *k, *c))
        .collect();
    insert(conn, &sql::HEAP_EVENT_COUNTS, &events)
}

/// Fills `site_stats.live_blocks` / `live_bytes` of a capture from its lifetime counts
/// (once both its history and its lifetimes are stored): what `trend` and
/// `capture-diff` follow as outstanding bytes per call site across nights.
pub(crate) fn fill_site_live(conn: &Connection, capture_id: i64) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE site_stats SET live_blocks = coalesce(x.blocks, 0), live_bytes = coalesce(x.bytes, 0)
         FROM (SELECT s.pid, s.heap, s.site_id, l.blocks, l.bytes
               FROM site_stats s
               LEFT JOIN (SELECT k.pid, k.heap, cs.site_id, sum(k.blocks) AS blocks, sum(k.bytes) AS bytes
                          FROM block_counts k
                          LEFT JOIN capture_stacks cs ON cs.capture_id = k.capture_id AND cs.pid = k.pid
                                                     AND cs.stack_id = k.start_stack_id
                          WHERE k.capture_id = ?1 AND k.end_kind = 'live_at_end'
                            AND k.start_kind IN ('alloc', 'realloc')
                          GROUP BY k.pid, k.heap, cs.site_id) l
                 ON l.pid = s.pid AND l.heap = s.heap AND l.site_id IS s.site_id
               WHERE s.capture_id = ?1) x
         WHERE site_stats.capture_id = ?1 AND site_stats.pid = x.pid AND site_stats.heap = x.heap
           AND site_stats.site_id IS x.site_id",
        [capture_id],
    )?;
    Ok(())
}

/// pid → the end of its last process row (what the loader uses: see `ingest::load`).
fn process_ends(conn: &Connection, capture_id: i64) -> rusqlite::Result<HashMap<u32, Option<i64>>> {
    let mut st = conn
        .prepare("SELECT pid, end_ns FROM processes WHERE capture_id = ?1 ORDER BY process_row")?;
    let mut m = HashMap::new();
    let mut rows = st.query([capture_id])?;
    while let Some(r) = rows.next()? {
        m.insert(r.get::<_, u32>(0)?, r.get::<_, Option<i64>>(1)?);
    }
    Ok(m)
}
