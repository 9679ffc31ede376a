//! The history tables (sites, site_frames, capture_stacks, heaps, site_stats,
//! capture_labels): writing them for a capture being ingested, and computing them for
//! captures stored before they existed (`heapdb repair`).

use super::sql;
use crate::ingest::identity::{History, Tally};
use crate::ingest::rows::HeapEventRow;
use crate::ingest::rundown::{ImageRow, ProcessRow, RundownTables};
use crate::ingest::sink::Context;
use anyhow::{Context as _, Result};
use rusqlite::Connection;
use std::path::Path;

fn insert_each<R>(
    conn: &Connection,
    t: &sql::Table<R>,
    rows: &[R],
    or_ignore: bool,
) -> rusqlite::Result<usize> {
    let mut sql = t.insert_sql(1);
    if or_ignore {
        sql.push_str(" ON CONFLICT DO NOTHING");
    }
    let mut st = conn.prepare_cached(&sql)?;
    let mut n = 0;
    for r in rows {
        (t.bind)(&mut st, 0, r)?;
        n += st.raw_execute()?;
    }
    Ok(n)
}

/// Stores a capture's history rows (inside the caller's transaction). Sites are
/// shared by captures: one already stored is left as it is (with its symbols).
pub fn write_history(conn: &Connection, capture_id: i64, h: &History) -> rusqlite::Result<()> {
    for s in &h.sites {
        if insert_each(conn, &sql::SITES, std::slice::from_ref(s), true)? == 1 {
            let frames: Vec<sql::SiteFrameRow> = s
                .frames
                .iter()
                .enumerate()
                .map(|(d, f)| (s.site_id, d, f.clone()))
                .collect();
            insert_each(conn, &sql::SITE_FRAMES, &frames, true)?;
        }
    }
    let stacks: Vec<_> = h.capture_stacks.iter().map(|x| (capture_id, *x)).collect();
    insert_each(conn, &sql::CAPTURE_STACKS, &stacks, false)?;
    // The site a stack was first seen as: what stack_frames_v names its frames by.
    let mut first_site = conn
        .prepare_cached("UPDATE stacks SET site_id = ?2 WHERE stack_id = ?1 AND site_id IS NULL")?;
    for &(_, stack, site) in &h.capture_stacks {
        first_site.execute([stack, site])?;
    }
    let heaps: Vec<_> = h.heaps.iter().map(|x| (capture_id, x.clone())).collect();
    insert_each(conn, &sql::HEAPS, &heaps, false)?;
    let stats: Vec<_> = h
        .site_stats
        .iter()
        .map(|x| (capture_id, x.clone()))
        .collect();
    insert_each(conn, &sql::SITE_STATS, &stats, false)?;
    conn.execute(
        "UPDATE captures SET history = 1 WHERE capture_id = ?1",
        [capture_id],
    )?;
    Ok(())
}

/// Sets labels of a capture (replacing a label of the same key).
pub fn write_labels(
    conn: &Connection,
    capture_id: i64,
    labels: &[(String, String)],
) -> rusqlite::Result<()> {
    let mut st = conn.prepare_cached(&format!(
        "{} ON CONFLICT (capture_id, key) DO UPDATE SET value = excluded.value",
        sql::CAPTURE_LABELS.insert_sql(1)
    ))?;
    for l in labels {
        (sql::CAPTURE_LABELS.bind)(&mut st, 0, &(capture_id, l.clone()))?;
        st.raw_execute()?;
    }
    Ok(())
}

/// Captures whose history tables were never computed (stored by a heapdb before
/// schema 2).
pub fn captures_without_history(conn: &Connection) -> rusqlite::Result<Vec<i64>> {
    let mut st = conn.prepare(
        "SELECT capture_id FROM captures WHERE history IS NULL AND ingest_finished IS NOT NULL ORDER BY capture_id",
    )?;
    let v = st.query_map([], |r| r.get(0))?.collect();
    v
}

/// Computes the history of a stored capture from its rows, stacks, processes and
/// images, in one transaction; the same result as an ingest of the capture gives.
pub fn backfill(conn: &Connection, db: &Path, capture_id: i64, ctx: Context<'_>) -> Result<()> {
    super::sink::lock(conn, db, ctx)?;
    let r = (|| -> Result<()> {
        let mut rundown = RundownTables {
            processes: read_processes(conn, capture_id)?,
            threads: Vec::new(),
            images: read_images(conn, capture_id)?,
        };
        let mut tally = Tally::new();
        let (lo, hi): (Option<i64>, Option<i64>) = conn.query_row(
            "SELECT first_event_id, last_event_id FROM captures WHERE capture_id = ?1",
            [capture_id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        let (lo, hi) = (lo.unwrap_or(1), hi.unwrap_or(0));
        let mut stacks: Vec<(i64, Vec<u64>)> = Vec::new();
        {
            let mut st = conn.prepare(
                "SELECT f.stack_id, f.address FROM stack_frames f \
                 WHERE f.stack_id IN (SELECT stack_id FROM reallocs WHERE id BETWEEN ?1 AND ?2 AND stack_id IS NOT NULL \
                                      UNION SELECT stack_id FROM heap_events WHERE id BETWEEN ?1 AND ?2 AND stack_id IS NOT NULL) \
                 ORDER BY f.stack_id, f.depth",
            )?;
            let mut rows = st.query([lo, hi])?;
            while let Some(r) = rows.next()? {
                let id: i64 = r.get(0)?;
                let a: i64 = r.get(1)?;
                match stacks.last_mut() {
                    Some((last, frames)) if *last == id => frames.push(a as u64),
                    _ => stacks.push((id, vec![a as u64])),
                }
            }
        }
        tally.stacks(&stacks);
        stored_rows(conn, capture_id, |row, _| tally.row(row))?;
        let history = tally.resolve(&mut rundown);
        let mut up =
            conn.prepare_cached("UPDATE processes SET identity = ?1 WHERE process_row = ?2")?;
        for (p, rowid) in rundown
            .processes
            .iter()
            .zip(read_process_rowids(conn, capture_id)?)
        {
            up.execute((p.identity.as_str(), rowid))?;
        }
        write_history(conn, capture_id, &history)?;
        // Outstanding bytes per site come from the lifetimes, when they are there.
        let lifetimes: Option<i64> = conn.query_row(
            "SELECT first_block_id FROM captures WHERE capture_id = ?1",
            [capture_id],
            |r| r.get(0),
        )?;
        if lifetimes.is_some() {
            super::lifetimes::fill_site_live(conn, capture_id)?;
        }
        Ok(())
    })();
    conn.execute_batch(if r.is_ok() { "COMMIT" } else { "ROLLBACK" })?;
    r.with_context(|| {
        format!(
            "{}: computing the history of capture {capture_id}",
            db.display()
        )
    })
}

/// Calls `f` with every heap event of a stored capture, as the row the ingest built
/// (the columns the database keeps) and its id, in id order: both tables merged, the
/// order the loading thread saw them in.
pub(crate) fn stored_rows(
    conn: &Connection,
    capture_id: i64,
    mut f: impl FnMut(&HeapEventRow, i64),
) -> rusqlite::Result<()> {
    let (lo, hi): (Option<i64>, Option<i64>) = conn.query_row(
        "SELECT first_event_id, last_event_id FROM captures WHERE capture_id = ?1",
        [capture_id],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    let mut st = conn.prepare(
        "SELECT id, time_ns, cpu, pid, 34, heap, new_address, old_address, new_size, old_size, source, stack_id, 0, pointer_size, tid \
           FROM reallocs WHERE id BETWEEN ?1 AND ?2 AND capture_id = ?3 \
         UNION ALL \
         SELECT id, time_ns, cpu, pid, opcode, heap, address, NULL, size, NULL, source, stack_id, realloc_internal, pointer_size, tid \
           FROM heap_events WHERE id BETWEEN ?1 AND ?2 AND capture_id = ?3 \
         ORDER BY 1",
    )?;
    let mut rows = st.query((lo.unwrap_or(1), hi.unwrap_or(0), capture_id))?;
    while let Some(r) = rows.next()? {
        let u = |i: usize| -> rusqlite::Result<Option<u64>> {
            Ok(r.get::<_, Option<i64>>(i)?.map(|v| v as u64))
        };
        let internal: i64 = r.get(12)?;
        let row = HeapEventRow {
            key: (0, 0),
            time_ns: r.get(1)?,
            ts_raw: 0,
            pid: r.get(3)?,
            tid: r.get(14)?,
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
        f(&row, r.get(0)?);
    }
    Ok(())
}

const PROCESS_COLUMNS: &str =
    "pid, name, command_line, parent_pid, session_id, unique_key, start_ns, end_ns, seen_as";

fn read_processes(conn: &Connection, capture_id: i64) -> rusqlite::Result<Vec<ProcessRow>> {
    let mut st = conn.prepare(&format!(
        "SELECT {PROCESS_COLUMNS} FROM processes WHERE capture_id = ?1 ORDER BY process_row"
    ))?;
    let v = st
        .query_map([capture_id], |r| {
            let seen: String = r.get(8)?;
            Ok(ProcessRow {
                pid: r.get(0)?,
                name: r.get(1)?,
                command_line: r.get(2)?,
                parent_pid: r.get(3)?,
                session_id: r.get(4)?,
                unique_key: r.get::<_, Option<i64>>(5)?.map(|v| v as u64),
                start_ns: r.get(6)?,
                end_ns: r.get(7)?,
                seen_as: match seen.as_str() {
                    "start" => "start",
                    "rundown" => "rundown",
                    _ => "heap_events_only",
                },
                identity: String::new(),
            })
        })?
        .collect();
    v
}

fn read_process_rowids(conn: &Connection, capture_id: i64) -> rusqlite::Result<Vec<i64>> {
    let mut st = conn
        .prepare("SELECT process_row FROM processes WHERE capture_id = ?1 ORDER BY process_row")?;
    let v = st.query_map([capture_id], |r| r.get(0))?.collect();
    v
}

fn read_images(conn: &Connection, capture_id: i64) -> rusqlite::Result<Vec<ImageRow>> {
    let mut st = conn.prepare(
        "SELECT pid, base, size, path, name, checksum, timedatestamp, load_ns, unload_ns \
         FROM images WHERE capture_id = ?1 ORDER BY pid, base",
    )?;
    let v = st
        .query_map([capture_id], |r| {
            Ok(ImageRow {
                pid: r.get(0)?,
                base: r.get::<_, i64>(1)? as u64,
                size: r.get::<_, i64>(2)? as u64,
                path: r.get(3)?,
                name: r.get(4)?,
                checksum: r.get::<_, Option<u32>>(5)?.unwrap_or(0),
                timedatestamp: r.get::<_, Option<u32>>(6)?.unwrap_or(0),
                pdb: None,
                load_ns: r.get(7)?,
                unload_ns: r.get(8)?,
            })
        })?
        .collect();
    v
}

/// Which captures `heapdb label` changes.
#[derive(Debug, Clone)]
pub enum LabelTarget {
    /// By capture id.
    Ids(Vec<i64>),
    /// By file name (`captures.file_name`), a GLOB pattern (`*`, `?`, `[...]`).
    Files(Vec<String>),
}

/// A capture and its labels after [`relabel`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Labelled {
    pub capture_id: i64,
    pub file_name: String,
    pub labels: Vec<(String, String)>,
}

/// Sets (`set`, replacing a label of the same key) and removes (`remove`) labels of the
/// captures `target` names, in one transaction, and returns them with their labels
/// afterwards (nothing is changed, and an empty list returned, when no capture matches).
/// The database must exist.
pub fn relabel(
    path: &Path,
    target: &LabelTarget,
    set: &[(String, String)],
    remove: &[String],
) -> Result<Vec<Labelled>> {
    if !path.is_file() {
        anyhow::bail!("{}: no such database", path.display());
    }
    let conn = super::open_rw(path)?;
    conn.execute_batch("BEGIN IMMEDIATE")
        .with_context(|| format!("{}: taking the write lock", path.display()))?;
    let r = (|| -> Result<Vec<Labelled>> {
        let mut ids: Vec<(i64, String)> = Vec::new();
        {
            let (sql, args): (&str, Vec<rusqlite::types::Value>) = match target {
                LabelTarget::Ids(v) => (
                    "SELECT capture_id, file_name FROM captures WHERE capture_id = ?1",
                    v.iter().map(|&i| i.into()).collect(),
                ),
                LabelTarget::Files(v) => (
                    "SELECT capture_id, file_name FROM captures WHERE file_name GLOB ?1",
                    v.iter().map(|s| s.clone().into()).collect(),
                ),
            };
            let mut st = conn.prepare(sql)?;
            for a in args {
                let rows = st.query_map([a], |r| Ok((r.get(0)?, r.get(1)?)))?;
                for row in rows {
                    ids.push(row?);
                }
            }
        }
        ids.sort();
        ids.dedup();
        let mut out = Vec::new();
        for (id, file_name) in ids {
            write_labels(&conn, id, set)?;
            for k in remove {
                conn.execute(
                    "DELETE FROM capture_labels WHERE capture_id = ?1 AND key = ?2",
                    rusqlite::params![id, k],
                )?;
            }
            let mut st = conn.prepare_cached(
                "SELECT key, value FROM capture_labels WHERE capture_id = ?1 ORDER BY key",
            )?;
            let labels = st
                .query_map([id], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            out.push(Labelled {
                capture_id: id,
                file_name,
                labels,
            });
        }
        Ok(out)
    })();
    match &r {
        Ok(v) if !v.is_empty() => conn.execute_batch("COMMIT")?,
        _ => conn.execute_batch("ROLLBACK")?,
    }
    r.with_context(|| path.display().to_string())
}
