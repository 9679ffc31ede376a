//! `heapdb query`, `heapdb reports`, `heapdb schema`.

use super::{exit, is_broken_pipe, report};
use crate::query::output::Format;
use crate::query::{self, parse_value, reports, schema_doc, QueryError};
use clap::Args;
use rusqlite::types::Value;
use std::io::{self, IsTerminal, Read, Write};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Args)]
#[command(
    after_help = "Run a canned report by name (see `heapdb reports`), or ad hoc SQL with \
--sql, --file or `-` (stdin). The database is opened read-only: nothing a query does can \
change it. Parameters bind to :name in the SQL; values can be decimal, hex (0x...), text, or \
all / latest / previous (NULL: no filter, or the report's default capture).\n\n\
Output: a table on a terminal, csv otherwise; --format csv|tsv|json|jsonl|markdown|table. \
Integer columns holding addresses (heap, address, *_address, base, leaf) print in hex \
(--no-hex to keep numbers). Ctrl-C interrupts a long query; --timeout sets a limit.\n\n\
Exit codes: 0 ok, 2 usage error (unknown report or parameter), 3 SQL or database error, \
4 interrupted or timed out.\n\n\
Examples:\n  heapdb query --db heap.db top-realloc-sites\n  \
heapdb query move-ratio --param capture=3 --param pid=4242 --format csv\n  \
heapdb query address-history --param address=0x1d2f0a40\n  \
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
    #[arg(long, short, value_enum)]
    pub format: Option<Format>,
    /// Give up after this many seconds.
    #[arg(long, value_name = "SECS")]
    pub timeout: Option<f64>,
    /// Print address columns as plain integers.
    #[arg(long)]
    pub no_hex: bool,
}

#[derive(Args)]
pub struct ReportsArgs {
    /// table, or json (an array of {name, description, question, params}).
    #[arg(long, short, value_enum, default_value = "table")]
    pub format: ListFormat,
}

#[derive(Args)]
pub struct SchemaArgs {
    /// table, json or markdown.
    #[arg(long, short, value_enum, default_value = "table")]
    pub format: ListFormat,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ListFormat {
    Table,
    Json,
    Markdown,
}

fn failure_code(e: &QueryError) -> u8 {
    match e {
        QueryError::Usage(_) => exit::USAGE,
        QueryError::Interrupted | QueryError::TimedOut(_) => exit::INTERRUPTED,
        QueryError::Io(io) if is_broken_pipe(io) => exit::OK,
        _ => exit::FAILURE,
    }
}

pub fn run(a: QueryArgs) -> u8 {
    let format = a.format.unwrap_or(if io::stdout().is_terminal() {
        Format::Table
    } else {
        Format::Csv
    });
    let mut params: Vec<(String, Value)> = Vec::new();
    for p in &a.params {
        let Some((k, v)) = p.split_once('=') else {
            report(format!("--param {p:?}: expected NAME=VALUE"));
            return exit::USAGE;
        };
        params.push((k.trim().trim_start_matches(':').to_string(), parse_value(v)));
    }
    let sql: String;
    match (&a.sql, &a.file, a.report.as_deref()) {
        (Some(s), _, _) => sql = s.clone(),
        (None, Some(f), _) => match std::fs::read_to_string(f) {
            Ok(s) => sql = s,
            Err(e) => {
                report(format!("{}: {e}", f.display()));
                return exit::USAGE;
            }
        },
        (None, None, Some("-")) => {
            let mut s = String::new();
            if let Err(e) = io::stdin().read_to_string(&mut s) {
                report(format!("reading SQL from stdin: {e}"));
                return exit::USAGE;
            }
            sql = s;
        }
        (None, None, Some(name)) => {
            let Some(r) = reports::find(name) else {
                let names: Vec<String> = reports::all().into_iter().map(|r| r.name).collect();
                report(format!(
                    "no report named {name:?}; reports: {}",
                    names.join(", ")
                ));
                return exit::USAGE;
            };
            for (k, _) in &params {
                if !r.params.iter().any(|p| &p.name == k) {
                    let known: Vec<&str> = r.params.iter().map(|p| p.name.as_str()).collect();
                    report(format!(
                        "report {name} has no parameter {k:?} (it takes: {})",
                        known.join(", ")
                    ));
                    return exit::USAGE;
                }
            }
            for p in &r.params {
                if !params.iter().any(|(k, _)| k == &p.name) {
                    if p.required() {
                        report(format!(
                            "report {name} needs --param {}=VALUE ({})",
                            p.name, p.help
                        ));
                        return exit::USAGE;
                    }
                    params.push((p.name.clone(), parse_value(&p.default)));
                }
            }
            sql = r.sql.to_string();
        }
        (None, None, None) => {
            report("give a report name (see `heapdb reports`), --sql, --file or - (stdin)");
            return exit::USAGE;
        }
    }
    let conn = match crate::db::open_ro(&a.db) {
        Ok(c) => c,
        Err(e) => {
            report(format!("{e:#}"));
            return exit::FAILURE;
        }
    };
    query::install_ctrlc();
    let stdout = io::stdout();
    let mut out = io::BufWriter::new(stdout.lock());
    let timeout = a.timeout.map(Duration::from_secs_f64);
    let result = query::run_sql(&conn, &sql, &params, &mut out, format, !a.no_hex, timeout);
    let flushed = out.flush();
    match result {
        Ok(_) => match flushed {
            Err(e) if !is_broken_pipe(&e) => {
                report(format!("writing output: {e}"));
                exit::FAILURE
            }
            _ => exit::OK,
        },
        Err(e) => {
            let code = failure_code(&e);
            if code != exit::OK {
                report(&e);
            }
            code
        }
    }
}

pub fn run_reports(a: ReportsArgs) -> u8 {
    let all = reports::all();
    let mut out = io::stdout().lock();
    let r = match a.format {
        ListFormat::Json => serde_json::to_writer_pretty(&mut out, &all)
            .map_err(io::Error::other)
            .and_then(|_| writeln!(out)),
        ListFormat::Table | ListFormat::Markdown => (|| {
            let md = a.format == ListFormat::Markdown;
            if md {
                writeln!(
                    out,
                    "| report | what it answers | parameters |\n| --- | --- | --- |"
                )?;
            }
            let w = all.iter().map(|r| r.name.len()).max().unwrap_or(0);
            for r in &all {
                let params: Vec<String> = r
                    .params
                    .iter()
                    .map(|p| format!("{}={}", p.name, p.default))
                    .collect();
                if md {
                    writeln!(
                        out,
                        "| `{}` | {} | {} |",
                        r.name,
                        r.description,
                        params.join(", ")
                    )?;
                } else {
                    writeln!(out, "{:<w$}  {}", r.name, r.description)?;
                    writeln!(out, "{:<w$}  params: {}", "", params.join("  "))?;
                }
            }
            Ok(())
        })(),
    };
    match r {
        Err(e) if !is_broken_pipe(&e) => {
            report(format!("writing output: {e}"));
            exit::FAILURE
        }
        _ => exit::OK,
    }
}

pub fn run_schema(a: SchemaArgs) -> u8 {
    let objs = match schema_doc::describe() {
        Ok(o) => o,
        Err(e) => {
            report(e);
            return exit::FAILURE;
        }
    };
    let mut out = io::stdout().lock();
    let r = (|| -> io::Result<()> {
        match a.format {
            ListFormat::Json => {
                serde_json::to_writer_pretty(&mut out, &objs).map_err(io::Error::other)?;
                writeln!(out)
            }
            ListFormat::Markdown => {
                for o in &objs {
                    writeln!(
                        out,
                        "### `{}` ({})\n\n{}\n\n| column | type | meaning |\n| --- | --- | --- |",
                        o.name, o.kind, o.doc
                    )?;
                    for c in &o.columns {
                        writeln!(
                            out,
                            "| `{}` | {} | {} |",
                            c.name,
                            c.ty,
                            c.doc.replace('|', "\\|")
                        )?;
                    }
                    writeln!(out)?;
                }
                Ok(())
            }
            ListFormat::Table => {
                for o in &objs {
                    writeln!(out, "{} {}: {}", o.kind, o.name, o.doc)?;
                    let w = o.columns.iter().map(|c| c.name.len()).max().unwrap_or(0);
                    for c in &o.columns {
                        writeln!(out, "    {:<w$}  {:<8} {}", c.name, c.ty, c.doc)?;
                    }
                    writeln!(out)?;
                }
                Ok(())
            }
        }
    })();
    match r {
        Err(e) if !is_broken_pipe(&e) => {
            report(format!("writing output: {e}"));
            exit::FAILURE
        }
        _ => exit::OK,
    }
}
