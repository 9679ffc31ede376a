//! `heapdb ingest`: load captures into the database.

use super::{say, Outcome};
use clap::{Args, ValueEnum};
use heapdb::db::sink::{IndexMode, SqliteSink};
use heapdb::ingest::{self, Options};
use heapdb::lake::sink::ParquetSink;
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
    after_help = "PATH can be a file, a directory (searched recursively for *.etl and \
*.zip/*.diagsession archives; directory links are followed once) or a glob pattern (quote \
it: '/captures/2026-11-*/*.etl'). Files are taken in sorted order. Each .etl inside a .zip \
or a Visual Studio .diagsession becomes its own capture, named archive!inner.etl, read \
from the archive without unpacking it. Only regular files are read: a FIFO or a device \
named on the command line is refused.\n\n\
Each capture is committed in its own transaction: a killed or crashed ingest leaves the \
database as it was before the capture it was writing, and running the same command again \
finishes the job. A capture already in the database (same content, even under another \
path) is skipped. A capture that changes while it is read (a copy still in progress) is \
not stored and is reported. Bad files are reported on stderr and in the ingest_errors \
table, and the batch goes on (--strict stops at the first bad file). Readers are never \
blocked (WAL); a second ingest on the same database waits for the first and goes on.\n\n\
Ctrl-C or SIGTERM stops cleanly: the capture being written is rolled back, committed \
captures stay, indexes are restored (press Ctrl-C again to skip that; `heapdb repair` \
restores them later).\n\n\
Exit codes: 0 all captures ingested (or already there), 1 done but some input was bad, \
2 usage error, 3 database or I/O failure, 4 interrupted.\n\n\
Examples:\n  heapdb ingest --db heap.db /captures/\n  heapdb ingest --db heap.db night1.etl night2.etl --jobs 4\n  \
heapdb ingest --db heap.db session.diagsession\n  \
heapdb ingest --db heap.db --label build=26100.1234 --label host=lab-7 nightly/heap.etl\n  \
heapdb ingest --db heap.db --label-from-path 'drops/(?P<branch>[^/]+)/(?P<build>[0-9.]+)/' /drops/\n  \
heapdb ingest --parquet /lake/heap /captures/    (a Parquet lake instead of SQLite)\n\n\
With --parquet DIR the same rows go to Apache Parquet files that DuckDB, Spark or \
Trino read in place: DIR/<table>/capture_date=YYYY-MM-DD/capture_id=N/part-0.parquet \
(tables shared by all captures: DIR/<table>/part-0.parquet), with a catalog in \
DIR/_heapdb/. A capture's files appear all at once when it is committed; the same \
rules apply (duplicates skipped, killed runs resumed, same messages and exit codes). \
`heapdb lake-views DIR` prints the DuckDB views that run the canned reports on it."
)]
pub struct IngestArgs {
    /// Database file (created if missing).
    #[arg(long, default_value = "heap.db", value_name = "FILE")]
    pub db: PathBuf,
    /// Write a Parquet lake in DIR instead of the database (created if missing; see
    /// below). --db is then not used.
    #[arg(long, value_name = "DIR", conflicts_with_all = ["indexes", "symbols", "offline"])]
    pub parquet: Option<PathBuf>,
    /// Captures: files, directories, glob patterns, .zip/.diagsession archives.
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
    /// Label the captures stored by this run (repeatable): build=26100.1234,
    /// host=lab-7, branch=main. Reports select captures by label
    /// (--param label.build=26100.1234) and `trend` groups by one.
    #[arg(long = "label", value_name = "KEY=VALUE", value_parser = ingest::labels::parse_label)]
    pub labels: Vec<(String, String)>,
    /// Take labels from each capture's path with the named groups of a regular
    /// expression (repeatable), e.g. 'drops/(?P<branch>[^/]+)/(?P<build>[0-9.]+)/'.
    /// --label wins over a label taken from the path. On Windows the path is matched
    /// with / for \, so the same expression works everywhere.
    #[arg(long = "label-from-path", value_name = "REGEX")]
    pub label_from_path: Vec<String>,
    /// After loading, name the frames from PDB files as `heapdb symbolize` does (this
    /// flag, or $_NT_SYMBOL_PATH when set).
    #[command(flatten)]
    pub symbols: super::symbolize::SymbolArgs,
    /// Do not symbolize, even when $_NT_SYMBOL_PATH is set.
    #[arg(long, conflicts_with = "symbols")]
    pub no_symbols: bool,
    /// Which decoder reads the captures: heapdb's own reader (every platform), or
    /// Windows' own ETW consumer (Windows only; the same rows, see `heapdb verify`).
    #[arg(long, value_enum, default_value = "heapdb")]
    pub decoder: super::decoder::DecoderArg,
}

pub fn run(a: IngestArgs, quiet: bool) -> anyhow::Result<Outcome> {
    let decoder = a.decoder.decoder()?;
    // The symbol path is checked before anything is loaded: a typo is a usage error.
    let symbols = if a.no_symbols || a.parquet.is_some() {
        None
    } else {
        match a.symbols.path()? {
            Some(p) => Some(a.symbols.options(p, a.jobs)?),
            None => None,
        }
    };
    let fixed: Vec<String> = a.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let labels =
        ingest::labels::Labels::new(&fixed, &a.label_from_path).map_err(super::exit::UsageError)?;
    let opts = Options {
        inputs: a.paths,
        jobs: a.jobs,
        strict: a.strict,
        labels,
        decoder,
    };
    let mode = match a.indexes {
        IndexArg::Auto => IndexMode::Auto,
        IndexArg::Rebuild => IndexMode::Rebuild,
        IndexArg::Keep => IndexMode::Keep,
    };
    let cancel = super::cancel();
    let term = super::progress::Terminal::new(quiet, 0);
    let (result, store) = match &a.parquet {
        Some(dir) => {
            let sink = ParquetSink::open(dir)?;
            (ingest::run(&opts, sink, &term, cancel), "lake")
        }
        None => {
            let sink = SqliteSink::open(&a.db, mode)?;
            (ingest::run(&opts, sink, &term, cancel), "database")
        }
    };
    term.finish();
    let r = result?;
    // A lake's errors are in its catalog, a heapdb database of its own.
    let db = match &a.parquet {
        Some(dir) => heapdb::lake::Lake::open(dir)?.catalog_path(),
        None => a.db.clone(),
    };
    let rows = r.reallocs + r.heap_events;
    let mut skipped = String::new();
    if r.skipped_non_regular > 0 {
        skipped.push_str(&format!(
            ", {} skipped (not a regular file)",
            r.skipped_non_regular
        ));
    }
    if r.skipped_archives > 0 {
        skipped.push_str(&format!(
            ", {} skipped (archive without .etl)",
            r.skipped_archives
        ));
    }
    say(format!(
        "{} file(s): {} ingested{}, {} already in the {store}, {} failed{skipped}; {} reallocs + {} other heap events; {:.1} MB in {:.2} s ({:.2} M rows/s, {:.0} MB/s{}){}",
        r.files,
        r.ingested,
        if r.ingested_with_errors > 0 {
            format!(" ({} with bad records)", r.ingested_with_errors)
        } else {
            String::new()
        },
        r.duplicates,
        r.failed + r.bad_inputs,
        r.reallocs,
        r.heap_events,
        r.bytes as f64 / 1e6,
        r.seconds,
        rows as f64 / r.seconds.max(1e-9) / 1e6,
        r.bytes as f64 / 1e6 / r.seconds.max(1e-9),
        if r.finished.phases.is_empty() {
            String::new()
        } else {
            let phases: Vec<String> = r
                .finished
                .phases
                .iter()
                .map(|(name, s)| format!("{name} {s:.2} s"))
                .collect();
            format!("; {}", phases.join(", "))
        },
        if r.stopped_early {
            "; stopped early (--strict)"
        } else {
            ""
        }
    ));
    if r.interrupted {
        let indexes = if r.finished.missing_indexes.is_empty() {
            "indexes are complete".to_string()
        } else {
            format!(
                "{} indexes were not rebuilt (reports will be slow); restore them with: heapdb repair --db {}",
                r.finished.missing_indexes.len(),
                db.display()
            )
        };
        say(format!(
            "interrupted: {} capture(s) committed{}; {indexes}",
            r.ingested,
            r.rolled_back
                .as_deref()
                .map(|p| format!(", {p} rolled back"))
                .unwrap_or_default()
        ));
        return Ok(Outcome::Interrupted);
    }
    let symbolized = match &symbols {
        Some(opts) => super::symbolize::run_on(&a.db, opts, quiet)?,
        None => Outcome::Ok,
    };
    if matches!(symbolized, Outcome::Interrupted) {
        return Ok(Outcome::Interrupted);
    }
    if r.had_errors() || matches!(symbolized, Outcome::InputErrors) {
        say(format!(
            "see the errors above, or: heapdb query --db {} data-quality",
            db.display()
        ));
        Ok(Outcome::InputErrors)
    } else {
        Ok(Outcome::Ok)
    }
}
