//! `heapdb dump`: the events of .etl files as JSON lines, a JSON array, or a table.

use super::{exit, is_broken_pipe, report};
use crate::etl::summary::{summarize, HeaderFields, Summary};
use crate::etl::time::rfc3339;
use crate::etl::{EtlFile, Event, FileError, MappedFile};
use clap::{Args, ValueEnum};
use serde::Serialize;
use std::io::{self, BufWriter, IsTerminal, Write};
use std::path::PathBuf;

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DumpFormat {
    /// One JSON object per line (the default when stdout is not a terminal).
    Jsonl,
    /// One JSON array (per file with --summary: an array of file objects).
    Json,
    /// Aligned columns for people (the default on a terminal).
    Table,
}

#[derive(Args)]
#[command(
    after_help = "Event fields: file, provider (GUID, lowercase, no braces), opcode \
(null for WPP messages), event_id, version, pid, tid (null where the header has none), cpu, \
ts_raw, time (RFC 3339 UTC), header (system64, perfinfo64, event64, classic32, wpp, ...), \
pointer_size, offset (file offset of the record; of its buffer when compressed), \
payload_len, and payload (hex) with --payload.\n\n\
Summary fields: file, the logfile header fields, events, buffers, compressed_buffers, \
header_kinds, counts (keyed \"<provider>/<opcode>\", opcode -1 for WPP), errors.\n\n\
Examples:\n  heapdb dump trace.etl | head\n  heapdb dump --summary --format json a.etl b.etl\n  \
heapdb dump --provider 222962ab-6180-4b88-a825-346b75f2a24a --opcode 34 trace.etl"
)]
pub struct DumpArgs {
    /// .etl files to read.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Output format (default: table on a terminal, jsonl otherwise).
    #[arg(long, short, value_enum)]
    pub format: Option<DumpFormat>,
    /// One object per file: logfile header, event counts per provider/opcode, errors.
    #[arg(long)]
    pub summary: bool,
    /// Include each event's payload as hex.
    #[arg(long)]
    pub payload: bool,
    /// Only events of this provider GUID.
    #[arg(long, value_name = "GUID")]
    pub provider: Option<crate::etl::Guid>,
    /// Only events with this opcode.
    #[arg(long)]
    pub opcode: Option<u8>,
    /// Stop after this many events per file.
    #[arg(long, value_name = "N")]
    pub limit: Option<u64>,
}

#[derive(Serialize)]
struct EventRow<'a> {
    file: &'a str,
    provider: String,
    opcode: Option<u8>,
    event_id: u16,
    version: u16,
    pid: Option<u32>,
    tid: Option<u32>,
    cpu: u16,
    ts_raw: Option<u64>,
    time: Option<String>,
    header: &'static str,
    pointer_size: u8,
    offset: u64,
    payload_len: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    payload: Option<String>,
}

#[derive(Serialize)]
struct ErrorRow {
    offset: u64,
    message: String,
}

#[derive(Serialize)]
struct FileSummary<'a> {
    file: &'a str,
    #[serde(flatten)]
    header: HeaderFields,
    #[serde(flatten)]
    summary: &'a Summary,
    errors: Vec<ErrorRow>,
}

pub fn run(args: DumpArgs, _quiet: bool) -> u8 {
    let format = args.format.unwrap_or(if io::stdout().is_terminal() {
        DumpFormat::Table
    } else {
        DumpFormat::Jsonl
    });
    let stdout = io::stdout();
    let mut out = BufWriter::with_capacity(1 << 16, stdout.lock());
    let mut code = exit::OK;
    let mut first_json = true;
    if format == DumpFormat::Json {
        if let Err(e) = out.write_all(b"[") {
            return io_failure(&e);
        }
    }
    for path in &args.files {
        let name = path.display().to_string();
        let result = if args.summary {
            dump_summary(&name, path, format, &mut out, &mut first_json)
        } else {
            dump_events(&name, path, &args, format, &mut out, &mut first_json)
        };
        match result {
            Ok(had_errors) => {
                if had_errors {
                    code = exit::INPUT_ERRORS;
                }
            }
            Err(e) => return io_failure(&e),
        }
    }
    let end = if format == DumpFormat::Json {
        out.write_all(b"]\n")
    } else {
        Ok(())
    };
    if let Err(e) = end.and_then(|_| out.flush()) {
        return io_failure(&e);
    }
    code
}

fn io_failure(e: &io::Error) -> u8 {
    if is_broken_pipe(e) {
        exit::OK
    } else {
        report(format!("writing output: {e}"));
        exit::FAILURE
    }
}

/// Opens and parses a file; an unreadable or non-ETL file is reported and yields None.
fn open(name: &str, path: &std::path::Path) -> Option<MappedFile> {
    match MappedFile::open(path) {
        Ok(m) => Some(m),
        Err(e) => {
            report(format!("{name}: {e}"));
            None
        }
    }
}

fn json_sep(out: &mut impl Write, format: DumpFormat, first: &mut bool) -> io::Result<()> {
    if format == DumpFormat::Json {
        if !*first {
            out.write_all(b",\n")?;
        } else {
            out.write_all(b"\n")?;
        }
    }
    *first = false;
    Ok(())
}

/// Returns Ok(true) when the file had errors.
fn dump_events(
    name: &str,
    path: &std::path::Path,
    args: &DumpArgs,
    format: DumpFormat,
    out: &mut impl Write,
    first: &mut bool,
) -> io::Result<bool> {
    let Some(map) = open(name, path) else {
        return Ok(true);
    };
    let file = match EtlFile::parse(map.bytes()) {
        Ok(f) => f,
        Err(error) => {
            report(FileError {
                path: name.to_string(),
                error,
            });
            return Ok(true);
        }
    };
    let clock = *file.clock();
    if format == DumpFormat::Table {
        writeln!(
            out,
            "{:<30} {:<10} {:<36} {:>6} {:>5} {:>3} {:>7} {:>7} {:>3} {:>12} {:>6}",
            "time",
            "header",
            "provider",
            "opcode",
            "id",
            "ver",
            "pid",
            "tid",
            "cpu",
            "offset",
            "len"
        )?;
    }
    let mut had_errors = false;
    let mut written = 0u64;
    let mut io_err = None;
    let limit = args.limit.unwrap_or(u64::MAX);
    file.for_each(|item| {
        if io_err.is_some() || written >= limit {
            return;
        }
        let e = match item {
            Ok(e) => e,
            Err(error) => {
                had_errors = true;
                report(FileError {
                    path: name.to_string(),
                    error: error.clone(),
                });
                return;
            }
        };
        if args.provider.is_some_and(|p| p != e.provider)
            || args.opcode.is_some_and(|o| e.opcode != Some(o))
        {
            return;
        }
        written += 1;
        let r = write_event(name, e, &clock, args.payload, format, out, first);
        if let Err(err) = r {
            io_err = Some(err);
        }
    });
    if let Some(e) = io_err {
        return Err(e);
    }
    Ok(had_errors)
}

fn write_event(
    name: &str,
    e: &Event<'_>,
    clock: &crate::etl::Clock,
    payload: bool,
    format: DumpFormat,
    out: &mut impl Write,
    first: &mut bool,
) -> io::Result<()> {
    let time = e.timestamp.map(|t| rfc3339(clock.unix_ns(t)));
    if format == DumpFormat::Table {
        let opt = |v: Option<u32>| v.map(|v| v.to_string()).unwrap_or_else(|| "-".into());
        return writeln!(
            out,
            "{:<30} {:<10} {:<36} {:>6} {:>5} {:>3} {:>7} {:>7} {:>3} {:>12} {:>6}",
            time.as_deref().unwrap_or("-"),
            e.kind.name(),
            e.provider.to_string(),
            e.opcode
                .map(|o| o.to_string())
                .unwrap_or_else(|| "-".into()),
            e.event_id,
            e.version,
            opt(e.pid),
            opt(e.tid),
            e.cpu,
            e.offset(),
            e.payload.len()
        );
    }
    let row = EventRow {
        file: name,
        provider: e.provider.to_string(),
        opcode: e.opcode,
        event_id: e.event_id,
        version: e.version,
        pid: e.pid,
        tid: e.tid,
        cpu: e.cpu,
        ts_raw: e.timestamp,
        time,
        header: e.kind.name(),
        pointer_size: e.pointer_size,
        offset: e.offset(),
        payload_len: e.payload.len(),
        payload: payload.then(|| hex(e.payload)),
    };
    json_sep(out, format, first)?;
    serde_json::to_writer(&mut *out, &row).map_err(io::Error::other)?;
    if format == DumpFormat::Jsonl {
        out.write_all(b"\n")?;
    }
    Ok(())
}

fn hex(b: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(b.len() * 2);
    for &x in b {
        s.push(DIGITS[(x >> 4) as usize] as char);
        s.push(DIGITS[(x & 15) as usize] as char);
    }
    s
}

fn dump_summary(
    name: &str,
    path: &std::path::Path,
    format: DumpFormat,
    out: &mut impl Write,
    first: &mut bool,
) -> io::Result<bool> {
    let Some(map) = open(name, path) else {
        return Ok(true);
    };
    let file = match EtlFile::parse(map.bytes()) {
        Ok(f) => f,
        Err(error) => {
            report(FileError {
                path: name.to_string(),
                error,
            });
            return Ok(true);
        }
    };
    let summary = summarize(&file);
    for error in &summary.errors {
        report(FileError {
            path: name.to_string(),
            error: error.clone(),
        });
    }
    let errors: Vec<ErrorRow> = summary
        .errors
        .iter()
        .map(|e| ErrorRow {
            offset: e.offset(),
            message: e.to_string(),
        })
        .collect();
    let had_errors = !errors.is_empty();
    let row = FileSummary {
        file: name,
        header: HeaderFields::new(file.header()),
        summary: &summary,
        errors,
    };
    if format == DumpFormat::Table {
        write_summary_table(out, &row)?;
        return Ok(had_errors);
    }
    json_sep(out, format, first)?;
    if format == DumpFormat::Json {
        serde_json::to_writer_pretty(&mut *out, &row).map_err(io::Error::other)?;
    } else {
        serde_json::to_writer(&mut *out, &row).map_err(io::Error::other)?;
        out.write_all(b"\n")?;
    }
    Ok(had_errors)
}

fn write_summary_table(out: &mut impl Write, s: &FileSummary<'_>) -> io::Result<()> {
    let h = &s.header;
    writeln!(out, "{}", s.file)?;
    writeln!(
        out,
        "  Windows {} build {}, {} CPUs, {}-bit, trace format {}, logger {:?}",
        h.os_version,
        h.os_build,
        h.cpu_count,
        h.pointer_size * 8,
        h.trace_format,
        h.logger_name
    )?;
    writeln!(
        out,
        "  {} -> {}, clock {} @ {} Hz, buffers {} B",
        h.start_time_utc,
        h.end_time_utc.as_deref().unwrap_or("(never closed)"),
        h.clock_type,
        h.perf_freq,
        h.buffer_size
    )?;
    writeln!(
        out,
        "  {} events in {} buffers ({} compressed); lost: {} events, {} buffers; {} errors",
        s.summary.events,
        s.summary.buffers,
        s.summary.compressed_buffers,
        h.events_lost,
        h.buffers_lost,
        s.errors.len()
    )?;
    let kinds: Vec<String> = s
        .summary
        .header_kinds
        .iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect();
    writeln!(out, "  headers: {}", kinds.join(", "))?;
    let mut by_count: Vec<(&String, &u64)> = s.summary.counts.iter().collect();
    by_count.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    writeln!(out, "  {:>10}  provider/opcode", "events")?;
    for (k, v) in by_count {
        writeln!(out, "  {v:>10}  {k}")?;
    }
    for e in &s.errors {
        writeln!(out, "  error: {}", e.message)?;
    }
    Ok(())
}
