//! `heapdb record`: a live heap tracing session into the database (Windows only).

use super::{say, Outcome};
use clap::Args;
use heapdb::ingest::live::{self, LiveOptions, LiveReport, LiveSource, Stopped};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Args)]
#[command(
    after_help = "Windows only, as administrator (or a member of Performance Log Users): \
starts a heap tracing session for the processes (--pid, or the program --exe starts \
suspended, so that its first allocation is traced), with the kernel's process, thread and \
image events and, with --stacks, a stack for every heap Alloc and ReAlloc. The events go \
through the same pipeline as `heapdb ingest` into the database as one capture. What was \
recorded is committed every --commit-every seconds: a recording killed or crashed keeps \
what it committed (the capture stays `recording` until `heapdb repair` finishes it), and \
reports can read the recording while it runs.\n\n\
It ends after --duration, when the --exe program exits, or at Ctrl-C; then the sessions \
are stopped, what they still hold is read, and the capture is committed whole (block \
lifetimes, history, summaries), as an ingest would. The sessions are stopped on every \
exit, errors included; a session left by a heapdb that was killed is stopped by the next \
`heapdb record`.\n\n\
Exit codes: 0 recorded, 1 recorded but some records could not be read (named on \
stderr, in ingest_errors), 2 usage error (or not Windows), 3 the session could not be \
started, failed part-way (what came before is committed) or the database failed, 4 a \
second Ctrl-C abandoned the last part (the parts before are committed; `heapdb repair` \
finishes the capture).\n\n\
Examples:\n  heapdb record --db heap.db --pid 4242 --duration 60 --stacks\n  \
heapdb record --db heap.db --out run.etl --exe C:\\build\\app.exe -- --input big.txt"
)]
pub struct RecordArgs {
    /// Database file (created if missing).
    #[arg(long, default_value = "heap.db", value_name = "FILE")]
    pub db: PathBuf,
    /// Trace these processes (repeatable).
    #[arg(
        long,
        value_name = "N",
        required_unless_present_any = ["exe", "replay"],
        conflicts_with_all = ["exe", "replay"]
    )]
    pub pid: Vec<u32>,
    /// Start this program with ARGS and trace it from its first allocation.
    #[arg(long, value_name = "PATH", conflicts_with = "replay")]
    pub exe: Option<PathBuf>,
    /// Arguments of the program --exe starts.
    #[arg(last = true, value_name = "ARGS", requires = "exe")]
    pub args: Vec<String>,
    /// Stop after this many seconds (default: Ctrl-C, or the end of the --exe program).
    #[arg(long, value_name = "SECS", value_parser = seconds)]
    pub duration: Option<Duration>,
    /// Commit what was recorded this often: what a crash can lose.
    #[arg(long, value_name = "SECS", default_value = "5", value_parser = seconds)]
    pub commit_every: Duration,
    /// Record a stack for every heap Alloc and ReAlloc.
    #[arg(long)]
    pub stacks: bool,
    /// Also keep the raw events in this .etl file.
    #[arg(long, value_name = "FILE", conflicts_with = "replay")]
    pub out: Option<PathBuf>,
    /// Label the capture (repeatable): KEY=VALUE, as `heapdb ingest --label`.
    #[arg(long = "label", value_name = "KEY=VALUE", value_parser = heapdb::ingest::labels::parse_label)]
    pub labels: Vec<(String, String)>,
    /// Play this capture file as the live session (every platform): the recorder's
    /// whole path without ETW, for tests and demonstrations.
    #[arg(long, value_name = "FILE", hide = true)]
    pub replay: Option<PathBuf>,
    /// --replay at this many events per second (default: as fast as possible).
    #[arg(long, value_name = "N", hide = true, requires = "replay")]
    pub replay_rate: Option<f64>,
}

fn seconds(s: &str) -> Result<Duration, String> {
    let v: f64 = s
        .parse()
        .map_err(|_| format!("{s:?} is not a number of seconds"))?;
    if !v.is_finite() || v <= 0.0 || v > 1e9 {
        return Err(format!("{s:?}: give a number of seconds above 0"));
    }
    Ok(Duration::from_secs_f64(v))
}

pub fn run(a: RecordArgs, quiet: bool) -> anyhow::Result<Outcome> {
    let mut source: Box<dyn LiveSource> = match &a.replay {
        Some(file) => Box::new(live::Replay::new(file, a.replay_rate)),
        None => session(&a)?,
    };
    // As `ingest --label`: the last of a key wins, sorted by key.
    let fixed: Vec<String> = a.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let (labels, _) = heapdb::ingest::labels::Labels::new(&fixed, &[])
        .map_err(super::UsageError)?
        .for_path("");
    let opts = LiveOptions {
        db: a.db.clone(),
        commit_every: a.commit_every,
        duration: a.duration,
        labels,
    };
    let cancel = super::cancel();
    let term = super::progress::Terminal::new(quiet, 0);
    let report = live::record(&opts, source.as_mut(), &term, cancel);
    term.finish();
    let r = report?;
    summarize(&a, &r);
    if let Some(e) = &r.session_error {
        anyhow::bail!(
            "{}: the session failed: {e}; what was recorded before is committed",
            r.path
        );
    }
    Ok(if !r.committed {
        Outcome::Interrupted
    } else if r.with_errors {
        Outcome::InputErrors
    } else {
        Outcome::Ok
    })
}

fn summarize(a: &RecordArgs, r: &LiveReport) {
    let why = match r.stopped {
        Stopped::Duration => "the duration ended",
        Stopped::Interrupted => "interrupted",
        Stopped::Exited => "the program exited",
        Stopped::SessionEnded => "the session ended",
    };
    let id = r
        .capture_id
        .map_or("nothing stored".to_string(), |id| format!("capture {id}"));
    let state = if r.committed {
        "committed"
    } else {
        "the last part abandoned; `heapdb repair` finishes it"
    };
    say(format!(
        "{}: {id}, {} reallocs + {} other heap events in {:.1} s ({why}; {} part(s) committed before the end; {state})",
        a.db.display(),
        r.reallocs,
        r.heap_events,
        r.seconds,
        r.checkpoints,
    ));
    if r.events_lost > 0 || r.buffers_lost > 0 {
        say(format!(
            "{}: the session lost {} events and {} buffers: the numbers are incomplete (data-quality says so too)",
            r.path, r.events_lost, r.buffers_lost
        ));
    }
}

#[cfg(not(windows))]
fn session(_a: &RecordArgs) -> anyhow::Result<Box<dyn LiveSource>> {
    Err(super::decoder::windows_only(
        "heapdb record",
        "it starts an ETW heap tracing session",
    ))
}

#[cfg(windows)]
fn session(a: &RecordArgs) -> anyhow::Result<Box<dyn LiveSource>> {
    use heapdb::etw::live::{HeapSession, Target};
    let target = match &a.exe {
        Some(exe) => Target::Program {
            exe: exe.clone(),
            args: a.args.clone(),
        },
        None if !a.pid.is_empty() => Target::Pids(a.pid.clone()),
        None => return Err(super::UsageError("give --pid N or --exe PATH".into()).into()),
    };
    Ok(Box::new(HeapSession::new(target, a.stacks, a.out.clone())))
}
