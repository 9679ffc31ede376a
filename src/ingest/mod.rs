//! `heapdb ingest`: many captures → one sink (the SQLite database, see
//! [`crate::db::sink`]).
//!
//! The calling thread walks the inputs in sorted order; for each it reads the capture
//! once to fingerprint it (BLAKE3) and collect its stack-cache definitions, skips
//! captures already stored, then reads it again to decode its buffers in parallel
//! (rayon, per-CPU streams, windows of buffers so memory stays flat) and sends row
//! batches through a bounded channel to one loading thread, which gives rows their ids
//! and stores whole captures in the sink. A kill at any point leaves the sink as it was
//! before the capture being stored; rerunning the same command finishes the job with
//! the same ids.
//!
//! The library never prints: notes and progress go to an [`Observer`]; a [`Cancel`]
//! stops the run (the capture being stored is rolled back, the sink made whole).

pub mod discover;
mod fx;
pub mod identity;
pub mod labels;
pub mod lifetimes;
pub mod live;
mod load;
pub mod observe;
mod produce;
pub mod rows;
pub mod rundown;
pub mod sink;

use crate::cancel::Cancel;
use anyhow::Result;
pub use observe::{Level, Note, Observer, Phase, Progress, Silent};
use sink::Sink;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::sync_channel;
use std::sync::Mutex;
use std::time::Instant;

/// Row batches in flight between the decoders and the loading thread.
const CHANNEL: usize = 32;

#[derive(Debug, Clone)]
pub struct Options {
    pub inputs: Vec<String>,
    /// Decoding threads (default: one per core).
    pub jobs: Option<usize>,
    /// Stop at the first bad file.
    pub strict: bool,
    /// Labels for the captures stored.
    pub labels: labels::Labels,
    /// Which decoder reads the captures (heapdb's reader unless asked otherwise).
    pub decoder: crate::decode::Decoder,
}

/// What a sink did when the load ended.
#[derive(Debug, Clone, Default)]
pub struct Finished {
    /// Seconds spent rebuilding indexes.
    pub index_seconds: f64,
    pub rebuilt_indexes: bool,
    /// Indexes left missing (the rebuild was interrupted).
    pub missing_indexes: Vec<String>,
    /// Where the sink's time went, in order: (phase, seconds).
    pub phases: Vec<(&'static str, f64)>,
}

/// What an ingest did.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub files: usize,
    pub ingested: usize,
    pub ingested_with_errors: usize,
    pub duplicates: usize,
    pub failed: usize,
    pub bad_inputs: usize,
    /// Non-regular files (FIFOs, devices) inside the directories walked.
    pub skipped_non_regular: usize,
    /// Archives without a capture inside the directories walked.
    pub skipped_archives: usize,
    pub reallocs: u64,
    pub heap_events: u64,
    pub bytes: u64,
    pub seconds: f64,
    pub finished: Finished,
    /// --strict stopped the run.
    pub stopped_early: bool,
    /// A cancellation stopped the run.
    pub interrupted: bool,
    /// The capture that was being stored when the run was stopped.
    pub rolled_back: Option<String>,
}

impl Report {
    pub fn had_errors(&self) -> bool {
        self.failed > 0 || self.ingested_with_errors > 0 || self.bad_inputs > 0
    }
}

/// State shared by the decoding threads and the loading thread.
pub(crate) struct Shared<'a> {
    pub observer: &'a dyn Observer,
    pub cancel: &'a Cancel,
    stop: AtomicBool,
    report: Mutex<Report>,
    reallocs: AtomicU64,
    events: AtomicU64,
    /// The last capture committed, whole or a part of it.
    committed: Mutex<Option<i64>>,
}

impl<'a> Shared<'a> {
    pub(crate) fn new(observer: &'a dyn Observer, cancel: &'a Cancel) -> Shared<'a> {
        Shared {
            observer,
            cancel,
            stop: AtomicBool::new(false),
            report: Mutex::new(Report::default()),
            reallocs: AtomicU64::new(0),
            events: AtomicU64::new(0),
            committed: Mutex::new(None),
        }
    }
    /// A capture (or a part of a live one) was committed.
    pub fn stored(&self, capture_id: i64) {
        if let Ok(mut c) = self.committed.lock() {
            *c = Some(capture_id);
        }
    }
    pub fn committed(&self) -> Option<i64> {
        self.committed.lock().ok().and_then(|c| *c)
    }
    pub fn report(&self) -> Report {
        self.report.lock().map(|r| r.clone()).unwrap_or_default()
    }
    pub fn note(&self, note: Note) {
        self.observer.note(&note);
    }
    /// --strict: nothing after this is stored.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }
    pub fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }
    fn count<F: FnOnce(&mut Report)>(&self, f: F) {
        if let Ok(mut r) = self.report.lock() {
            f(&mut r);
        }
    }
    pub fn failed_capture(&self, _path: &str) {
        self.count(|r| r.failed += 1);
    }
    pub fn rolled_back(&self, path: &str) {
        self.count(|r| r.rolled_back = Some(path.to_string()));
        self.note(Note::about(Level::Warning, path, "not committed"));
    }
    pub fn ingested(&self, with_errors: bool) {
        self.count(|r| {
            r.ingested += 1;
            if with_errors {
                r.ingested_with_errors += 1;
            }
        });
    }
    pub fn add_rows(&self, reallocs: u64, events: u64) {
        self.reallocs.fetch_add(reallocs, Ordering::Relaxed);
        self.events.fetch_add(events, Ordering::Relaxed);
    }
    pub fn rows(&self) -> u64 {
        self.reallocs.load(Ordering::Relaxed) + self.events.load(Ordering::Relaxed)
    }
}

pub(crate) fn now_rfc3339() -> String {
    let ns = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0);
    crate::etl::time::rfc3339(ns)
}

/// Runs an ingest into `sink`. Errors returned are fatal (the sink failed); bad
/// inputs are reported to the observer, stored as failures and counted in the report.
pub fn run<S: Sink>(
    opts: &Options,
    mut sink: S,
    observer: &dyn Observer,
    cancel: &Cancel,
) -> Result<Report> {
    let t0 = Instant::now();
    let found = discover::expand(&opts.inputs);
    for b in &found.bad {
        observer.note(&Note::about(Level::Error, &b.input, b.message.clone()));
    }
    if let Some((link, dir)) = &found.loops {
        observer.note(&Note::about(
            Level::Warning,
            &link.display().to_string(),
            format!(
                "leads back to {}, which is already searched (a directory link loop); {} such link(s) skipped",
                dir.display(),
                found.loop_count
            ),
        ));
    }
    let sizes: Vec<u64> = found.inputs.iter().map(discover::Input::size).collect();
    let total_bytes: u64 = sizes.iter().sum();
    if !found.inputs.is_empty() {
        sink.prepare(total_bytes, sink::Context { observer, cancel })?;
    }
    let shared = Shared::new(observer, cancel);
    let catalog = sink.catalog()?;
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(opts.jobs.unwrap_or(0))
        .thread_name(|i| format!("heapdb-decode-{i}"))
        .build()?;
    let (sink, produced) = std::thread::scope(|scope| -> Result<(S, Result<()>)> {
        let (tx, rx) = sync_channel::<load::Msg>(CHANNEL);
        let shared = &shared;
        let loader = std::thread::Builder::new()
            .name("heapdb-load".into())
            .spawn_scoped(scope, move || -> Result<S> {
                let mut l = load::Loader::new(sink, shared, opts.strict);
                l.run(rx)?;
                Ok(l.into_sink())
            })?;
        let produced = pool.install(|| -> Result<()> {
            let mut before = 0u64;
            for (i, input) in found.inputs.iter().enumerate() {
                if shared.stopped() || cancel.requested() {
                    break;
                }
                let p = produce::Producer {
                    tx: &tx,
                    shared,
                    catalog: catalog.as_ref(),
                    strict: opts.strict,
                    labels: &opts.labels,
                    bytes_before: before,
                    bytes_total: total_bytes,
                    file: i + 1,
                    files: found.inputs.len(),
                    decoder: opts.decoder,
                };
                p.ingest(input)?;
                before += sizes[i];
            }
            Ok(())
        });
        drop(tx);
        let sink = match loader.join() {
            Ok(r) => r?,
            Err(_) => anyhow::bail!("the loading thread panicked"),
        };
        Ok((sink, produced))
    })?;
    produced?;
    let mut sink = sink;
    let finished = sink.finish(sink::Context { observer, cancel })?;
    let mut report = shared.report();
    report.files = found.inputs.len();
    report.bad_inputs = found.bad.len();
    report.skipped_non_regular = found.skipped_non_regular;
    report.skipped_archives = found.skipped_archives;
    report.reallocs = shared.reallocs.load(Ordering::Relaxed);
    report.heap_events = shared.events.load(Ordering::Relaxed);
    report.bytes = total_bytes;
    report.stopped_early = shared.stopped();
    report.interrupted = cancel.requested();
    report.finished = finished;
    report.seconds = t0.elapsed().as_secs_f64();
    Ok(report)
}
