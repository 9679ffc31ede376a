//! `heapdb export` (a database into a Parquet lake) and `heapdb lake-views` (the DuckDB
//! script over a lake).

use super::{say, Outcome};
use clap::Args;
use std::path::PathBuf;

#[derive(Args)]
#[command(
    after_help = "Copies every capture of the database that the lake does not hold \
yet into DIR (created if missing), with the database's ids, in the layout of \
`heapdb ingest --parquet`: DIR/<table>/capture_date=YYYY-MM-DD/capture_id=N/part-0.parquet \
for the per-capture tables, DIR/<table>/part-0.parquet for the shared ones (stacks, \
sites, symbols, ...). Rerun it after each night's ingest: captures already exported are \
skipped. A lake mirrors one database: exporting another database into it is refused. \
Each capture's files appear at once when it is committed; a killed export resumes.\n\n\
Exit codes: 0 done, 2 usage error, 3 database or I/O failure (also: DIR is not a heapdb \
lake, or was written by a newer heapdb), 4 interrupted.\n\n\
Example:\n  heapdb export --db heap.db --parquet /lake/heap\n  \
heapdb lake-views /lake/heap > views.sql && duckdb -init views.sql"
)]
pub struct ExportArgs {
    /// The database to copy.
    #[arg(long, default_value = "heap.db", value_name = "FILE")]
    pub db: PathBuf,
    /// The lake directory to write.
    #[arg(long, value_name = "DIR")]
    pub parquet: PathBuf,
}

pub fn run_export(a: ExportArgs, quiet: bool) -> anyhow::Result<Outcome> {
    let cancel = super::cancel();
    let mut on = |id: i64, rows: Option<u64>| {
        if !quiet {
            match rows {
                Some(n) => say(format!("capture {id}: {n} heap events exported")),
                None => say(format!("capture {id}: already in the lake")),
            }
        }
    };
    let r = heapdb::lake::export::export(&a.db, &a.parquet, cancel, &mut on)?;
    say(format!(
        "{} capture(s) exported, {} already in the lake; {} heap events in {:.2} s ({:.2} M rows/s) to {}",
        r.captures,
        r.skipped,
        r.rows,
        r.seconds,
        r.rows as f64 / r.seconds.max(1e-9) / 1e6,
        a.parquet.display()
    ));
    for id in &r.recording {
        say(format!(
            "capture {id} is being recorded (or its heapdb record was killed: `heapdb repair` finishes it): not exported yet; run the same command again once it is complete"
        ));
    }
    if r.interrupted {
        say("interrupted: the captures exported so far are complete; run the same command again to go on");
        return Ok(Outcome::Interrupted);
    }
    Ok(Outcome::Ok)
}

#[derive(Args)]
#[command(
    after_help = "Prints a DuckDB script: settings that give DuckDB SQLite's semantics \
where the reports rely on them, one CREATE VIEW per table over its Parquet files \
(read_parquet with hive_partitioning, so capture_date and capture_id come from the \
paths), then heapdb's own views (reallocs_v, captures_v, ...). With it the canned reports \
in queries/ run on the lake unchanged (parameters as $name).\n\n\
Example:\n  heapdb lake-views /lake/heap > views.sql\n  duckdb -init views.sql\n  \
D .read queries/top-realloc-sites.sql"
)]
pub struct LakeViewsArgs {
    /// The lake directory.
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
}

pub fn run_views(a: LakeViewsArgs) -> anyhow::Result<Outcome> {
    let s = heapdb::lake::views::script(&a.dir)?;
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(s.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => Ok(Outcome::Ok),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(Outcome::Ok),
        Err(e) => Err(e.into()),
    }
}

#[derive(Args)]
#[command(
    after_help = "Prints the report's SQL with each :name parameter replaced by its \
value (a given --param, else the report's default), for DuckDB or Spark over a lake \
(the one rewrite the canned reports need there; run the script of `heapdb lake-views` \
first). --param label.KEY=VALUE adds statements that show only the labelled captures, as \
`heapdb query` does.\n\n\
Examples:\n  heapdb lake-views /lake/heap > views.sql\n  \
heapdb lake-sql top-realloc-sites --param capture=17 | duckdb -init views.sql\n  \
heapdb lake-sql trend --param label.branch=main --param by=build > trend.sql"
)]
pub struct LakeSqlArgs {
    /// A canned report (`heapdb reports` lists them).
    #[arg(value_name = "REPORT")]
    pub report: String,
    /// NAME=VALUE for a parameter of the report (repeatable), as for `heapdb query`.
    #[arg(long = "param", short = 'p', value_name = "NAME=VALUE")]
    pub params: Vec<String>,
}

pub fn run_sql(a: LakeSqlArgs) -> anyhow::Result<Outcome> {
    let (labels, given) = super::query::split_params(&a.params)?;
    let report = heapdb::query::reports::get(&a.report)?;
    let bound = report.bind(&given)?;
    let (setup, undo) = heapdb::lake::sql::label_filter(&labels);
    let body = heapdb::lake::sql::inline_params(report.sql, &bound);
    let body = body.trim_end();
    let sep = if body.ends_with(';') { "" } else { ";" };
    let s = format!("{setup}{body}{sep}\n{undo}");
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(s.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => Ok(Outcome::Ok),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(Outcome::Ok),
        Err(e) => Err(e.into()),
    }
}
