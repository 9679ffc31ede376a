//! Charts as SVG, written by heapdb (no charting library, nothing fetched when the page
//! opens). Each chart is a `<figure>` holding the SVG (role="img" with a title and a
//! description), a legend, and its points as JSON for the page's script (hover values,
//! hiding a series). Series differ by dash pattern as well as by colour, and are
//! labelled at their end, so a chart reads in grey or printed.
//!
//! Every drawn element that carries data has a `data-mark` attribute and the figure
//! says how many it drew (`data-marks`): the page's script checks in the browser that
//! each was laid out, which is what the headless-browser test reads back.

use super::fmt::{esc, human_bytes, human_count, human_seconds, script_json, trim_num};
use serde_json::json;
use std::fmt::Write;

/// What the numbers of an axis are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Bytes,
    Count,
    /// Seconds (time axes).
    Seconds,
    /// Milliseconds (durations of growth chains).
    Millis,
}

impl Unit {
    pub fn name(self) -> &'static str {
        match self {
            Unit::Bytes => "bytes",
            Unit::Count => "count",
            Unit::Seconds => "s",
            Unit::Millis => "ms",
        }
    }

    pub fn label(self, v: f64) -> String {
        match self {
            Unit::Bytes => human_bytes(v),
            Unit::Count => human_count(v),
            Unit::Seconds => human_seconds(v),
            Unit::Millis => human_seconds(v / 1e3),
        }
    }
}

/// Nice ticks from 0 to at least `max`: (top of the axis, tick values).
pub fn ticks(max: f64, unit: Unit) -> (f64, Vec<f64>) {
    ticks_n(max, unit, 7.0)
}

/// [`ticks`] with at most `intervals` intervals (fewer for small charts).
pub fn ticks_n(max: f64, unit: Unit, intervals: f64) -> (f64, Vec<f64>) {
    let max = if max.is_finite() && max > 0.0 {
        max
    } else {
        1.0
    };
    // Bytes tick on binary multiples (1 MiB, 2 MiB, ...), everything else on decimal.
    let base = if unit == Unit::Bytes {
        let mut b = 1.0;
        while max / b >= 1024.0 {
            b *= 1024.0;
        }
        b
    } else {
        1.0
    };
    let m = max / base;
    // The smallest round step that needs at most `intervals` intervals: the axis ends
    // close above the data.
    let p = 10f64.powf((m / intervals).log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|k| k * p)
        .find(|s| (m / s).ceil() <= intervals)
        .unwrap_or(10.0 * p);
    // Counts and bytes are whole: no tick at 0.5 of a realloc.
    let step = if matches!(unit, Unit::Count | Unit::Bytes) {
        step.max(1.0)
    } else {
        step
    };
    let n = (m / step).ceil().max(1.0) as usize;
    let ticks: Vec<f64> = (0..=n).map(|i| i as f64 * step * base).collect();
    (n as f64 * step * base, ticks)
}

/// One line of a chart: its label and points (x, y).
#[derive(Debug, Clone)]
pub struct Series {
    pub label: String,
    pub points: Vec<(f64, f64)>,
}

/// A point worth pointing at (a peak).
#[derive(Debug, Clone)]
pub struct Mark {
    pub x: f64,
    pub y: f64,
    pub label: String,
}

const W: f64 = 960.0;
const H: f64 = 300.0;
const LEFT: f64 = 78.0;
const RIGHT: f64 = 170.0;
const TOP: f64 = 14.0;
const BOTTOM: f64 = 42.0;

/// Distinct series styles (colour and dash pattern, in the page's CSS).
pub const STYLES: usize = 8;

struct Frame {
    right: f64,
    x_max: f64,
    x_min: f64,
    y_max: f64,
    w: f64,
    h: f64,
}

impl Frame {
    fn x(&self, v: f64) -> f64 {
        let span = (self.x_max - self.x_min).max(f64::MIN_POSITIVE);
        LEFT + (v - self.x_min) / span * (self.w - LEFT - self.right)
    }
    fn y(&self, v: f64) -> f64 {
        self.h - BOTTOM - v / self.y_max.max(f64::MIN_POSITIVE) * (self.h - TOP - BOTTOM)
    }
}

/// Axes, grid and labels.
#[allow(clippy::too_many_arguments)]
fn axes(
    out: &mut String,
    f: &Frame,
    x_ticks: &[f64],
    x_unit: Unit,
    y_ticks: &[f64],
    y_unit: Unit,
    x_label: &str,
    y_label: &str,
) {
    out.push_str("<g class=\"axes\" aria-hidden=\"true\">");
    for &t in y_ticks {
        let y = f.y(t);
        let _ = write!(
            out,
            "<line class=\"grid\" x1=\"{LEFT}\" x2=\"{:.1}\" y1=\"{y:.1}\" y2=\"{y:.1}\"/><text class=\"tick\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            f.w - f.right,
            LEFT - 6.0,
            y + 4.0,
            esc(&y_unit.label(t))
        );
    }
    for &t in x_ticks {
        let x = f.x(t);
        let _ = write!(
            out,
            "<line class=\"tickmark\" x1=\"{x:.1}\" x2=\"{x:.1}\" y1=\"{:.1}\" y2=\"{:.1}\"/><text class=\"tick\" x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
            f.h - BOTTOM,
            f.h - BOTTOM + 5.0,
            f.h - BOTTOM + 18.0,
            esc(&x_unit.label(t))
        );
    }
    let _ = write!(
        out,
        "<line class=\"axis\" x1=\"{LEFT}\" x2=\"{:.1}\" y1=\"{:.1}\" y2=\"{:.1}\"/><line class=\"axis\" x1=\"{LEFT}\" x2=\"{LEFT}\" y1=\"{TOP}\" y2=\"{:.1}\"/>",
        f.w - f.right,
        f.h - BOTTOM,
        f.h - BOTTOM,
        f.h - BOTTOM
    );
    let _ = write!(
        out,
        "<text class=\"label\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
        LEFT + (f.w - LEFT - f.right) / 2.0,
        f.h - 6.0,
        esc(x_label)
    );
    let _ = write!(
        out,
        "<text class=\"label\" transform=\"translate(14 {:.1}) rotate(-90)\" text-anchor=\"middle\">{}</text>",
        TOP + (f.h - TOP - BOTTOM) / 2.0,
        esc(y_label)
    );
    out.push_str("</g>");
}

fn svg_open(out: &mut String, id: &str, w: f64, h: f64, title: &str, desc: &str) {
    let _ = write!(
        out,
        "<svg id=\"{id}-svg\" viewBox=\"0 0 {w} {h}\" role=\"img\" aria-labelledby=\"{id}-t {id}-d\" preserveAspectRatio=\"xMinYMin meet\"><title id=\"{id}-t\">{}</title><desc id=\"{id}-d\">{}</desc>",
        esc(title),
        esc(desc)
    );
}

fn figure_open(out: &mut String, id: &str, kind: &str, marks: usize) {
    let _ = write!(
        out,
        "<figure class=\"chart\" id=\"{id}\" data-kind=\"{kind}\" data-marks=\"{marks}\">"
    );
}

fn legend(out: &mut String, id: &str, labels: &[String]) {
    if labels.is_empty() {
        return;
    }
    let _ = write!(
        out,
        "<ul class=\"legend\" aria-label=\"Series (press to hide or show)\" data-for=\"{id}\">"
    );
    for (i, l) in labels.iter().enumerate() {
        let _ = write!(
            out,
            "<li><button type=\"button\" aria-pressed=\"true\" data-series=\"{i}\"><svg class=\"swatch\" viewBox=\"0 0 28 10\" aria-hidden=\"true\"><line class=\"s{}\" x1=\"1\" x2=\"27\" y1=\"5\" y2=\"5\"/></svg>{}</button></li>",
            i % STYLES,
            esc(l)
        );
    }
    out.push_str("</ul>");
}

/// A line chart (or steps: each value holds until the next point).
#[derive(Debug, Clone)]
pub struct Lines {
    pub id: String,
    pub title: String,
    pub desc: String,
    pub x_unit: Unit,
    pub y_unit: Unit,
    pub x_label: String,
    pub y_label: String,
    pub series: Vec<Series>,
    pub marks: Vec<Mark>,
    pub step: bool,
    /// A smaller chart (growth chains: several side by side).
    pub small: bool,
}

impl Lines {
    /// The figure (SVG, legend, data). `caption` is HTML.
    pub fn render(&self, caption: &str) -> String {
        let (w, h) = if self.small { (460.0, 220.0) } else { (W, H) };
        let all = || self.series.iter().flat_map(|s| s.points.iter());
        let x_min = all().map(|p| p.0).fold(f64::INFINITY, f64::min);
        let x_min = if x_min.is_finite() {
            x_min.min(0.0)
        } else {
            0.0
        };
        let x_max = all().map(|p| p.0).fold(0.0, f64::max);
        let y_max = all()
            .map(|p| p.1)
            .chain(self.marks.iter().map(|m| m.y))
            .fold(0.0, f64::max);
        let x_intervals = if self.small { 4.0 } else { 7.0 };
        let (x_top, x_ticks) = ticks_n(x_max - x_min, self.x_unit, x_intervals);
        let x_ticks: Vec<f64> = x_ticks.into_iter().map(|t| t + x_min).collect();
        let (y_top, y_ticks) = ticks_n(y_max, self.y_unit, if self.small { 5.0 } else { 7.0 });
        // Room for the labels at the lines' ends only when there are several lines.
        let right = if self.series.len() > 1 { RIGHT } else { 24.0 };
        let f = Frame {
            right,
            x_min,
            x_max: x_min + x_top,
            y_max: y_top,
            w,
            h,
        };
        let mut svg = String::new();
        svg_open(&mut svg, &self.id, w, h, &self.title, &self.desc);
        axes(
            &mut svg,
            &f,
            &x_ticks,
            self.x_unit,
            &y_ticks,
            self.y_unit,
            &self.x_label,
            &self.y_label,
        );
        let mut marks = 0;
        let mut end_labels: Vec<(f64, String, usize)> = Vec::new();
        for (i, s) in self.series.iter().enumerate() {
            let class = format!("s{}", i % STYLES);
            let _ = write!(svg, "<g class=\"series\" data-series=\"{i}\">");
            if s.points.len() == 1 {
                let (x, y) = s.points[0];
                let _ = write!(
                    svg,
                    "<circle class=\"{class} dot\" data-mark=\"1\" cx=\"{:.1}\" cy=\"{:.1}\" r=\"3.5\"/>",
                    f.x(x),
                    f.y(y)
                );
                marks += 1;
            } else if s.points.len() > 1 {
                let mut pts = String::new();
                let mut prev_y: Option<f64> = None;
                for &(x, y) in &s.points {
                    let (px, py) = (f.x(x), f.y(y));
                    if self.step {
                        if let Some(py0) = prev_y {
                            let _ = write!(pts, "{px:.1},{py0:.1} ");
                        }
                    }
                    let _ = write!(pts, "{px:.1},{py:.1} ");
                    prev_y = Some(py);
                }
                let _ = write!(
                    svg,
                    "<polyline class=\"{class}\" data-mark=\"1\" points=\"{}\"/>",
                    pts.trim_end()
                );
                marks += 1;
            }
            svg.push_str("</g>");
            if let (true, Some(&(_, y))) = (self.series.len() > 1, s.points.last()) {
                end_labels.push((f.y(y), s.label.clone(), i));
            }
        }
        // Labels at the right end of each line, pushed apart so they do not overlap.
        end_labels.sort_by(|a, b| a.0.total_cmp(&b.0));
        let mut last_y = f64::NEG_INFINITY;
        for (y, label, i) in &mut end_labels {
            if *y < last_y + 13.0 {
                *y = last_y + 13.0;
            }
            last_y = *y;
            let short: String = label.chars().take(26).collect();
            let _ = write!(
                svg,
                "<text class=\"endlabel\" data-series=\"{i}\" x=\"{:.1}\" y=\"{:.1}\">{}</text>",
                w - right + 6.0,
                *y + 4.0,
                esc(&short)
            );
        }
        for m in &self.marks {
            let (x, y) = (f.x(m.x), f.y(m.y));
            let _ = write!(
                svg,
                "<g class=\"peak\"><circle data-mark=\"1\" cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"5\"/><text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"{}\">{}</text></g>",
                x,
                (y - 9.0).max(TOP + 9.0),
                if x > w - right - 120.0 { "end" } else { "middle" },
                esc(&m.label)
            );
            marks += 1;
        }
        svg.push_str("</svg>");
        let data = json!({
            "kind": if self.step { "steps" } else { "lines" },
            "xunit": self.x_unit.name(),
            "yunit": self.y_unit.name(),
            "series": self.series.iter().map(|s| json!({
                "label": s.label,
                "points": s.points.iter().map(|&(x, y)| json!([num(x), num(y)])).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
            "frame": [f.x_min, f.x_max, f.y_max, w, h, LEFT, right, TOP, BOTTOM],
        });
        let mut out = String::new();
        figure_open(
            &mut out,
            &self.id,
            data["kind"].as_str().unwrap_or("lines"),
            marks,
        );
        out.push_str(&svg);
        let labels: Vec<String> = self.series.iter().map(|s| s.label.clone()).collect();
        if labels.len() > 1 {
            legend(&mut out, &self.id, &labels);
        }
        let _ = write!(
            out,
            "<script type=\"application/json\" class=\"chart-data\">{}</script><figcaption>{caption}</figcaption></figure>",
            script_json(&data)
        );
        out
    }
}

/// Whole numbers stay integers in the JSON (exact byte counts), others keep 6 digits.
fn num(v: f64) -> serde_json::Value {
    if v.fract() == 0.0 && v.abs() < 9e15 {
        json!(v as i64)
    } else {
        json!((v * 1e6).round() / 1e6)
    }
}

/// Stacked bars over time buckets.
#[derive(Debug, Clone)]
pub struct Bars {
    pub id: String,
    pub title: String,
    pub desc: String,
    pub y_unit: Unit,
    pub x_label: String,
    pub y_label: String,
    /// Bucket starts (seconds) and the common bucket width.
    pub starts: Vec<f64>,
    pub width: f64,
    /// Layers from the bottom: label and one value per bucket.
    pub layers: Vec<(String, Vec<f64>)>,
}

impl Bars {
    pub fn render(&self, caption: &str) -> String {
        let x_max = self
            .starts
            .iter()
            .map(|s| s + self.width)
            .fold(0.0, f64::max);
        let y_max = (0..self.starts.len())
            .map(|i| {
                self.layers
                    .iter()
                    .map(|(_, v)| v.get(i).copied().unwrap_or(0.0))
                    .sum::<f64>()
            })
            .fold(0.0, f64::max);
        let (x_top, x_ticks) = ticks(x_max, Unit::Seconds);
        let (y_top, y_ticks) = ticks(y_max, self.y_unit);
        let f = Frame {
            right: 24.0,
            x_min: 0.0,
            x_max: x_top,
            y_max: y_top,
            w: W,
            h: H,
        };
        let mut svg = String::new();
        svg_open(&mut svg, &self.id, W, H, &self.title, &self.desc);
        axes(
            &mut svg,
            &f,
            &x_ticks,
            Unit::Seconds,
            &y_ticks,
            self.y_unit,
            &self.x_label,
            &self.y_label,
        );
        // The second layer is hatched: stacked layers read apart without colour.
        let hatch = format!("{}-hatch", self.id);
        let _ = write!(
            svg,
            "<defs><pattern id=\"{hatch}\" patternUnits=\"userSpaceOnUse\" width=\"6\" height=\"6\" patternTransform=\"rotate(45)\"><rect width=\"6\" height=\"6\" fill=\"#e69f00\"/><line x1=\"0\" y1=\"0\" x2=\"0\" y2=\"6\" stroke=\"#6b4a00\" stroke-width=\"2.5\"/></pattern></defs>"
        );
        let fill = |li: usize| {
            if li == 1 {
                format!(" fill=\"url(#{hatch})\"")
            } else {
                String::new()
            }
        };
        let mut marks = 0;
        let bar_w = (f.x(self.width) - f.x(0.0)).max(0.6);
        let gap = if bar_w > 4.0 { 1.0 } else { 0.0 };
        let mut base = vec![0.0; self.starts.len()];
        for (li, (_, values)) in self.layers.iter().enumerate() {
            let _ = write!(svg, "<g class=\"series\" data-series=\"{li}\">");
            for (i, &s) in self.starts.iter().enumerate() {
                let v = values.get(i).copied().unwrap_or(0.0);
                if v <= 0.0 {
                    continue;
                }
                let (y0, y1) = (f.y(base[i]), f.y(base[i] + v));
                base[i] += v;
                let _ = write!(
                    svg,
                    "<rect class=\"b{li}\"{} data-mark=\"1\" x=\"{:.2}\" y=\"{:.2}\" width=\"{:.2}\" height=\"{:.2}\"/>",
                    fill(li),
                    f.x(s),
                    y1,
                    (bar_w - gap).max(0.5),
                    (y0 - y1).max(0.5)
                );
                marks += 1;
            }
            svg.push_str("</g>");
        }
        svg.push_str("</svg>");
        let data = json!({
            "kind": "bars",
            "xunit": "s",
            "yunit": self.y_unit.name(),
            "width": num(self.width),
            "starts": self.starts.iter().map(|&s| num(s)).collect::<Vec<_>>(),
            "series": self.layers.iter().map(|(l, v)| json!({
                "label": l,
                "values": v.iter().map(|&x| num(x)).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
            "frame": [f.x_min, f.x_max, f.y_max, W, H, LEFT, f.right, TOP, BOTTOM],
        });
        let mut out = String::new();
        figure_open(&mut out, &self.id, "bars", marks);
        out.push_str(&svg);
        if self.layers.len() > 1 {
            let _ = write!(
                out,
                "<ul class=\"legend\" aria-label=\"Layers (press to hide or show)\" data-for=\"{}\">",
                self.id
            );
            for (i, (l, _)) in self.layers.iter().enumerate() {
                let _ = write!(
                    out,
                    "<li><button type=\"button\" aria-pressed=\"true\" data-series=\"{i}\"><svg class=\"swatch\" viewBox=\"0 0 14 10\" aria-hidden=\"true\"><rect class=\"b{i}\"{} x=\"1\" y=\"1\" width=\"12\" height=\"8\"/></svg>{}</button></li>",
                    fill(i),
                    esc(l)
                );
            }
            out.push_str("</ul>");
        }
        let _ = write!(
            out,
            "<script type=\"application/json\" class=\"chart-data\">{}</script><figcaption>{caption}</figcaption></figure>",
            script_json(&data)
        );
        out
    }
}

/// A heat map: rows × columns, each cell shaded by its value (log scale) and showing
/// the value as text.
#[derive(Debug, Clone)]
pub struct Heat {
    pub id: String,
    pub title: String,
    pub desc: String,
    pub rows: Vec<String>,
    pub cols: Vec<String>,
    pub cells: Vec<Vec<f64>>,
    pub row_label: String,
}

impl Heat {
    pub fn render(&self, caption: &str) -> String {
        let cell_w = 104.0;
        let cell_h = 22.0;
        let left = 96.0;
        let top = 40.0;
        let w = left + cell_w * self.cols.len().max(1) as f64 + 8.0;
        let h = top + cell_h * self.rows.len().max(1) as f64 + 8.0;
        let max = self
            .cells
            .iter()
            .flatten()
            .copied()
            .fold(0.0, f64::max)
            .max(1.0);
        let mut svg = String::new();
        svg_open(&mut svg, &self.id, w, h, &self.title, &self.desc);
        let _ = write!(
            svg,
            "<text class=\"label\" x=\"{:.1}\" y=\"14\" text-anchor=\"end\">{}</text>",
            left - 8.0,
            esc(&self.row_label)
        );
        for (j, c) in self.cols.iter().enumerate() {
            let _ = write!(
                svg,
                "<text class=\"label\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
                left + cell_w * (j as f64 + 0.5),
                top - 10.0,
                esc(c)
            );
        }
        let mut marks = 0;
        for (i, r) in self.rows.iter().enumerate() {
            let y = top + cell_h * i as f64;
            let _ = write!(
                svg,
                "<text class=\"tick\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
                left - 8.0,
                y + cell_h * 0.68,
                esc(r)
            );
            for j in 0..self.cols.len() {
                let v = self
                    .cells
                    .get(i)
                    .and_then(|row| row.get(j))
                    .copied()
                    .unwrap_or(0.0);
                let x = left + cell_w * j as f64;
                if v <= 0.0 {
                    let _ = write!(
                        svg,
                        "<rect class=\"cell empty\" x=\"{x:.1}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"{:.1}\"/>",
                        cell_w - 2.0,
                        cell_h - 2.0
                    );
                    continue;
                }
                // Log scale: a size class with 10 reallocs still shows beside one with 10^6.
                let t = (1.0 + v).ln() / (1.0 + max).ln();
                let dark = t > 0.6;
                let _ = write!(
                    svg,
                    "<rect class=\"cell\" data-mark=\"1\" x=\"{x:.1}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"{:.1}\" style=\"fill-opacity:{:.3}\"><title>{} × {}: {}</title></rect><text class=\"celltext{}\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
                    cell_w - 2.0,
                    cell_h - 2.0,
                    0.08 + 0.92 * t,
                    esc(r),
                    esc(&self.cols[j]),
                    human_count(v),
                    if dark { " dark" } else { "" },
                    x + (cell_w - 2.0) / 2.0,
                    y + cell_h * 0.68,
                    human_count(v)
                );
                marks += 1;
            }
        }
        svg.push_str("</svg>");
        let mut out = String::new();
        figure_open(&mut out, &self.id, "heat", marks);
        out.push_str(&svg);
        let _ = write!(out, "<figcaption>{caption}</figcaption></figure>");
        out
    }
}

/// A label for a byte count with its exact value: "42.0 MiB (44,056,576 bytes)".
pub fn bytes_exact(v: f64) -> String {
    format!("{} ({} bytes)", human_bytes(v), human_count(v))
}

/// `0.602719` s → "0.6 s" for captions.
pub fn seconds_short(v: f64) -> String {
    if v < 1.0 {
        format!("{} ms", trim_num(v * 1e3, 1))
    } else {
        format!("{} s", trim_num(v, 2))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_round() {
        let (top, t) = ticks(165_148_605.0, Unit::Bytes);
        // 157.5 MiB: steps of 25 MiB up to 175 MiB.
        assert_eq!(top, 175.0 * 1048576.0);
        assert_eq!(t.len(), 8);
        assert_eq!(t[1], 25.0 * 1048576.0);
        let (top, t) = ticks(0.604, Unit::Seconds);
        assert!((top - 0.7).abs() < 1e-12, "{top}");
        assert!((t[1] - 0.1).abs() < 1e-12);
        let (top, t) = ticks(0.0, Unit::Count);
        assert_eq!((top, t.len()), (1.0, 2));
        let (top, t) = ticks(3.0, Unit::Count);
        assert_eq!((top, t.len()), (3.0, 4));
        let (top, _) = ticks(7.0, Unit::Count);
        assert!(top >= 7.0);
    }

    #[test]
    fn a_line_chart_counts_what_it_draws() {
        let l = Lines {
            id: "c1".into(),
            title: "T <b>".into(),
            desc: "D".into(),
            x_unit: Unit::Seconds,
            y_unit: Unit::Bytes,
            x_label: "time".into(),
            y_label: "bytes".into(),
            series: vec![
                Series {
                    label: "a".into(),
                    points: vec![(0.0, 1.0), (1.0, 5.0)],
                },
                Series {
                    label: "b".into(),
                    points: vec![(0.5, 2.0)],
                },
                Series {
                    label: "empty".into(),
                    points: vec![],
                },
            ],
            marks: vec![Mark {
                x: 1.0,
                y: 5.0,
                label: "peak".into(),
            }],
            step: true,
            small: false,
        };
        let html = l.render("cap");
        assert!(html.contains("data-marks=\"3\""), "{html}");
        assert_eq!(html.matches("data-mark=\"1\"").count(), 3);
        assert!(html.contains("T &lt;b&gt;"));
        // Steps: the second point is reached horizontally first.
        assert!(html.contains("<polyline class=\"s0\""));
        assert!(html.contains("[[0,1],[1,5]]"), "{html}");
    }
}
