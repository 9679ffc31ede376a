//! The single writer: owns the SQLite connection, inserts the rows of one capture in one
//! transaction (so a capture is either entirely there or not at all, whatever happens
//! to the process), and keeps the id sequence deterministic.

use super::rows::{EventRow, RundownRow};
use super::{CaptureEnd, CaptureStart, FileFailure, Msg, Shared};
use crate::heap::capture::{Problem, RowKey};
use crate::heap::record::op;
use crate::heap::rundown::{Phase, Rundown};
use anyhow::{Context, Result};
use rusqlite::{params, Connection, OptionalExtension};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::mpsc::Receiver;
use std::sync::Arc;

const REALLOC_COLUMNS: &str = "id, capture_id, time_ns, ts_raw, pid, tid, cpu, heap, new_address, old_address, new_size, old_size, source, moved, pointer_size, stack_id, alloc_id, free_id, file_offset";
const EVENT_COLUMNS: &str = "id, capture_id, time_ns, ts_raw, pid, tid, cpu, opcode, heap, address, size, source, pointer_size, stack_id, realloc_internal, extra, file_offset";

/// Rows per INSERT statement: one statement per row spends most of its time in the
/// statement machinery (step/reset), not in the b-tree; 32 rows per statement measured
/// faster (docs/performance.md).
pub const ROWS_PER_INSERT: usize = 32;

/// `INSERT INTO table (columns) VALUES (?,..),(?,..)...` for `rows` rows.
pub fn multi_insert_sql(table: &str, columns: &str, rows: usize) -> String {
    let n = columns.split(',').count();
    let one = format!("({})", vec!["?"; n].join(","));
    format!(
        "INSERT INTO {table} ({columns}) VALUES {}",
        vec![one; rows].join(",")
    )
}

/// A ReAlloc row ready to insert.
pub struct ReallocRow {
    pub id: i64,
    pub capture_id: i64,
    pub alloc_id: Option<i64>,
    pub free_id: Option<i64>,
    pub row: EventRow,
}

/// Binds the seven columns both event tables start with (id, capture_id, time_ns,
/// ts_raw, pid, tid, cpu) at parameters `base + 1 ..= base + 7`.
fn bind_event_keys(
    st: &mut rusqlite::Statement<'_>,
    base: usize,
    id: i64,
    capture_id: i64,
    e: &EventRow,
) -> rusqlite::Result<()> {
    st.raw_bind_parameter(base + 1, id)?;
    st.raw_bind_parameter(base + 2, capture_id)?;
    st.raw_bind_parameter(base + 3, e.time_ns)?;
    st.raw_bind_parameter(base + 4, sql_u64(e.ts_raw))?;
    st.raw_bind_parameter(base + 5, e.pid)?;
    st.raw_bind_parameter(base + 6, e.tid)?;
    st.raw_bind_parameter(base + 7, e.cpu)
}

/// Binds one ReAlloc row's 19 values starting at parameter `base + 1`.
pub fn bind_realloc(
    st: &mut rusqlite::Statement<'_>,
    base: usize,
    r: &ReallocRow,
) -> rusqlite::Result<()> {
    let e = &r.row;
    let new_address = e.address.unwrap_or(0);
    let old_address = e.old_address.unwrap_or(0);
    bind_event_keys(st, base, r.id, r.capture_id, e)?;
    st.raw_bind_parameter(base + 8, sql_u64(e.heap))?;
    st.raw_bind_parameter(base + 9, sql_u64(new_address))?;
    st.raw_bind_parameter(base + 10, sql_u64(old_address))?;
    st.raw_bind_parameter(base + 11, sql_u64(e.size.unwrap_or(0)))?;
    st.raw_bind_parameter(base + 12, sql_u64(e.old_size.unwrap_or(0)))?;
    st.raw_bind_parameter(base + 13, e.source.unwrap_or(0))?;
    st.raw_bind_parameter(base + 14, (new_address != old_address) as i32)?;
    st.raw_bind_parameter(base + 15, e.pointer_size)?;
    st.raw_bind_parameter(base + 16, e.stack_id)?;
    st.raw_bind_parameter(base + 17, r.alloc_id)?;
    st.raw_bind_parameter(base + 18, r.free_id)?;
    st.raw_bind_parameter(base + 19, sql_u64(e.file_offset))?;
    Ok(())
}

/// Inserts rows `ROWS_PER_INSERT` per statement (the remainder one by one); `bind`
/// binds one row's `ncols` values from parameter `base + 1`.
fn insert_chunked<T>(
    conn: &Connection,
    table: &str,
    columns: &str,
    rows: &[T],
    bind: fn(&mut rusqlite::Statement<'_>, usize, &T) -> rusqlite::Result<()>,
) -> rusqlite::Result<()> {
    let ncols = columns.split(',').count();
    let mut chunks = rows.chunks_exact(ROWS_PER_INSERT);
    let mut st = conn.prepare_cached(&multi_insert_sql(table, columns, ROWS_PER_INSERT))?;
    for chunk in &mut chunks {
        for (i, r) in chunk.iter().enumerate() {
            bind(&mut st, i * ncols, r)?;
        }
        st.raw_execute()?;
    }
    let mut one = conn.prepare_cached(&multi_insert_sql(table, columns, 1))?;
    for r in chunks.remainder() {
        bind(&mut one, 0, r)?;
        one.raw_execute()?;
    }
    Ok(())
}

/// Inserts ReAlloc rows.
pub fn insert_reallocs(conn: &Connection, rows: &[ReallocRow]) -> rusqlite::Result<()> {
    insert_chunked(conn, "reallocs", REALLOC_COLUMNS, rows, bind_realloc)
}

/// Another heap event ready to insert.
pub struct OtherRow {
    pub id: i64,
    pub capture_id: i64,
    pub row: EventRow,
}

fn bind_event(st: &mut rusqlite::Statement<'_>, base: usize, r: &OtherRow) -> rusqlite::Result<()> {
    let e = &r.row;
    bind_event_keys(st, base, r.id, r.capture_id, e)?;
    st.raw_bind_parameter(base + 8, e.opcode)?;
    st.raw_bind_parameter(base + 9, sql_u64(e.heap))?;
    st.raw_bind_parameter(base + 10, e.address.map(sql_u64))?;
    st.raw_bind_parameter(base + 11, e.size.map(sql_u64))?;
    st.raw_bind_parameter(base + 12, e.source)?;
    st.raw_bind_parameter(base + 13, e.pointer_size)?;
    st.raw_bind_parameter(base + 14, e.stack_id)?;
    st.raw_bind_parameter(base + 15, e.realloc_link.is_some() as i32)?;
    st.raw_bind_parameter(base + 16, e.extra.as_deref())?;
    st.raw_bind_parameter(base + 17, sql_u64(e.file_offset))?;
    Ok(())
}

fn insert_events(conn: &Connection, rows: &[OtherRow]) -> rusqlite::Result<()> {
    insert_chunked(conn, "heap_events", EVENT_COLUMNS, rows, bind_event)
}

/// An image with its load and unload times.
type ImageLife = (crate::heap::rundown::ImageInfo, Option<i64>, Option<i64>);

/// State of the capture being written.
struct Current {
    capture_id: i64,
    path: String,
    fingerprint: String,
    rundown: Vec<RundownRow>,
    pids: HashSet<u32>,
    problems: u64,
    /// Alloc/Free rows of moving reallocs, waiting for their ReAlloc: realloc key →
    /// (alloc id, free id).
    pending_links: HashMap<RowKey, (Option<i64>, Option<i64>)>,
    first_ns: Option<i64>,
    last_ns: Option<i64>,
    first_id: i64,
}

pub(crate) struct Writer {
    conn: Connection,
    shared: Arc<Shared>,
    next_id: i64,
    known_stacks: HashSet<i64>,
    current: Option<Current>,
    strict: bool,
}

fn sql_u64(v: u64) -> i64 {
    // Addresses are stored as their 64-bit pattern (see schema/001_tables.sql).
    v as i64
}

impl Writer {
    pub fn new(conn: Connection, shared: Arc<Shared>, strict: bool) -> Result<Writer> {
        let next_id: i64 = conn.query_row(
            "SELECT max(coalesce((SELECT max(id) FROM reallocs), 0), coalesce((SELECT max(id) FROM heap_events), 0)) + 1",
            [],
            |r| r.get(0),
        )?;
        let mut known_stacks = HashSet::new();
        {
            let mut st = conn.prepare("SELECT stack_id FROM stacks")?;
            let ids = st.query_map([], |r| r.get::<_, i64>(0))?;
            for id in ids {
                known_stacks.insert(id?);
            }
        }
        Ok(Writer {
            conn,
            shared,
            next_id,
            known_stacks,
            current: None,
            strict,
        })
    }

    pub fn into_connection(self) -> Connection {
        self.conn
    }

    /// Consumes messages until the channel closes. A database error ends the run.
    pub fn run(&mut self, rx: Receiver<Msg>) -> Result<()> {
        for msg in rx {
            let skip = self.shared.skip_current.load(Ordering::Relaxed);
            match msg {
                Msg::Begin(start) => self.begin(*start)?,
                Msg::Rows(batch) => {
                    if self.current.is_some() && !skip {
                        self.rows(batch.rows, batch.stacks, batch.rundown, batch.problems)?;
                    }
                }
                Msg::End(end) => self.end(*end)?,
                Msg::Failed(f) => self.failed(f)?,
            }
        }
        if let Some(cur) = self.current.take() {
            // The producer stopped mid-capture (strict mode or a fatal error): nothing of
            // it is committed.
            self.conn.execute_batch("ROLLBACK")?;
            self.shared.log(format!("{}: not committed", cur.path));
        }
        Ok(())
    }

    fn begin(&mut self, s: CaptureStart) -> Result<()> {
        self.shared.skip_current.store(false, Ordering::Relaxed);
        if self.shared.stop.load(Ordering::Relaxed) {
            // --strict saw a bad file: nothing after it is ingested.
            self.shared.skip_current.store(true, Ordering::Relaxed);
            return Ok(());
        }
        let existing: Option<(i64, String)> = self
            .conn
            .query_row(
                "SELECT capture_id, path FROM captures WHERE fingerprint = ?1",
                [&s.fingerprint],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        if let Some((id, path)) = existing {
            // Ingested before (maybe under another path, maybe by a concurrent run).
            self.shared.skip_current.store(true, Ordering::Relaxed);
            self.shared.note_duplicate(&s.path, id, &path);
            return Ok(());
        }
        self.conn.execute_batch("BEGIN IMMEDIATE")?;
        let h = &s.header;
        self.conn.execute(
            "INSERT INTO captures (path, file_name, size_bytes, fingerprint, os_version, os_build, pointer_size, cpu_count, clock_type, perf_freq, buffer_size, logger_name, start_time_ns, end_time_ns, events_lost, buffers_lost, ingest_started, heapdb_version, status)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, 'loading')",
            params![
                s.path,
                s.file_name,
                s.size as i64,
                s.fingerprint,
                format!("{}.{}", h.os_major, h.os_minor),
                h.os_build,
                h.pointer_size,
                h.cpu_count,
                h.clock_type.name(),
                h.perf_freq as i64,
                h.buffer_size,
                h.logger_name,
                crate::etl::time::filetime_to_unix_ns(h.start_time),
                (h.end_time != 0).then(|| crate::etl::time::filetime_to_unix_ns(h.end_time)),
                h.events_lost,
                h.buffers_lost,
                s.started,
                env!("CARGO_PKG_VERSION"),
            ],
        )?;
        self.current = Some(Current {
            capture_id: self.conn.last_insert_rowid(),
            path: s.path,
            fingerprint: s.fingerprint,
            rundown: Vec::new(),
            pids: HashSet::new(),
            problems: 0,
            pending_links: HashMap::new(),
            first_ns: None,
            last_ns: None,
            first_id: self.next_id,
        });
        Ok(())
    }

    fn rows(
        &mut self,
        rows: Vec<EventRow>,
        stacks: Vec<(i64, Vec<u64>)>,
        rundown: Vec<RundownRow>,
        problems: Vec<Problem>,
    ) -> Result<()> {
        let cur = self.current.as_mut().expect("rows outside a capture");
        let cid = cur.capture_id;
        {
            let mut reallocs = Vec::with_capacity(rows.len());
            let mut others = Vec::with_capacity(rows.len());
            for r in rows {
                let id = self.next_id;
                self.next_id += 1;
                cur.pids.insert(r.pid);
                cur.first_ns = Some(cur.first_ns.map_or(r.time_ns, |f| f.min(r.time_ns)));
                cur.last_ns = Some(cur.last_ns.map_or(r.time_ns, |l| l.max(r.time_ns)));
                if r.opcode == op::REALLOC {
                    // Its internal Alloc/Free (if logged) came before it: their ids are known.
                    let (alloc_id, free_id) =
                        cur.pending_links.remove(&r.key).unwrap_or((None, None));
                    reallocs.push(ReallocRow {
                        id,
                        capture_id: cid,
                        alloc_id,
                        free_id,
                        row: r,
                    });
                } else {
                    if let Some(k) = r.realloc_link {
                        let e = cur.pending_links.entry(k).or_default();
                        if r.opcode == op::ALLOC {
                            e.0 = Some(id);
                        } else {
                            e.1 = Some(id);
                        }
                    }
                    others.push(OtherRow {
                        id,
                        capture_id: cid,
                        row: r,
                    });
                }
            }
            insert_reallocs(&self.conn, &reallocs)?;
            insert_events(&self.conn, &others)?;
            self.shared
                .add_rows(reallocs.len() as u64, others.len() as u64);
        }
        if !stacks.is_empty() {
            let mut ins_s = self.conn.prepare_cached(
                "INSERT OR IGNORE INTO stacks (stack_id, depth, leaf) VALUES (?1, ?2, ?3)",
            )?;
            let mut ins_f = self.conn.prepare_cached(
                "INSERT OR IGNORE INTO stack_frames (stack_id, depth, address) VALUES (?1, ?2, ?3)",
            )?;
            for (id, frames) in stacks {
                if !self.known_stacks.insert(id) {
                    continue;
                }
                ins_s.execute(params![
                    id,
                    frames.len() as i64,
                    frames.first().map(|&f| sql_u64(f))
                ])?;
                for (d, &f) in frames.iter().enumerate() {
                    ins_f.execute(params![id, d as i64, sql_u64(f)])?;
                }
            }
        }
        cur.rundown.extend(rundown);
        if !problems.is_empty() {
            cur.problems += problems.len() as u64;
            let mut ins = self.conn.prepare_cached(
                "INSERT OR IGNORE INTO ingest_errors (capture_id, path, fingerprint, byte_offset, message) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
            for p in &problems {
                ins.execute(params![
                    cid,
                    cur.path,
                    cur.fingerprint,
                    p.offset as i64,
                    p.message
                ])?;
                self.shared.log(format!("{}: {}", cur.path, p.message));
            }
            if self.strict {
                self.shared.stop.store(true, Ordering::Relaxed);
            }
        }
        Ok(())
    }

    fn end(&mut self, e: CaptureEnd) -> Result<()> {
        if self.shared.skip_current.swap(false, Ordering::Relaxed) {
            return Ok(());
        }
        let Some(cur) = self.current.take() else {
            return Ok(());
        };
        if self.strict && (cur.problems > 0 || e.stats.bad_records > 0) {
            self.conn.execute_batch("ROLLBACK")?;
            self.shared.stop.store(true, Ordering::Relaxed);
            self.shared.note_failed(&cur.path);
            self.shared.log(format!(
                "{}: bad records; --strict: capture not committed, stopping",
                cur.path
            ));
            return Ok(());
        }
        self.write_rundown(&cur)?;
        let st = &e.stats;
        let skipped = st.events.saturating_sub(st.heap_events);
        let status = if cur.problems > 0 {
            "complete_with_errors"
        } else {
            "complete"
        };
        self.conn.execute(
            "UPDATE captures SET first_event_ns = ?2, last_event_ns = ?3, events_seen = ?4, events_decoded = ?5, events_skipped = ?6, events_bad = ?7,
                unknown_versions = ?8, records_32bit = ?9, stacks_matched = ?10, stacks_orphan = ?11, moving_reallocs_linked = ?12,
                ingest_finished = ?13, status = ?14, first_event_id = ?15, last_event_id = ?16 WHERE capture_id = ?1",
            params![
                cur.capture_id,
                cur.first_ns,
                cur.last_ns,
                st.events as i64,
                st.heap_events as i64,
                skipped as i64,
                (st.bad_records.max(cur.problems)) as i64,
                st.unknown_versions as i64,
                st.records_32bit as i64,
                st.stacks_matched as i64,
                st.stacks_orphan as i64,
                st.moving_reallocs_linked as i64,
                super::now_rfc3339(),
                status,
                cur.first_id,
                self.next_id - 1,
            ],
        )?;
        self.conn
            .execute_batch("COMMIT")
            .with_context(|| format!("committing {}", cur.path))?;
        self.shared.note_ingested(cur.problems > 0);
        Ok(())
    }

    fn failed(&mut self, f: FileFailure) -> Result<()> {
        self.conn.execute(
            "INSERT OR IGNORE INTO ingest_errors (capture_id, path, fingerprint, byte_offset, message) VALUES (NULL, ?1, ?2, ?3, ?4)",
            params![f.path, f.fingerprint, f.offset.map(|o| o as i64), f.message],
        )?;
        self.shared.note_failed(&f.path);
        self.shared.log(match f.offset {
            Some(o) => format!("{}: byte offset {o}: {}", f.path, f.message),
            None => format!("{}: {}", f.path, f.message),
        });
        if self.strict {
            self.shared.stop.store(true, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Processes, threads and images of the capture from its rundown; processes known
    /// only from heap events get a row too, so every pid can be joined.
    fn write_rundown(&mut self, cur: &Current) -> Result<()> {
        let cid = cur.capture_id;
        // Processes: one row per (pid, start) instance.
        struct P {
            name: Option<String>,
            cmd: Option<String>,
            parent: Option<u32>,
            session: Option<u32>,
            key: Option<u64>,
            start: Option<i64>,
            end: Option<i64>,
            seen_as: &'static str,
        }
        let mut procs: BTreeMap<u32, Vec<P>> = BTreeMap::new();
        let mut threads: BTreeMap<(u32, u32), (Option<i64>, Option<i64>)> = BTreeMap::new();
        let mut images: BTreeMap<(u32, u64), ImageLife> = BTreeMap::new();
        let mut pdbs = Vec::new();
        for r in &cur.rundown {
            match &r.item {
                Rundown::Process(p) => {
                    let list = procs.entry(p.pid).or_default();
                    let fill = |x: &mut P| {
                        if x.name.as_deref().is_none_or(str::is_empty) && !p.image_name.is_empty() {
                            x.name = Some(p.image_name.clone());
                        }
                        if x.cmd.as_deref().is_none_or(str::is_empty) && !p.command_line.is_empty()
                        {
                            x.cmd = Some(p.command_line.clone());
                        }
                        x.parent.get_or_insert(p.parent_pid);
                        x.session.get_or_insert(p.session_id);
                        x.key.get_or_insert(p.unique_key);
                    };
                    match p.phase {
                        Phase::Start => {
                            let mut x = P {
                                name: None,
                                cmd: None,
                                parent: None,
                                session: None,
                                key: None,
                                start: Some(r.time_ns),
                                end: None,
                                seen_as: "start",
                            };
                            fill(&mut x);
                            list.push(x);
                        }
                        _ => {
                            if list.is_empty() {
                                list.push(P {
                                    name: None,
                                    cmd: None,
                                    parent: None,
                                    session: None,
                                    key: None,
                                    start: None,
                                    end: None,
                                    seen_as: "rundown",
                                });
                            }
                            let x = list.last_mut().expect("non-empty");
                            fill(x);
                            if p.phase == Phase::End {
                                x.end = Some(r.time_ns);
                            }
                        }
                    }
                }
                Rundown::Thread(t) => {
                    let e = threads.entry((t.pid, t.tid)).or_default();
                    match t.phase {
                        Phase::Start => e.0 = Some(r.time_ns),
                        Phase::End => e.1 = Some(r.time_ns),
                        _ => {}
                    }
                }
                Rundown::Image(i) => {
                    let e = images
                        .entry((i.pid, i.base))
                        .or_insert_with(|| (i.clone(), None, None));
                    if i.phase == Phase::Start {
                        e.1 = Some(r.time_ns);
                    }
                    if i.phase == Phase::End {
                        e.2 = Some(r.time_ns);
                    }
                }
                Rundown::Pdb(p) => pdbs.push(p.clone()),
            }
        }
        for pid in &cur.pids {
            procs.entry(*pid).or_insert_with(|| {
                vec![P {
                    name: None,
                    cmd: None,
                    parent: None,
                    session: None,
                    key: None,
                    start: None,
                    end: None,
                    seen_as: "heap_events_only",
                }]
            });
        }
        let mut ins = self.conn.prepare_cached(
            "INSERT INTO processes (capture_id, pid, name, command_line, parent_pid, session_id, unique_key, start_ns, end_ns, seen_as) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        )?;
        for (pid, list) in &procs {
            for p in list {
                ins.execute(params![
                    cid,
                    pid,
                    p.name,
                    p.cmd,
                    p.parent,
                    p.session,
                    p.key.map(sql_u64),
                    p.start,
                    p.end,
                    p.seen_as
                ])?;
            }
        }
        let mut ins = self.conn.prepare_cached("INSERT INTO threads (capture_id, pid, tid, start_ns, end_ns) VALUES (?1, ?2, ?3, ?4, ?5)")?;
        for ((pid, tid), (s, e)) in &threads {
            ins.execute(params![cid, pid, tid, s, e])?;
        }
        let pdb_of: HashMap<(u32, u64), &crate::heap::rundown::PdbInfo> =
            pdbs.iter().map(|p| ((p.pid, p.base), p)).collect();
        let mut ins = self.conn.prepare_cached(
            "INSERT INTO images (capture_id, pid, base, size, path, name, checksum, timedatestamp, pdb_guid, pdb_age, pdb_path, load_ns, unload_ns) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
        )?;
        for ((pid, base), (i, load, unload)) in &images {
            let name = i
                .path
                .rsplit(['\\', '/'])
                .next()
                .unwrap_or(&i.path)
                .to_lowercase();
            let pdb = pdb_of.get(&(*pid, *base));
            ins.execute(params![
                cid,
                pid,
                sql_u64(*base),
                sql_u64(i.size),
                i.path,
                name,
                i.checksum,
                i.timedatestamp,
                pdb.map(|p| p.guid.to_string()),
                pdb.map(|p| p.age),
                pdb.map(|p| p.pdb_path.clone()),
                load,
                unload,
            ])?;
        }
        Ok(())
    }
}
