//! Where decoded captures go. The pipeline (discover → decode → rows) is the same for
//! every sink; a sink stores whole captures: [`Sink::begin`], any number of
//! [`Sink::write`]s, then [`Sink::commit`] or [`Sink::abort`]. A capture is either
//! entirely stored or not at all, whatever happens to the process.

use super::identity::History;
use super::lifetimes::{BlockRow, Summary};
use super::observe::Observer;
use super::rows::{OtherRow, ReallocRow};
use super::rundown::RundownTables;
use super::Finished;
use crate::cancel::Cancel;
use crate::etl::LogfileHeader;
use crate::heap::capture::{Problem, Stats};
use anyhow::Result;

/// A capture about to be stored.
#[derive(Debug, Clone)]
pub struct CaptureStart {
    /// As given to the ingest (`archive.zip!inner.etl` for an archive member).
    pub path: String,
    pub file_name: String,
    pub size: u64,
    /// BLAKE3 of the capture's bytes, hex.
    pub fingerprint: String,
    pub header: LogfileHeader,
    /// When its ingest began (RFC 3339).
    pub started: String,
    /// `--label KEY=VALUE`s and those taken from its path, sorted by key.
    pub labels: Vec<(String, String)>,
}

/// What [`Sink::begin`] decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Begin {
    /// Store it as `capture_id`; its event ids start at `first_event_id`.
    New {
        capture_id: i64,
        first_event_id: i64,
        /// Its block lifetimes' ids start here.
        first_block_id: i64,
    },
    /// The same bytes are already stored (maybe under another path, maybe by a
    /// concurrent ingest).
    Duplicate { capture_id: i64, path: String },
}

/// Rows of the capture being stored, with their ids.
pub struct EventBatch<'a> {
    pub capture_id: i64,
    pub reallocs: &'a [ReallocRow],
    pub others: &'a [OtherRow],
    /// Block lifetimes that ended (in time order of their ends, ids ascending).
    pub blocks: &'a [BlockRow],
    /// Stacks first seen in this batch: (id, frames innermost first).
    pub stacks: &'a [(i64, Vec<u64>)],
    pub problems: &'a [Problem],
    /// The path of the capture, for `ingest_errors`.
    pub path: &'a str,
    pub fingerprint: &'a str,
}

/// Everything known at the end of a capture.
#[derive(Debug, Clone)]
pub struct CaptureEnd {
    pub capture_id: i64,
    pub stats: Stats,
    pub first_ns: Option<i64>,
    pub last_ns: Option<i64>,
    pub first_event_id: i64,
    /// The last id used (`first_event_id - 1` when the capture has no heap events).
    pub last_event_id: i64,
    /// Bad records and buffers found.
    pub problems: u64,
    pub rundown: RundownTables,
    /// Heaps, sites and per-site counts, with identities that hold across captures.
    pub history: History,
    /// The capture's lifetime counts and outstanding-bytes peaks (its lifetimes went
    /// through [`Sink::write`], the last ones, still live at the end, too).
    pub lifetimes: Summary,
    /// When it was stored (RFC 3339).
    pub finished: String,
}

/// What a capture being stored holds so far: what a live recording commits at each
/// [`Sink::checkpoint`], and the start of its [`CaptureEnd`].
#[derive(Debug, Clone)]
pub struct Checkpoint {
    pub capture_id: i64,
    pub stats: Stats,
    pub first_ns: Option<i64>,
    pub last_ns: Option<i64>,
    pub first_event_id: i64,
    /// The last id used so far.
    pub last_event_id: i64,
    pub problems: u64,
    /// The processes, threads and images seen so far (replaced at each checkpoint).
    pub rundown: RundownTables,
}

impl CaptureEnd {
    /// The end of a capture whose counts so far are `so_far`.
    pub fn new(
        so_far: Checkpoint,
        history: History,
        lifetimes: Summary,
        finished: String,
    ) -> CaptureEnd {
        CaptureEnd {
            capture_id: so_far.capture_id,
            stats: so_far.stats,
            first_ns: so_far.first_ns,
            last_ns: so_far.last_ns,
            first_event_id: so_far.first_event_id,
            last_event_id: so_far.last_event_id,
            problems: so_far.problems,
            rundown: so_far.rundown,
            history,
            lifetimes,
            finished,
        }
    }
}

/// A file (or archive member) that could not be read at all.
#[derive(Debug, Clone)]
pub struct FileFailure {
    pub path: String,
    /// '' when the file could not be read.
    pub fingerprint: String,
    pub offset: Option<u64>,
    pub message: String,
}

/// Looks up captures already stored, from the decoding threads (so a capture already
/// there is skipped before it is decoded).
pub trait Catalog: Send + Sync {
    /// The id and first path of the capture with this fingerprint, if stored.
    fn find(&self, fingerprint: &str) -> Result<Option<(i64, String)>>;
}

/// What a sink may use while it works: where to say it is waiting, and whether to stop.
#[derive(Clone, Copy)]
pub struct Context<'a> {
    pub observer: &'a dyn Observer,
    pub cancel: &'a Cancel,
}

/// A sink gave up waiting because the run was cancelled.
#[derive(Debug, thiserror::Error)]
#[error("interrupted while waiting for {0}")]
pub struct Interrupted(pub String);

/// A store for whole captures.
pub trait Sink: Send {
    /// A catalog for the decoding threads.
    fn catalog(&self) -> Result<Box<dyn Catalog>>;
    /// Called once before the first capture, with the bytes about to be loaded (a
    /// sink may prepare for a bulk load).
    fn prepare(&mut self, _incoming_bytes: u64, _ctx: Context<'_>) -> Result<()> {
        Ok(())
    }
    /// Starts storing a capture (or says it is already stored).
    fn begin(&mut self, capture: &CaptureStart, ctx: Context<'_>) -> Result<Begin>;
    fn write(&mut self, batch: &EventBatch<'_>) -> Result<()>;
    fn commit(&mut self, end: &CaptureEnd, ctx: Context<'_>) -> Result<()>;
    /// Makes what was written of the capture being stored durable, and goes on storing
    /// it (`heapdb record`: a long recording survives a crash). Sinks that store
    /// captures only whole refuse.
    fn checkpoint(&mut self, _cp: &Checkpoint, _ctx: Context<'_>) -> Result<()> {
        anyhow::bail!("this store keeps captures only whole: it cannot commit a recording in parts")
    }
    /// Forgets the capture being stored.
    fn abort(&mut self) -> Result<()>;
    /// Records a file that could not be read (once per file and message).
    fn record_failure(&mut self, failure: &FileFailure, ctx: Context<'_>) -> Result<()>;
    /// Called once after the last capture, also after a cancellation: makes the store
    /// whole for readers (a second cancellation may cut this short).
    fn finish(&mut self, _ctx: Context<'_>) -> Result<Finished> {
        Ok(Finished::default())
    }
}
