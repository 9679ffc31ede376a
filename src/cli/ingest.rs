//! `heapdb ingest`: load captures into the database.

use super::{exit, report};
use crate::ingest::{self, IndexMode, Options};
use clap::{Args, ValueEnum};
use std::path::PathBuf;

#[derive(Clone, Copy, ValueEnum)]
pub enum IndexArg {
    /// Rebuild the indexes after the load when the batch is larger than the database.
    Auto,
    /// Always drop the indexes during the load and rebuild them after.
    Rebuild,
    /// Keep the indexes and maintain them row by row.
    Keep,
}

#[derive(Args)]
#[command(
    after_help = "PATH can be a file, a directory (searched recursively for *.etl) or a \
glob pattern (quote it: '/captures/2026-11-*/*.etl'). Files are taken in sorted order.\n\n\
Each capture is committed in its own transaction: a killed or crashed ingest leaves the \
database as it was before the capture it was writing, and running the same command again \
finishes the job. A capture already in the database (same content, even under another \
path) is skipped. Bad files are reported on stderr and in the ingest_errors table, and the \
batch goes on (--strict stops at the first bad file). Readers are never blocked (WAL).\n\n\
Exit codes: 0 all captures ingested (or already there), 1 done but some input was bad, \
2 usage error, 3 database or I/O failure.\n\n\
Examples:\n  heapdb ingest --db heap.db /captures/\n  heapdb ingest --db heap.db night1.etl night2.etl --jobs 4"
)]
pub struct IngestArgs {
    /// Database file (created if missing).
    #[arg(long, default_value = "heap.db", value_name = "FILE")]
    pub db: PathBuf,
    /// Captures: files, directories, glob patterns.
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<String>,
    /// Decoding threads (default: one per core). The database writer is one more thread.
    #[arg(long, short, value_name = "N")]
    pub jobs: Option<usize>,
    /// Stop at the first bad file (its capture is not committed).
    #[arg(long)]
    pub strict: bool,
    /// Index strategy for this load.
    #[arg(long, value_enum, default_value = "auto")]
    pub indexes: IndexArg,
}

pub fn run(a: IngestArgs, quiet: bool) -> u8 {
    let opts = Options {
        db: a.db.clone(),
        inputs: a.paths,
        jobs: a.jobs,
        quiet,
        strict: a.strict,
        index_mode: match a.indexes {
            IndexArg::Auto => IndexMode::Auto,
            IndexArg::Rebuild => IndexMode::Rebuild,
            IndexArg::Keep => IndexMode::Keep,
        },
        progress: true,
    };
    match ingest::run(&opts) {
        Ok(r) => {
            let rows = r.reallocs + r.heap_events;
            eprintln!(
                "heapdb: {} file(s): {} ingested{}, {} already in the database, {} failed; {} reallocs + {} other heap events; {:.1} MB in {:.2} s ({:.2} M rows/s, {:.0} MB/s{}){}",
                r.files,
                r.ingested,
                if r.ingested_with_errors > 0 { format!(" ({} with bad records)", r.ingested_with_errors) } else { String::new() },
                r.duplicates,
                r.failed + r.bad_inputs,
                r.reallocs,
                r.heap_events,
                r.bytes as f64 / 1e6,
                r.seconds,
                rows as f64 / r.seconds.max(1e-9) / 1e6,
                r.bytes as f64 / 1e6 / r.seconds.max(1e-9),
                if r.rebuilt_indexes { format!(", indexes {:.2} s", r.index_seconds) } else { String::new() },
                if r.stopped_early { "; stopped early (--strict)" } else { "" }
            );
            if r.had_errors() {
                eprintln!(
                    "heapdb: see the errors above, or: heapdb query --db {} data-quality",
                    a.db.display()
                );
                exit::INPUT_ERRORS
            } else {
                exit::OK
            }
        }
        Err(e) => {
            report(format!("{e:#}"));
            exit::FAILURE
        }
    }
}
