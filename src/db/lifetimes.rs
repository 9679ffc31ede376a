//! Block lifetimes of captures stored before they existed (schema 3): `heapdb repair`
//! computes them from the stored events with the same [`Tracker`] an ingest uses, fed
//! in the same (id) order, so the rows are the ones an ingest of the capture writes.

use super::sink::{insert, lock};
use super::sql;
use crate::ingest::lifetimes::{BlockRow, Tracker};
use crate::ingest::rows::HeapEventRow;
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
        let (lo, hi, cpus): (Option<i64>, Option<i64>, Option<u32>) = conn.query_row(
            "SELECT first_event_id, last_event_id, cpu_count FROM captures WHERE capture_id = ?1",
            [capture_id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )?;
        let (lo, hi) = (lo.unwrap_or(1), hi.unwrap_or(0));
        let first: i64 = conn.query_row(sql::NEXT_BLOCK_ID, [], |r| r.get(0))?;
        let mut tracker = Tracker::new(capture_id, first, cpus.unwrap_or(1));
        let mut pending: Vec<BlockRow> = Vec::new();
        {
            let mut st = conn.prepare(
                "SELECT id, time_ns, cpu, pid, 34, heap, new_address, old_address, new_size, old_size, source, stack_id, 0, pointer_size \
                   FROM reallocs WHERE id BETWEEN ?1 AND ?2 AND capture_id = ?3 \
                 UNION ALL \
                 SELECT id, time_ns, cpu, pid, opcode, heap, address, NULL, size, NULL, source, stack_id, realloc_internal, pointer_size \
                   FROM heap_events WHERE id BETWEEN ?1 AND ?2 AND capture_id = ?3 \
                 ORDER BY 1",
            )?;
            let mut rows = st.query((lo, hi, capture_id))?;
            while let Some(r) = rows.next()? {
                let u = |i: usize| -> rusqlite::Result<Option<u64>> {
                    Ok(r.get::<_, Option<i64>>(i)?.map(|v| v as u64))
                };
                let internal: i64 = r.get(12)?;
                let id: i64 = r.get(0)?;
                let row = HeapEventRow {
                    key: (0, 0),
                    time_ns: r.get(1)?,
                    ts_raw: 0,
                    pid: r.get(3)?,
                    tid: 0,
                    cpu: r.get(2)?,
                    opcode: r.get(4)?,
                    pointer_size: r.get(13)?,
                    heap: u(5)?.unwrap_or(0),
                    address: u(6)?,
                    old_address: u(7)?,
                    size: u(8)?,
                    old_size: u(9)?,
                    source: r.get(10)?,
                    stack_id: r.get(11)?,
                    realloc_link: (internal != 0).then_some((0, 0)),
                    extra: None,
                    file_offset: 0,
                };
                tracker.row(&row, id);
                if id % 4096 == 0 {
                    pending.extend(tracker.take());
                    if pending.len() >= FLUSH_BLOCKS {
                        insert(conn, &sql::BLOCKS, &pending)?;
                        pending.clear();
                    }
                }
            }
        }
        pending.extend(tracker.take());
        let ends = process_ends(conn, capture_id)?;
        let (last, summary) = tracker.finish(|pid| ends.get(&pid).copied().flatten());
        pending.extend(last);
        insert(conn, &sql::BLOCKS, &pending)?;
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
        insert(conn, &sql::HEAP_EVENT_COUNTS, &events)?;
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
