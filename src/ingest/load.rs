//! The loading thread: takes the decoders' messages in order, gives every heap event
//! its id (ids follow the order of the files and of the buffers, so a rerun gives the
//! same ids), resolves the links between a moving ReAlloc and its internal Alloc/Free,
//! assembles the rundown tables, and hands whole captures to the sink.

use super::identity::Tally;
use super::lifetimes::Tracker;
use super::observe::{Level, Note};
use super::rows::{HeapEventRow, OtherRow, ReallocRow, RundownRow};
use super::rundown::RundownTables;
use super::sink::{
    Begin, CaptureEnd, CaptureStart, Checkpoint, Context, EventBatch, FileFailure, Sink,
};
use super::Shared;
use crate::heap::capture::{Problem, RowKey, Stats};
use crate::heap::record::op;
use anyhow::Result;
use std::collections::{HashMap, HashSet};
use std::sync::mpsc::Receiver;

/// Lifetimes still open at the end of a capture, written per sink call.
const LAST_BLOCKS_CHUNK: usize = 16 * 1024;

/// Rows of a capture, from the decoders.
pub(crate) struct RowBatch {
    pub rows: Vec<HeapEventRow>,
    pub stacks: Vec<(i64, Vec<u64>)>,
    pub rundown: Vec<RundownRow>,
    pub problems: Vec<Problem>,
}

pub(crate) enum Msg {
    Begin(Box<CaptureStart>),
    Rows(RowBatch),
    End(Box<Stats>),
    /// A live recording: make what was sent of the capture durable (its stats so far).
    Checkpoint(Box<Stats>),
    /// The capture being sent is not to be stored (its file changed, or could not be
    /// read to the end); a `Failed` follows.
    Abort,
    Failed(FileFailure),
}

/// The capture being stored.
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
    next_id: i64,
    /// What the capture's identities need (see `identity`).
    tally: Tally,
    /// Its block lifetimes (see `lifetimes`). (Following them on a thread of their own
    /// was measured: the insert phase did not shrink, memory grew; docs/performance.md.)
    tracker: Tracker,
}

impl Current {
    /// What it holds so far.
    fn so_far(&self, stats: Stats, rundown: RundownTables) -> Checkpoint {
        Checkpoint {
            capture_id: self.capture_id,
            stats,
            first_ns: self.first_ns,
            last_ns: self.last_ns,
            first_event_id: self.first_id,
            last_event_id: self.next_id - 1,
            problems: self.problems,
            rundown,
        }
    }
}

pub(crate) struct Loader<'s, S: Sink> {
    sink: S,
    shared: &'s Shared<'s>,
    current: Option<Current>,
    /// The capture of the last Begin is not being stored (a duplicate, or nothing is
    /// stored any more): its rows are dropped.
    skipping: bool,
    strict: bool,
}

impl<'s, S: Sink> Loader<'s, S> {
    pub fn new(sink: S, shared: &'s Shared<'s>, strict: bool) -> Loader<'s, S> {
        Loader {
            sink,
            shared,
            current: None,
            skipping: false,
            strict,
        }
    }

    fn ctx(&self) -> Context<'s> {
        Context {
            observer: self.shared.observer,
            cancel: self.shared.cancel,
        }
    }

    pub fn into_sink(self) -> S {
        self.sink
    }

    /// Consumes messages until the channel closes. A sink error ends the run; a
    /// cancellation abandons the capture being stored and drains the channel.
    pub fn run(&mut self, rx: Receiver<Msg>) -> Result<()> {
        for msg in rx {
            if self.shared.cancel.requested() {
                self.abandon()?;
                continue;
            }
            match msg {
                Msg::Begin(start) => self.begin(*start)?,
                Msg::Rows(batch) => {
                    if !self.skipping {
                        self.rows(batch)?;
                    }
                }
                Msg::End(stats) => self.end(*stats)?,
                Msg::Checkpoint(stats) => self.checkpoint(*stats)?,
                Msg::Abort => {
                    self.skipping = true;
                    if self.current.take().is_some() {
                        self.sink.abort()?;
                    }
                }
                Msg::Failed(f) => self.failed(f)?,
            }
        }
        self.abandon()
    }

    /// Rolls back the capture being stored, if any.
    fn abandon(&mut self) -> Result<()> {
        self.skipping = true;
        if let Some(cur) = self.current.take() {
            self.sink.abort()?;
            self.shared.rolled_back(&cur.path);
        }
        Ok(())
    }

    fn begin(&mut self, s: CaptureStart) -> Result<()> {
        let cpus = s.header.cpu_count;
        self.skipping = true;
        if self.shared.stopped() {
            // --strict saw a bad file: nothing after it is stored.
            return Ok(());
        }
        match self.sink.begin(&s, self.ctx())? {
            Begin::Duplicate { capture_id, path } => {
                self.shared.duplicate(&s.path, capture_id, &path);
            }
            Begin::New {
                capture_id,
                first_event_id,
                first_block_id,
            } => {
                self.skipping = false;
                self.current = Some(Current {
                    capture_id,
                    path: s.path,
                    fingerprint: s.fingerprint,
                    rundown: Vec::new(),
                    pids: HashSet::new(),
                    problems: 0,
                    pending_links: HashMap::new(),
                    first_ns: None,
                    last_ns: None,
                    first_id: first_event_id,
                    next_id: first_event_id,
                    tally: Tally::new(),
                    tracker: Tracker::new(capture_id, first_block_id, cpus),
                });
            }
        }
        Ok(())
    }

    fn rows(&mut self, b: RowBatch) -> Result<()> {
        let Some(cur) = self.current.as_mut() else {
            return Ok(());
        };
        let cid = cur.capture_id;
        let mut reallocs = Vec::with_capacity(b.rows.len());
        let mut others = Vec::with_capacity(b.rows.len());
        cur.tally.stacks(&b.stacks);
        for r in b.rows {
            cur.tally.row(&r);
            let id = cur.next_id;
            cur.tracker.row(&r, id);
            cur.next_id += 1;
            cur.pids.insert(r.pid);
            cur.first_ns = Some(cur.first_ns.map_or(r.time_ns, |f| f.min(r.time_ns)));
            cur.last_ns = Some(cur.last_ns.map_or(r.time_ns, |l| l.max(r.time_ns)));
            if r.opcode == op::REALLOC {
                // Its internal Alloc/Free (if logged) came before it: their ids are known.
                let (alloc_id, free_id) = cur.pending_links.remove(&r.key).unwrap_or((None, None));
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
                    alloc_id: None,
                    free_id: None,
                    row: r,
                });
            }
        }
        let blocks = cur.tracker.take();
        self.sink.write(&EventBatch {
            capture_id: cid,
            reallocs: &reallocs,
            others: &others,
            blocks: &blocks,
            stacks: &b.stacks,
            problems: &b.problems,
            path: &cur.path,
            fingerprint: &cur.fingerprint,
        })?;
        self.shared
            .add_rows(reallocs.len() as u64, others.len() as u64);
        cur.rundown.extend(b.rundown);
        if !b.problems.is_empty() {
            cur.problems += b.problems.len() as u64;
            for p in &b.problems {
                self.shared
                    .note(Note::about(Level::Error, &cur.path, p.message.clone()));
            }
            if self.strict {
                self.shared.stop();
            }
        }
        Ok(())
    }

    fn checkpoint(&mut self, stats: Stats) -> Result<()> {
        let Some(cur) = self.current.as_ref() else {
            return Ok(());
        };
        if self.skipping {
            return Ok(());
        }
        let cp = cur.so_far(stats, super::rundown::assemble(&cur.rundown, &cur.pids));
        self.sink.checkpoint(&cp, self.ctx())?;
        self.shared.stored(cp.capture_id);
        Ok(())
    }

    fn end(&mut self, stats: Stats) -> Result<()> {
        let Some(cur) = self.current.take() else {
            return Ok(());
        };
        if self.skipping {
            return Ok(());
        }
        if self.strict && (cur.problems > 0 || stats.bad_records > 0) {
            self.sink.abort()?;
            self.shared.stop();
            self.shared.failed_capture(&cur.path);
            self.shared.note(Note::about(
                Level::Error,
                &cur.path,
                "bad records; --strict: capture not committed, stopping",
            ));
            return Ok(());
        }
        if stats.heap_undecoded > 0 {
            self.shared.note(Note::about(
                Level::Warning,
                &cur.path,
                format!(
                    "{} heap-provider event(s) could not be decoded: this capture's numbers are incomplete (see ingest_errors and the data-quality report)",
                    stats.heap_undecoded
                ),
            ));
        }
        let mut so_far = cur.so_far(stats, RundownTables::default());
        let mut rundown = super::rundown::assemble(&cur.rundown, &cur.pids);
        let history = cur.tally.resolve(&mut rundown);
        // The blocks still live go to the sink in chunks, like the others.
        let sink = &mut self.sink;
        let lifetimes = cur.tracker.finish_with(
            |pid| process_end(&rundown, pid),
            LAST_BLOCKS_CHUNK,
            |blocks| {
                sink.write(&EventBatch {
                    capture_id: cur.capture_id,
                    reallocs: &[],
                    others: &[],
                    blocks: &blocks,
                    stacks: &[],
                    problems: &[],
                    path: &cur.path,
                    fingerprint: &cur.fingerprint,
                })
            },
        )?;
        so_far.rundown = rundown;
        let end = CaptureEnd::new(so_far, history, lifetimes, super::now_rfc3339());
        self.sink.commit(&end, self.ctx())?;
        self.shared.stored(cur.capture_id);
        self.shared.ingested(cur.problems > 0);
        Ok(())
    }

    fn failed(&mut self, f: FileFailure) -> Result<()> {
        self.sink.record_failure(&f, self.ctx())?;
        self.shared.failed_capture(&f.path);
        self.shared.note(Note {
            level: Level::Error,
            path: Some(f.path.clone()),
            offset: f.offset,
            text: f.message.clone(),
        });
        if self.strict {
            self.shared.stop();
        }
        Ok(())
    }
}

/// When process `pid` ended during the capture, if it did (the last of its rows: a pid
/// reused within the capture has a row per process, sorted by start).
fn process_end(rundown: &RundownTables, pid: u32) -> Option<i64> {
    rundown
        .processes
        .iter()
        .rfind(|p| p.pid == pid)
        .and_then(|p| p.end_ns)
}
