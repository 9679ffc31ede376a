//! A live recording into the database (`heapdb record`): one capture, fed by a
//! session that delivers events while it runs, committed in parts.
//!
//! The session ([`LiveSource`]) pushes heapdb events into a bounded channel from its own
//! thread (ETW's `ProcessTrace` on Windows, [`Replay`] of a capture file anywhere).
//! This thread decodes them with the same per-CPU streams as an ingest
//! ([`crate::decode::events::EventDecoder`]) and hands row batches to the same loading
//! thread, which gives ids, follows block lifetimes and stores the capture. Every
//! `commit_every` it asks the loading thread for a checkpoint: the rows so far, the
//! processes/threads/images so far and the counts are committed, so a crash loses at
//! most that long. The end (the duration, Ctrl-C, the traced program's exit, the
//! session's own end) stops the session, drains it and commits the capture as an
//! ingest would: history, lifetimes, summaries.
//!
//! While it runs the capture is `status = 'recording'` and holds a range of ids
//! ([`crate::db::sink::RECORDING_RESERVE`]) so that an ingest meanwhile stores its
//! captures after it. A lock file next to the database, held while the recording runs,
//! tells `heapdb repair` whether a `recording` capture is alive or was left by a killed
//! recorder, which it then finishes from the committed rows.

use super::load::{Loader, Msg};
use super::observe::{Level, Note, Phase, Progress};
use super::sink::{CaptureStart, Context, Sink};
use super::Shared;
use crate::cancel::Cancel;
use crate::db::sink::SqliteSink;
use crate::decode::events::EventDecoder;
use crate::decode::record::OwnedEvent;
use crate::decode::{EventSource, HeapdbSource};
use crate::etl::{Clock, LogfileHeader};
use crate::heap::capture::{Batch, KeyCollector, Stats};
use crate::ingest::discover::Input;
use anyhow::{Context as _, Result};
use std::fs::File;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Events in flight between the session's thread and the decoder. When the decoder
/// falls behind, the session's callback waits, and ETW's buffers take the rest (the
/// session counts what it loses: `captures.events_lost`).
pub const FEED_EVENTS: usize = 64 * 1024;

/// How often the recording's progress is shown.
const PROGRESS: Duration = Duration::from_millis(500);

/// How often the loop looks at Ctrl-C, the duration and the traced program.
const POLL: Duration = Duration::from_millis(100);

/// What a session hands the recorder.
pub enum Feed {
    Event(Box<OwnedEvent>),
    /// A record the session could not read (a replayed file's bad buffer): stored in
    /// `ingest_errors` and counted, as an ingest does.
    Bad(Box<crate::etl::Error>),
    /// The session ended: stopped, or failed (the message says why).
    End(std::result::Result<(), String>),
}

/// What a session records, once started.
#[derive(Debug, Clone)]
pub struct SessionInfo {
    /// The capture's header: its clock (raw timestamps → time), CPUs, pointer size,
    /// session name.
    pub header: LogfileHeader,
    /// `captures.path` of the recording (e.g. `record:heapdb-1234 pids 4242`).
    pub path: String,
    pub file_name: String,
    /// What makes this recording unlike any other (hashed into its fingerprint).
    pub identity: String,
}

/// A live session: Windows' real-time heap session, or a [`Replay`].
pub trait LiveSource {
    /// Starts the session; its events go to `tx` until it is stopped, then one
    /// [`Feed::End`]. An error: nothing was started (or what was is stopped again).
    fn start(&mut self, tx: SyncSender<Feed>) -> Result<SessionInfo>;
    /// Stops the session (again: nothing). The session's thread then delivers what
    /// it still has and ends with [`Feed::End`].
    fn stop(&mut self) -> Result<()>;
    /// True once what it traces is gone (the program `--exe` started has exited).
    fn traced_exited(&mut self) -> bool {
        false
    }
    /// (events, buffers) the session lost, known once it is stopped.
    fn lost(&self) -> (u32, u32) {
        (0, 0)
    }
}

/// How a recording runs.
#[derive(Debug, Clone)]
pub struct LiveOptions {
    pub db: PathBuf,
    /// How often what was recorded is committed.
    pub commit_every: Duration,
    /// Stop after this long.
    pub duration: Option<Duration>,
    /// `--label KEY=VALUE`s, sorted by key.
    pub labels: Vec<(String, String)>,
}

/// Why the recording stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopped {
    Duration,
    Interrupted,
    /// The traced program exited.
    Exited,
    /// The session ended by itself (a replay reached the end of its file, or Windows
    /// stopped the session).
    SessionEnded,
}

/// What a recording did.
#[derive(Debug, Clone)]
pub struct LiveReport {
    pub capture_id: Option<i64>,
    pub path: String,
    pub reallocs: u64,
    pub heap_events: u64,
    /// Parts committed before the end.
    pub checkpoints: u64,
    pub stopped: Stopped,
    /// The session failed part-way (what was recorded before is stored).
    pub session_error: Option<String>,
    /// The capture was committed whole; false: a second Ctrl-C abandoned the last
    /// part (the parts committed before stay, as `recording`, for `heapdb repair`).
    pub committed: bool,
    pub events_lost: u32,
    pub buffers_lost: u32,
    /// Records the session could not read (reported, in `ingest_errors`).
    pub with_errors: bool,
    pub seconds: f64,
}

/// The lock file that says a recording is alive: `<db>-recording-<fingerprint>.lock`.
pub fn lock_path(db: &Path, fingerprint: &str) -> PathBuf {
    let short = fingerprint.get(..16).unwrap_or(fingerprint);
    let mut name = db.file_name().unwrap_or_default().to_os_string();
    name.push(format!("-recording-{short}.lock"));
    db.with_file_name(name)
}

/// Whether the recording whose lock file is at `path` is alive: its recorder holds
/// the lock (the operating system drops it when the process dies, however it dies).
pub fn recording_alive(path: &Path) -> bool {
    let Ok(f) = File::options().read(true).write(true).open(path) else {
        return false;
    };
    match f.try_lock() {
        Ok(()) => false,
        Err(std::fs::TryLockError::WouldBlock) => true,
        Err(std::fs::TryLockError::Error(_)) => false,
    }
}

/// Stops the session however the recording ends (errors and panics included): no
/// ETW session outlives heapdb when heapdb can help it.
struct Running<'a> {
    source: &'a mut dyn LiveSource,
    stopped: bool,
}

impl Running<'_> {
    fn stop(&mut self) -> Result<()> {
        if self.stopped {
            return Ok(());
        }
        self.stopped = true;
        self.source.stop()
    }
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

/// Records one capture from `source` into the database at `opts.db`. Errors returned
/// are fatal (the session could not start, the database failed); a session that fails
/// part-way is reported in [`LiveReport::session_error`] after what it delivered is
/// stored.
pub fn record(
    opts: &LiveOptions,
    source: &mut dyn LiveSource,
    observer: &dyn super::Observer,
    cancel: &Cancel,
) -> Result<LiveReport> {
    let t0 = Instant::now();
    let mut sink = SqliteSink::open(&opts.db, crate::db::sink::IndexMode::Keep)?.for_recording();
    let ctx = Context { observer, cancel };
    // Indexes kept (and rebuilt first if an interrupted ingest left some missing):
    // readers query the recording while it runs.
    sink.prepare(0, ctx)?;
    // The loading thread must not roll the capture back at the first Ctrl-C (that
    // one ends the recording and commits it): it has its own cancel, requested at the
    // second.
    let loader_cancel = Cancel::new();
    let shared = Shared::new(observer, &loader_cancel);
    let (feed_tx, feed_rx) = sync_channel::<Feed>(FEED_EVENTS);
    let info = source.start(feed_tx)?;
    let mut running = Running {
        source,
        stopped: false,
    };
    let fingerprint = {
        let mut h = blake3::Hasher::new();
        h.update(b"heapdb record\0");
        h.update(info.identity.as_bytes());
        h.update(super::now_rfc3339().as_bytes());
        h.finalize().to_hex().to_string()
    };
    let lock_file = lock_path(&opts.db, &fingerprint);
    let lock = File::create(&lock_file)
        .and_then(|f| f.lock().map(|()| f))
        .with_context(|| {
            format!(
                "{}: creating the recording's lock file",
                lock_file.display()
            )
        })?;
    let start = CaptureStart {
        path: info.path.clone(),
        file_name: info.file_name.clone(),
        size: 0,
        fingerprint,
        header: info.header.clone(),
        started: super::now_rfc3339(),
        labels: opts.labels.clone(),
    };
    let clock = Clock::new(&info.header);
    let outcome = std::thread::scope(|scope| -> Result<(Pumped, bool)> {
        let (tx, rx) = sync_channel::<Msg>(super::CHANNEL);
        let shared = &shared;
        let loader = std::thread::Builder::new()
            .name("heapdb-load".into())
            .spawn_scoped(scope, move || -> Result<()> {
                let mut l = Loader::new(sink, shared, false);
                l.run(rx)?;
                let mut sink = l.into_sink();
                sink.finish(Context {
                    observer: shared.observer,
                    cancel: shared.cancel,
                })?;
                Ok(())
            })?;
        let rows = || shared.rows();
        let pumped = pump(
            opts,
            &mut running,
            &feed_rx,
            &tx,
            start,
            &clock,
            Watch {
                cancel,
                loader_cancel: &loader_cancel,
                observer,
                rows: &rows,
                t0,
            },
        );
        drop(tx);
        let loaded = match loader.join() {
            Ok(r) => r,
            Err(_) => Err(anyhow::anyhow!("the loading thread panicked")),
        };
        // The loading thread's error first: when it failed, the loop only saw that it
        // stopped listening.
        loaded?;
        let pumped = pumped?;
        Ok((pumped, !loader_cancel.requested()))
    });
    // Stopped already, unless the loop failed: the session never outlives the call.
    let stop_error = running.stop().err();
    // What the session still sends has nowhere to go.
    drop(feed_rx);
    let (pumped, committed) = outcome?;
    if let Some(e) = stop_error {
        observer.note(&Note::about(
            Level::Warning,
            &info.path,
            format!("stopping the session: {e:#}"),
        ));
    }
    let (events_lost, buffers_lost) = running.source.lost();
    let capture_id = shared.committed();
    if committed && (events_lost > 0 || buffers_lost > 0) {
        if let Some(id) = capture_id {
            let conn = crate::db::open_rw(&opts.db)?;
            conn.execute(
                "UPDATE captures SET events_lost = ?2, buffers_lost = ?3 WHERE capture_id = ?1",
                (id, events_lost, buffers_lost),
            )?;
        }
    }
    drop(lock);
    if committed || capture_id.is_none() {
        let _ = std::fs::remove_file(&lock_file);
    }
    Ok(LiveReport {
        capture_id,
        path: info.path,
        reallocs: shared.reallocs.load(Ordering::Relaxed),
        heap_events: shared.events.load(Ordering::Relaxed),
        checkpoints: pumped.checkpoints,
        stopped: pumped.stopped,
        session_error: pumped.session_error,
        committed,
        events_lost,
        buffers_lost,
        with_errors: shared.report().ingested_with_errors > 0,
        seconds: t0.elapsed().as_secs_f64(),
    })
}

/// What the loop did.
struct Pumped {
    checkpoints: u64,
    stopped: Stopped,
    session_error: Option<String>,
}

/// What the loop watches and tells.
struct Watch<'a> {
    cancel: &'a Cancel,
    loader_cancel: &'a Cancel,
    observer: &'a dyn super::Observer,
    /// Heap events stored so far.
    rows: &'a dyn Fn() -> u64,
    /// When the recording started.
    t0: Instant,
}

/// The recorder's loop: session events → decoder → loading thread, checkpoints on
/// the clock, the stop conditions.
fn pump(
    opts: &LiveOptions,
    running: &mut Running<'_>,
    feed: &Receiver<Feed>,
    tx: &SyncSender<Msg>,
    start: CaptureStart,
    clock: &Clock,
    watch: Watch<'_>,
) -> Result<Pumped> {
    let Watch {
        cancel,
        loader_cancel,
        observer,
        rows,
        t0,
    } = watch;
    let send = |m: Msg| {
        tx.send(m)
            .map_err(|_| anyhow::anyhow!("the loading thread stopped"))
    };
    send(Msg::Begin(Box::new(start)))?;
    // heapdb record asks for plain stack walks, never cached stacks: no key table.
    let (keys, _) = KeyCollector::new().finish();
    let mut decoder = EventDecoder::new(&keys);
    let mut stats = Stats::default();
    let mut ready: Vec<Batch> = Vec::new();
    let forward = |ready: &mut Vec<Batch>, stats: &mut Stats| -> Result<()> {
        for b in ready.drain(..) {
            stats.add(&b.stats);
            send(Msg::Rows(super::produce::row_batch(b, clock)))?;
        }
        Ok(())
    };
    let deadline = opts.duration.map(|d| t0 + d);
    let every = opts.commit_every.max(Duration::from_millis(10));
    let mut next_commit = Instant::now() + every;
    let mut stopped: Option<Stopped> = None;
    let mut checkpoints = 0u64;
    let mut last_progress = Instant::now();
    let progress = |parts: u64| {
        observer.progress(&Progress {
            phase: Phase::Recording {
                millis: t0.elapsed().as_millis() as u64,
                rows: rows(),
                parts,
            },
            bytes_done: 0,
            bytes_total: 0,
            rows: rows(),
        })
    };
    let session_error;
    loop {
        let now = Instant::now();
        if cancel.requests() >= 2 && !loader_cancel.requested() {
            // A second Ctrl-C: the part being stored is abandoned (the parts before
            // stay committed).
            loader_cancel.request();
        }
        if stopped.is_none() {
            let why = if cancel.requested() {
                Some(Stopped::Interrupted)
            } else if deadline.is_some_and(|d| now >= d) {
                Some(Stopped::Duration)
            } else if running.source.traced_exited() {
                Some(Stopped::Exited)
            } else {
                None
            };
            if let Some(why) = why {
                stopped = Some(why);
                running.stop()?;
            }
        }
        let mut wait = next_commit.saturating_duration_since(now).min(POLL);
        if let (Some(d), None) = (deadline, stopped) {
            wait = wait.min(d.saturating_duration_since(now));
        }
        match feed.recv_timeout(wait) {
            Ok(Feed::Event(e)) => {
                decoder.add(Ok(&e.event()), |b| ready.push(b));
                forward(&mut ready, &mut stats)?;
            }
            Ok(Feed::Bad(e)) => decoder.add(Err(&e), |b| ready.push(b)),
            Ok(Feed::End(r)) => {
                session_error = r.err();
                break;
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => {
                session_error = Some("the session's thread ended without saying why".into());
                break;
            }
        }
        if last_progress.elapsed() >= PROGRESS {
            last_progress = Instant::now();
            progress(checkpoints);
        }
        if Instant::now() >= next_commit {
            decoder.flush(|b| ready.push(b));
            forward(&mut ready, &mut stats)?;
            send(Msg::Checkpoint(Box::new(stats)))?;
            checkpoints += 1;
            next_commit = Instant::now() + every;
        }
    }
    decoder.finish(|b| ready.push(b));
    forward(&mut ready, &mut stats)?;
    if cancel.requests() >= 2 {
        loader_cancel.request();
    }
    send(Msg::End(Box::new(stats)))?;
    Ok(Pumped {
        checkpoints,
        stopped: stopped.unwrap_or(Stopped::SessionEnded),
        session_error,
    })
}

/// A capture file played as a live session, in the order its buffers are in the file
/// (the order a real-time session delivers them in), optionally at a given pace: the
/// recorder's whole path on every platform, for tests and demonstrations.
pub struct Replay {
    path: PathBuf,
    /// Events per second (None: as fast as they are taken).
    rate: Option<f64>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Replay {
    pub fn new(path: &Path, rate: Option<f64>) -> Replay {
        Replay {
            path: path.to_path_buf(),
            rate,
            stop: Arc::new(AtomicBool::new(false)),
            thread: None,
        }
    }
}

impl LiveSource for Replay {
    fn start(&mut self, tx: SyncSender<Feed>) -> Result<SessionInfo> {
        let input = Input::File(self.path.clone());
        let source = HeapdbSource::open(&input)
            .map_err(|e| anyhow::anyhow!("{}: {e}", self.path.display()))?;
        let header = source.header().clone();
        drop(source);
        let stop = Arc::clone(&self.stop);
        let rate = self.rate;
        let path = self.path.clone();
        self.thread = Some(
            std::thread::Builder::new()
                .name("heapdb-replay".into())
                .spawn(move || {
                    let r = replay(&path, rate, &stop, &tx);
                    let _ = tx.send(Feed::End(r));
                })?,
        );
        let name = self
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        Ok(SessionInfo {
            header,
            path: format!("record:replay:{}", self.path.display()),
            file_name: name,
            identity: format!("replay {}", self.path.display()),
        })
    }

    fn stop(&mut self) -> Result<()> {
        self.stop.store(true, Ordering::Relaxed);
        Ok(())
    }
}

impl Drop for Replay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn replay(
    path: &Path,
    rate: Option<f64>,
    stop: &AtomicBool,
    tx: &SyncSender<Feed>,
) -> std::result::Result<(), String> {
    let mut source =
        HeapdbSource::open(&Input::File(path.to_path_buf())).map_err(|e| e.to_string())?;
    let t0 = Instant::now();
    let mut sent = 0u64;
    let mut gone = false;
    let r = source.for_each(&mut |item| {
        if stop.load(Ordering::Relaxed) {
            return ControlFlow::Break(());
        }
        let e = match item {
            Ok(e) => e,
            Err(bad) => {
                if tx.send(Feed::Bad(Box::new(bad.clone()))).is_err() {
                    gone = true;
                    return ControlFlow::Break(());
                }
                return ControlFlow::Continue(());
            }
        };
        if let Some(rate) = rate.filter(|r| *r > 0.0) {
            let due = t0 + Duration::from_secs_f64(sent as f64 / rate);
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
        }
        sent += 1;
        if tx
            .send(Feed::Event(Box::new(OwnedEvent::from_event(e))))
            .is_err()
        {
            gone = true;
            return ControlFlow::Break(());
        }
        ControlFlow::Continue(())
    });
    if gone {
        return Ok(());
    }
    r.map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    /// A session that plays a synthesized capture's events, then ends as told; it
    /// counts the stops it is asked for.
    struct Mock {
        file: PathBuf,
        end: std::result::Result<(), String>,
        fail_start: bool,
        stops: Arc<AtomicUsize>,
        thread: Option<std::thread::JoinHandle<()>>,
    }

    impl LiveSource for Mock {
        fn start(&mut self, tx: SyncSender<Feed>) -> Result<SessionInfo> {
            if self.fail_start {
                anyhow::bail!("StartTraceW failed: access denied");
            }
            let input = Input::File(self.file.clone());
            let mut source = HeapdbSource::open(&input).map_err(|e| anyhow::anyhow!("{e}"))?;
            let header = source.header().clone();
            let mut events = Vec::new();
            source
                .for_each(&mut |e| {
                    if let Ok(e) = e {
                        events.push(OwnedEvent::from_event(e));
                    }
                    ControlFlow::Continue(())
                })
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            let end = self.end.clone();
            self.thread = Some(std::thread::spawn(move || {
                for e in events {
                    if tx.send(Feed::Event(Box::new(e))).is_err() {
                        return;
                    }
                }
                let _ = tx.send(Feed::End(end));
            }));
            Ok(SessionInfo {
                header,
                path: "record:mock".into(),
                file_name: "mock".into(),
                identity: format!("mock {}", self.file.display()),
            })
        }
        fn stop(&mut self) -> Result<()> {
            self.stops.fetch_add(1, Ordering::Relaxed);
            Ok(())
        }
    }

    fn setup() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.etl");
        let opts = crate::synth::Options {
            events_per_file: 3000,
            ..crate::synth::Options::default()
        };
        crate::synth::generate_file(&file, &opts, 0, None).unwrap();
        (dir, file)
    }

    fn run(
        dir: &Path,
        file: &Path,
        end: std::result::Result<(), String>,
        fail_start: bool,
    ) -> (Result<LiveReport>, usize, i64) {
        let stops = Arc::new(AtomicUsize::new(0));
        let mut mock = Mock {
            file: file.to_path_buf(),
            end,
            fail_start,
            stops: Arc::clone(&stops),
            thread: None,
        };
        let db = dir.join("m.db");
        let opts = LiveOptions {
            db: db.clone(),
            commit_every: Duration::from_secs(60),
            duration: None,
            labels: Vec::new(),
        };
        let r = record(&opts, &mut mock, &super::super::Silent, &Cancel::new());
        if let Some(t) = mock.thread.take() {
            t.join().unwrap();
        }
        let n = rusqlite::Connection::open(&db)
            .and_then(|c| {
                c.query_row(
                    "SELECT coalesce(sum(events_decoded), -1) FROM captures",
                    [],
                    |r| r.get(0),
                )
            })
            .unwrap_or(-2);
        (r, stops.load(Ordering::Relaxed), n)
    }

    /// A session that ends by itself: everything stored, the session stopped once.
    #[test]
    fn a_session_that_ends_is_stopped_once_and_stored() {
        let (dir, file) = setup();
        let (r, stops, n) = run(dir.path(), &file, Ok(()), false);
        let r = r.unwrap();
        assert_eq!(stops, 1);
        assert_eq!(n, 3000);
        assert_eq!(r.stopped, Stopped::SessionEnded);
        assert!(r.committed && r.session_error.is_none());
        assert_eq!(r.reallocs + r.heap_events, 3000);
    }

    /// A session that fails part-way: what it delivered is stored, the error said, the
    /// session stopped once.
    #[test]
    fn a_session_that_fails_is_stopped_once_and_what_came_is_stored() {
        let (dir, file) = setup();
        let (r, stops, n) = run(
            dir.path(),
            &file,
            Err("ProcessTrace failed: 1".into()),
            false,
        );
        let r = r.unwrap();
        assert_eq!(stops, 1);
        assert_eq!(n, 3000);
        assert_eq!(r.session_error.as_deref(), Some("ProcessTrace failed: 1"));
    }

    /// A session that cannot start: an error, nothing stored, nothing to stop.
    #[test]
    fn a_session_that_cannot_start_stores_nothing() {
        let (dir, file) = setup();
        let (r, stops, n) = run(dir.path(), &file, Ok(()), true);
        let e = r.unwrap_err();
        assert!(e.to_string().contains("StartTraceW"), "{e}");
        assert_eq!(stops, 0);
        assert_eq!(n, -1, "no capture");
    }

    #[test]
    fn lock_files_say_whether_a_recording_lives() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("heap.db");
        let p = lock_path(&db, "0123456789abcdef0123");
        assert_eq!(
            p.file_name().unwrap().to_string_lossy(),
            "heap.db-recording-0123456789abcdef.lock"
        );
        assert!(!recording_alive(&p), "no file");
        let f = File::create(&p).unwrap();
        f.lock().unwrap();
        // Another open file description of the same file sees the lock.
        assert!(recording_alive(&p));
        drop(f);
        assert!(!recording_alive(&p));
    }
}
