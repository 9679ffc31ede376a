//! `heapdb ingest`: many captures → one SQLite database.
//!
//! The main thread walks the files in sorted order; for each it fingerprints the bytes
//! (BLAKE3), skips captures already in the database, decodes the buffers in parallel
//! (rayon, per-CPU streams, in windows of buffers so memory stays flat) and sends row
//! batches through a bounded channel to one writer thread, which inserts them with
//! prepared statements, one transaction per capture. A kill at any point leaves the
//! database as it was before the capture being written; rerunning the same command
//! finishes the job with the same ids (files are taken in sorted order and every row's
//! id follows from that order).

pub mod discover;
pub mod rows;
pub mod writer;

use crate::etl::{EtlFile, LogfileHeader, MappedFile};
use crate::heap::capture::{decode_buffers_windowed, key_definitions_windowed, Problem, Stats};
use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use rows::{EventRow, RundownRow};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, SyncSender};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Buffers decoded per window (per CPU stream in parallel); bounds memory.
const WINDOW: usize = 64;
/// Row batches in flight between the decoders and the writer.
const CHANNEL: usize = 32;

/// When to drop the secondary indexes during the load and rebuild them after.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IndexMode {
    /// Rebuild when the batch is larger than what the database already holds.
    Auto,
    Rebuild,
    Keep,
}

#[derive(Debug, Clone)]
pub struct Options {
    pub db: PathBuf,
    pub inputs: Vec<String>,
    pub jobs: Option<usize>,
    pub quiet: bool,
    pub strict: bool,
    pub index_mode: IndexMode,
    /// Show the progress bar (when stderr is a terminal and not quiet).
    pub progress: bool,
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
    pub reallocs: u64,
    pub heap_events: u64,
    pub bytes: u64,
    pub seconds: f64,
    pub index_seconds: f64,
    pub rebuilt_indexes: bool,
    pub stopped_early: bool,
}

impl Report {
    pub fn had_errors(&self) -> bool {
        self.failed > 0 || self.ingested_with_errors > 0 || self.bad_inputs > 0
    }
}

pub(crate) struct CaptureStart {
    pub path: String,
    pub file_name: String,
    pub size: u64,
    pub fingerprint: String,
    pub header: LogfileHeader,
    pub started: String,
}

pub(crate) struct CaptureEnd {
    pub stats: Stats,
}

pub(crate) struct FileFailure {
    pub path: String,
    pub fingerprint: String,
    pub offset: Option<u64>,
    pub message: String,
}

pub(crate) struct RowBatch {
    pub rows: Vec<EventRow>,
    pub stacks: Vec<(i64, Vec<u64>)>,
    pub rundown: Vec<RundownRow>,
    pub problems: Vec<Problem>,
}

pub(crate) enum Msg {
    Begin(Box<CaptureStart>),
    Rows(RowBatch),
    End(Box<CaptureEnd>),
    Failed(FileFailure),
}

/// State shared by the producer and the writer.
pub(crate) struct Shared {
    pub stop: AtomicBool,
    pub skip_current: AtomicBool,
    report: Mutex<Report>,
    reallocs: AtomicU64,
    events: AtomicU64,
    bar: Option<ProgressBar>,
    quiet: bool,
}

impl Shared {
    pub fn log(&self, msg: String) {
        let line = format!("heapdb: {msg}");
        match &self.bar {
            Some(b) => b.suspend(|| eprintln!("{line}")),
            None => eprintln!("{line}"),
        }
    }
    fn with<F: FnOnce(&mut Report)>(&self, f: F) {
        if let Ok(mut r) = self.report.lock() {
            f(&mut r);
        }
    }
    pub fn note_duplicate(&self, path: &str, id: i64, first_path: &str) {
        self.with(|r| r.duplicates += 1);
        if !self.quiet {
            self.log(format!(
                "{path}: already ingested as capture {id} ({first_path}), skipped"
            ));
        }
    }
    pub fn note_failed(&self, _path: &str) {
        self.with(|r| r.failed += 1);
    }
    pub fn note_ingested(&self, with_errors: bool) {
        self.with(|r| {
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
}

pub(crate) fn now_rfc3339() -> String {
    let ns = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0);
    crate::etl::time::rfc3339(ns)
}

/// BLAKE3 of the file, hashed in chunks (in parallel) whose pages are released after.
fn fingerprint(map: &MappedFile) -> String {
    const CHUNK: usize = 64 << 20;
    let bytes = map.bytes();
    let mut h = blake3::Hasher::new();
    let mut off = 0;
    while off < bytes.len() {
        let end = (off + CHUNK).min(bytes.len());
        h.update_rayon(&bytes[off..end]);
        map.release(off as u64, end as u64);
        off = end;
    }
    h.finalize().to_hex().to_string()
}

/// Runs an ingest. Errors returned are fatal (database, I/O); bad inputs are reported on
/// stderr, in `ingest_errors` and in the report.
pub fn run(opts: &Options) -> Result<Report> {
    let t0 = Instant::now();
    let (files, bad_inputs) = discover::expand(&opts.inputs);
    for b in &bad_inputs {
        eprintln!("heapdb: {}: {}", b.input, b.message);
    }
    let total_bytes: u64 = files
        .iter()
        .filter_map(|p| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum();
    let conn = crate::db::open_rw(&opts.db)?;
    conn.execute_batch(
        "PRAGMA cache_size = -32768; PRAGMA temp_store = FILE; PRAGMA mmap_size = 0;",
    )?;

    // Index strategy: maintaining six B-trees row by row costs more than building them
    // once; rebuild when this batch is larger than what is already there.
    let existing: i64 = conn.query_row(
        "SELECT coalesce((SELECT max(id) - min(id) + 1 FROM reallocs), 0) + coalesce((SELECT max(id) - min(id) + 1 FROM heap_events), 0)",
        [],
        |r| r.get(0),
    )?;
    let incoming = (total_bytes / 80) as i64; // ~80 bytes of capture per heap event
    let rebuild = match opts.index_mode {
        IndexMode::Rebuild => true,
        IndexMode::Keep => false,
        IndexMode::Auto => incoming > existing,
    } && !files.is_empty();
    if rebuild {
        crate::db::drop_indexes(&conn)?;
    } else {
        crate::db::create_indexes(&conn)?;
    }

    let bar = (opts.progress && !opts.quiet && std::io::stderr().is_terminal()).then(|| {
        let b = ProgressBar::with_draw_target(Some(total_bytes), ProgressDrawTarget::stderr());
        b.set_style(
            ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:30} {bytes}/{total_bytes} {bytes_per_sec} ETA {eta} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        b
    });
    let shared = Arc::new(Shared {
        stop: AtomicBool::new(false),
        skip_current: AtomicBool::new(false),
        report: Mutex::new(Report::default()),
        reallocs: AtomicU64::new(0),
        events: AtomicU64::new(0),
        bar: bar.clone(),
        quiet: opts.quiet,
    });

    let (tx, rx) = sync_channel::<Msg>(CHANNEL);
    let mut writer = writer::Writer::new(conn, shared.clone(), opts.strict)?;
    let writer_thread = std::thread::Builder::new()
        .name("heapdb-writer".into())
        .spawn(move || -> Result<rusqlite::Connection> {
            writer.run(rx)?;
            Ok(writer.into_connection())
        })?;

    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(opts.jobs.unwrap_or(0))
        .thread_name(|i| format!("heapdb-decode-{i}"))
        .build()?;
    let mut done_bytes = 0u64;
    let produce = pool.install(|| -> Result<()> {
        let ro = crate::db::open_ro(&opts.db)?;
        for (i, path) in files.iter().enumerate() {
            if shared.stop.load(Ordering::Relaxed) {
                break;
            }
            let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
            let name = path
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or_default();
            let label = format!("file {}/{} {name}", i + 1, files.len());
            let progress = Progress {
                bar: bar.as_ref(),
                label: &label,
                start: t0,
            };
            progress.update(&shared, done_bytes);
            ingest_file(path, &tx, &shared, &ro, &progress, done_bytes, opts.strict)?;
            done_bytes += size;
            progress.update(&shared, done_bytes);
        }
        Ok(())
    });
    drop(tx);
    let conn = match writer_thread.join() {
        Ok(r) => r?,
        Err(_) => anyhow::bail!("the database writer thread panicked"),
    };
    produce?;
    if let Some(b) = &bar {
        b.finish_and_clear();
    }

    let mut report = shared.report.lock().map(|r| r.clone()).unwrap_or_default();
    let ti = Instant::now();
    if !crate::db::missing_indexes(&conn)?.is_empty() {
        if !opts.quiet && rebuild {
            shared.log("building indexes".into());
        }
        crate::db::create_indexes(&conn)?;
        report.rebuilt_indexes = true;
    }
    report.index_seconds = ti.elapsed().as_secs_f64();
    conn.execute_batch("PRAGMA analysis_limit = 1000; PRAGMA optimize;")?;
    let _ = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
    drop(conn);

    report.files = files.len();
    report.bad_inputs = bad_inputs.len();
    report.reallocs = shared.reallocs.load(Ordering::Relaxed);
    report.heap_events = shared.events.load(Ordering::Relaxed);
    report.bytes = total_bytes;
    report.stopped_early = shared.stop.load(Ordering::Relaxed);
    report.seconds = t0.elapsed().as_secs_f64();
    Ok(report)
}

/// The progress line: bytes, MB/s and ETA from the bar; file and events/s in the message.
struct Progress<'a> {
    bar: Option<&'a ProgressBar>,
    label: &'a str,
    start: Instant,
}

impl Progress<'_> {
    fn update(&self, shared: &Shared, position: u64) {
        if let Some(b) = self.bar {
            let rows =
                shared.reallocs.load(Ordering::Relaxed) + shared.events.load(Ordering::Relaxed);
            let secs = self.start.elapsed().as_secs_f64().max(1e-3);
            b.set_position(position);
            b.set_message(format!(
                "{:.2} M events/s  {}",
                rows as f64 / secs / 1e6,
                self.label
            ));
        }
    }
}

fn send(tx: &SyncSender<Msg>, msg: Msg) -> Result<()> {
    tx.send(msg)
        .map_err(|_| anyhow::anyhow!("the database writer stopped"))
}

/// Sends a file-level failure; in strict mode nothing after it is ingested.
fn send_failure(tx: &SyncSender<Msg>, shared: &Shared, strict: bool, f: FileFailure) -> Result<()> {
    if strict {
        shared.stop.store(true, Ordering::Relaxed);
    }
    send(tx, Msg::Failed(f))
}

fn ingest_file(
    path: &std::path::Path,
    tx: &SyncSender<Msg>,
    shared: &Shared,
    ro: &rusqlite::Connection,
    progress: &Progress<'_>,
    done_before: u64,
    strict: bool,
) -> Result<()> {
    let name = path.display().to_string();
    let failed = |fingerprint: &str, offset: Option<u64>, message: String| {
        send_failure(
            tx,
            shared,
            strict,
            FileFailure {
                path: name.clone(),
                fingerprint: fingerprint.to_string(),
                offset,
                message,
            },
        )
    };
    let map = match MappedFile::open(path) {
        Ok(m) => m,
        Err(e) => return failed("", None, e.to_string()),
    };
    let fp = fingerprint(&map);
    let existing: Option<(i64, String)> = rusqlite::OptionalExtension::optional(ro.query_row(
        "SELECT capture_id, path FROM captures WHERE fingerprint = ?1",
        [&fp],
        |r| Ok((r.get(0)?, r.get(1)?)),
    ))
    .context("reading the database")?;
    if let Some((id, first)) = existing {
        shared.note_duplicate(&name, id, &first);
        return Ok(());
    }
    let file = match EtlFile::parse(map.bytes()) {
        Ok(f) => f,
        Err(e) => return failed(&fp, Some(e.offset()), e.kind.to_string()),
    };
    send(
        tx,
        Msg::Begin(Box::new(CaptureStart {
            path: name.clone(),
            file_name: path
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or_default(),
            size: map.bytes().len() as u64,
            fingerprint: fp,
            header: file.header().clone(),
            started: now_rfc3339(),
        })),
    )?;
    let (keys, key_stacks) = key_definitions_windowed(&file, 1024, |s, e| map.release(s, e));
    if !key_stacks.is_empty() {
        send(
            tx,
            Msg::Rows(RowBatch {
                rows: Vec::new(),
                stacks: key_stacks,
                rundown: Vec::new(),
                problems: Vec::new(),
            }),
        )?;
    }
    let clock = *file.clock();
    let mut stats = Stats::default();
    let mut result = Ok(());
    decode_buffers_windowed(
        &file,
        &keys,
        WINDOW,
        |batch| {
            if result.is_err() || shared.stop.load(Ordering::Relaxed) {
                return;
            }
            stats.add(&batch.stats);
            if strict && !batch.problems.is_empty() {
                shared.stop.store(true, Ordering::Relaxed);
            }
            let rows = batch
                .rows
                .iter()
                .map(|r| EventRow::from_heap(r, &clock))
                .collect();
            let rundown = batch
                .rundown
                .into_iter()
                .map(|r| RundownRow::new(r, &clock))
                .collect();
            result = send(
                tx,
                Msg::Rows(RowBatch {
                    rows,
                    stacks: batch.stacks,
                    rundown,
                    problems: batch.problems,
                }),
            );
        },
        |start, end| {
            map.release(start, end);
            progress.update(shared, done_before + end);
        },
    );
    result?;
    send(tx, Msg::End(Box::new(CaptureEnd { stats })))
}
