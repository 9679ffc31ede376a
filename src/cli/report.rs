//! `heapdb report`: the HTML page of a capture.

use super::{say, Outcome, UsageError};
use clap::Args;
use heapdb::query::{sandbox, QueryError};
use heapdb::report::{self, Options};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

#[derive(Args)]
#[command(
    after_help = "Writes one self-contained HTML page (styles, script and charts inside; \
nothing is fetched when it opens) that shows a capture: its machine, duration and data \
quality; outstanding bytes over time per process with each peak marked (per heap on \
click; per heap and per call site at once with --pid); the realloc rate, moved vs in place, and the \
bytes moves copied; size classes by heap path (lookaside, LFH, main, slow, segment); the \
top call sites by reallocs, by bytes copied and by bytes outstanding at the end, each with \
its stack; and the longest and most copying growth chains drawn as steps.\n\n\
With --compare ID the page starts with what changed from capture ID (before) to the \
capture (after): call sites that regressed first, both nights' outstanding bytes side by \
side.\n\n\
Every number is a row of a canned report (the page lists the `heapdb query` commands \
that print them); charts are aggregated in SQL to at most a few thousand points, so the \
page stays small (well under 2 MB) whatever the capture's size.\n\n\
Exit codes: 0 written, 2 usage error (unknown capture or process), 3 database or I/O \
failure, 4 interrupted.\n\n\
Examples:\n  heapdb report --db heap.db --out report.html\n  \
heapdb report --db heap.db --capture 17 --compare 16 --out nightly.html\n  \
heapdb report --db heap.db --pid 4242 --out - > chrome.html"
)]
pub struct ReportArgs {
    /// Database file.
    #[arg(long, default_value = "heap.db", value_name = "FILE")]
    pub db: PathBuf,
    /// The capture to show (default: the latest).
    #[arg(long, value_name = "ID")]
    pub capture: Option<i64>,
    /// Compare with this capture (the baseline, "before").
    #[arg(long, value_name = "ID")]
    pub compare: Option<i64>,
    /// Only this process: its heaps and call sites are drawn at once.
    #[arg(long, value_name = "PID")]
    pub pid: Option<i64>,
    /// The HTML file to write (`-`: standard output). Written whole or not at all.
    #[arg(long, short, value_name = "FILE")]
    pub out: PathBuf,
    /// Print how long each report took (stderr), slowest first.
    #[arg(long)]
    pub timings: bool,
}

pub fn run(a: ReportArgs, quiet: bool) -> anyhow::Result<Outcome> {
    let t0 = Instant::now();
    if a.out.as_os_str().is_empty() {
        return Err(UsageError("--out needs a file name (or - for standard output)".into()).into());
    }
    let stdout = a.out == Path::new("-");
    if !stdout && a.out.is_dir() {
        return Err(UsageError(format!(
            "--out {}: is a directory; give a file name such as {}/report.html",
            a.out.display(),
            a.out.display()
        ))
        .into());
    }
    // Opened once up front so a missing or foreign database is reported as `query` does.
    let first = heapdb::db::open_ro(&a.db)?;
    if !quiet {
        for note in &first.notes {
            say(format!("{}: {note}", a.db.display()));
        }
    }
    drop(first);
    let opts = Options {
        capture: a.capture,
        compare: a.compare,
        pid: a.pid,
        db_name: a.db.display().to_string(),
        ..Options::default()
    };
    let open = || {
        let ro = heapdb::db::open_ro(&a.db).map_err(|e| QueryError::Sql {
            message: format!("{e:#}"),
            location: None,
        })?;
        // Several reports scan the same blocks: reading them through a memory map spares
        // a copy per page (measured: 3.6 -> 3.3 s on a 2 M-event capture). The reports
        // already run one per core, so SQLite's sorter helper threads (open_ro turns them
        // on for a lone query) only compete with them: off, the page took 1.76 s instead
        // of 2.17 (medians of 6, 2 cores). Set before the sandbox, which refuses PRAGMAs.
        ro.conn
            .execute_batch("PRAGMA mmap_size = 1073741824; PRAGMA threads = 0")
            .map_err(|e| QueryError::Sql {
                message: format!("{}: {e}", a.db.display()),
                location: None,
            })?;
        sandbox::restrict(&ro.conn);
        Ok(ro.conn)
    };
    let data = match report::gather(&opts, open, super::cancel()) {
        Err(QueryError::Interrupted) => {
            say("interrupted; no page written");
            return Ok(Outcome::Interrupted);
        }
        r => r?,
    };
    let gathered = t0.elapsed();
    if a.timings {
        let mut t = data.timings.clone();
        t.sort_by_key(|x| std::cmp::Reverse(x.1));
        for (what, took) in t {
            say(format!("{:>8.3} s  {what}", took.as_secs_f64()));
        }
    }
    let html = report::render(&data);
    if stdout {
        let out = std::io::stdout();
        let mut out = out.lock();
        out.write_all(html.as_bytes())?;
        out.flush()?;
    } else {
        write_whole(&a.out, html.as_bytes())?;
    }
    if !quiet {
        say(format!(
            "{}: capture {}{}{}: {} written in {:.2} s (reports {:.2} s)",
            if stdout {
                "standard output".to_string()
            } else {
                a.out.display().to_string()
            },
            data.main.id,
            data.compare
                .as_ref()
                .map(|c| format!(" compared with {}", c.id))
                .unwrap_or_default(),
            a.pid.map(|p| format!(", pid {p}")).unwrap_or_default(),
            report::human_bytes(html.len() as f64),
            t0.elapsed().as_secs_f64(),
            gathered.as_secs_f64()
        ));
    }
    Ok(Outcome::Ok)
}

/// Writes `bytes` to a temporary file beside `path`, then renames it over `path`: a
/// reader (or a crash) never sees half a page.
fn write_whole(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "report.html".into());
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let result = (|| -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        anyhow::bail!("{}: {e}", path.display());
    }
    Ok(())
}
