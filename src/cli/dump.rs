//! `heapdb dump`: the events of captures, one row each, or one row per capture with
//! `--summary`.

use super::format::{self, choose};
use super::{say, Outcome, UsageError};
use clap::Args;
use heapdb::decode::{self, Decoder};
use heapdb::etl::summary::{summarize_reader, HeaderFields, Summary};
use heapdb::etl::time::rfc3339;
use heapdb::etl::{Clock, EtlReader, Event, Guid};
use heapdb::ingest::discover::{self, Input};
use heapdb::output::{self, Format, RowWriter, Value};
use std::io::{self, BufWriter, Write};
use std::ops::ControlFlow;
use std::path::PathBuf;

#[derive(Args)]
#[command(
    after_help = "FILE can be a capture, a .zip or .diagsession archive (each .etl inside \
is dumped, named archive!inner.etl) or a directory (every capture below it).\n\n\
Event columns: file, provider (GUID, lowercase, no braces), opcode (null for WPP \
messages), event_id, version, pid, tid (null where the header has none), cpu, ts_raw, time \
(RFC 3339 UTC), header (system64, perfinfo64, event64, classic32, wpp, ...), pointer_size, \
offset (file offset of the record; of its buffer when compressed), payload_len, and \
payload (hex) with --payload.\n\n\
Summary columns: file, the logfile header fields, events, buffers, compressed_buffers, \
header_kinds, counts (keyed \"<provider>/<opcode>\", opcode -1 for WPP), errors; nested \
values are JSON in json/jsonl and text in the other formats.\n\n\
Output: a table on a terminal (one block per file with --summary), JSON lines \
otherwise; --format table|csv|tsv|json|jsonl|markdown.\n\n\
Exit codes: 0 ok, 1 some file was bad (reported on stderr with its byte offset), \
3 output failed.\n\n\
Examples:\n  heapdb dump trace.etl | head\n  heapdb dump --summary --format json a.etl b.etl\n  \
heapdb dump --provider 222962ab-6180-4b88-a825-346b75f2a24a --opcode 34 trace.etl"
)]
pub struct DumpArgs {
    /// Captures to read (files, archives, directories).
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Output format (default: table on a terminal, jsonl otherwise).
    #[arg(long, short, value_parser = format::parser())]
    pub format: Option<Format>,
    /// One row per file: logfile header, event counts per provider/opcode, errors.
    #[arg(long)]
    pub summary: bool,
    /// Include each event's payload as hex.
    #[arg(long)]
    pub payload: bool,
    /// Only events of this provider GUID.
    #[arg(long, value_name = "GUID")]
    pub provider: Option<Guid>,
    /// Only events with this opcode.
    #[arg(long)]
    pub opcode: Option<u8>,
    /// Stop after this many events per file.
    #[arg(long, value_name = "N")]
    pub limit: Option<u64>,
    /// Which decoder reads the captures: heapdb's own reader (every platform), or
    /// Windows' own ETW consumer (Windows only: events in ETW's order, merged by time,
    /// offset null).
    #[arg(long, value_enum, default_value = "heapdb")]
    pub decoder: super::decoder::DecoderArg,
}

const EVENT_COLUMNS: [&str; 14] = [
    "file",
    "provider",
    "opcode",
    "event_id",
    "version",
    "pid",
    "tid",
    "cpu",
    "ts_raw",
    "time",
    "header",
    "pointer_size",
    "offset",
    "payload_len",
];

pub fn run(args: DumpArgs, _quiet: bool) -> anyhow::Result<Outcome> {
    let decoder = args.decoder.decoder()?;
    if args.summary && decoder != Decoder::Heapdb {
        return Err(UsageError(
            "--summary counts buffers and header kinds, which only heapdb's reader sees: use it without --decoder".into(),
        )
        .into());
    }
    let format = choose(args.format, Format::Jsonl);
    let mut inputs = Vec::new();
    let mut bad = false;
    for f in &args.files {
        let found = discover::expand(&[f.display().to_string()]);
        for b in &found.bad {
            say(format!("{}: {}", b.input, b.message));
            bad = true;
        }
        inputs.extend(found.inputs);
    }
    let stdout = io::stdout();
    let out = BufWriter::with_capacity(1 << 16, stdout.lock());
    let had_errors = if args.summary {
        dump_summaries(&inputs, format, out)?
    } else {
        dump_events(&inputs, &args, decoder, format, out)?
    };
    Ok(if bad || had_errors {
        Outcome::InputErrors
    } else {
        Outcome::Ok
    })
}

/// Opens a capture; an unreadable or foreign one is reported and yields None.
fn open(input: &Input) -> Option<EtlReader<Box<dyn io::Read + Send>>> {
    let name = input.display();
    let opened = match input.open() {
        Ok(o) => o,
        Err(e) => {
            say(format!("{name}: {e}"));
            return None;
        }
    };
    match EtlReader::new(opened.reader, opened.len) {
        Ok(r) => Some(r),
        Err(e) => {
            say(format!("{name}: {e}"));
            None
        }
    }
}

fn dump_events(
    inputs: &[Input],
    args: &DumpArgs,
    decoder: Decoder,
    format: Format,
    out: impl Write,
) -> io::Result<bool> {
    let mut columns: Vec<String> = EVENT_COLUMNS.iter().map(|s| s.to_string()).collect();
    if args.payload {
        columns.push("payload".into());
    }
    let mut w = RowWriter::new(out, columns, output::Options::new(format))?;
    let mut had_errors = false;
    let limit = args.limit.unwrap_or(u64::MAX);
    for input in inputs {
        let name = input.display();
        let mut source = match decode::open(decoder, input) {
            Ok(s) => s,
            Err(e) => {
                say(format!("{name}: {e}"));
                had_errors = true;
                continue;
            }
        };
        let clock = *source.clock();
        let offsets = source.has_offsets();
        let mut written = 0u64;
        let mut write_error: Option<io::Error> = None;
        let ran = source.for_each(&mut |item| {
            let e = match item {
                Ok(e) => e,
                Err(err) => {
                    had_errors = true;
                    say(format!("{name}: {err}"));
                    return ControlFlow::Continue(());
                }
            };
            if args.provider.is_some_and(|p| p != e.provider)
                || args.opcode.is_some_and(|o| e.opcode != Some(o))
            {
                return ControlFlow::Continue(());
            }
            if written >= limit {
                return ControlFlow::Break(());
            }
            written += 1;
            match w.row(&event_row(&name, e, &clock, args.payload, offsets)) {
                Ok(()) => ControlFlow::Continue(()),
                Err(err) => {
                    write_error = Some(err);
                    ControlFlow::Break(())
                }
            }
        });
        if let Some(e) = write_error {
            return Err(e);
        }
        if let Err(e) = ran {
            had_errors = true;
            say(format!("{name}: {e}"));
        }
    }
    w.finish()?;
    Ok(had_errors)
}

fn event_row(name: &str, e: &Event<'_>, clock: &Clock, payload: bool, offsets: bool) -> Vec<Value> {
    let mut v = vec![
        name.into(),
        e.provider.to_string().into(),
        e.opcode.into(),
        e.event_id.into(),
        e.version.into(),
        e.pid.into(),
        e.tid.into(),
        e.cpu.into(),
        e.timestamp.into(),
        e.timestamp.map(|t| rfc3339(clock.unix_ns(t))).into(),
        e.kind.name().into(),
        e.pointer_size.into(),
        offsets.then(|| e.offset()).into(),
        e.payload.len().into(),
    ];
    if payload {
        v.push(output::hex(e.payload).into());
    }
    v
}

fn dump_summaries(inputs: &[Input], format: Format, out: impl Write) -> anyhow::Result<bool> {
    let mut opts = output::Options::new(format);
    opts.pretty_json = true;
    opts.expanded = true;
    let mut w: Option<RowWriter<_>> = None;
    let mut out = Some(out);
    let mut had_errors = false;
    for input in inputs {
        let name = input.display();
        let Some(mut reader) = open(input) else {
            had_errors = true;
            continue;
        };
        let summary = summarize_reader(&mut reader);
        for error in &summary.errors {
            say(format!("{name}: {error}"));
            had_errors = true;
        }
        let (columns, values) = summary_row(&name, &HeaderFields::new(reader.header()), &summary)?;
        if w.is_none() {
            if let Some(o) = out.take() {
                w = Some(RowWriter::new(o, columns, opts)?);
            }
        }
        if let Some(w) = w.as_mut() {
            w.row(&values)?;
        }
    }
    match w {
        Some(w) => {
            w.finish()?;
        }
        None => {
            // No readable file: still a well-formed (empty) result.
            if let Some(o) = out.take() {
                RowWriter::new(o, vec!["file".into()], opts)?.finish()?;
            }
        }
    }
    Ok(had_errors)
}

/// One summary row: the file, the logfile header fields, the counts; nested values as
/// JSON for scripts and as lines of text for people.
fn summary_row(
    name: &str,
    header: &HeaderFields,
    s: &Summary,
) -> anyhow::Result<(Vec<String>, Vec<Value>)> {
    let mut columns = vec!["file".to_string()];
    let mut values: Vec<Value> = vec![name.into()];
    if let serde_json::Value::Object(h) = serde_json::to_value(header)? {
        for (k, v) in h {
            columns.push(k);
            values.push(match v {
                serde_json::Value::Null => Value::Null,
                serde_json::Value::Number(n) => n.as_i64().map(Value::Int).unwrap_or(Value::Null),
                serde_json::Value::String(t) => Value::Text(t),
                other => Value::Text(other.to_string()),
            });
        }
    }
    let mut by_count: Vec<(&String, &u64)> = s.counts.iter().collect();
    by_count.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    let counts_text: Vec<String> = by_count
        .iter()
        .map(|(k, v)| format!("{v:>10}  {k}"))
        .collect();
    let kinds_text: Vec<String> = s
        .header_kinds
        .iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect();
    let errors: Vec<serde_json::Value> = s
        .errors
        .iter()
        .map(|e| serde_json::json!({"offset": e.offset(), "message": e.to_string()}))
        .collect();
    let errors_text: Vec<String> = s.errors.iter().map(|e| e.to_string()).collect();
    for (c, v) in [
        ("events", Value::from(s.events)),
        ("buffers", Value::from(s.buffers)),
        ("compressed_buffers", Value::from(s.compressed_buffers)),
        (
            "header_kinds",
            Value::Nested {
                json: serde_json::to_value(&s.header_kinds)?,
                text: kinds_text.join(", "),
            },
        ),
        (
            "counts",
            Value::Nested {
                json: serde_json::to_value(&s.counts)?,
                text: counts_text.join("\n"),
            },
        ),
        (
            "errors",
            Value::Nested {
                json: serde_json::Value::Array(errors),
                text: errors_text.join("\n"),
            },
        ),
    ] {
        columns.push(c.to_string());
        values.push(v);
    }
    Ok((columns, values))
}
