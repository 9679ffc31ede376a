//! `heapdb query`, `heapdb reports`, `heapdb schema`.

use super::format::{self, choose};
use super::{say, Outcome, UsageError};
use clap::Args;
use heapdb::output::{self, Format, RowWriter, Value};
use heapdb::query::{self, parse_param, reports, sandbox, schema_doc};
use std::io::{self, BufWriter, Write};
use std::path::PathBuf;
use std::time::Duration;

/// `--timeout`: a positive, finite number of seconds.
fn parse_timeout(s: &str) -> Result<Duration, String> {
    let secs: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a number of seconds"))?;
    if !secs.is_finite() || secs <= 0.0 {
        return Err(format!(
            "{s:?}: the timeout must be a positive, finite number of seconds"
        ));
    }
    Duration::try_from_secs_f64(secs).map_err(|e| format!("{s:?}: {e}"))
}

#[derive(Args)]
#[command(
    after_help = "Run a canned report by name (see `heapdb reports`), or ad hoc SQL with \
--sql, --file or `-` (stdin). The database is opened read-only and sandboxed: reads and \
TEMP tables are allowed; writes, ATTACH, VACUUM and setting PRAGMAs are refused. A \
database in a read-only directory is opened immutable. Parameters bind to :name in the \
SQL; values can be decimal, hex (0x...), text, or all / latest / previous (NULL: no \
filter, or the report's default capture). SQL files and stdin are limited to 16 MiB of \
text.\n\n\
Labels select captures: --param label.build=26100.1234 (repeatable; * and ? make a glob \
pattern) makes the report, or your SQL, see in `captures` and in every view only the \
captures with those labels: `latest` is then the latest of them, and trend and \
capture-diff compare only them.\n\n\
Output: a table on a terminal, csv otherwise; --format table|csv|tsv|json|jsonl|markdown. \
Integer columns holding addresses (heap, address, *address, base, leaf) print in hex \
(--no-hex to keep numbers). Ctrl-C interrupts a long query; --timeout sets a limit.\n\n\
Exit codes: 0 ok, 2 usage error (unknown report or parameter, bad SQL file), 3 SQL or \
database error, 4 interrupted or timed out.\n\n\
Examples:\n  heapdb query --db heap.db top-realloc-sites\n  \
heapdb query move-ratio --param capture=3 --param pid=4242 --format csv\n  \
heapdb query address-history --param address=0x1d2f0a40\n  \
heapdb query trend --param label.branch=main --param by=build\n  \
heapdb query capture-diff --param group=module\n  \
heapdb query --sql \"SELECT source, count(*) FROM reallocs_v GROUP BY 1\"\n  \
echo 'SELECT count(*) FROM captures' | heapdb query -"
)]
pub struct QueryArgs {
    /// Database file.
    #[arg(long, default_value = "heap.db", value_name = "FILE")]
    pub db: PathBuf,
    /// A canned report name, or `-` to read SQL from stdin.
    #[arg(value_name = "REPORT")]
    pub report: Option<String>,
    /// A report or SQL parameter, NAME=VALUE (repeatable).
    #[arg(long = "param", short = 'p', value_name = "NAME=VALUE")]
    pub params: Vec<String>,
    /// Ad hoc SQL to run.
    #[arg(long, value_name = "SQL", conflicts_with_all = ["file", "report"])]
    pub sql: Option<String>,
    /// A file of SQL to run.
    #[arg(long, value_name = "FILE", conflicts_with = "report")]
    pub file: Option<PathBuf>,
    /// Output format (default: table on a terminal, csv otherwise).
    #[arg(long, short, value_parser = format::parser())]
    pub format: Option<Format>,
    /// Give up after this many seconds (a positive number, e.g. 2.5).
    #[arg(long, value_name = "SECS", value_parser = parse_timeout, allow_negative_numbers = true)]
    pub timeout: Option<Duration>,
    /// Print address columns as plain integers.
    #[arg(long)]
    pub no_hex: bool,
}

#[derive(Args)]
pub struct ReportsArgs {
    /// Output format (default: table).
    #[arg(long, short, value_parser = format::parser())]
    pub format: Option<Format>,
}

#[derive(Args)]
pub struct SchemaArgs {
    /// Output format (default: table).
    #[arg(long, short, value_parser = format::parser())]
    pub format: Option<Format>,
}

/// `--param`s: the `label.KEY=VALUE` filters, and the others as SQL values.
pub(crate) type SplitParams = (Vec<(String, String)>, Vec<(String, rusqlite::types::Value)>);

/// Splits `--param`s into label filters and parameter values.
pub(crate) fn split_params(params: &[String]) -> anyhow::Result<SplitParams> {
    // label.KEY=VALUE select captures; their values stay text (a build number such as
    // 26100.1234 is not a real).
    let (label_params, plain): (Vec<&String>, Vec<&String>) = params
        .iter()
        .partition(|p| p.trim_start().trim_start_matches(':').starts_with("label."));
    let labels: Vec<(String, String)> = label_params
        .iter()
        .map(|p| {
            let p = p.trim_start().trim_start_matches(':');
            let (k, v) = p
                .split_once('=')
                .ok_or_else(|| UsageError(format!("--param {p:?}: expected label.KEY=VALUE")))?;
            Ok((k["label.".len()..].trim().to_string(), v.to_string()))
        })
        .collect::<Result<_, UsageError>>()?;
    let given = plain
        .iter()
        .map(|p| parse_param(p))
        .collect::<Result<Vec<_>, _>>()?;
    Ok((labels, given))
}

pub fn run(a: QueryArgs, quiet: bool) -> anyhow::Result<Outcome> {
    let format = choose(a.format, Format::Csv);
    let (labels, given) = split_params(&a.params)?;
    let (sql, params) = match (&a.sql, &a.file, a.report.as_deref()) {
        (Some(s), _, _) => (s.clone(), given),
        (None, Some(f), _) => (query::read_sql_file(f)?, given),
        (None, None, Some("-")) => (query::read_sql(io::stdin().lock())?, given),
        (None, None, Some(name)) => {
            let r = reports::get(name)?;
            let params = r.bind(&given)?;
            (r.sql.to_string(), params)
        }
        (None, None, None) => {
            return Err(UsageError(
                "give a report name (see `heapdb reports`), --sql, --file or - (stdin)".into(),
            )
            .into())
        }
    };
    let db = heapdb::db::open_ro(&a.db)?;
    if !quiet {
        for note in &db.notes {
            say(format!("{}: {note}", a.db.display()));
        }
    }
    query::select_captures(&db.conn, &labels)?;
    sandbox::restrict(&db.conn);
    let mut opts = output::Options::new(format);
    opts.hex_addresses = !a.no_hex;
    let stdout = io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    query::run_sql(
        &db.conn,
        &sql,
        &params,
        &mut out,
        opts,
        a.timeout,
        super::cancel(),
    )?;
    out.flush()?;
    Ok(Outcome::Ok)
}

pub fn run_reports(a: ReportsArgs) -> anyhow::Result<Outcome> {
    let mut opts = output::Options::new(choose(a.format, Format::Table));
    opts.expanded = true;
    let stdout = io::stdout();
    let mut w = RowWriter::new(
        BufWriter::new(stdout.lock()),
        ["name", "description", "question", "params"]
            .map(String::from)
            .to_vec(),
        opts,
    )?;
    for r in reports::all() {
        let text: Vec<String> = r
            .params
            .iter()
            .map(|p| format!("{}={}", p.name, p.default))
            .collect();
        w.row(&[
            r.name.as_str().into(),
            r.description.as_str().into(),
            r.question.as_str().into(),
            Value::Nested {
                json: serde_json::to_value(&r.params)?,
                text: text.join("  "),
            },
        ])?;
    }
    w.finish()?;
    Ok(Outcome::Ok)
}

pub fn run_schema(a: SchemaArgs) -> anyhow::Result<Outcome> {
    let objs = schema_doc::describe()?;
    let mut opts = output::Options::new(choose(a.format, Format::Table));
    // Grouped by table: "table reallocs: One row per ..." heads its columns.
    opts.group_columns = 3;
    opts.max_width = usize::MAX;
    opts.row_count = false;
    let stdout = io::stdout();
    let mut w = RowWriter::new(
        BufWriter::new(stdout.lock()),
        ["kind", "name", "doc", "column", "type", "meaning"]
            .map(String::from)
            .to_vec(),
        opts,
    )?;
    for o in &objs {
        for c in &o.columns {
            w.row(&[
                o.kind.as_str().into(),
                o.name.as_str().into(),
                o.doc.as_str().into(),
                c.name.as_str().into(),
                c.ty.as_str().into(),
                c.doc.as_str().into(),
            ])?;
        }
    }
    w.finish()?;
    Ok(Outcome::Ok)
}
