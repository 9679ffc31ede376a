//! `heapdb report`: one self-contained HTML page that shows a capture (and, with a
//! second capture, what changed): outstanding bytes over time, realloc rate, size
//! classes by heap path, top call sites with their stacks, growth chains.
//!
//! Every number on the page is a row of a canned report (`queries/*.sql`), run here
//! through [`crate::query::run_report`] exactly as `heapdb query` runs it: the page
//! has no metric of its own. What the page adds is only arrangement (which rows are
//! drawn, sums of a report's rows over processes) and it says so where it does.
//! The reports run in parallel, each on its own read-only connection.

pub mod chart;
mod fmt;
mod page;

use crate::cancel::Cancel;
use crate::query::{self, QueryError, Rows};
use rayon::prelude::*;
use rusqlite::types::Value;
use rusqlite::Connection;
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

pub use fmt::{human_bytes, human_count};

/// Points of the outstanding-bytes series (buckets across the capture).
pub const OUTSTANDING_BUCKETS: i64 = 100;
/// At most this many buckets in the realloc-rate charts.
pub const TIMELINE_BUCKETS: f64 = 200.0;
/// Processes drawn in the outstanding-bytes chart (the ones with the highest peaks).
pub const MAX_PROCESS_SERIES: usize = 8;
/// Heaps or call sites drawn per breakdown chart.
pub const MAX_BREAKDOWN_SERIES: i64 = 8;
/// Rows of each call-site table.
pub const SITE_ROWS: i64 = 15;
/// Growth chains drawn (per ordering).
pub const CHAINS: i64 = 6;
/// Steps drawn per chain; longer chains are thinned (evenly, keeping the last).
pub const MAX_CHAIN_STEPS: usize = 1000;
/// Frames shown per stack.
pub const MAX_FRAMES: i64 = 64;
/// Rows of the two-capture comparison.
pub const DIFF_ROWS: i64 = 30;

/// What to draw.
#[derive(Debug, Clone)]
pub struct Options {
    /// The capture (default: the latest).
    pub capture: Option<i64>,
    /// A second capture to compare with (the baseline: "before").
    pub compare: Option<i64>,
    /// Only this process.
    pub pid: Option<i64>,
    /// Shown in the page ("heapdb report --db NAME"), so its commands can be rerun.
    pub db_name: String,
    /// Up to this many heaps, the per-process series are the per-heap rows added up
    /// ([`MAX_HEAPS_SUMMED`]); beyond, `outstanding-size by=process` runs as well.
    pub max_heaps_summed: i64,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            capture: None,
            compare: None,
            pid: None,
            db_name: String::new(),
            max_heaps_summed: MAX_HEAPS_SUMMED,
        }
    }
}

/// One canned report's run: its name, the parameters given (the rest are the
/// report's defaults) and its rows.
#[derive(Debug, Clone)]
pub struct Ran {
    pub report: &'static str,
    pub params: Vec<(String, Value)>,
    pub rows: Rows,
}

impl Ran {
    /// `--param k=v` as `heapdb query` takes it, to print under a table.
    pub fn command_params(&self) -> String {
        self.params
            .iter()
            .map(|(k, v)| format!(" -p {k}={}", value_text(v)))
            .collect()
    }
}

pub(crate) fn value_text(v: &Value) -> String {
    match v {
        Value::Null => "all".to_string(),
        Value::Integer(i) => i.to_string(),
        Value::Real(r) => r.to_string(),
        Value::Text(t) => t.clone(),
        Value::Blob(b) => format!("{} bytes", b.len()),
    }
}

/// A frame as the page shows it: `module!function+0xOFF`, file:line, inlined functions.
pub type Frame = (String, Option<String>, Option<String>);
/// A growth chain's steps (chain_index, start ns, size), thinned, and how many it had.
pub type ChainSteps = (Vec<(i64, i64, i64)>, usize);
/// A finished report run: capture, key, rows, time taken.
type Done = (i64, &'static str, Ran, Duration);

/// What the page shows of one capture.
#[derive(Debug, Clone)]
pub struct CaptureData {
    pub id: i64,
    /// `captures_v`'s row of the capture (one row).
    pub info: Rows,
    /// The capture's time span: first and last heap event, session start (ns).
    pub first_event_ns: Option<i64>,
    pub last_event_ns: Option<i64>,
    pub start_time_ns: Option<i64>,
    /// Processes with heap events in the capture: (pid, name).
    pub processes: Vec<(i64, String)>,
    /// Heaps with events in the capture (of the process, with --pid).
    pub heaps: i64,
    pub bucket_ms: f64,
    pub reports: BTreeMap<&'static str, Ran>,
    /// Blocks of each drawn growth chain (chain_id → chain_index, start_ns, size),
    /// thinned to [`MAX_CHAIN_STEPS`]; and how many steps the chain had.
    pub chain_steps: BTreeMap<i64, ChainSteps>,
    /// Frames of each stack a table shows (stack_id → frame, source, inlined).
    pub stacks: BTreeMap<i64, Vec<Frame>>,
}

impl CaptureData {
    pub fn get(&self, key: &str) -> Option<&Ran> {
        self.reports.get(key)
    }
}

/// Everything the page is drawn from.
#[derive(Debug, Clone)]
pub struct Data {
    pub options: Options,
    pub main: CaptureData,
    pub compare: Option<CaptureData>,
    /// capture-diff a=compare b=main.
    pub diff: Option<Ran>,
    /// How long gathering took (per report, for `--verbose`-style notes and the benchmark).
    pub timings: Vec<(String, Duration)>,
}

fn sql_err(e: rusqlite::Error) -> QueryError {
    QueryError::Sql {
        message: e.to_string(),
        location: None,
    }
}

fn int(v: &Value) -> Option<i64> {
    match v {
        Value::Integer(i) => Some(*i),
        Value::Real(r) => Some(*r as i64),
        _ => None,
    }
}

fn real(v: &Value) -> Option<f64> {
    match v {
        Value::Integer(i) => Some(*i as f64),
        Value::Real(r) => Some(*r),
        _ => None,
    }
}

/// The capture ids of the database, in id order.
fn capture_ids(conn: &Connection) -> Result<Vec<i64>, QueryError> {
    let mut st = conn
        .prepare("SELECT capture_id FROM captures ORDER BY capture_id")
        .map_err(sql_err)?;
    let ids = st
        .query_map([], |r| r.get(0))
        .map_err(sql_err)?
        .collect::<rusqlite::Result<Vec<i64>>>()
        .map_err(sql_err)?;
    Ok(ids)
}

fn ids_text(ids: &[i64]) -> String {
    let shown: Vec<String> = ids.iter().take(20).map(|i| i.to_string()).collect();
    let more = if ids.len() > 20 {
        format!(" and {} more", ids.len() - 20)
    } else {
        String::new()
    };
    format!("{}{more}", shown.join(", "))
}

/// A nice bucket width (1, 2 or 5 × 10^k ms) that cuts `span_ms` into at most
/// [`TIMELINE_BUCKETS`] buckets.
pub fn bucket_width_ms(span_ms: f64) -> f64 {
    let raw = (span_ms / TIMELINE_BUCKETS).max(1e-3);
    let p = 10f64.powf(raw.log10().floor());
    for m in [1.0, 2.0, 5.0, 10.0] {
        if m * p >= raw {
            // 5 × 0.01 is 0.05000000000000001 in binary: round to what a person types.
            return ((m * p) * 1e9).round() / 1e9;
        }
    }
    10.0 * p
}

/// The capture's facts and processes (cheap: one row, one index scan).
fn capture_facts(conn: &Connection, id: i64, pid: Option<i64>) -> Result<CaptureData, QueryError> {
    let info = query::collect(
        conn,
        "SELECT * FROM captures_v WHERE capture_id = :c",
        &[("c".into(), Value::Integer(id))],
    )?;
    let (first, last, start) = conn
        .query_row(
            "SELECT first_event_ns, last_event_ns, start_time_ns FROM captures WHERE capture_id = ?1",
            [id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .map_err(sql_err)?;
    let mut st = conn
        .prepare(
            "SELECT h.pid, coalesce(p.name, '') FROM (SELECT DISTINCT pid FROM heap_event_counts WHERE capture_id = ?1) h
             LEFT JOIN process_names p ON p.capture_id = ?1 AND p.pid = h.pid
             ORDER BY h.pid",
        )
        .map_err(sql_err)?;
    let processes = st
        .query_map([id], |r| Ok((r.get(0)?, r.get(1)?)))
        .map_err(sql_err)?
        .collect::<rusqlite::Result<Vec<(i64, String)>>>()
        .map_err(sql_err)?;
    let heaps = conn
        .query_row(
            "SELECT count(*) FROM (SELECT DISTINCT pid, heap FROM heap_event_counts
             WHERE capture_id = ?1 AND (?2 IS NULL OR pid = ?2))",
            rusqlite::params![id, pid],
            |r| r.get(0),
        )
        .map_err(sql_err)?;
    let span_ms = match (first, last) {
        (Some(a), Some(b)) => ((b - a) as f64 / 1e6).max(0.0),
        _ => 0.0,
    };
    // Buckets count from the session start (timeline's bucket_start_ms), so the span
    // to cover runs from the session start to the last event.
    let span_ms = match (start, last) {
        (Some(s), Some(b)) => ((b - s) as f64 / 1e6).max(span_ms),
        _ => span_ms,
    };
    Ok(CaptureData {
        id,
        info,
        first_event_ns: first,
        last_event_ns: last,
        start_time_ns: start,
        processes,
        heaps,
        bucket_ms: bucket_width_ms(span_ms),
        reports: BTreeMap::new(),
        chain_steps: BTreeMap::new(),
        stacks: BTreeMap::new(),
    })
}

/// A report run to schedule: which capture it belongs to, a key, the report, params.
struct Job {
    capture: i64,
    key: &'static str,
    report: &'static str,
    params: Vec<(String, Value)>,
}

fn txt(s: &str) -> Value {
    Value::Text(s.to_string())
}

fn p(k: &str, v: impl Into<Value>) -> (String, Value) {
    (k.to_string(), v.into())
}

/// Up to this many heaps, the per-process series are the report's per-heap rows added
/// up (one scan of the blocks for both charts); beyond, both are run.
pub const MAX_HEAPS_SUMMED: i64 = 400;

fn jobs_for(c: &CaptureData, opts: &Options, full: bool) -> Vec<Job> {
    let pid = opts.pid;
    let cap = p("capture", c.id);
    let pid_v = p("pid", pid.map_or(Value::Null, Value::Integer));
    let mut jobs = Vec::new();
    // The most expensive first: two threads then finish together.
    let mut add = |key, report, params: Vec<(String, Value)>| {
        jobs.push(Job {
            capture: c.id,
            key,
            report,
            params,
        })
    };
    let outstanding = |by: &str, top: Option<i64>| {
        let mut v = vec![
            cap.clone(),
            pid_v.clone(),
            p("by", txt(by)),
            p("buckets", OUTSTANDING_BUCKETS),
        ];
        if let Some(t) = top {
            v.push(p("top", t));
        }
        v
    };
    if c.heaps <= opts.max_heaps_summed {
        add(
            "by-heap",
            "outstanding-size",
            outstanding("heap", Some(c.heaps.max(1))),
        );
    } else {
        add(
            "outstanding",
            "outstanding-size",
            outstanding("process", None),
        );
        if full {
            add(
                "by-heap",
                "outstanding-size",
                outstanding("heap", Some(MAX_BREAKDOWN_SERIES)),
            );
        }
    }
    if full && pid.is_some() {
        add(
            "by-site",
            "outstanding-size",
            outstanding("site", Some(MAX_BREAKDOWN_SERIES)),
        );
    }
    if !full {
        // The baseline of a comparison: its facts and its outstanding bytes; the call
        // sites of both nights are capture-diff's rows.
        add("data-quality", "data-quality", vec![cap]);
        return jobs;
    }
    add(
        "peak",
        "peak-usage",
        vec![cap.clone(), pid_v.clone(), p("sites", 5)],
    );
    add(
        "chains-copied",
        "growth-chains",
        vec![
            cap.clone(),
            pid_v.clone(),
            p("order", txt("copied")),
            p("limit", CHAINS),
        ],
    );
    add(
        "timeline",
        "timeline",
        vec![cap.clone(), pid_v.clone(), p("bucket_ms", c.bucket_ms)],
    );
    for (key, order) in [("top-reallocs", "reallocs"), ("top-copied", "bytes_copied")] {
        add(
            key,
            "top-realloc-sites",
            vec![
                cap.clone(),
                pid_v.clone(),
                p("order", txt(order)),
                p("limit", SITE_ROWS),
            ],
        );
    }
    add(
        "size-histogram",
        "size-histogram",
        vec![cap.clone(), pid_v.clone()],
    );
    add(
        "source-breakdown",
        "source-breakdown",
        vec![cap.clone(), pid_v.clone()],
    );
    add(
        "chains-long",
        "growth-chains",
        vec![
            cap.clone(),
            pid_v.clone(),
            p("order", txt("length")),
            p("limit", CHAINS),
        ],
    );
    add(
        "at-end",
        "outstanding-at-end",
        vec![cap.clone(), pid_v.clone(), p("limit", SITE_ROWS)],
    );
    add("data-quality", "data-quality", vec![cap]);
    jobs
}

/// Gathers everything the page shows. `open` opens a read-only connection to the
/// database (one per report running in parallel).
pub fn gather<F>(opts: &Options, open: F, cancel: &Cancel) -> Result<Data, QueryError>
where
    F: Fn() -> Result<Connection, QueryError> + Sync,
{
    let t0 = Instant::now();
    let conn = open()?;
    let ids = capture_ids(&conn)?;
    let Some(&latest) = ids.last() else {
        return Err(QueryError::Usage(format!(
            "{}: the database holds no capture yet (load one with heapdb ingest)",
            opts.db_name
        )));
    };
    let check = |flag: &str, id: i64| {
        if ids.contains(&id) {
            Ok(id)
        } else {
            Err(QueryError::Usage(format!(
                "{flag} {id}: no such capture in {} (captures: {})",
                opts.db_name,
                ids_text(&ids)
            )))
        }
    };
    let main_id = check("--capture", opts.capture.unwrap_or(latest))?;
    let compare_id = opts.compare.map(|c| check("--compare", c)).transpose()?;
    if compare_id == Some(main_id) {
        return Err(QueryError::Usage(format!(
            "--compare {main_id}: that is the capture itself; give another capture (captures: {})",
            ids_text(&ids)
        )));
    }
    let mut main = capture_facts(&conn, main_id, opts.pid)?;
    let mut compare = compare_id
        .map(|c| capture_facts(&conn, c, opts.pid))
        .transpose()?;
    if let Some(pid) = opts.pid {
        let known = |c: &CaptureData| c.processes.iter().any(|(p, _)| *p == pid);
        if !known(&main) && !compare.as_ref().is_some_and(known) {
            let list: Vec<String> = main
                .processes
                .iter()
                .take(30)
                .map(|(p, n)| format!("{p} {n}"))
                .collect();
            return Err(QueryError::Usage(format!(
                "--pid {pid}: no heap events of that process in capture {main_id} (its processes: {})",
                if list.is_empty() {
                    "none".to_string()
                } else {
                    list.join(", ")
                }
            )));
        }
    }
    let mut timings = vec![("facts".to_string(), t0.elapsed())];

    let mut jobs = jobs_for(&main, opts, true);
    if let Some(c) = &compare {
        jobs.extend(jobs_for(c, opts, false));
    }
    let diff_job = compare_id.map(|a| Job {
        capture: main_id,
        key: "capture-diff",
        report: "capture-diff",
        params: vec![
            p("a", a),
            p("b", main_id),
            p("group", txt("function")),
            p("limit", DIFF_ROWS),
        ],
    });
    let done: Vec<Result<Done, QueryError>> = jobs
        .into_par_iter()
        .chain(diff_job)
        .with_max_len(1)
        .map(|j| {
            let t = Instant::now();
            let conn = open()?;
            let _registered = cancel.register(conn.get_interrupt_handle(), 1);
            if cancel.requested() {
                return Err(QueryError::Interrupted);
            }
            let rows = query::run_report(&conn, j.report, &j.params)?;
            Ok((
                j.capture,
                j.key,
                Ran {
                    report: j.report,
                    params: j.params,
                    rows,
                },
                t.elapsed(),
            ))
        })
        .collect();
    let mut diff = None;
    for r in done {
        let (capture, key, ran, took) = r?;
        timings.push((format!("{key} (capture {capture})"), took));
        if key == "capture-diff" {
            diff = Some(ran);
        } else if capture == main_id {
            main.reports.insert(key, ran);
        } else if let Some(c) = compare.as_mut() {
            c.reports.insert(key, ran);
        }
    }

    let t = Instant::now();
    fill_details(&conn, &mut main)?;
    if let Some(c) = compare.as_mut() {
        fill_details(&conn, c)?;
    }
    timings.push(("stacks and chains".to_string(), t.elapsed()));
    Ok(Data {
        options: opts.clone(),
        main,
        compare,
        diff,
        timings,
    })
}

/// The stacks the site tables show and the steps of the drawn growth chains.
fn fill_details(conn: &Connection, c: &mut CaptureData) -> Result<(), QueryError> {
    let mut stack_ids = BTreeSet::new();
    for (key, col) in [
        ("top-reallocs", "stack_id"),
        ("top-copied", "stack_id"),
        ("at-end", "stack_id"),
        ("peak", "stack_id"),
        ("chains-long", "first_stack_id"),
        ("chains-copied", "first_stack_id"),
    ] {
        if let Some(r) = c.reports.get(key) {
            let i = r.rows.col(col)?;
            stack_ids.extend(r.rows.rows.iter().filter_map(|row| int(&row[i])));
        }
    }
    let mut st = conn
        .prepare(
            "SELECT frame, source, inlined FROM stack_frames_v WHERE stack_id = ?1 ORDER BY depth LIMIT ?2",
        )
        .map_err(sql_err)?;
    for id in stack_ids {
        let frames = st
            .query_map(rusqlite::params![id, MAX_FRAMES], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .map_err(sql_err)?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(sql_err)?;
        c.stacks.insert(id, frames);
    }
    let mut chain_ids = BTreeSet::new();
    for key in ["chains-long", "chains-copied"] {
        if let Some(r) = c.reports.get(key) {
            let i = r.rows.col("chain_id")?;
            chain_ids.extend(r.rows.rows.iter().filter_map(|row| int(&row[i])));
        }
    }
    let mut st = conn
        .prepare(
            "SELECT chain_index, coalesce(start_ns, end_ns), size FROM blocks WHERE chain_id = ?1 ORDER BY chain_index",
        )
        .map_err(sql_err)?;
    for id in chain_ids {
        let steps = st
            .query_map([id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .map_err(sql_err)?
            .collect::<rusqlite::Result<Vec<(i64, Option<i64>, i64)>>>()
            .map_err(sql_err)?;
        let steps: Vec<(i64, i64, i64)> = steps
            .into_iter()
            .filter_map(|(i, t, s)| Some((i, t?, s)))
            .collect();
        let n = steps.len();
        c.chain_steps.insert(id, (thin(steps, MAX_CHAIN_STEPS), n));
    }
    Ok(())
}

/// At most `max` items, evenly spaced, always keeping the first and the last.
pub fn thin<T: Clone>(v: Vec<T>, max: usize) -> Vec<T> {
    if v.len() <= max || max < 2 {
        return v;
    }
    let n = v.len();
    (0..max)
        .map(|k| v[k * (n - 1) / (max - 1)].clone())
        .collect()
}

/// Writes the page.
pub fn render(data: &Data) -> String {
    page::render(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_widths_are_round_and_bounded() {
        assert_eq!(bucket_width_ms(600.0), 5.0);
        assert_eq!(bucket_width_ms(200.0), 1.0);
        assert_eq!(bucket_width_ms(201.0), 2.0);
        assert_eq!(bucket_width_ms(3_600_000.0), 20_000.0);
        assert_eq!(bucket_width_ms(50.0), 0.5);
        assert_eq!(bucket_width_ms(3.0), 0.02);
        for span in [0.0, 1.0, 77.7, 12345.0, 9.9e7] {
            let w = bucket_width_ms(span);
            assert!(span / w <= TIMELINE_BUCKETS, "{span} {w}");
        }
    }

    #[test]
    fn thinning_keeps_ends() {
        let v: Vec<i32> = (0..10).collect();
        assert_eq!(thin(v.clone(), 4), vec![0, 3, 6, 9]);
        assert_eq!(thin(v.clone(), 20), v);
    }
}
