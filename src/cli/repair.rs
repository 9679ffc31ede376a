//! `heapdb repair`: restore what an interrupted ingest can leave behind.

use super::{say, Outcome};
use clap::Args;
use std::path::PathBuf;

#[derive(Args)]
#[command(
    after_help = "An ingest drops the secondary indexes while it loads a batch larger \
than the database, and rebuilds them at the end. An ingest killed (kill -9, power loss), \
stopped twice with Ctrl-C or out of disk space during that rebuild leaves the database \
without some indexes: every capture is still whole, but reports are slow, and `heapdb \
query` says so. This command builds the missing indexes and checks the database \
(PRAGMA quick_check). It also computes the history tables (heaps, sites, site_stats: \
what trend and capture-diff compare) of captures stored by a heapdb older than schema 2. \
It finishes the recordings a killed `heapdb record` left (status 'recording' while \
their recorder is gone): they keep what their checkpoints committed, get their block \
lifetimes and history, and become status 'incomplete'; a recording still running is left \
alone. It is safe to run at any time, also while others read.\n\n\
Exit codes: 0 the database is whole, 3 it is damaged or could not be repaired, \
4 interrupted.\n\nExample:\n  heapdb repair --db heap.db"
)]
pub struct RepairArgs {
    /// Database file.
    #[arg(long, default_value = "heap.db", value_name = "FILE")]
    pub db: PathBuf,
}

pub fn run(a: RepairArgs, quiet: bool) -> anyhow::Result<Outcome> {
    let cancel = super::cancel();
    let term = super::progress::Terminal::new(quiet, 0);
    let report = heapdb::db::repair(&a.db, &term, cancel);
    term.finish();
    let report = report?;
    if !report.missing_after.is_empty() {
        say(format!(
            "{}: interrupted; still missing: {}",
            a.db.display(),
            report.missing_after.join(", ")
        ));
        return Ok(Outcome::Interrupted);
    }
    if report.check != "ok" {
        anyhow::bail!(
            "{}: the database is damaged (PRAGMA quick_check: {})",
            a.db.display(),
            report.check
        );
    }
    for id in &report.recordings_running {
        say(format!(
            "{}: capture {id} is being recorded (its heapdb record still runs): left alone",
            a.db.display()
        ));
    }
    if !report.recordings_finished.is_empty() {
        let ids: Vec<String> = report
            .recordings_finished
            .iter()
            .map(i64::to_string)
            .collect();
        say(format!(
            "{}: finished {} recording(s) whose heapdb record was gone (capture {}): they hold what was committed, status 'incomplete'",
            a.db.display(),
            ids.len(),
            ids.join(", ")
        ));
    }
    if report.histories > 0 {
        say(format!(
            "{}: computed the history (heaps, sites, site_stats) of {} capture(s) (stored before schema 2, or recordings finished now)",
            a.db.display(),
            report.histories
        ));
    }
    if report.lifetimes > 0 {
        say(format!(
            "{}: computed the block lifetimes (blocks, block_counts, process_usage, heap_event_counts) of {} capture(s) (stored before schema 3, or recordings finished now)",
            a.db.display(),
            report.lifetimes
        ));
    }
    if super::cancel().requested() {
        return Ok(Outcome::Interrupted);
    }
    say(format!(
        "{}: {}; quick_check ok",
        a.db.display(),
        if report.rebuilt.is_empty() {
            "every index is there".to_string()
        } else {
            format!(
                "rebuilt {} index(es): {}",
                report.rebuilt.len(),
                report.rebuilt.join(", ")
            )
        }
    ));
    Ok(Outcome::Ok)
}
