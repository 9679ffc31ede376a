//! `heapdb report`: the HTML page, checked two ways.
//!
//! 1. The file itself: every table that says it holds a canned report's rows
//!    (`data-report`, `data-params`) is compared, cell by cell (`data-v`), with what
//!    `heapdb query REPORT --format json` returns for the same parameters; the chart
//!    series with the report rows they were drawn from; sizes, self-containment.
//! 2. In a real browser: headless Chromium renders the page, runs its script and dumps
//!    the DOM. The script's self-check must have found every chart element laid out,
//!    no script error may have happened (in the page or on the console), the numbers in
//!    the rendered DOM must still equal the reports', and a narrow window must not need
//!    a sideways scroll. A screenshot (PNG) of each page is kept in a temporary
//!    directory and its path printed.
//!
//! Chromium: `chromium` on PATH, or HEAPDB_CHROMIUM. Without it the browser half is
//! skipped with a message, unless HEAPDB_REQUIRE_BROWSER=1 (set by .ci/run, which
//! installs it), which turns its absence into a failure.

mod common;

use common::{heapdb_bin, run, s, stderr, synth};
use serde_json::Value as J;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

// ---------------------------------------------------------------------------------
// A small reader for the page's own markup (and Chromium's serialization of it).

fn unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&nbsp;", "\u{a0}")
        .replace("&amp;", "&")
}

/// The value of attribute `name` in the tag text `tag` (`<td a="1" b="2">`).
fn attr(tag: &str, name: &str) -> Option<String> {
    let key = format!(" {name}=\"");
    let i = tag.find(&key)? + key.len();
    let j = tag[i..].find('"')? + i;
    Some(unescape(&tag[i..j]))
}

/// Every start tag `<NAME ...>` in `html`, as its text.
fn tags<'a>(html: &'a str, name: &str) -> Vec<(usize, &'a str)> {
    let open = format!("<{name}");
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(i) = html[from..].find(&open) {
        let i = from + i;
        let after = html.as_bytes().get(i + open.len()).copied();
        if matches!(after, Some(b' ') | Some(b'>')) {
            if let Some(j) = html[i..].find('>') {
                out.push((i, &html[i..=i + j]));
            }
        }
        from = i + open.len();
    }
    out
}

#[derive(Debug)]
struct Cell {
    col: String,
    v: String,
    null: bool,
}

#[derive(Debug)]
struct Table {
    id: String,
    report: String,
    params: Vec<(String, String)>,
    sum_by: Option<String>,
    /// (data-row: the index into the report's rows, cells)
    rows: Vec<(Option<usize>, Vec<Cell>)>,
}

fn report_tables(html: &str) -> Vec<Table> {
    let mut out = Vec::new();
    for (at, tag) in tags(html, "table") {
        let Some(report) = attr(tag, "data-report") else {
            continue;
        };
        let end = html[at..].find("</table>").map(|e| at + e).unwrap();
        let body = &html[at..end];
        let params = attr(tag, "data-params")
            .unwrap_or_default()
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|p| {
                let (k, v) = p.split_once('=').unwrap();
                (k.to_string(), v.to_string())
            })
            .collect();
        let mut rows = Vec::new();
        let trs = tags(body, "tr");
        for (n, (ti, tr)) in trs.iter().enumerate() {
            let row_end = trs.get(n + 1).map(|t| t.0).unwrap_or(body.len());
            let cells: Vec<Cell> = tags(&body[*ti..row_end], "td")
                .into_iter()
                .filter_map(|(_, td)| {
                    Some(Cell {
                        col: attr(td, "data-col")?,
                        v: attr(td, "data-v").unwrap_or_default(),
                        null: attr(td, "data-null").is_some(),
                    })
                })
                .collect();
            if !cells.is_empty() {
                let idx = attr(tr, "data-row").map(|r| r.parse().unwrap());
                rows.push((idx, cells));
            }
        }
        out.push(Table {
            id: attr(tag, "id").unwrap_or_default(),
            report,
            params,
            sum_by: attr(tag, "data-sum-by"),
            rows,
        });
    }
    out
}

/// The rows `heapdb query` returns for a report and parameters, as JSON objects.
fn query_json(
    db: &Path,
    report: &str,
    params: &[(String, String)],
) -> Vec<serde_json::Map<String, J>> {
    let mut args: Vec<String> = vec![
        "query".into(),
        "--db".into(),
        s(db).into(),
        report.into(),
        "--format".into(),
        "json".into(),
        "--no-hex".into(),
    ];
    for (k, v) in params {
        args.push("-p".into());
        args.push(format!("{k}={v}"));
    }
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let o = run(&refs);
    assert!(o.status.success(), "{args:?}: {}", stderr(&o));
    let v: J = serde_json::from_slice(&o.stdout).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_object().unwrap().clone())
        .collect()
}

fn same_value(cell: &Cell, json: &J) -> bool {
    match json {
        J::Null => cell.null && cell.v.is_empty(),
        J::String(t) => !cell.null && &cell.v == t,
        J::Number(n) => cell.v.parse::<f64>().ok() == n.as_f64(),
        J::Bool(b) => cell.v == (*b as i64).to_string(),
        other => panic!("unexpected JSON value {other}"),
    }
}

/// Every report table of the page equals the report's rows; returns how many cells
/// were compared.
fn check_tables(db: &Path, html: &str, what: &str) -> usize {
    let tables = report_tables(html);
    assert!(!tables.is_empty(), "{what}: no report table");
    let mut compared = 0;
    for t in &tables {
        let rows = query_json(db, &t.report, &t.params);
        if let Some(key) = &t.sum_by {
            // The report's rows added up per `key` (timeline: all processes per slice).
            let mut sums: BTreeMap<String, BTreeMap<String, f64>> = BTreeMap::new();
            for r in &rows {
                let k = r[key].as_f64().unwrap().to_string();
                let e = sums.entry(k).or_default();
                for (c, v) in r {
                    if let Some(x) = v.as_f64() {
                        *e.entry(c.clone()).or_default() += x;
                    }
                }
            }
            assert_eq!(t.rows.len(), sums.len(), "{what}: {} rows", t.id);
            for (_, cells) in &t.rows {
                let k = cells.iter().find(|c| &c.col == key).unwrap();
                let k = k.v.parse::<f64>().unwrap().to_string();
                let sum = &sums[&k];
                for c in cells.iter().filter(|c| &c.col != key) {
                    assert_eq!(
                        c.v.parse::<f64>().unwrap(),
                        sum[&c.col],
                        "{what}: {} slice {k} {}",
                        t.id,
                        c.col
                    );
                    compared += 1;
                }
            }
            continue;
        }
        // Every report row is shown (tables are the report's whole result at those
        // parameters), in the report's order unless the page says otherwise.
        assert_eq!(
            t.rows.len(),
            rows.len(),
            "{what}: table {} ({} {:?})",
            t.id,
            t.report,
            t.params
        );
        for (n, (idx, cells)) in t.rows.iter().enumerate() {
            let r = &rows[idx.unwrap_or(n)];
            for c in cells {
                let j = r
                    .get(&c.col)
                    .unwrap_or_else(|| panic!("{what}: {} has no column {}", t.report, c.col));
                assert!(
                    same_value(c, j),
                    "{what}: table {} row {n} column {}: page {:?} (null {}), report {j}",
                    t.id,
                    c.col,
                    c.v,
                    c.null
                );
                compared += 1;
            }
        }
    }
    compared
}

/// The JSON data of the chart with this id.
fn chart_data(html: &str, id: &str) -> Option<J> {
    let at = html.find(&format!("<figure class=\"chart\" id=\"{id}\""))?;
    let end = html[at..].find("</figure>")? + at;
    let fig = &html[at..end];
    let i = fig.find("class=\"chart-data\">")? + "class=\"chart-data\">".len();
    let j = fig[i..].find("</script>")? + i;
    Some(serde_json::from_str(&fig[i..j].replace("<\\/", "</")).unwrap())
}

/// Figures: (id, data-marks, data-drawn).
fn figures(html: &str) -> Vec<(String, usize, Option<usize>)> {
    tags(html, "figure")
        .into_iter()
        .filter(|(_, t)| t.contains("class=\"chart\""))
        .map(|(_, t)| {
            (
                attr(t, "id").unwrap(),
                attr(t, "data-marks").unwrap().parse().unwrap(),
                attr(t, "data-drawn").map(|d| d.parse().unwrap()),
            )
        })
        .collect()
}

// ---------------------------------------------------------------------------------
// Fixtures.

fn ingest(db: &Path, dirs: &[&Path], extra: &[&str]) {
    let mut args = vec!["ingest", "--db", s(db), "-q"];
    args.extend_from_slice(extra);
    for d in dirs {
        args.push(s(d));
    }
    let o = run(&args);
    assert!(o.status.success(), "{}", stderr(&o));
}

fn symbols_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/symbols/x64")
}

/// Writes the page; returns it.
fn report(db: &Path, out: &Path, extra: &[&str]) -> String {
    let mut args = vec!["report", "--db", s(db), "--out", s(out), "-q"];
    args.extend_from_slice(extra);
    let o = run(&args);
    assert!(o.status.success(), "{args:?}: {}", stderr(&o));
    std::fs::read_to_string(out).unwrap()
}

/// What every page must be, whatever the capture.
fn check_page(db: &Path, html: &str, what: &str) {
    assert!(html.starts_with("<!DOCTYPE html>"), "{what}");
    assert!(html.len() < 2 << 20, "{what}: {} bytes", html.len());
    // Self-contained: nothing to fetch.
    for needle in [
        "src=\"http",
        "href=\"http",
        "<link ",
        "@import",
        "url(http",
        "src=\"//",
    ] {
        assert!(!html.contains(needle), "{what}: {needle}");
    }
    // Accessible: every chart is an image with a title and a text description.
    for (_, svg) in tags(html, "svg")
        .into_iter()
        .filter(|(_, t)| t.contains("role=\"img\""))
    {
        let id = attr(svg, "id").unwrap();
        let base = id.trim_end_matches("-svg");
        for part in ["t", "d"] {
            let open = format!("id=\"{base}-{part}\">");
            let i = html
                .find(&open)
                .unwrap_or_else(|| panic!("{what}: {id} has no {part}"));
            let rest = &html[i + open.len()..];
            let text = &rest[..rest.find('<').unwrap()];
            assert!(!text.trim().is_empty(), "{what}: {id}: empty {part}");
        }
    }
    let n = check_tables(db, html, what);
    assert!(n > 0, "{what}");
}

// ---------------------------------------------------------------------------------
// The browser.

fn chromium() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("HEAPDB_CHROMIUM") {
        return Some(PathBuf::from(p));
    }
    for name in ["chromium", "chromium-browser", "google-chrome"] {
        if let Ok(o) = Command::new(name).arg("--version").output() {
            if o.status.success() {
                return Some(PathBuf::from(name));
            }
        }
    }
    if std::env::var("HEAPDB_REQUIRE_BROWSER").as_deref() == Ok("1") {
        panic!("HEAPDB_REQUIRE_BROWSER=1 but no chromium found (install the distribution's chromium package, or set HEAPDB_CHROMIUM)");
    }
    None
}

struct Rendered {
    dom: String,
    console: String,
}

fn browse(page: &Path, width: u32, screenshot: Option<&Path>) -> Option<Rendered> {
    let bin = chromium()?;
    let profile = tempfile::tempdir().unwrap();
    let url = format!("file://{}", page.canonicalize().unwrap().display());
    let common = |c: &mut Command| {
        c.args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--no-first-run",
            "--disable-extensions",
            "--enable-logging=stderr",
            "--v=0",
            "--virtual-time-budget=5000",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(format!("--window-size={width},1600"));
    };
    let mut c = Command::new(&bin);
    common(&mut c);
    let o = c.arg("--dump-dom").arg(&url).output().unwrap();
    assert!(
        o.status.success(),
        "chromium: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    if let Some(png) = screenshot {
        let mut c = Command::new(&bin);
        common(&mut c);
        let o2 = c
            .arg(format!("--window-size={width},5000"))
            .arg(format!("--screenshot={}", png.display()))
            .arg(&url)
            .output()
            .unwrap();
        assert!(
            o2.status.success(),
            "chromium screenshot: {}",
            String::from_utf8_lossy(&o2.stderr)
        );
        let bytes = std::fs::read(png).unwrap();
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "{}", png.display());
        println!("screenshot: {}", png.display());
        eprintln!("screenshot: {}", png.display());
    }
    Some(Rendered {
        dom: String::from_utf8(o.stdout).unwrap(),
        console: String::from_utf8_lossy(&o.stderr).into_owned(),
    })
}

fn screenshot_dir() -> PathBuf {
    let d = std::env::temp_dir().join("heapdb-report-screenshots");
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Renders the page in Chromium and checks what the browser made of it.
fn check_in_browser(db: &Path, page: &Path, what: &str) {
    let shot = screenshot_dir().join(format!("{what}.png"));
    let Some(r) = browse(page, 1280, Some(&shot)) else {
        eprintln!("{what}: chromium not found: the page was checked as a file only (install chromium, or set HEAPDB_CHROMIUM)");
        return;
    };
    let body = tags(&r.dom, "body")
        .first()
        .map(|t| t.1.to_string())
        .unwrap();
    assert_eq!(
        attr(&body, "data-ready").as_deref(),
        Some("1"),
        "{what}: script did not finish: {body}\n{}",
        r.console
    );
    assert_eq!(attr(&body, "data-errors"), None, "{what}: {body}");
    // The console: the page logs nothing, so any console message from it (an error, an
    // uncaught exception, a warning) fails. Chromium's own chatter (dbus) is not ours.
    for line in r.console.lines().filter(|l| l.contains(":CONSOLE")) {
        assert!(!line.contains("file://"), "{what}: console: {line}");
    }
    let figs = figures(&r.dom);
    for (id, marks, drawn) in &figs {
        assert_eq!(
            Some(*marks),
            *drawn,
            "{what}: chart {id} laid out {drawn:?} of {marks} elements"
        );
    }
    // The numbers the browser shows are the reports' numbers.
    check_tables(db, &r.dom, &format!("{what} (browser)"));
    // A narrow window: the page reflows instead of scrolling sideways.
    let narrow = browse(page, 400, None).unwrap();
    let body = tags(&narrow.dom, "body")
        .first()
        .map(|t| t.1.to_string())
        .unwrap();
    let width = attr(&body, "data-width").unwrap();
    let (content, window) = width.split_once('/').unwrap();
    let (content, window): (u32, u32) = (content.parse().unwrap(), window.parse().unwrap());
    assert!(
        content <= window,
        "{what}: at 400 px the page is {content} px wide"
    );
}

// ---------------------------------------------------------------------------------
// The cases.

/// A night with stacks and symbols: names, stacks, every section drawn.
#[test]
fn capture_with_stacks_and_symbols() {
    let dir = tempfile::tempdir().unwrap();
    let caps = dir.path().join("caps");
    synth(
        &caps,
        &["--stacks", "--files", "2", "--events-per-file", "30000"],
    );
    let db = dir.path().join("heap.db");
    ingest(&db, &[&caps], &["--symbols", s(&symbols_dir())]);
    let page = dir.path().join("report.html");
    let html = report(&db, &page, &[]);
    check_page(&db, &html, "stacks");

    // The latest capture by default, with the facts of captures_v.
    let latest = common::q(&db, "SELECT max(capture_id) FROM captures");
    assert!(
        html.contains(&format!("<h1>Heap report: capture {latest} (")),
        "{}",
        &html[..400]
    );
    let reallocs = common::q(
        &db,
        &format!("SELECT count(*) FROM reallocs WHERE capture_id = {latest}"),
    );
    assert!(
        html.contains(&format!("<dd data-v=\"{reallocs}\">")),
        "reallocs fact"
    );
    // Function names and stacks from the PDB.
    assert!(html.contains("heapdemo.dll!Vector&lt;unsigned int&gt;::Grow"));
    assert!(html.contains("<details class=\"stack\"><summary>heapdemo.dll!"));
    assert!(html.contains("<ol aria-label=\"stack "));
    // Every section drew: outstanding per process (with its peaks), per heap, the two
    // realloc charts, the heat map, growth chains.
    let figs = figures(&html);
    for id in [
        "outstanding-chart",
        "outstanding-by-heap",
        "activity-reallocs",
        "activity-copied",
        "sizes-heat",
    ] {
        let (_, marks, _) = figs
            .iter()
            .find(|f| f.0 == id)
            .unwrap_or_else(|| panic!("no chart {id}"));
        assert!(*marks > 0, "{id}");
    }
    assert!(
        figs.iter().filter(|f| f.0.starts_with("chain-")).count() >= 6,
        "{figs:?}"
    );
    // Without --pid, per call site is one command away, not computed.
    assert!(!figs.iter().any(|f| f.0 == "outstanding-by-site"));
    assert!(html.contains("--pid "));

    // The per-process series are the by=heap rows added up: they equal the report's
    // by=process rows, point for point; the peaks marked are peak-usage's.
    let data = chart_data(&html, "outstanding-chart").unwrap();
    let by_process = common_rows(
        &db,
        "outstanding-size",
        &[
            ("capture", latest.to_string()),
            ("by", "process".into()),
            ("buckets", "100".into()),
        ],
    );
    let series = data["series"].as_array().unwrap();
    assert_eq!(series.len(), 4, "four processes");
    for sr in series {
        let label = sr["label"].as_str().unwrap();
        let pid: i64 = label
            .rsplit_once('(')
            .unwrap()
            .1
            .trim_end_matches(')')
            .parse()
            .unwrap();
        let want: Vec<(f64, f64)> = by_process
            .iter()
            .filter(|r| r["pid"].as_i64() == Some(pid))
            .map(|r| {
                (
                    r["time_s"].as_f64().unwrap(),
                    r["outstanding_bytes"].as_f64().unwrap(),
                )
            })
            .collect();
        let got: Vec<(f64, f64)> = sr["points"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| (p[0].as_f64().unwrap(), p[1].as_f64().unwrap()))
            .filter(|p| *p != (0.0, 0.0))
            .collect();
        let want: Vec<(f64, f64)> = want.into_iter().filter(|p| *p != (0.0, 0.0)).collect();
        assert_eq!(got, want, "{label}");
    }
    let peaks = common_rows(&db, "peak-usage", &[("capture", latest.to_string())]);
    let max_peak = peaks
        .iter()
        .map(|r| r["peak_bytes"].as_i64().unwrap())
        .max()
        .unwrap();
    assert!(html.contains(&format!(
        "peak {}",
        heapdb::report::human_bytes(max_peak as f64)
    )));

    check_in_browser(&db, &page, "stacks-symbols");
}

fn common_rows(
    db: &Path,
    report: &str,
    params: &[(&str, String)],
) -> Vec<serde_json::Map<String, J>> {
    let p: Vec<(String, String)> = params
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    query_json(db, report, &p)
}

/// Two nights: the comparison comes first, regressions first and marked.
#[test]
fn two_nights_compared() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a");
    let b = dir.path().join("b");
    synth(
        &a,
        &["--stacks", "--events-per-file", "30000", "--seed", "3"],
    );
    synth(
        &b,
        &["--stacks", "--events-per-file", "30000", "--seed", "4"],
    );
    let db = dir.path().join("heap.db");
    ingest(&db, &[&a], &["--symbols", s(&symbols_dir())]);
    ingest(&db, &[&b], &["--symbols", s(&symbols_dir())]);
    let page = dir.path().join("compare.html");
    let html = report(&db, &page, &["--capture", "2", "--compare", "1"]);
    check_page(&db, &html, "compare");
    assert!(html.contains("compared with capture 1"));
    let diff = report_tables(&html)
        .into_iter()
        .find(|t| t.id == "compare-diff")
        .unwrap();
    assert_eq!(diff.report, "capture-diff");
    assert!(
        diff.params.contains(&("a".into(), "1".into()))
            && diff.params.contains(&("b".into(), "2".into()))
    );
    // Regressed rows (more reallocs after) first, each group in the report's order.
    let rows = query_json(&db, "capture-diff", &diff.params);
    let regressed = |r: &serde_json::Map<String, J>| {
        r["reallocs_b"].as_f64().unwrap_or(0.0) > r["reallocs_a"].as_f64().unwrap_or(0.0)
    };
    let mut want: Vec<usize> = (0..rows.len()).filter(|&i| regressed(&rows[i])).collect();
    let n_regressed = want.len();
    want.extend((0..rows.len()).filter(|&i| !regressed(&rows[i])));
    let got: Vec<usize> = diff.rows.iter().map(|r| r.0.unwrap()).collect();
    assert_eq!(got, want);
    assert!(
        n_regressed > 0 && n_regressed < rows.len(),
        "{n_regressed} of {}",
        rows.len()
    );
    assert_eq!(html.matches("<tr class=\"regressed\"").count(), n_regressed);
    // Both nights drawn side by side.
    assert!(
        chart_data(&html, "compare-before").is_some()
            && chart_data(&html, "compare-after").is_some()
    );
    check_in_browser(&db, &page, "compare");
}

/// No stacks: sites are heaps, and the page says why.
#[test]
fn capture_without_stacks() {
    let dir = tempfile::tempdir().unwrap();
    let caps = dir.path().join("caps");
    synth(&caps, &["--events-per-file", "20000"]);
    let db = dir.path().join("heap.db");
    ingest(&db, &[&caps], &[]);
    let page = dir.path().join("nostacks.html");
    let html = report(&db, &page, &[]);
    check_page(&db, &html, "no stacks");
    assert!(html.contains("No call stacks were recorded"));
    let top = report_tables(&html)
        .into_iter()
        .find(|t| t.id == "sites-reallocs")
        .unwrap();
    assert!(!top.rows.is_empty());
    for (_, cells) in &top.rows {
        let site = cells.iter().find(|c| c.col == "site").unwrap();
        assert!(site.v.starts_with("heap 0x"), "{}", site.v);
    }
    check_in_browser(&db, &page, "no-stacks");
}

/// A 32-bit Windows: 32-bit records, same page.
#[test]
fn capture_of_a_32_bit_windows() {
    let dir = tempfile::tempdir().unwrap();
    let caps = dir.path().join("caps");
    synth(
        &caps,
        &[
            "--stacks",
            "--pointer-size",
            "32",
            "--events-per-file",
            "20000",
        ],
    );
    let db = dir.path().join("heap.db");
    ingest(&db, &[&caps], &[]);
    let page = dir.path().join("x86.html");
    let html = report(&db, &page, &[]);
    check_page(&db, &html, "32-bit");
    assert!(html.contains("32-bit Windows"), "machine fact");
    check_in_browser(&db, &page, "x86");
}

/// A capture without heap events (a real public capture): every section says there is
/// nothing to draw, nothing breaks.
#[test]
fn capture_without_heap_events() {
    let real = common::real_captures();
    let Some((_, path, _)) = real.first() else {
        panic!("no real capture in {}", common::real_dir().display());
    };
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("heap.db");
    let o = run(&["ingest", "--db", s(&db), "-q", s(path)]);
    assert!(o.status.success(), "{}", stderr(&o));
    let page = dir.path().join("empty.html");
    let html = report(&db, &page, &[]);
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(html.contains("holds no heap events"), "warning");
    assert!(html.contains("nothing to draw"));
    // No chart has anything to lay out, and the tables are the reports' (empty) rows.
    for (id, marks, _) in figures(&html) {
        assert_eq!(marks, 0, "{id}");
    }
    check_tables(&db, &html, "empty");
    check_in_browser(&db, &page, "no-heap-events");
}

/// One process: its heaps and call sites drawn at once, every table filtered to it.
#[test]
fn one_process() {
    let dir = tempfile::tempdir().unwrap();
    let caps = dir.path().join("caps");
    synth(&caps, &["--stacks", "--events-per-file", "30000"]);
    let db = dir.path().join("heap.db");
    ingest(&db, &[&caps], &["--symbols", s(&symbols_dir())]);
    let pid = common::q(
        &db,
        "SELECT pid FROM reallocs GROUP BY pid ORDER BY count(*) DESC LIMIT 1",
    );
    let page = dir.path().join("pid.html");
    let html = report(&db, &page, &["--pid", &pid.to_string()]);
    check_page(&db, &html, "pid");
    assert!(html.contains(&format!("process {pid} ")));
    let figs = figures(&html);
    assert!(
        figs.iter().any(|f| f.0 == "outstanding-by-site" && f.1 > 0),
        "{figs:?}"
    );
    for t in report_tables(&html) {
        if t.report != "data-quality" {
            assert!(
                t.params.contains(&("pid".into(), pid.to_string())),
                "{} {:?}",
                t.id,
                t.params
            );
        }
        for (_, cells) in &t.rows {
            if let Some(c) = cells.iter().find(|c| c.col == "pid") {
                assert_eq!(c.v, pid.to_string(), "{}", t.id);
            }
        }
    }
    let data = chart_data(&html, "outstanding-chart").unwrap();
    assert_eq!(data["series"].as_array().unwrap().len(), 1);
    check_in_browser(&db, &page, "one-process");
}

/// Mistakes get a clear message and the documented exit code, and leave no file.
#[test]
fn mistakes_and_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    let caps = dir.path().join("caps");
    synth(&caps, &["--events-per-file", "5000"]);
    let db = dir.path().join("heap.db");
    ingest(&db, &[&caps], &[]);
    let out = dir.path().join("r.html");
    let code = |args: &[&str]| {
        let o = run(args);
        (o.status.code(), stderr(&o))
    };
    let (c, e) = code(&["report", "--db", s(&db), "--capture", "7", "--out", s(&out)]);
    assert_eq!(c, Some(2), "{e}");
    assert!(
        e.contains("--capture 7: no such capture") && e.contains("captures: 1"),
        "{e}"
    );
    let (c, e) = code(&["report", "--db", s(&db), "--compare", "1", "--out", s(&out)]);
    assert_eq!(c, Some(2), "{e}");
    assert!(e.contains("that is the capture itself"), "{e}");
    let (c, e) = code(&["report", "--db", s(&db), "--pid", "1", "--out", s(&out)]);
    assert_eq!(c, Some(2), "{e}");
    assert!(
        e.contains("--pid 1: no heap events of that process") && e.contains(".exe"),
        "{e}"
    );
    let (c, e) = code(&["report", "--db", s(&db), "--out", s(dir.path())]);
    assert_eq!(c, Some(2), "{e}");
    assert!(e.contains("is a directory"), "{e}");
    let (c, e) = code(&["report", "--db", s(&db)]);
    assert_eq!(c, Some(2), "{e}");
    assert!(e.contains("--out"), "{e}");
    assert!(!out.exists());
    // An output directory that does not exist: a failure naming the file, no temporary
    // file left behind.
    let missing = dir.path().join("no/such/dir/r.html");
    let (c, e) = code(&["report", "--db", s(&db), "--out", s(&missing)]);
    assert_eq!(c, Some(3), "{e}");
    assert!(e.contains("no/such/dir/r.html"), "{e}");
    // Not a database; no database.
    let junk = dir.path().join("junk.db");
    std::fs::write(
        &junk,
        b"this is not sqlite, just some bytes that are long enough to matter..",
    )
    .unwrap();
    let (c, e) = code(&["report", "--db", s(&junk), "--out", s(&out)]);
    assert_eq!(c, Some(3), "{e}");
    assert!(e.contains("junk.db"), "{e}");
    // A database cut in half, and an empty file: named, exit 3, no panic, no page.
    let cut = dir.path().join("cut.db");
    let whole = std::fs::read(&db).unwrap();
    std::fs::write(&cut, &whole[..whole.len() / 2]).unwrap();
    let (c, e) = code(&["report", "--db", s(&cut), "--out", s(&out)]);
    assert_eq!(c, Some(3), "{e}");
    assert!(e.contains("cut.db") && e.contains("malformed"), "{e}");
    let empty = dir.path().join("empty.db");
    std::fs::write(&empty, b"").unwrap();
    let (c, e) = code(&["report", "--db", s(&empty), "--out", s(&out)]);
    assert_eq!(c, Some(3), "{e}");
    assert!(e.contains("empty.db: not a heapdb database"), "{e}");
    let (c, e) = code(&[
        "report",
        "--db",
        s(&dir.path().join("none.db")),
        "--out",
        s(&out),
    ]);
    assert_eq!(c, Some(3), "{e}");
    assert!(e.contains("none.db: no such database"), "{e}");
    assert!(!out.exists());
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
    // Standard output.
    let o = run(&["report", "--db", s(&db), "--out", "-", "-q"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(o.stdout.starts_with(b"<!DOCTYPE html>"));
    assert!(heapdb_bin().exists());
}

/// Many processes: the page stays bounded (8 processes drawn, the rest named in the
/// caption), whatever the capture holds.
#[test]
fn many_processes_stay_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let caps = dir.path().join("caps");
    synth(
        &caps,
        &[
            "--stacks",
            "--processes",
            "12",
            "--events-per-file",
            "40000",
        ],
    );
    let db = dir.path().join("heap.db");
    ingest(&db, &[&caps], &[]);
    let page = dir.path().join("many.html");
    let html = report(&db, &page, &[]);
    check_page(&db, &html, "many");
    let data = chart_data(&html, "outstanding-chart").unwrap();
    assert_eq!(
        data["series"].as_array().unwrap().len(),
        heapdb::report::MAX_PROCESS_SERIES
    );
    assert!(html.contains("8 of 12 processes drawn"), "caption");
}

/// Captures with more heaps than the page adds up (400 by default) run
/// `outstanding-size by=process` and the top heaps separately: both ways draw the same
/// per-process and per-heap series, and the tables still equal the reports.
#[test]
fn many_heaps_path_draws_the_same_series() {
    use heapdb::report::{gather, render, Options};
    let dir = tempfile::tempdir().unwrap();
    let caps = dir.path().join("caps");
    synth(&caps, &["--stacks", "--events-per-file", "20000"]);
    let db = dir.path().join("heap.db");
    ingest(&db, &[&caps], &[]);
    let open = || {
        heapdb::db::open_ro(&db)
            .map(|r| r.conn)
            .map_err(|e| heapdb::query::QueryError::Sql {
                message: e.to_string(),
                location: None,
            })
    };
    let cancel = heapdb::cancel::Cancel::new();
    let mut o = Options {
        db_name: s(&db).to_string(),
        ..Options::default()
    };
    let summed = gather(&o, open, &cancel).unwrap();
    o.max_heaps_summed = 0;
    let separate = gather(&o, open, &cancel).unwrap();
    assert!(summed.main.get("outstanding").is_none());
    assert_eq!(
        separate.main.get("outstanding").map(|r| r.report),
        Some("outstanding-size")
    );
    let (a, b) = (render(&summed), render(&separate));
    for chart in ["outstanding-chart", "outstanding-by-heap"] {
        let (x, y) = (
            chart_data(&a, chart).unwrap(),
            chart_data(&b, chart).unwrap(),
        );
        assert!(!x["series"].as_array().unwrap().is_empty(), "{chart}");
        assert_eq!(x["series"], y["series"], "{chart}");
    }
    assert!(
        b.contains("-p by=process"),
        "the page names the report it drew"
    );
    check_page(&db, &b, "many heaps");
}
