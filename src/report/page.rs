//! The HTML page: sections in the order an analyst asks (what is this capture, when did
//! memory grow, how busy was realloc, which sizes and heap paths, who did it, which
//! buffers grew), each a chart with its numbers in a table beside it.
//!
//! Tables that hold a report's rows say which (`data-report`, `data-params`) and keep
//! every cell's exact value in `data-v`: the browser test reruns the report and
//! compares. The page prints the `heapdb query` command of every report it used.

use super::chart::{self, Bars, Heat, Lines, Mark, Series, Unit};
use super::fmt::{esc, human_bytes, human_count, script_json};
use super::{int, real, value_text, CaptureData, Data, Ran};
use rusqlite::types::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

/// A series' points (x, y).
type Points = Vec<(f64, f64)>;

const CSS: &str = include_str!("page.css");
const JS: &str = include_str!("page.js");

/// How a column prints.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Text,
    Count,
    Bytes,
    /// Signed change in bytes or counts, with a sign.
    Delta,
    Pct,
    Seconds,
    Millis,
    Hex,
    /// An identifier (pid): digits only.
    Id,
    /// 0/1 as no/yes.
    Flag,
}

struct Col {
    name: &'static str,
    head: &'static str,
    kind: Kind,
}

const fn col(name: &'static str, head: &'static str, kind: Kind) -> Col {
    Col { name, head, kind }
}

fn cell_text(v: &Value, kind: Kind) -> String {
    match (v, kind) {
        (Value::Null, _) => "–".to_string(),
        (Value::Text(t), _) => t.clone(),
        (v, Kind::Bytes) => real(v).map(human_bytes).unwrap_or_default(),
        (v, Kind::Delta) => real(v)
            .map(|x| {
                if x > 0.0 {
                    format!("+{}", human_count(x))
                } else {
                    human_count(x)
                }
            })
            .unwrap_or_default(),
        (v, Kind::Pct) => real(v).map(|x| format!("{x} %")).unwrap_or_default(),
        (v, Kind::Seconds) => real(v).map(chart::seconds_short).unwrap_or_default(),
        (v, Kind::Millis) => real(v)
            .map(|x| format!("{} ms", super::fmt::trim_num(x, 1)))
            .unwrap_or_default(),
        (v, Kind::Hex) => int(v).map(|x| format!("0x{x:x}")).unwrap_or_default(),
        (v, Kind::Id) => raw(v),
        (v, Kind::Flag) => match int(v) {
            Some(0) => "no".to_string(),
            Some(_) => "yes".to_string(),
            None => String::new(),
        },
        (v, _) => real(v).map(human_count).unwrap_or_default(),
    }
}

/// The exact value, as `data-v` keeps it (what `heapdb query --format json --no-hex`
/// prints, as text).
fn raw(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::Integer(i) => i.to_string(),
        Value::Real(r) => r.to_string(),
        Value::Text(t) => t.clone(),
        Value::Blob(b) => format!("{} bytes", b.len()),
    }
}

fn text_of(v: &Value) -> String {
    match v {
        Value::Text(t) => t.clone(),
        Value::Null => String::new(),
        other => raw(other),
    }
}

fn params_attr(ran: &Ran) -> String {
    ran.params
        .iter()
        .map(|(k, v)| format!("{k}={}", value_text(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// The command that prints the same rows.
fn command(db: &str, ran: &Ran) -> String {
    format!(
        "heapdb query --db {} {}{}",
        shell_word(db),
        ran.report,
        ran.command_params()
    )
}

fn shell_word(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=+:,@".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// A table of a report's rows. `stack_col` names the column whose stack opens under
/// the site; `bar` the column drawn as a bar; `row_class` marks rows (regressions).
struct TableSpec<'a> {
    id: &'a str,
    caption: &'a str,
    cols: &'a [Col],
    stack_col: Option<&'a str>,
    bar: Option<&'a str>,
    row_class: &'a dyn Fn(&[Value], &Ran) -> Option<&'static str>,
    /// Row order: indexes into the report's rows (default: the report's order).
    order: Option<Vec<usize>>,
}

fn no_class(_: &[Value], _: &Ran) -> Option<&'static str> {
    None
}

impl<'a> TableSpec<'a> {
    fn new(id: &'a str, caption: &'a str, cols: &'a [Col]) -> Self {
        TableSpec {
            id,
            caption,
            cols,
            stack_col: None,
            bar: None,
            row_class: &no_class,
            order: None,
        }
    }

    /// The `site` cell opens the stack whose id is in `stack_col`.
    fn stacks(mut self, stack_col: &'a str) -> Self {
        self.stack_col = Some(stack_col);
        self
    }

    fn bar(mut self, col: &'a str) -> Self {
        self.bar = Some(col);
        self
    }

    fn rows_marked(mut self, f: &'a dyn Fn(&[Value], &Ran) -> Option<&'static str>) -> Self {
        self.row_class = f;
        self
    }

    fn order(mut self, order: Vec<usize>) -> Self {
        self.order = Some(order);
        self
    }
}

fn report_table(out: &mut String, db: &str, ran: &Ran, c: &CaptureData, spec: TableSpec) {
    let _ = write!(
        out,
        "<div class=\"tablewrap\"><table id=\"{}\" data-report=\"{}\" data-params=\"{}\"><caption>{}</caption><thead><tr>",
        spec.id,
        ran.report,
        esc(&params_attr(ran)),
        spec.caption
    );
    for col in spec.cols {
        let num = !matches!(col.kind, Kind::Text | Kind::Hex);
        let _ = write!(
            out,
            "<th scope=\"col\"{} data-sort=\"{}\">{}</th>",
            if num { " class=\"num\"" } else { "" },
            if num { "num" } else { "text" },
            esc(col.head)
        );
    }
    out.push_str("</tr></thead><tbody>");
    let idx: Vec<Option<usize>> = spec
        .cols
        .iter()
        .map(|col| ran.rows.columns.iter().position(|c| c == col.name))
        .collect();
    let bar_i = spec
        .bar
        .and_then(|b| ran.rows.columns.iter().position(|c| c == b));
    let bar_max = bar_i
        .map(|i| {
            ran.rows
                .rows
                .iter()
                .filter_map(|r| real(&r[i]))
                .fold(0.0, f64::max)
        })
        .unwrap_or(0.0);
    let stack_i = spec
        .stack_col
        .and_then(|s| ran.rows.columns.iter().position(|c| c == s));
    let order: Vec<usize> = spec
        .order
        .clone()
        .unwrap_or_else(|| (0..ran.rows.len()).collect());
    for ri in order {
        let Some(row) = ran.rows.rows.get(ri) else {
            continue;
        };
        match (spec.row_class)(row, ran) {
            Some(class) => {
                let _ = write!(out, "<tr class=\"{class}\" data-row=\"{ri}\">");
            }
            None => {
                let _ = write!(out, "<tr data-row=\"{ri}\">");
            }
        }
        for (col, i) in spec.cols.iter().zip(&idx) {
            let v = i.map(|i| &row[i]).unwrap_or(&Value::Null);
            let num = !matches!(col.kind, Kind::Text | Kind::Hex);
            let mut class = String::new();
            if num {
                class.push_str("num");
            }
            let mut style = String::new();
            if i.is_some() && *i == bar_i && bar_max > 0.0 {
                if let Some(x) = real(v) {
                    class.push_str(" bar");
                    let _ = write!(style, " style=\"--w:{:.1}%\"", 100.0 * x / bar_max);
                }
            }
            let text = cell_text(v, col.kind);
            let title = match (v, col.kind) {
                (Value::Integer(_) | Value::Real(_), Kind::Bytes) => {
                    format!(" title=\"{} bytes\"", human_count(real(v).unwrap_or(0.0)))
                }
                _ => String::new(),
            };
            let _ = write!(
                out,
                "<td data-col=\"{}\" data-v=\"{}\"{}{}{}>",
                col.name,
                esc(&raw(v)),
                if matches!(v, Value::Null) {
                    " data-null=\"1\""
                } else {
                    ""
                },
                if class.is_empty() {
                    String::new()
                } else {
                    format!(" class=\"{}\"", class.trim())
                },
                if style.is_empty() {
                    title
                } else {
                    style + &title
                }
            );
            let stack = (col.name == "site")
                .then(|| stack_i.and_then(|s| int(&row[s])))
                .flatten()
                .and_then(|id| c.stacks.get(&id).map(|f| (id, f)));
            match stack {
                Some((id, frames)) if !frames.is_empty() => {
                    let _ = write!(
                        out,
                        "<details class=\"stack\"><summary>{}</summary><ol aria-label=\"stack {id}, innermost frame first\">",
                        esc(&text)
                    );
                    for (frame, source, inlined) in frames {
                        let _ = write!(out, "<li><code>{}</code>", esc(frame));
                        if let Some(s) = source {
                            let _ = write!(out, " <span class=\"src\">{}</span>", esc(s));
                        }
                        if let Some(i) = inlined {
                            let _ = write!(out, " <span class=\"inl\">inlined: {}</span>", esc(i));
                        }
                        out.push_str("</li>");
                    }
                    out.push_str("</ol>");
                    if let Some(n) = stacks_count(row, ran) {
                        if n > 1 {
                            let _ = write!(
                                out,
                                "<p class=\"note\">This row adds up {n} stacks; shown: stack {id}, the one that weighs most.</p>"
                            );
                        }
                    }
                    out.push_str("</details>");
                }
                _ => out.push_str(&esc(&text)),
            }
            out.push_str("</td>");
        }
        out.push_str("</tr>");
    }
    if ran.rows.is_empty() {
        let _ = write!(
            out,
            "<tr class=\"empty\"><td colspan=\"{}\">No rows.</td></tr>",
            spec.cols.len()
        );
    }
    let _ = write!(
        out,
        "</tbody></table></div><p class=\"cmd\">Same rows: <code>{}</code></p>",
        esc(&command(db, ran))
    );
}

fn stacks_count(row: &[Value], ran: &Ran) -> Option<i64> {
    let i = ran.rows.columns.iter().position(|c| c == "stacks")?;
    int(&row[i])
}

/// A value of the capture's `captures_v` row.
fn info<'a>(c: &'a CaptureData, name: &str) -> Option<&'a Value> {
    let i = c.info.columns.iter().position(|x| x == name)?;
    c.info.rows.first().map(|r| &r[i])
}

fn first_row<'a>(ran: Option<&'a Ran>, name: &str) -> Option<&'a Value> {
    let ran = ran?;
    let i = ran.rows.columns.iter().position(|x| x == name)?;
    ran.rows.rows.first().map(|r| &r[i])
}

fn get<'a>(ran: &'a Ran, row: &'a [Value], name: &str) -> &'a Value {
    ran.rows
        .columns
        .iter()
        .position(|x| x == name)
        .map(|i| &row[i])
        .unwrap_or(&Value::Null)
}

fn capture_name(c: &CaptureData) -> String {
    let file = info(c, "file_name").map(text_of).unwrap_or_default();
    format!("capture {} ({file})", c.id)
}

pub fn render(d: &Data) -> String {
    let c = &d.main;
    let db = d.options.db_name.as_str();
    let mut body = String::new();
    let pid_note = d.options.pid.map(|pid| {
        let name = c
            .processes
            .iter()
            .find(|(p, _)| *p == pid)
            .map(|(_, n)| n.clone())
            .unwrap_or_default();
        format!("process {pid} {name}")
    });
    let title = match (&d.compare, &pid_note) {
        (Some(a), _) => format!(
            "Heap report: {} compared with {}",
            capture_name(c),
            capture_name(a)
        ),
        (None, Some(p)) => format!("Heap report: {}, {p}", capture_name(c)),
        (None, None) => format!("Heap report: {}", capture_name(c)),
    };
    let _ = write!(body, "<header><h1>{}</h1>", esc(&title));
    header(&mut body, c, pid_note.as_deref());
    body.push_str("</header>");
    body.push_str("<nav aria-label=\"Sections\"><ul>");
    if d.compare.is_some() {
        body.push_str("<li><a href=\"#compare\">Compared</a></li>");
    }
    body.push_str("<li><a href=\"#outstanding\">Outstanding bytes</a></li><li><a href=\"#activity\">Realloc activity</a></li><li><a href=\"#sizes\">Sizes and heap paths</a></li><li><a href=\"#sites\">Call sites</a></li><li><a href=\"#chains\">Growth chains</a></li><li><a href=\"#about\">How this page was made</a></li></ul></nav><main>");
    if let (Some(a), Some(diff)) = (&d.compare, &d.diff) {
        compare(&mut body, db, c, a, diff);
    }
    outstanding(&mut body, db, c, "outstanding", d.options.pid.is_some());
    activity(&mut body, db, c);
    sizes(&mut body, db, c);
    sites(&mut body, db, c);
    chains(&mut body, db, c);
    about(&mut body, d);
    body.push_str("</main>");

    let mut out = String::with_capacity(body.len() + CSS.len() + JS.len() + 512);
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><meta name=\"generator\" content=\"heapdb {}\"><title>{}</title><style>{}</style></head><body data-ready=\"0\"><div id=\"js-errors\" role=\"alert\" hidden></div><div id=\"tip\" role=\"status\" aria-live=\"polite\" hidden></div>{}<script>{}</script></body></html>\n",
        env!("CARGO_PKG_VERSION"),
        esc(&title),
        CSS,
        body,
        JS
    );
    out
}

fn header(out: &mut String, c: &CaptureData, pid_note: Option<&str>) {
    let v = |n: &str| info(c, n).map(text_of).unwrap_or_default();
    let q = c.get("data-quality");
    let qv = |n: &str| first_row(q, n).cloned().unwrap_or(Value::Null);
    let labels = v("labels");
    let host = labels
        .split(' ')
        .find_map(|l| l.strip_prefix("host="))
        .map(str::to_string);
    let machine = format!(
        "{}{} CPUs, {}-bit Windows {} build {}",
        host.map(|h| format!("{h}: ")).unwrap_or_default(),
        v("cpu_count"),
        info(c, "pointer_size")
            .and_then(int)
            .map_or("?".to_string(), |p| (p * 8).to_string()),
        v("os_version"),
        v("os_build")
    );
    out.push_str("<dl class=\"facts\">");
    let mut fact = |k: &str, val: String, v: Option<&Value>| {
        let _ = write!(
            out,
            "<div><dt>{}</dt><dd{}>{}</dd></div>",
            esc(k),
            v.map(|v| format!(" data-v=\"{}\"", esc(&raw(v))))
                .unwrap_or_default(),
            esc(&val)
        );
    };
    fact("File", v("file_name"), None);
    fact("Machine", machine, None);
    fact(
        "Started",
        format!(
            "{} (UTC)",
            v("start_time").replace('T', " ").replace('Z', "")
        ),
        None,
    );
    let secs = info(c, "seconds_traced").and_then(real).unwrap_or(0.0);
    fact(
        "Duration",
        chart::seconds_short(secs),
        info(c, "seconds_traced"),
    );
    let decoded = info(c, "events_decoded").cloned().unwrap_or(Value::Null);
    fact(
        "Heap events",
        cell_text(&decoded, Kind::Count),
        Some(&decoded),
    );
    let reallocs = qv("reallocs");
    fact(
        "Reallocs",
        cell_text(&reallocs, Kind::Count),
        Some(&reallocs),
    );
    let lost = qv("events_lost");
    fact(
        "Events lost",
        format!(
            "{}{}",
            cell_text(&lost, Kind::Count),
            match int(&qv("buffers_lost")) {
                Some(b) if b > 0 => format!(" (and {b} buffers)"),
                _ => String::new(),
            }
        ),
        Some(&lost),
    );
    fact(
        "Processes",
        c.processes.len().to_string(),
        Some(&Value::Integer(c.processes.len() as i64)),
    );
    if !labels.is_empty() {
        fact("Labels", labels.clone(), None);
    }
    if let Some(p) = pid_note {
        fact("Shown", format!("{p} only"), None);
    }
    out.push_str("</dl>");

    // Data quality in plain words: the report's notes, plus what the page cannot show.
    let mut warnings: Vec<String> = Vec::new();
    if let Value::Text(notes) = qv("notes") {
        warnings.extend(
            notes
                .split("; ")
                .filter(|s| !s.trim().is_empty())
                .map(str::to_string),
        );
    }
    if int(&decoded).unwrap_or(0) == 0 {
        warnings.push("this capture holds no heap events: there is nothing to draw (was the heap provider enabled for the traced process?)".into());
    } else if int(&qv("stacks_matched")).unwrap_or(0) == 0 {
        warnings.push("no call stacks were recorded: call sites are shown by heap (record with stack walks for heap Alloc/ReAlloc to see who allocated)".into());
    }
    if v("status") != "complete" {
        warnings.push(format!("the capture's ingest status is {:?}", v("status")));
    }
    if warnings.is_empty() {
        out.push_str("<p class=\"ok\" id=\"quality\">Data quality: no events lost, nothing to warn about.</p>");
    } else {
        out.push_str("<section id=\"quality\" class=\"warnings\" aria-label=\"Data quality\"><h2>Data quality</h2><ul>");
        for w in &warnings {
            let mut s = w.clone();
            if let Some(f) = s.get(..1) {
                s = f.to_uppercase() + &s[1..];
            }
            let _ = write!(out, "<li>{}.</li>", esc(s.trim_end_matches('.')));
        }
        out.push_str("</ul></section>");
    }
}

/// Series of an `outstanding-size` run: one per (pid, series), in the report's order,
/// the ones with the highest outstanding bytes first, at most `max`.
fn outstanding_series(ran: &Ran, max: usize) -> (Vec<Series>, usize) {
    let rows = &ran.rows;
    let (Ok(pi), Ok(si), Ok(ti), Ok(bi), Ok(ni)) = (
        rows.col("pid"),
        rows.col("series"),
        rows.col("time_s"),
        rows.col("outstanding_bytes"),
        rows.col("process"),
    ) else {
        return (Vec::new(), 0);
    };
    let mut by: BTreeMap<(i64, String), (String, Points, f64)> = BTreeMap::new();
    for r in &rows.rows {
        let key = (int(&r[pi]).unwrap_or(0), text_of(&r[si]));
        let e = by.entry(key.clone()).or_insert_with(|| {
            let name = text_of(&r[ni]);
            let label = if key.1.is_empty() {
                format!("{name} ({})", key.0)
            } else {
                format!("{} ({name} {})", key.1, key.0)
            };
            (label, Vec::new(), 0.0)
        });
        let y = real(&r[bi]).unwrap_or(0.0);
        e.1.push((real(&r[ti]).unwrap_or(0.0), y));
        e.2 = f64::max(e.2, y);
    }
    let total = by.len();
    let mut v: Vec<_> = by.into_values().collect();
    v.sort_by(|a, b| b.2.total_cmp(&a.2).then(a.0.cmp(&b.0)));
    v.truncate(max);
    (
        v.into_iter()
            .map(|(label, mut points, _)| {
                // Start at zero at the capture's first event, as WPA draws it.
                if points.first().is_some_and(|p| p.0 > 0.0) {
                    points.insert(0, (0.0, 0.0));
                }
                Series { label, points }
            })
            .collect(),
        total,
    )
}

fn outstanding(out: &mut String, db: &str, c: &CaptureData, id: &str, pid_given: bool) {
    let _ = write!(
        out,
        "<section id=\"{id}\"><h2>Outstanding bytes over time</h2><p class=\"lead\">Bytes allocated during the trace and not yet freed, at the end of each of {} equal time slices, per process: the graph WPA shows first. The marked point is each drawn process's exact peak.</p>",
        super::OUTSTANDING_BUCKETS
    );
    let Some((series, total, source)) = process_series(db, c, super::MAX_PROCESS_SERIES) else {
        out.push_str("</section>");
        return;
    };
    if series.is_empty() {
        out.push_str("<p class=\"empty\">No block was allocated during this capture: nothing to draw.</p></section>");
        return;
    }
    let mut marks = Vec::new();
    if let Some(peak) = c.get("peak") {
        let mut seen = BTreeSet::new();
        for r in &peak.rows.rows {
            let pid = int(get(peak, r, "pid")).unwrap_or(0);
            let name = text_of(get(peak, r, "process"));
            if !series.iter().any(|s| s.label == format!("{name} ({pid})")) || !seen.insert(pid) {
                continue;
            }
            if let (Some(t), Some(b)) = (
                real(get(peak, r, "peak_time_s")),
                real(get(peak, r, "peak_bytes")),
            ) {
                marks.push(Mark {
                    x: t,
                    y: b,
                    label: format!("peak {}", human_bytes(b)),
                });
            }
        }
    }
    let drawn = series.len();
    let lines = Lines {
        id: format!("{id}-chart"),
        title: "Outstanding bytes over time, per process".into(),
        desc: describe_series(&series, Unit::Bytes),
        x_unit: Unit::Seconds,
        y_unit: Unit::Bytes,
        x_label: "time since the first heap event".into(),
        y_label: "outstanding bytes".into(),
        series,
        marks,
        step: false,
        small: false,
    };
    let caption = if total > drawn {
        format!("{drawn} of {total} processes drawn: the ones that held the most; every process is in the table below.")
    } else {
        format!(
            "{drawn} process{} drawn.",
            if drawn == 1 { "" } else { "es" }
        )
    };
    out.push_str(&lines.render(&esc(&caption)));
    out.push_str(&source);
    if let Some(peak) = c.get("peak") {
        report_table(
            out,
            db,
            peak,
            c,
            TableSpec::new(
                &format!("{id}-peaks"),
                "Peak per process, and the call sites holding most of it at that instant",
                &[
                    col("process", "Process", Kind::Text),
                    col("pid", "PID", Kind::Id),
                    col("peak_bytes", "Peak", Kind::Bytes),
                    col("peak_time_s", "At", Kind::Seconds),
                    col("end_bytes", "At the end", Kind::Bytes),
                    col("rank", "#", Kind::Count),
                    col("site", "Call site", Kind::Text),
                    col("site_bytes", "Its bytes", Kind::Bytes),
                    col("share_pct", "Share", Kind::Pct),
                ],
            )
            .stacks("stack_id")
            .bar("site_bytes"),
        );
    }
    for (key, what) in [("by-heap", "heap"), ("by-site", "call site")] {
        let Some(ran) = c.get(key) else {
            if key == "by-site" {
                site_hint(out, db, c);
            }
            continue;
        };
        let (series, total) = outstanding_series(ran, super::MAX_BREAKDOWN_SERIES as usize);
        let _ = write!(
            out,
            "<details class=\"more\"{}><summary>Outstanding bytes per {what} (the {} with the highest peaks)</summary>",
            if pid_given { " open" } else { "" },
            if what == "heap" { "heaps" } else { "call sites" }
        );
        if series.is_empty() {
            out.push_str("<p class=\"empty\">Nothing to draw.</p></details>");
            continue;
        }
        let drawn = series.len();
        let lines = Lines {
            id: format!("{id}-{key}"),
            title: format!("Outstanding bytes over time, per {what}"),
            desc: describe_series(&series, Unit::Bytes),
            x_unit: Unit::Seconds,
            y_unit: Unit::Bytes,
            x_label: "time since the first heap event".into(),
            y_label: "outstanding bytes".into(),
            series,
            marks: Vec::new(),
            step: false,
            small: false,
        };
        out.push_str(&lines.render(&esc(&format!(
            "{drawn} series drawn ({total} in the report's rows: the top {} by peak{}).",
            super::MAX_BREAKDOWN_SERIES,
            if pid_given {
                ""
            } else {
                " across all processes; give --pid for one process's"
            }
        ))));
        let _ = write!(
            out,
            "<p class=\"cmd\">Same series: <code>{}</code></p></details>",
            esc(&command(db, ran))
        );
    }
    out.push_str("</section>");
}

/// The per-process series: the report's by=process rows, or (when the capture has few
/// heaps) its by=heap rows added up per process, which are the same numbers from the
/// scan the per-heap chart needs anyway. Also says, as HTML, where they come from.
fn process_series(db: &str, c: &CaptureData, max: usize) -> Option<(Vec<Series>, usize, String)> {
    if let Some(ran) = c.get("outstanding") {
        let (s, n) = outstanding_series(ran, max);
        let src = format!(
            "<p class=\"cmd\">Same series: <code>{}</code></p>",
            esc(&command(db, ran))
        );
        return Some((s, n, src));
    }
    let ran = c.get("by-heap")?;
    let rows = &ran.rows;
    let (pi, ti, bi, ni) = (
        rows.col("pid").ok()?,
        rows.col("time_s").ok()?,
        rows.col("outstanding_bytes").ok()?,
        rows.col("process").ok()?,
    );
    let bucket = rows.col("bucket").ok()?;
    // (pid, bucket) -> (time, bytes), added up over the process's heaps.
    let mut sums: BTreeMap<(i64, i64), (f64, f64)> = BTreeMap::new();
    let mut names: BTreeMap<i64, String> = BTreeMap::new();
    for r in &rows.rows {
        let pid = int(&r[pi]).unwrap_or(0);
        names.entry(pid).or_insert_with(|| text_of(&r[ni]));
        let e = sums
            .entry((pid, int(&r[bucket]).unwrap_or(0)))
            .or_insert((real(&r[ti]).unwrap_or(0.0), 0.0));
        e.1 += real(&r[bi]).unwrap_or(0.0);
    }
    let mut per: BTreeMap<i64, (Vec<(f64, f64)>, f64)> = BTreeMap::new();
    for ((pid, _), (t, b)) in sums {
        let e = per.entry(pid).or_default();
        e.0.push((t, b));
        e.1 = e.1.max(b);
    }
    let total = per.len();
    let mut v: Vec<(i64, Points, f64)> = per
        .into_iter()
        .map(|(pid, (pts, peak))| (pid, pts, peak))
        .collect();
    v.sort_by(|a, b| b.2.total_cmp(&a.2).then(a.0.cmp(&b.0)));
    v.truncate(max);
    let series = v
        .into_iter()
        .map(|(pid, mut points, _)| {
            if points.first().is_some_and(|p| p.0 > 0.0) {
                points.insert(0, (0.0, 0.0));
            }
            Series {
                label: format!("{} ({pid})", names.get(&pid).cloned().unwrap_or_default()),
                points,
            }
        })
        .collect();
    let mut by_process = ran.clone();
    by_process.params.retain(|(k, _)| k != "by" && k != "top");
    by_process
        .params
        .push(("by".into(), Value::Text("process".into())));
    let src = format!(
        "<p class=\"cmd\">Each process's series is its heaps' rows of <code>{}</code> added up; the same series: <code>{}</code></p>",
        esc(&command(db, ran)),
        esc(&command(db, &by_process))
    );
    Some((series, total, src))
}

/// Without --pid the page does not break every process down by call site (that scan
/// costs as much as the rest of the page); it says how to get it.
fn site_hint(out: &mut String, db: &str, c: &CaptureData) {
    out.push_str("<details class=\"more\"><summary>Outstanding bytes per call site</summary><p>Per call site, one process at a time: ");
    let cmds: Vec<String> = c
        .processes
        .iter()
        .take(8)
        .map(|(pid, name)| {
            format!(
                "<code>heapdb report --db {} --capture {} --pid {pid} --out {}-{pid}.html</code> ({})",
                esc(&shell_word(db)),
                c.id,
                esc(&name.trim_end_matches(".exe").replace(|ch: char| !ch.is_ascii_alphanumeric(), "_")),
                esc(name)
            )
        })
        .collect();
    out.push_str(&cmds.join(", "));
    out.push_str(
        ". The peak table above already names the call sites that held each peak.</p></details>",
    );
}

/// A text alternative for a line chart: each series' range and peak.
fn describe_series(series: &[Series], unit: Unit) -> String {
    let parts: Vec<String> = series
        .iter()
        .map(|s| {
            let (mut peak, mut at) = (0.0, 0.0);
            for &(x, y) in &s.points {
                if y > peak {
                    peak = y;
                    at = x;
                }
            }
            let last = s.points.last().map_or(0.0, |p| p.1);
            format!(
                "{}: highest {} at {}, {} at the end",
                s.label,
                unit.label(peak),
                chart::seconds_short(at),
                unit.label(last)
            )
        })
        .collect();
    parts.join("; ")
}

fn activity(out: &mut String, db: &str, c: &CaptureData) {
    out.push_str("<section id=\"activity\"><h2>Realloc activity</h2>");
    let Some(ran) = c.get("timeline") else {
        out.push_str("</section>");
        return;
    };
    let bucket_ms = c.bucket_ms;
    let _ = write!(
        out,
        "<p class=\"lead\">Reallocs per {} slice, split into those resized in place and those that moved (copied the block to a new address), and the bytes those moves copied (min(old size, new size) each). All processes are added up per slice.</p>",
        esc(&chart::seconds_short(bucket_ms / 1e3))
    );
    let rows = &ran.rows;
    let (Ok(bi), Ok(ri), Ok(mi), Ok(ci)) = (
        rows.col("bucket_start_ms"),
        rows.col("reallocs"),
        rows.col("moves"),
        rows.col("bytes_copied"),
    ) else {
        out.push_str("</section>");
        return;
    };
    // Sum of the report's rows per bucket (its rows are per bucket and process).
    let mut sums: BTreeMap<i64, (f64, f64, f64, f64)> = BTreeMap::new();
    for r in &rows.rows {
        let b = real(&r[bi]).unwrap_or(0.0);
        // Bucket starts are multiples of bucket_ms; key them by index.
        let k = (b / bucket_ms).round() as i64;
        let e = sums.entry(k).or_insert((b, 0.0, 0.0, 0.0));
        e.1 += real(&r[ri]).unwrap_or(0.0);
        e.2 += real(&r[mi]).unwrap_or(0.0);
        e.3 += real(&r[ci]).unwrap_or(0.0);
    }
    if sums.is_empty() {
        out.push_str(
            "<p class=\"empty\">No realloc in this capture: nothing to draw.</p></section>",
        );
        return;
    }
    let starts: Vec<f64> = sums.values().map(|v| v.0 / 1e3).collect();
    let in_place: Vec<f64> = sums.values().map(|v| v.1 - v.2).collect();
    let moved: Vec<f64> = sums.values().map(|v| v.2).collect();
    let copied: Vec<f64> = sums.values().map(|v| v.3).collect();
    let (total, total_moved, total_copied) = sums
        .values()
        .fold((0.0, 0.0, 0.0), |a, v| (a.0 + v.1, a.1 + v.2, a.2 + v.3));
    let width = bucket_ms / 1e3;
    let bars = Bars {
        id: "activity-reallocs".into(),
        title: "Reallocs over time: in place and moved".into(),
        desc: format!(
            "{} reallocs in {} slices of {}; {} moved ({:.1} %), busiest slice {} reallocs.",
            human_count(total),
            sums.len(),
            chart::seconds_short(width),
            human_count(total_moved),
            100.0 * total_moved / total.max(1.0),
            human_count(sums.values().map(|v| v.1).fold(0.0, f64::max))
        ),
        y_unit: Unit::Count,
        x_label: "time since the session start".into(),
        y_label: "reallocs per slice".into(),
        starts: starts.clone(),
        width,
        layers: vec![("in place".into(), in_place), ("moved".into(), moved)],
    };
    out.push_str(&bars.render(&esc(&format!(
        "{} reallocs, {} of them moved ({:.1} %).",
        human_count(total),
        human_count(total_moved),
        100.0 * total_moved / total.max(1.0)
    ))));
    let bars = Bars {
        id: "activity-copied".into(),
        title: "Bytes copied by moving reallocs over time".into(),
        desc: format!(
            "{} copied in total; the most in one slice: {}.",
            human_bytes(total_copied),
            human_bytes(copied.iter().copied().fold(0.0, f64::max))
        ),
        y_unit: Unit::Bytes,
        x_label: "time since the session start".into(),
        y_label: "bytes copied per slice".into(),
        starts,
        width,
        layers: vec![("bytes copied".into(), copied)],
    };
    out.push_str(&bars.render(&esc(&format!(
        "{} copied by moves in total.",
        chart::bytes_exact(total_copied)
    ))));
    // The numbers: the report's rows added up per slice.
    let _ = write!(
        out,
        "<details class=\"more\"><summary>The numbers per slice</summary><div class=\"tablewrap\"><table id=\"activity-table\" data-report=\"timeline\" data-params=\"{}\" data-sum-by=\"bucket_start_ms\"><caption>Reallocs per slice, all processes added up</caption><thead><tr><th scope=\"col\" class=\"num\" data-sort=\"num\">Slice start (ms)</th><th scope=\"col\" class=\"num\" data-sort=\"num\">Reallocs</th><th scope=\"col\" class=\"num\" data-sort=\"num\">Moves</th><th scope=\"col\" class=\"num\" data-sort=\"num\">Bytes copied</th></tr></thead><tbody>",
        esc(&params_attr(ran))
    );
    for (b, r, m, cp) in sums.values() {
        let _ = write!(
            out,
            "<tr><td class=\"num\" data-col=\"bucket_start_ms\" data-v=\"{b}\">{}</td><td class=\"num\" data-col=\"reallocs\" data-v=\"{r}\">{}</td><td class=\"num\" data-col=\"moves\" data-v=\"{m}\">{}</td><td class=\"num\" data-col=\"bytes_copied\" data-v=\"{cp}\" title=\"{} bytes\">{}</td></tr>",
            human_count(*b),
            human_count(*r),
            human_count(*m),
            human_count(*cp),
            human_bytes(*cp)
        );
    }
    let _ = write!(
        out,
        "</tbody></table></div><p class=\"cmd\">Per process: <code>{}</code></p></details></section>",
        esc(&command(db, ran))
    );
}

fn sizes(out: &mut String, db: &str, c: &CaptureData) {
    out.push_str("<section id=\"sizes\"><h2>Sizes and heap paths</h2><p class=\"lead\">Reallocs by new size (power-of-two classes) and by the heap path that served them: lookaside, low-fragmentation heap (LFH), main path, slow path, segment heap. Darker is more; each cell shows its count.</p>");
    if let Some(ran) = c.get("size-histogram") {
        let rows = &ran.rows;
        if let (Ok(zi), Ok(si), Ok(ri)) = (
            rows.col("size_class"),
            rows.col("source"),
            rows.col("reallocs"),
        ) {
            let mut classes: Vec<i64> = Vec::new();
            let mut sources: Vec<String> = Vec::new();
            // Heap paths in their Source order, as source-breakdown lists them.
            if let Some(sb) = c.get("source-breakdown") {
                if let Ok(i) = sb.rows.col("source") {
                    sources.extend(sb.rows.rows.iter().map(|r| text_of(&r[i])));
                }
            }
            let mut cells: BTreeMap<(i64, String), f64> = BTreeMap::new();
            for r in &rows.rows {
                let z = int(&r[zi]).unwrap_or(0);
                let s = text_of(&r[si]);
                if !classes.contains(&z) {
                    classes.push(z);
                }
                if !sources.contains(&s) {
                    sources.push(s.clone());
                }
                *cells.entry((z, s)).or_insert(0.0) += real(&r[ri]).unwrap_or(0.0);
            }
            classes.sort_unstable();
            if classes.is_empty() {
                out.push_str("<p class=\"empty\">No realloc in this capture: nothing to draw.</p>");
            } else {
                let heat = Heat {
                    id: "sizes-heat".into(),
                    title: "Reallocs by size class and heap path".into(),
                    desc: {
                        let top = cells
                            .iter()
                            .max_by(|a, b| a.1.total_cmp(b.1))
                            .map(|((z, s), n)| {
                                format!(
                                    "the busiest cell is {} via {s} with {} reallocs",
                                    size_class_label(*z),
                                    human_count(*n)
                                )
                            })
                            .unwrap_or_default();
                        format!(
                            "{} size classes × {} heap paths; {top}.",
                            classes.len(),
                            sources.len()
                        )
                    },
                    rows: classes.iter().map(|z| size_class_label(*z)).collect(),
                    cols: sources.clone(),
                    cells: classes
                        .iter()
                        .map(|z| {
                            sources
                                .iter()
                                .map(|s| cells.get(&(*z, s.clone())).copied().unwrap_or(0.0))
                                .collect()
                        })
                        .collect(),
                    row_label: "new size".into(),
                };
                out.push_str(&heat.render("Rows: the new size's power-of-two class (at least the first number, less than the second); columns: the Source field of the ReAlloc event."));
            }
            out.push_str("<details class=\"more\"><summary>The numbers</summary>");
            report_table(
                out,
                db,
                ran,
                c,
                TableSpec::new(
                    "sizes-table",
                    "Reallocs per size class and heap path",
                    &[
                        col("size_class", "Size class", Kind::Count),
                        col("source", "Heap path", Kind::Text),
                        col("reallocs", "Reallocs", Kind::Count),
                        col("moved", "Moved", Kind::Count),
                        col("moved_pct", "Moved %", Kind::Pct),
                        col("bytes", "Bytes", Kind::Bytes),
                    ],
                )
                .bar("reallocs"),
            );
            out.push_str("</details>");
        }
    }
    if let Some(ran) = c.get("source-breakdown") {
        report_table(
            out,
            db,
            ran,
            c,
            TableSpec::new(
                "sources-table",
                "Heap paths",
                &[
                    col("source", "Heap path", Kind::Text),
                    col("reallocs", "Reallocs", Kind::Count),
                    col("moved", "Moved", Kind::Count),
                    col("realloc_bytes", "Realloc bytes", Kind::Bytes),
                    col("bytes_grown", "Bytes grown", Kind::Bytes),
                    col("allocs", "Allocs", Kind::Count),
                    col("alloc_bytes", "Alloc bytes", Kind::Bytes),
                    col("frees", "Frees", Kind::Count),
                ],
            )
            .bar("reallocs"),
        );
    }
    out.push_str("</section>");
}

/// A size class [2^k, 2^(k+1)) as people read it: "8–16 B", "1–2 MiB".
fn size_class_label(z: i64) -> String {
    let unit = |v: i64| {
        if v >= 1 << 30 && v % (1 << 30) == 0 {
            (v >> 30, "GiB")
        } else if v >= 1 << 20 && v % (1 << 20) == 0 {
            (v >> 20, "MiB")
        } else if v >= 1 << 10 && v % (1 << 10) == 0 {
            (v >> 10, "KiB")
        } else {
            (v, "B")
        }
    };
    if z <= 0 {
        return "0 B".to_string();
    }
    let (a, ua) = unit(z);
    let (b, ub) = unit(z.saturating_mul(2));
    if ua == ub {
        format!("{a}–{b} {ua}")
    } else {
        format!("{a} {ua}–{b} {ub}")
    }
}

fn sites(out: &mut String, db: &str, c: &CaptureData) {
    out.push_str("<section id=\"sites\"><h2>Call sites</h2><p class=\"lead\">Who reallocates most, whose reallocs copy the most bytes, and who holds the most memory when the trace ends. A call site is the first frame outside the heap and the allocator functions, by function name where symbols were resolved (<code>heapdb symbolize</code>), else module+offset. Open a site to see its whole stack, innermost frame first.</p>");
    let realloc_cols = [
        col("site", "Call site", Kind::Text),
        col("process", "Process", Kind::Text),
        col("pid", "PID", Kind::Id),
        col("reallocs", "Reallocs", Kind::Count),
        col("moved_pct", "Moved", Kind::Pct),
        col("bytes_grown", "Bytes grown", Kind::Bytes),
        col("bytes_copied", "Bytes copied", Kind::Bytes),
        col("max_size", "Largest", Kind::Bytes),
        col("stacks", "Stacks", Kind::Count),
    ];
    for (key, id, caption, bar) in [
        ("top-reallocs", "sites-reallocs", "By reallocs", "reallocs"),
        (
            "top-copied",
            "sites-copied",
            "By bytes copied",
            "bytes_copied",
        ),
    ] {
        if let Some(ran) = c.get(key) {
            report_table(
                out,
                db,
                ran,
                c,
                TableSpec::new(id, caption, &realloc_cols)
                    .stacks("stack_id")
                    .bar(bar),
            );
        }
    }
    if let Some(ran) = c.get("at-end") {
        report_table(
            out,
            db,
            ran,
            c,
            TableSpec::new(
                "sites-at-end",
                "Outstanding at the end (allocated in the trace, still live when it ends)",
                &[
                    col("site", "Call site", Kind::Text),
                    col("process", "Process", Kind::Text),
                    col("pid", "PID", Kind::Id),
                    col("blocks", "Blocks", Kind::Count),
                    col("bytes", "Bytes", Kind::Bytes),
                    col("via_realloc", "Via realloc", Kind::Count),
                    col("oldest_age_ms", "Oldest age", Kind::Millis),
                    col("stacks", "Stacks", Kind::Count),
                ],
            )
            .stacks("stack_id")
            .bar("bytes"),
        );
    }
    out.push_str("</section>");
}

fn chains(out: &mut String, db: &str, c: &CaptureData) {
    out.push_str("<section id=\"chains\"><h2>Growth chains</h2><p class=\"lead\">A growth chain is one logical buffer followed through its reallocs. Drawn as steps: its size over time, from its first block. The longest chains, and the ones whose moves copied the most bytes.</p>");
    let mut drawn = BTreeSet::new();
    let mut figures = String::new();
    for key in ["chains-long", "chains-copied"] {
        let Some(ran) = c.get(key) else { continue };
        for r in &ran.rows.rows {
            let Some(chain) = int(get(ran, r, "chain_id")) else {
                continue;
            };
            if !drawn.insert(chain) {
                continue;
            }
            let Some((steps, n)) = c.chain_steps.get(&chain) else {
                continue;
            };
            let Some(&(_, t0, _)) = steps.first() else {
                continue;
            };
            let points: Vec<(f64, f64)> = steps
                .iter()
                .map(|&(_, t, s)| ((t - t0) as f64 / 1e6, s as f64))
                .collect();
            let process = text_of(get(ran, r, "process"));
            let pid = int(get(ran, r, "pid")).unwrap_or(0);
            let site = text_of(get(ran, r, "site"));
            let reallocs = int(get(ran, r, "reallocs")).unwrap_or(0);
            let first = real(get(ran, r, "first_size")).unwrap_or(0.0);
            let last = real(get(ran, r, "final_size")).unwrap_or(0.0);
            let copied = real(get(ran, r, "bytes_copied")).unwrap_or(0.0);
            let title = format!(
                "Chain {chain}: {process} ({pid}), {reallocs} reallocs, {} to {}",
                human_bytes(first),
                human_bytes(last)
            );
            let lines = Lines {
                id: format!("chain-{chain}"),
                title: title.clone(),
                desc: format!(
                    "{} moves copied {}; it ended: {}.",
                    human_count(real(get(ran, r, "moves")).unwrap_or(0.0)),
                    human_bytes(copied),
                    text_of(get(ran, r, "final_end"))
                ),
                x_unit: Unit::Millis,
                y_unit: Unit::Bytes,
                x_label: "ms since the chain's first block".into(),
                y_label: "size".into(),
                series: vec![Series {
                    label: format!("chain {chain}"),
                    points,
                }],
                marks: Vec::new(),
                step: true,
                small: true,
            };
            let thinned = if steps.len() < *n {
                format!(" ({} of its {n} steps drawn, evenly spaced)", steps.len())
            } else {
                String::new()
            };
            figures.push_str(&lines.render(&format!(
                "<b>{}</b> ({pid}), {} reallocs, {} → {}, {} copied, ended: {}{}<br><span class=\"site\">{}</span>",
                esc(&process),
                human_count(reallocs as f64),
                esc(&human_bytes(first)),
                esc(&human_bytes(last)),
                esc(&human_bytes(copied)),
                esc(&text_of(get(ran, r, "final_end"))),
                esc(&thinned),
                esc(if site.is_empty() { "(no stack)" } else { &site })
            )));
        }
    }
    if drawn.is_empty() {
        out.push_str("<p class=\"empty\">No buffer was reallocated twice or more in this capture: no chain to draw.</p>");
    } else {
        let _ = write!(out, "<div class=\"smallmultiples\">{figures}</div>");
    }
    let cols = [
        col("process", "Process", Kind::Text),
        col("pid", "PID", Kind::Id),
        col("heap", "Heap", Kind::Hex),
        col("reallocs", "Reallocs", Kind::Count),
        col("first_size", "First size", Kind::Bytes),
        col("final_size", "Final size", Kind::Bytes),
        col("moves", "Moves", Kind::Count),
        col("bytes_copied", "Bytes copied", Kind::Bytes),
        col("duration_ms", "Duration", Kind::Millis),
        col("still_live", "Live at end", Kind::Flag),
        col("site", "Call site", Kind::Text),
    ];
    for (key, id, caption, bar) in [
        (
            "chains-long",
            "chains-long-table",
            "Longest chains",
            "reallocs",
        ),
        (
            "chains-copied",
            "chains-copied-table",
            "Chains that copied the most",
            "bytes_copied",
        ),
    ] {
        if let Some(ran) = c.get(key) {
            report_table(
                out,
                db,
                ran,
                c,
                TableSpec::new(id, caption, &cols)
                    .stacks("first_stack_id")
                    .bar(bar),
            );
        }
    }
    out.push_str("</section>");
}

/// A call site regressed when it reallocates more after than before (a new site
/// included): the measure capture-diff ranks by.
fn regressed(row: &[Value], ran: &Ran) -> bool {
    real(get(ran, row, "reallocs_b")).unwrap_or(0.0)
        > real(get(ran, row, "reallocs_a")).unwrap_or(0.0)
}

fn diff_class(row: &[Value], ran: &Ran) -> Option<&'static str> {
    regressed(row, ran).then_some("regressed")
}

fn compare(out: &mut String, db: &str, c: &CaptureData, a: &CaptureData, diff: &Ran) {
    let _ = write!(
        out,
        "<section id=\"compare\"><h2>Compared with {}</h2><p class=\"lead\">Before: {}. After: {} (this page's capture). Call sites are matched by function (and whole stacks by function), so they match across rebuilds once symbolized. Rows marked <span class=\"regressed-key\">▲ regressed</span> reallocate more after than before (new call sites included); they come first, each group in the order of the change.</p>",
        esc(&capture_name(a)),
        esc(&capture_name(a)),
        esc(&capture_name(c))
    );
    // Side by side: the two captures' facts.
    out.push_str("<div class=\"tablewrap\"><table id=\"compare-facts\"><caption>The two captures</caption><thead><tr><th scope=\"col\"></th><th scope=\"col\" class=\"num\">Before</th><th scope=\"col\" class=\"num\">After</th><th scope=\"col\" class=\"num\">Change</th></tr></thead><tbody>");
    let facts: [(&str, &str, Kind); 4] = [
        ("Duration", "seconds_traced", Kind::Seconds),
        ("Heap events", "events_decoded", Kind::Count),
        ("Events lost", "events_lost", Kind::Count),
        ("Reallocs", "reallocs", Kind::Count),
    ];
    for (label, name, kind) in facts {
        let pick = |x: &CaptureData| {
            info(x, name)
                .cloned()
                .or_else(|| first_row(x.get("data-quality"), name).cloned())
                .unwrap_or(Value::Null)
        };
        let (va, vb) = (pick(a), pick(c));
        let change = match (real(&va), real(&vb)) {
            (Some(x), Some(y)) if kind == Kind::Count => {
                cell_text(&Value::Real(y - x), Kind::Delta)
            }
            _ => String::new(),
        };
        let _ = write!(
            out,
            "<tr><th scope=\"row\">{label}</th><td class=\"num\" data-v=\"{}\">{}</td><td class=\"num\" data-v=\"{}\">{}</td><td class=\"num\">{}</td></tr>",
            esc(&raw(&va)),
            esc(&cell_text(&va, kind)),
            esc(&raw(&vb)),
            esc(&cell_text(&vb, kind)),
            esc(&change)
        );
    }
    out.push_str("</tbody></table></div>");
    // Regressions first, each group in the report's order.
    let mut order: Vec<usize> = (0..diff.rows.len())
        .filter(|&i| regressed(&diff.rows.rows[i], diff))
        .collect();
    order.extend((0..diff.rows.len()).filter(|&i| !regressed(&diff.rows.rows[i], diff)));
    report_table(
        out,
        db,
        diff,
        c,
        TableSpec::new(
            "compare-diff",
            "Call sites that changed most (by the change in reallocs)",
            &[
                col("site", "Call site", Kind::Text),
                col("process", "Process", Kind::Text),
                col("status", "Status", Kind::Text),
                col("reallocs_a", "Reallocs before", Kind::Count),
                col("reallocs_b", "Reallocs after", Kind::Count),
                col("reallocs_change", "Change", Kind::Delta),
                col("bytes_copied_a", "Copied before", Kind::Bytes),
                col("bytes_copied_b", "Copied after", Kind::Bytes),
                col("live_bytes_a", "Live at end before", Kind::Bytes),
                col("live_bytes_b", "Live at end after", Kind::Bytes),
            ],
        )
        .rows_marked(&diff_class)
        .order(order),
    );
    // The two nights' outstanding bytes side by side.
    out.push_str("<div class=\"sidebyside\"><div>");
    let _ = write!(out, "<h3>Before: {}</h3>", esc(&capture_name(a)));
    outstanding_small(out, db, a, "compare-before");
    let _ = write!(out, "</div><div><h3>After: {}</h3>", esc(&capture_name(c)));
    outstanding_small(out, db, c, "compare-after");
    out.push_str("</div></div>");
    out.push_str("</section>");
}

fn outstanding_small(out: &mut String, db: &str, c: &CaptureData, id: &str) {
    let Some((series, total, _)) = process_series(db, c, super::MAX_PROCESS_SERIES) else {
        return;
    };
    if series.is_empty() {
        out.push_str("<p class=\"empty\">No block was allocated during this capture.</p>");
        return;
    }
    let drawn = series.len();
    let lines = Lines {
        id: id.to_string(),
        title: format!("Outstanding bytes per process, {}", capture_name(c)),
        desc: describe_series(&series, Unit::Bytes),
        x_unit: Unit::Seconds,
        y_unit: Unit::Bytes,
        x_label: "time since the first heap event".into(),
        y_label: "outstanding bytes".into(),
        series,
        marks: Vec::new(),
        step: false,
        small: true,
    };
    out.push_str(&lines.render(&esc(&format!("{drawn} of {total} processes drawn."))));
}

fn about(out: &mut String, d: &Data) {
    let db = d.options.db_name.as_str();
    out.push_str("<section id=\"about\"><h2>How this page was made</h2><p>Every number on this page is a row of one of heapdb's canned reports, run on the database as <code>heapdb query</code> runs it; the charts only arrange those rows (the realloc charts add the report's rows of all processes per slice). Charts hold at most a few thousand points: outstanding bytes in ");
    let _ = write!(
        out,
        "{} time slices, at most {} processes and {} heaps or call sites per chart; realloc activity in at most {} slices; at most {} steps per growth chain; at most {} frames per stack.",
        super::OUTSTANDING_BUCKETS,
        super::MAX_PROCESS_SERIES,
        super::MAX_BREAKDOWN_SERIES,
        super::TIMELINE_BUCKETS,
        super::MAX_CHAIN_STEPS,
        super::MAX_FRAMES
    );
    out.push_str(" The page needs no network: styles, script and charts are inside it.</p><p>The reports, to get the same rows or more of them:</p><ul class=\"commands\">");
    let mut seen = BTreeSet::new();
    for c in std::iter::once(&d.main).chain(d.compare.as_ref()) {
        for ran in c.reports.values() {
            let cmd = command(db, ran);
            if seen.insert(cmd.clone()) {
                let _ = write!(out, "<li><code>{}</code></li>", esc(&cmd));
            }
        }
    }
    if let Some(diff) = &d.diff {
        let _ = write!(out, "<li><code>{}</code></li>", esc(&command(db, diff)));
    }
    out.push_str("</ul>");
    let data = serde_json::json!({
        "heapdb": env!("CARGO_PKG_VERSION"),
        "capture": d.main.id,
        "compare": d.compare.as_ref().map(|c| c.id),
        "pid": d.options.pid,
    });
    let _ = write!(
        out,
        "<script type=\"application/json\" id=\"report-meta\">{}</script></section>",
        script_json(&data)
    );
}
