//! The `heapdb` command line. `main.rs` only calls [`main`]; each subcommand lives in
//! its own module and reads like its `--help`.

mod dump;
mod ingest;
mod query;
mod synth;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// Exit codes scripts can rely on (documented in the README).
pub mod exit {
    /// Everything worked.
    pub const OK: u8 = 0;
    /// The job finished, but some input was bad (reported on stderr and, for ingest,
    /// in `ingest_errors`).
    pub const INPUT_ERRORS: u8 = 1;
    /// Bad command line (clap's own code for usage errors).
    pub const USAGE: u8 = 2;
    /// The job could not be done: database, SQL or I/O failure.
    pub const FAILURE: u8 = 3;
    /// Interrupted (Ctrl-C) or `--timeout` expired.
    pub const INTERRUPTED: u8 = 4;
}

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
3 failure (database, SQL or I/O), 4 interrupted or timed out.",
    propagate_version = true
)]
pub struct Cli {
    /// Do not show progress bars (they are also hidden when stderr is not a terminal).
    #[arg(long, short, global = true)]
    pub quiet: bool,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Print the events of .etl files, like tracerpt: one JSON object per event, or per
    /// file with --summary.
    Dump(dump::DumpArgs),
    /// Write synthetic heap captures (.etl) that look like a merged xperf/WPR heap
    /// trace, with a manifest of what they hold.
    Synth(synth::SynthArgs),
    /// Load captures (.etl files, directories, globs) into the SQLite database:
    /// parallel, idempotent, resumable.
    Ingest(ingest::IngestArgs),
    /// Run a canned report or ad hoc SQL against the database (read-only).
    Query(query::QueryArgs),
    /// List the canned reports with what they answer and their parameters.
    Reports(query::ReportsArgs),
    /// Print the tables, views and columns of the database with their documentation.
    Schema(query::SchemaArgs),
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let code = match cli.command {
        Command::Dump(args) => dump::run(args, cli.quiet),
        Command::Synth(args) => synth::run(args, cli.quiet),
        Command::Ingest(args) => ingest::run(args, cli.quiet),
        Command::Query(args) => query::run(args),
        Command::Reports(args) => query::run_reports(args),
        Command::Schema(args) => query::run_schema(args),
    };
    ExitCode::from(code)
}

/// Prints an error to stderr the way every subcommand does.
pub(crate) fn report(msg: impl std::fmt::Display) {
    eprintln!("heapdb: {msg}");
}

/// True when writing failed because the reader went away (`heapdb dump | head`): not an
/// error worth a message.
pub(crate) fn is_broken_pipe(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::BrokenPipe
}
