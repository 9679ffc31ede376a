//! The `heapdb` command line: argument parsing (clap), progress (indicatif), signals
//! (ctrlc), messages on stderr and exit codes. Each subcommand lives in its own module
//! and reads like its `--help`; the work itself is the library's.

mod decoder;
mod dump;
mod exit;
mod format;
mod ingest;
mod label;
mod lake;
mod progress;
mod prune;
mod query;
mod record;
mod repair;
mod report;
mod symbolize;
mod synth;
mod verify;

use clap::{Parser, Subcommand};
use heapdb::cancel::Cancel;
use std::process::ExitCode;
use std::sync::OnceLock;

pub use exit::{Outcome, UsageError};

#[derive(Parser)]
#[command(
    name = "heapdb",
    version,
    about = "Windows ETW heap traces (.etl) into a SQL database",
    long_about = "heapdb reads Windows ETW heap traces (.etl files) with its own pure-Rust \
parser, so it runs on Linux build farms as well as on Windows.\n\n\
Typical night:   heapdb ingest --db heap.db /captures/\n\
Typical morning: heapdb query --db heap.db top-realloc-sites\n\n\
Exit codes: 0 ok, 1 finished but some input was bad, 2 usage error, \
3 failure (database, SQL or I/O), 4 interrupted (Ctrl-C, SIGTERM) or timed out.",
    propagate_version = true
)]
pub struct Cli {
    /// Do not show progress bars or notes (they are also hidden when stderr is not a
    /// terminal); errors are still printed.
    #[arg(long, short, global = true)]
    pub quiet: bool,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Print the events of .etl files, like tracerpt: one row per event, or per file
    /// with --summary.
    Dump(dump::DumpArgs),
    /// Write synthetic heap captures (.etl) that look like a merged xperf/WPR heap
    /// trace, with a manifest of what they hold.
    Synth(synth::SynthArgs),
    /// Load captures (.etl files, directories, globs, .zip/.diagsession archives) into
    /// the SQLite database: parallel, idempotent, resumable.
    Ingest(ingest::IngestArgs),
    /// Run a canned report or ad hoc SQL against the database (read-only).
    Query(query::QueryArgs),
    /// List the canned reports with what they answer and their parameters.
    Reports(query::ReportsArgs),
    /// Print the tables, views and columns of the database with their documentation.
    Schema(query::SchemaArgs),
    /// Remove whole captures (retention): --before DATE, --keep-last N or --capture ID.
    Prune(prune::PruneArgs),
    /// Set or remove labels (build=..., host=...) of captures already stored.
    Label(label::LabelArgs),
    /// Check a database and restore what an interrupted ingest can leave behind
    /// (missing indexes).
    Repair(repair::RepairArgs),
    /// Name the frames of the stored stacks from PDB files (function, file:line,
    /// inline frames) along a symbol path; rerun-safe.
    Symbolize(symbolize::SymbolizeArgs),
    /// Write a self-contained HTML page of a capture (or of two): outstanding bytes
    /// over time, realloc rate, sizes by heap path, top call sites, growth chains.
    Report(report::ReportArgs),
    /// Copy a database's captures into a Parquet lake (for DuckDB, Spark, Trino);
    /// rerun-safe.
    Export(lake::ExportArgs),
    /// Print the DuckDB script (views over the Parquet files) that runs the canned
    /// reports on a lake.
    LakeViews(lake::LakeViewsArgs),
    /// Print a canned report as SQL for DuckDB or Spark over a lake (parameters
    /// written in).
    LakeSql(lake::LakeSqlArgs),
    /// Windows only: decode captures with heapdb's reader and with Windows' own ETW
    /// decoder and compare them event by event.
    Verify(verify::VerifyArgs),
    /// Windows only: record a live heap tracing session of processes into the
    /// database.
    Record(record::RecordArgs),
}

/// The process-wide cancellation token: Ctrl-C and SIGTERM request, jobs poll.
pub fn cancel() -> &'static Cancel {
    static CANCEL: OnceLock<Cancel> = OnceLock::new();
    CANCEL.get_or_init(|| {
        let c = Cancel::new();
        let handler = c.clone();
        // SIGINT and SIGTERM ("termination" feature); each press is one more request.
        let _ = ctrlc::set_handler(move || handler.request());
        c
    })
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    heapdb::db::same_floats_on_every_thread();
    let cli = Cli::parse();
    let quiet = cli.quiet;
    let result = match cli.command {
        Command::Dump(args) => dump::run(args, quiet),
        Command::Synth(args) => synth::run(args, quiet),
        Command::Ingest(args) => ingest::run(args, quiet),
        Command::Query(args) => query::run(args, quiet),
        Command::Reports(args) => query::run_reports(args),
        Command::Schema(args) => query::run_schema(args),
        Command::Prune(args) => prune::run(args, quiet),
        Command::Label(args) => label::run(args),
        Command::Repair(args) => repair::run(args, quiet),
        Command::Symbolize(args) => symbolize::run(args, quiet),
        Command::Report(args) => report::run(args, quiet),
        Command::Export(args) => lake::run_export(args, quiet),
        Command::LakeViews(args) => lake::run_views(args),
        Command::LakeSql(args) => lake::run_sql(args),
        Command::Verify(args) => verify::run(args),
        Command::Record(args) => record::run(args, quiet),
    };
    ExitCode::from(exit::code(result))
}

/// Prints a line to stderr the way every subcommand does.
pub(crate) fn say(msg: impl std::fmt::Display) {
    eprintln!("heapdb: {msg}");
}
