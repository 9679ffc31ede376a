//! The SQLite sink: one transaction per capture (a capture is there entirely or not at
//! all), ids read inside it (so two ingests on one database both succeed: the second
//! waits for the first's write lock and continues from its ids), and the bulk-load
//! index strategy.

use super::sql::{self, Table};
use crate::ingest::observe::{Level, Note, Phase, Progress};
use crate::ingest::sink::{
    Begin, CaptureEnd, CaptureStart, Catalog, Context, EventBatch, FileFailure, Interrupted, Sink,
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
        })
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
        if !b.stacks.is_empty() {
            let mut ins_s = self.conn.prepare_cached(&format!(
                "{} ON CONFLICT DO NOTHING",
                sql::STACKS.insert_sql(1)
            ))?;
            let mut ins_f = self.conn.prepare_cached(&format!(
                "{} ON CONFLICT DO NOTHING",
                sql::STACK_FRAMES.insert_sql(1)
            ))?;
            for s in b.stacks {
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
        }
        if !b.problems.is_empty() {
            let mut ins = self.conn.prepare_cached(sql::INGEST_ERROR_ONCE)?;
            for p in b.problems {
                let row = (
                    Some(b.capture_id),
                    FileFailure {
                        path: b.path.to_string(),
                        fingerprint: b.fingerprint.to_string(),
                        offset: Some(p.offset),
                        message: p.message.clone(),
                    },
                );
                (sql::INGEST_ERRORS.bind)(&mut ins, 0, &row)?;
                ins.raw_execute()?;
            }
        }
        Ok(())
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
        super::lifetimes::write_summary(&self.conn, cid, &e.lifetimes)?;
        let t = &e.rundown;
        let procs: Vec<_> = t.processes.iter().map(|p| (cid, p.clone())).collect();
        insert(&self.conn, &sql::PROCESSES, &procs)?;
        let threads: Vec<_> = t.threads.iter().map(|p| (cid, p.clone())).collect();
        insert(&self.conn, &sql::THREADS, &threads)?;
        let images: Vec<_> = t.images.iter().map(|p| (cid, p.clone())).collect();
        insert(&self.conn, &sql::IMAGES, &images)?;
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
        super::history::write_labels(&self.conn, capture_id, &s.labels)?;
        self.capture = Some(capture_id);
        self.stacks.clear();
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
    fn abort(&mut self) -> Result<()> {
        if self.capture.take().is_some() {
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
