//! The SQLite sink: one transaction per capture (a capture is there entirely or not at
//! all), ids read inside it (so two ingests on one database both succeed: the second
//! waits for the first's write lock and continues from its ids), and the bulk-load
//! index strategy.

use super::sql::{self, Table};
use crate::ingest::observe::{Level, Note, Phase, Progress};
use crate::ingest::rundown::RundownTables;
use crate::ingest::sink::{
    Begin, CaptureEnd, CaptureStart, Catalog, Checkpoint, Context, EventBatch, FileFailure,
    Interrupted, Sink,
};
use crate::ingest::Finished;
use anyhow::{Context as _, Result};
use rusqlite::{Connection, OptionalExtension};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Rows per INSERT statement: one statement per row spends most of its time in the
/// statement machinery (step/reset), not in the b-tree; 32 rows per statement measured
/// faster (docs/performance.md).
pub const ROWS_PER_INSERT: usize = 32;

/// The writer's SQLite page cache (see docs/performance.md for the measurements and
/// the README for the memory budget it is part of).
pub const PAGE_CACHE_KIB: u64 = 32 << 10;

/// When to drop the secondary indexes during the load and rebuild them after.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IndexMode {
    /// Rebuild when the batch is larger than what the database already holds.
    Auto,
    Rebuild,
    Keep,
}

/// Event and block ids a recording keeps for itself while it runs: its final count is
/// not known, and an ingest into the same database meanwhile must not take ids from
/// its range (a capture's rows are one id range). 2^40 ids: over a year of a million
/// events a second; the gap it leaves before later captures costs nothing.
pub const RECORDING_RESERVE: i64 = 1 << 40;

/// How long a writer waits for the lock before it says so (then it keeps waiting).
const LOCK_NOTICE: Duration = Duration::from_secs(3);

/// Takes the database's write lock (`BEGIN IMMEDIATE`), waiting as long as another
/// writer holds it: after [`LOCK_NOTICE`] it says so once, and it gives up only when
/// the run is cancelled.
pub fn lock(conn: &Connection, db: &Path, ctx: Context<'_>) -> Result<()> {
    let t = Instant::now();
    let mut told = false;
    conn.busy_timeout(LOCK_NOTICE)?;
    loop {
        match conn.execute_batch("BEGIN IMMEDIATE") {
            Ok(()) => break,
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::DatabaseBusy =>
            {
                if ctx.cancel.requested() {
                    return Err(Interrupted(format!("the write lock of {}", db.display())).into());
                }
                if !told {
                    ctx.observer.note(&Note::about(
                        Level::Info,
                        &db.display().to_string(),
                        "another process is writing to this database (another heapdb ingest?); waiting for it",
                    ));
                    told = true;
                }
            }
            Err(e) => return Err(e).with_context(|| format!("{}: locking", db.display())),
        }
    }
    if told {
        ctx.observer.note(&Note::about(
            Level::Info,
            &db.display().to_string(),
            format!("got the lock after {:.1} s", t.elapsed().as_secs_f64()),
        ));
    }
    conn.busy_timeout(Duration::from_secs(60))?;
    Ok(())
}

/// Inserts rows `ROWS_PER_INSERT` per statement (the remainder one by one).
pub(crate) fn insert<R>(conn: &Connection, t: &Table<R>, rows: &[R]) -> rusqlite::Result<()> {
    insert_into(conn, t, t.name, rows)
}

/// [`insert`] into another table of the same columns (a staging table).
fn insert_into<R>(
    conn: &Connection,
    t: &Table<R>,
    table: &str,
    rows: &[R],
) -> rusqlite::Result<()> {
    let n = t.columns.len();
    let mut chunks = rows.chunks_exact(ROWS_PER_INSERT);
    let mut st = conn.prepare_cached(&t.insert_sql_into(table, ROWS_PER_INSERT))?;
    for chunk in &mut chunks {
        for (i, r) in chunk.iter().enumerate() {
            (t.bind)(&mut st, i * n, r)?;
        }
        st.raw_execute()?;
    }
    let mut one = conn.prepare_cached(&t.insert_sql_into(table, 1))?;
    for r in chunks.remainder() {
        (t.bind)(&mut one, 0, r)?;
        one.raw_execute()?;
    }
    Ok(())
}

/// Reads the captures already stored, for the decoding threads.
struct SqliteCatalog {
    conn: std::sync::Mutex<Connection>,
}

impl Catalog for SqliteCatalog {
    fn find(&self, fingerprint: &str) -> Result<Option<(i64, String)>> {
        let conn = self
            .conn
            .lock()
            .map_err(|_| anyhow::anyhow!("catalog lock poisoned"))?;
        Ok(conn
            .query_row(sql::FIND_CAPTURE, [fingerprint], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .optional()?)
    }
}

pub struct SqliteSink {
    conn: Connection,
    path: PathBuf,
    index_mode: IndexMode,
    /// The capture being written, inside its transaction.
    capture: Option<i64>,
    /// Stacks written by this capture (stacks are shared by captures; the others are
    /// skipped by `INSERT OR IGNORE`).
    stacks: HashSet<i64>,
    /// Seconds spent inserting rows and committing captures.
    insert_seconds: f64,
    commit_seconds: f64,
    /// Rows go through unindexed staging tables and into the indexed tables in one
    /// statement per capture (an append to a database with its indexes); otherwise
    /// straight in (a bulk load, whose indexes are rebuilt after).
    staged: bool,
    /// Captures are live recordings, committed in parts ([`Sink::checkpoint`]).
    recording: bool,
    /// A recording's stacks and errors since its last part.
    queued_stacks: Vec<(i64, Vec<u64>)>,
    queued_problems: Vec<(Option<i64>, FileFailure)>,
}

fn problem_row(
    capture_id: i64,
    path: &str,
    fingerprint: &str,
    p: &crate::heap::capture::Problem,
) -> (Option<i64>, FileFailure) {
    (
        Some(capture_id),
        FileFailure {
            path: path.to_string(),
            fingerprint: fingerprint.to_string(),
            offset: Some(p.offset),
            message: p.message.clone(),
        },
    )
}

impl SqliteSink {
    /// Opens (creating if needed) the database for an ingest.
    pub fn open(path: &Path, index_mode: IndexMode) -> Result<SqliteSink> {
        let conn = super::open_rw(path)?;
        conn.execute_batch(&format!(
            "PRAGMA cache_size = -{}; PRAGMA temp_store = FILE; PRAGMA mmap_size = 0;",
            PAGE_CACHE_KIB
        ))?;
        Ok(SqliteSink {
            conn,
            path: path.to_path_buf(),
            index_mode,
            capture: None,
            stacks: HashSet::new(),
            insert_seconds: 0.0,
            commit_seconds: 0.0,
            staged: false,
            recording: false,
            queued_stacks: Vec::new(),
            queued_problems: Vec::new(),
        })
    }

    /// A sink for `heapdb record`: the capture row is committed with the first
    /// checkpoint, marked `recording` and holding [`RECORDING_RESERVE`] ids, and every
    /// checkpoint commits the rows so far; the end completes it as an ingest would. A
    /// recording that never reaches its end stays `recording` until `heapdb repair`
    /// finishes it from its rows.
    pub fn for_recording(mut self) -> SqliteSink {
        self.recording = true;
        self
    }

    fn flush_staging(&self) -> Result<()> {
        if self.staged {
            // In id order: the table's own b-tree then only appends. (Ordering by an
            // index's key instead measured slower: the table inserts turn random.)
            self.conn
                .execute_batch(&sql::REALLOCS.flush_staging_sql("id"))?;
            self.conn
                .execute_batch(&sql::HEAP_EVENTS.flush_staging_sql("id"))?;
            self.conn
                .execute_batch(&sql::BLOCKS.flush_staging_sql("block_id"))?;
        }
        Ok(())
    }

    fn write_batch(&mut self, b: &EventBatch<'_>) -> Result<()> {
        if self.staged {
            insert_into(
                &self.conn,
                &sql::REALLOCS,
                &sql::REALLOCS.staging(),
                b.reallocs,
            )?;
            insert_into(
                &self.conn,
                &sql::HEAP_EVENTS,
                &sql::HEAP_EVENTS.staging(),
                b.others,
            )?;
            insert_into(&self.conn, &sql::BLOCKS, &sql::BLOCKS.staging(), b.blocks)?;
        } else {
            insert(&self.conn, &sql::REALLOCS, b.reallocs)?;
            insert(&self.conn, &sql::HEAP_EVENTS, b.others)?;
            insert(&self.conn, &sql::BLOCKS, b.blocks)?;
        }
        if self.recording {
            // A recording holds no write lock between its checkpoints (an ingest or a
            // repair meanwhile must not wait for the recording's end): the rows went to
            // the temp staging tables; stacks and errors wait here.
            for st in b.stacks {
                if !self.stacks.contains(&st.0) {
                    self.queued_stacks.push(st.clone());
                }
            }
            for p in b.problems {
                self.queued_problems
                    .push(problem_row(b.capture_id, b.path, b.fingerprint, p));
            }
            return Ok(());
        }
        self.write_stacks(b.stacks)?;
        let rows: Vec<_> = b
            .problems
            .iter()
            .map(|p| problem_row(b.capture_id, b.path, b.fingerprint, p))
            .collect();
        self.write_problems(&rows)
    }

    fn write_stacks(&mut self, stacks: &[(i64, Vec<u64>)]) -> Result<()> {
        if stacks.is_empty() {
            return Ok(());
        }
        let mut ins_s = self.conn.prepare_cached(&format!(
            "{} ON CONFLICT DO NOTHING",
            sql::STACKS.insert_sql(1)
        ))?;
        let mut ins_f = self.conn.prepare_cached(&format!(
            "{} ON CONFLICT DO NOTHING",
            sql::STACK_FRAMES.insert_sql(1)
        ))?;
        for s in stacks {
            if !self.stacks.insert(s.0) {
                continue;
            }
            (sql::STACKS.bind)(&mut ins_s, 0, s)?;
            if ins_s.raw_execute()? == 0 {
                continue; // another capture stored it, frames included
            }
            for (d, &f) in s.1.iter().enumerate() {
                (sql::STACK_FRAMES.bind)(&mut ins_f, 0, &(s.0, d, f))?;
                ins_f.raw_execute()?;
            }
        }
        Ok(())
    }

    fn write_problems(&self, rows: &[(Option<i64>, FileFailure)]) -> Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        let mut ins = self.conn.prepare_cached(sql::INGEST_ERROR_ONCE)?;
        for row in rows {
            (sql::INGEST_ERRORS.bind)(&mut ins, 0, row)?;
            ins.raw_execute()?;
        }
        Ok(())
    }

    /// A recording: ends the transaction of its staging tables and takes the write
    /// lock, then writes the stacks and errors queued since the last part.
    fn lock_recording(&mut self, ctx: Context<'_>) -> Result<()> {
        self.conn.execute_batch("COMMIT")?;
        lock(&self.conn, &self.path, ctx)?;
        let stacks = std::mem::take(&mut self.queued_stacks);
        self.write_stacks(&stacks)?;
        let problems = std::mem::take(&mut self.queued_problems);
        self.write_problems(&problems)
    }

    /// The database connection (inside the capture's transaction between `begin` and
    /// `commit`).
    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    /// [`Sink::commit`], calling `hook` inside the capture's transaction just before it
    /// commits (the lake sink writes the capture's files there); an error from `hook`
    /// leaves the transaction open for [`Sink::abort`].
    pub fn commit_with(
        &mut self,
        e: &CaptureEnd,
        ctx: Context<'_>,
        hook: &mut dyn FnMut(&Connection) -> Result<()>,
    ) -> Result<()> {
        if self.staged {
            ctx.observer.progress(&Progress {
                phase: Phase::Storing {
                    name: format!("capture {}", e.capture_id),
                    rows: (e.last_event_id - e.first_event_id + 1).max(0) as u64,
                },
                bytes_done: 0,
                bytes_total: 0,
                rows: 0,
            });
        }
        if self.recording {
            self.lock_recording(ctx)?;
        }
        let t = Instant::now();
        let r = self.commit_capture(e, hook);
        self.commit_seconds += t.elapsed().as_secs_f64();
        r
    }

    fn commit_capture(
        &mut self,
        e: &CaptureEnd,
        hook: &mut dyn FnMut(&Connection) -> Result<()>,
    ) -> Result<()> {
        let cid = e.capture_id;
        self.flush_staging()?;
        super::lifetimes::write_summary(&self.conn, cid, &e.lifetimes)?;
        write_rundown(&self.conn, cid, &e.rundown, self.recording)?;
        super::history::write_history(&self.conn, cid, &e.history)?;
        super::lifetimes::fill_site_live(&self.conn, cid)?;
        {
            let mut st = self.conn.prepare_cached(&sql::CAPTURE_END.update_sql())?;
            (sql::CAPTURE_END.bind)(&mut st, 0, e)?;
            st.raw_execute()?;
        }
        hook(&self.conn)?;
        self.conn
            .execute_batch("COMMIT")
            .with_context(|| format!("{}: committing capture {cid}", self.named()))?;
        self.capture = None;
        Ok(())
    }

    fn named(&self) -> String {
        self.path.display().to_string()
    }
}

/// A capture's processes, threads and images; `replace`: a recording's checkpoints
/// stored earlier versions of them.
fn write_rundown(
    conn: &Connection,
    cid: i64,
    t: &RundownTables,
    replace: bool,
) -> rusqlite::Result<()> {
    if replace {
        for table in ["processes", "threads", "images"] {
            conn.execute(&format!("DELETE FROM {table} WHERE capture_id = ?1"), [cid])?;
        }
    }
    let procs: Vec<_> = t.processes.iter().map(|p| (cid, p.clone())).collect();
    insert(conn, &sql::PROCESSES, &procs)?;
    let threads: Vec<_> = t.threads.iter().map(|p| (cid, p.clone())).collect();
    insert(conn, &sql::THREADS, &threads)?;
    let images: Vec<_> = t.images.iter().map(|p| (cid, p.clone())).collect();
    insert(conn, &sql::IMAGES, &images)
}

impl Sink for SqliteSink {
    fn catalog(&self) -> Result<Box<dyn Catalog>> {
        let conn = Connection::open_with_flags(
            &self.path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .with_context(|| format!("{}: opening for reading", self.named()))?;
        conn.busy_timeout(Duration::from_secs(60))?;
        Ok(Box::new(SqliteCatalog {
            conn: std::sync::Mutex::new(conn),
        }))
    }

    /// Maintaining the secondary indexes row by row costs more than building them
    /// once: drop them when this batch is larger than what is already there.
    fn prepare(&mut self, incoming_bytes: u64, ctx: Context<'_>) -> Result<()> {
        let existing: i64 = self.conn.query_row(sql::EVENTS_STORED, [], |r| r.get(0))?;
        let incoming = (incoming_bytes / 80) as i64; // ~80 bytes of capture per heap event
        let rebuild = match self.index_mode {
            IndexMode::Rebuild => true,
            IndexMode::Keep => false,
            IndexMode::Auto => incoming > existing,
        };
        lock(&self.conn, &self.path, ctx)?;
        let r = if rebuild {
            super::drop_indexes(&self.conn)
        } else {
            Ok(())
        };
        self.conn
            .execute_batch(if r.is_ok() { "COMMIT" } else { "ROLLBACK" })?;
        r?;
        if !rebuild {
            super::build_indexes(&self.conn, &self.path, ctx)?;
            self.staged = true;
            self.conn.execute_batch(&format!(
                "{}; {}; {};",
                sql::REALLOCS.create_staging_sql(),
                sql::HEAP_EVENTS.create_staging_sql(),
                sql::BLOCKS.create_staging_sql()
            ))?;
        }
        Ok(())
    }

    fn begin(&mut self, s: &CaptureStart, ctx: Context<'_>) -> Result<Begin> {
        lock(&self.conn, &self.path, ctx)?;
        // Read inside the transaction: another ingest may have stored this capture, or
        // used ids, since this one looked.
        let existing: Option<(i64, String)> = self
            .conn
            .query_row(sql::FIND_CAPTURE, [&s.fingerprint], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .optional()?;
        if let Some((capture_id, path)) = existing {
            self.conn.execute_batch("ROLLBACK")?;
            return Ok(Begin::Duplicate { capture_id, path });
        }
        let first_event_id: i64 = self.conn.query_row(sql::NEXT_EVENT_ID, [], |r| r.get(0))?;
        let first_block_id: i64 = self.conn.query_row(sql::NEXT_BLOCK_ID, [], |r| r.get(0))?;
        {
            let mut st = self
                .conn
                .prepare_cached(&sql::CAPTURE_START.insert_sql(1))?;
            (sql::CAPTURE_START.bind)(&mut st, 0, s)?;
            st.raw_execute()?;
        }
        let capture_id = self.conn.last_insert_rowid();
        if self.recording {
            self.conn.execute(
                "UPDATE captures SET status = 'recording', first_event_id = ?2, last_event_id = ?2 + ?4 - 1, \
                 first_block_id = ?3, last_block_id = ?3 + ?4 - 1 WHERE capture_id = ?1",
                (capture_id, first_event_id, first_block_id, RECORDING_RESERVE),
            )?;
        }
        super::history::write_labels(&self.conn, capture_id, &s.labels)?;
        self.capture = Some(capture_id);
        self.stacks.clear();
        if self.recording {
            // The capture row and its reserve are visible at once; the rows collect in
            // the temp staging tables, in a transaction that holds no lock on the
            // database.
            self.conn.execute_batch("COMMIT; BEGIN")?;
        }
        Ok(Begin::New {
            capture_id,
            first_event_id,
            first_block_id,
        })
    }

    fn write(&mut self, b: &EventBatch<'_>) -> Result<()> {
        let t = Instant::now();
        let r = self.write_batch(b);
        self.insert_seconds += t.elapsed().as_secs_f64();
        r
    }

    fn commit(&mut self, e: &CaptureEnd, ctx: Context<'_>) -> Result<()> {
        self.commit_with(e, ctx, &mut |_| Ok(()))
    }
    fn checkpoint(&mut self, cp: &Checkpoint, ctx: Context<'_>) -> Result<()> {
        if !self.recording || self.capture != Some(cp.capture_id) {
            anyhow::bail!("a checkpoint outside a recording");
        }
        self.lock_recording(ctx)?;
        let t = Instant::now();
        let r = (|| -> Result<()> {
            self.flush_staging()?;
            write_rundown(&self.conn, cp.capture_id, &cp.rundown, true)?;
            self.conn.execute(
                "UPDATE captures SET first_event_ns = ?2, last_event_ns = ?3, events_seen = ?4, \
                 events_decoded = ?5, events_bad = ?6, stacks_matched = ?7, stacks_orphan = ?8 \
                 WHERE capture_id = ?1",
                (
                    cp.capture_id,
                    cp.first_ns,
                    cp.last_ns,
                    sql::sql_u64(cp.stats.events),
                    sql::sql_u64(cp.stats.heap_events),
                    sql::sql_u64(cp.stats.bad_records.max(cp.problems)),
                    sql::sql_u64(cp.stats.stacks_matched),
                    sql::sql_u64(cp.stats.stacks_orphan),
                ),
            )?;
            self.conn
                .execute_batch("COMMIT")
                .with_context(|| format!("{}: committing capture {}", self.named(), cp.capture_id))
        })();
        self.commit_seconds += t.elapsed().as_secs_f64();
        r?;
        // No lock until the next part: an ingest meanwhile stores its captures after
        // the ids this recording keeps.
        self.conn.execute_batch("BEGIN")?;
        Ok(())
    }

    fn abort(&mut self) -> Result<()> {
        if self.capture.take().is_some() {
            if self.recording {
                // The parts committed stay (`heapdb repair` finishes the capture); the
                // transaction may be gone already if taking the lock failed.
                self.queued_stacks.clear();
                self.queued_problems.clear();
                if !self.conn.is_autocommit() {
                    self.conn.execute_batch("ROLLBACK")?;
                }
                return Ok(());
            }
            self.conn.execute_batch("ROLLBACK")?;
        }
        Ok(())
    }

    fn record_failure(&mut self, f: &FileFailure, ctx: Context<'_>) -> Result<()> {
        lock(&self.conn, &self.path, ctx)?;
        let r = (|| -> rusqlite::Result<()> {
            let mut st = self.conn.prepare_cached(sql::INGEST_ERROR_ONCE)?;
            (sql::INGEST_ERRORS.bind)(&mut st, 0, &(None, f.clone()))?;
            st.raw_execute()?;
            Ok(())
        })();
        self.conn
            .execute_batch(if r.is_ok() { "COMMIT" } else { "ROLLBACK" })?;
        Ok(r?)
    }

    fn finish(&mut self, ctx: Context<'_>) -> Result<Finished> {
        let old = super::history::captures_without_history(&self.conn)?.len();
        if old > 0 {
            ctx.observer.note(&crate::ingest::Note::about(
                crate::ingest::Level::Warning,
                &self.named(),
                format!("{old} capture(s) stored by an older heapdb have no history yet (trend and capture-diff skip them): `heapdb repair --db {}` computes it", self.named()),
            ));
        }
        let old = super::lifetimes::captures_without_lifetimes(&self.conn)?.len();
        if old > 0 {
            ctx.observer.note(&crate::ingest::Note::about(
                crate::ingest::Level::Warning,
                &self.named(),
                format!("{old} capture(s) stored by an older heapdb have no block lifetimes yet (the lifetime reports skip them): `heapdb repair --db {}` computes them", self.named()),
            ));
        }
        let t = Instant::now();
        let missing = super::missing_indexes(&self.conn)?;
        let mut f = Finished::default();
        if !missing.is_empty() {
            f.rebuilt_indexes = true;
            f.missing_indexes = super::build_indexes(&self.conn, &self.path, ctx)?;
        }
        f.index_seconds = t.elapsed().as_secs_f64();
        let t = Instant::now();
        if f.missing_indexes.is_empty() && ctx.cancel.requests() < 2 {
            self.conn
                .execute_batch("PRAGMA analysis_limit = 1000; PRAGMA optimize;")?;
        }
        let analyze = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let _ = self
            .conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
        f.phases = vec![
            ("insert", self.insert_seconds),
            ("commit", self.commit_seconds),
            ("indexes", f.index_seconds),
            ("analyze", analyze),
            ("checkpoint", t.elapsed().as_secs_f64()),
        ];
        Ok(f)
    }
}
