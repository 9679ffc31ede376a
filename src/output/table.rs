//! The formats for people: aligned tables and markdown, streamed.
//!
//! Column widths and alignment come from the first [`WIDTH_WINDOW`] rows (held back
//! until then); later rows print as they come, with those widths. A later text value
//! wider than its column is cut with `…` (numbers are never cut, they overflow), and any
//! text is cut at [`MAX_WIDTH`] characters: memory stays flat whatever the row count.

use super::{cell_text, Options, Value};
use crate::output::Format;
use std::io::{self, Write};

/// Rows held back to size the columns.
pub const WIDTH_WINDOW: usize = 1000;
/// Widest a table cell gets before it is cut (by default, see [`Options::max_width`]).
pub const MAX_WIDTH: usize = 60;

pub(super) struct TableWriter<W: Write> {
    out: W,
    columns: Vec<String>,
    hex: Vec<bool>,
    opts: Options,
    /// The first rows, as text, until the widths are known.
    pending: Vec<Vec<String>>,
    numeric: Vec<bool>,
    widths: Option<Vec<usize>>,
    group: Option<Vec<String>>,
    groups_printed: usize,
}

fn chars(s: &str) -> usize {
    s.chars().count()
}

fn cut(s: &str, width: usize) -> String {
    if chars(s) > width {
        let mut t: String = s.chars().take(width.saturating_sub(1)).collect();
        t.push('…');
        t
    } else {
        s.to_string()
    }
}

impl<W: Write> TableWriter<W> {
    pub fn new(out: W, columns: Vec<String>, hex: Vec<bool>, opts: Options) -> TableWriter<W> {
        let n = columns.len();
        TableWriter {
            out,
            columns,
            hex,
            opts,
            pending: Vec::new(),
            numeric: vec![true; n],
            widths: None,
            group: None,
            groups_printed: 0,
        }
    }

    fn markdown(&self) -> bool {
        self.opts.format == Format::Markdown
    }

    /// Columns shown in the body (the group columns make the headings).
    fn body(&self) -> std::ops::Range<usize> {
        self.opts.group_columns.min(self.columns.len())..self.columns.len()
    }

    pub fn row(&mut self, values: &[Value]) -> io::Result<()> {
        let texts: Vec<String> = values
            .iter()
            .zip(&self.hex)
            .map(|(v, &h)| cell_text(v, h))
            .collect();
        if self.opts.expanded && !self.markdown() {
            return self.expanded(&texts);
        }
        if self.widths.is_none() {
            for (i, v) in values.iter().enumerate() {
                let number = matches!(v, Value::Int(_) | Value::Real(_)) && !self.hex[i];
                if !number && !matches!(v, Value::Null) {
                    self.numeric[i] = false;
                }
            }
            self.pending.push(texts);
            if self.pending.len() >= WIDTH_WINDOW {
                self.flush_pending()?;
            }
            return Ok(());
        }
        self.print_row(&texts)
    }

    fn flush_pending(&mut self) -> io::Result<()> {
        let mut widths: Vec<usize> = self.columns.iter().map(|c| chars(c)).collect();
        for r in &self.pending {
            for (i, c) in r.iter().enumerate() {
                widths[i] = widths[i].max(chars(c).min(self.opts.max_width));
            }
        }
        self.widths = Some(widths);
        for r in std::mem::take(&mut self.pending) {
            self.print_row(&r)?;
        }
        Ok(())
    }

    fn print_row(&mut self, texts: &[String]) -> io::Result<()> {
        let g = self.opts.group_columns.min(texts.len());
        if g > 0 && self.group.as_deref() != Some(&texts[..g]) {
            self.heading(&texts[..g])?;
            self.group = Some(texts[..g].to_vec());
        } else if self.groups_printed == 0 {
            self.header()?;
            self.groups_printed = 1;
        }
        let body = self.body();
        if self.markdown() {
            let cells: Vec<String> = texts[body].iter().map(|c| md_escape(c)).collect();
            return writeln!(self.out, "| {} |", cells.join(" | "));
        }
        let widths = self.widths.as_deref().unwrap_or(&[]);
        let line: Vec<String> = body
            .map(|i| {
                let w = widths.get(i).copied().unwrap_or(0);
                let c = &texts[i];
                if self.numeric[i] {
                    format!("{}{c}", " ".repeat(w.saturating_sub(chars(c))))
                } else {
                    let c = cut(c, w);
                    format!("{c}{}", " ".repeat(w.saturating_sub(chars(&c))))
                }
            })
            .collect();
        writeln!(self.out, "{}", line.join("  ").trim_end())
    }

    /// A group's heading: its cells, the last one after a colon (`table reallocs: ...`).
    fn heading(&mut self, cells: &[String]) -> io::Result<()> {
        if self.groups_printed > 0 {
            writeln!(self.out)?;
        }
        let text = match cells.split_last() {
            Some((last, first)) if !first.is_empty() => format!("{}: {last}", first.join(" ")),
            Some((last, _)) => last.clone(),
            None => String::new(),
        };
        if self.markdown() {
            writeln!(self.out, "### {text}\n")?;
        } else {
            writeln!(self.out, "{text}")?;
        }
        self.groups_printed += 1;
        self.header()
    }

    fn header(&mut self) -> io::Result<()> {
        let body = self.body();
        if self.markdown() {
            let names: Vec<String> = self.columns[body.clone()]
                .iter()
                .map(|c| md_escape(c))
                .collect();
            let align: Vec<&str> = body
                .map(|i| if self.numeric[i] { "---:" } else { "---" })
                .collect();
            return writeln!(
                self.out,
                "| {} |\n| {} |",
                names.join(" | "),
                align.join(" | ")
            );
        }
        let widths = self.widths.clone().unwrap_or_default();
        let names: Vec<String> = body
            .clone()
            .map(|i| {
                let (c, w) = (&self.columns[i], widths.get(i).copied().unwrap_or(0));
                let pad = " ".repeat(w.saturating_sub(chars(c)));
                if self.numeric[i] {
                    format!("{pad}{c}")
                } else {
                    format!("{c}{pad}")
                }
            })
            .collect();
        let rule: Vec<String> = body
            .map(|i| "-".repeat(widths.get(i).copied().unwrap_or(0)))
            .collect();
        writeln!(self.out, "{}", names.join("  ").trim_end())?;
        writeln!(self.out, "{}", rule.join("  "))
    }

    /// `column: value` lines, one block per row; multi-line values are indented.
    fn expanded(&mut self, texts: &[String]) -> io::Result<()> {
        let w = self.columns.iter().map(|c| chars(c)).max().unwrap_or(0);
        if self.groups_printed > 0 {
            writeln!(self.out)?;
        }
        self.groups_printed += 1;
        for (c, v) in self.columns.iter().zip(texts) {
            let mut lines = v.lines();
            writeln!(self.out, "{c:<w$}  {}", lines.next().unwrap_or(""))?;
            for l in lines {
                writeln!(self.out, "{:<w$}  {l}", "")?;
            }
        }
        Ok(())
    }

    pub fn finish(mut self, rows: u64) -> io::Result<()> {
        if self.widths.is_none() && !self.pending.is_empty() {
            self.flush_pending()?;
        } else if self.widths.is_none() && self.groups_printed == 0 {
            // No rows: still show the columns.
            self.widths = Some(self.columns.iter().map(|c| chars(c)).collect());
            self.header()?;
        }
        if self.opts.format == Format::Table && self.opts.row_count && !self.opts.expanded {
            writeln!(self.out, "({rows} row{})", if rows == 1 { "" } else { "s" })?;
        }
        self.out.flush()
    }
}

fn md_escape(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::RowWriter;

    /// Rows after the width window print as they come: the writer never holds more
    /// than the window, whatever the row count.
    #[test]
    fn streams_after_the_width_window() {
        let mut buf = Vec::new();
        {
            let mut w = RowWriter::new(
                &mut buf,
                vec!["i".into(), "label".into()],
                Options::new(Format::Table),
            )
            .unwrap();
            for i in 0..(WIDTH_WINDOW as i64 + 5) {
                w.row(&[Value::Int(i), Value::Text(format!("row {i}"))])
                    .unwrap();
            }
            w.finish().unwrap();
        }
        let text = String::from_utf8(buf).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "  i  label");
        assert_eq!(lines[1], "---  -------");
        assert_eq!(lines[2], "  0  row 0");
        // Numbers wider than the window found are printed whole; text is cut.
        assert_eq!(lines[2 + WIDTH_WINDOW], "1000  row 10…");
        assert_eq!(lines.len(), 2 + WIDTH_WINDOW + 5 + 1);
        assert_eq!(*lines.last().unwrap(), "(1005 rows)");
    }

    #[test]
    fn later_wide_text_is_cut_and_numbers_overflow() {
        let mut buf = Vec::new();
        let mut w = RowWriter::new(
            &mut buf,
            vec!["n".into(), "s".into()],
            Options::new(Format::Table),
        )
        .unwrap();
        for _ in 0..WIDTH_WINDOW {
            w.row(&[Value::Int(1), Value::Text("ab".into())]).unwrap();
        }
        w.row(&[Value::Int(123456), Value::Text("abcdef".into())])
            .unwrap();
        w.finish().unwrap();
        let text = String::from_utf8(buf).unwrap();
        assert!(text.contains("\n123456  a…\n"), "{text}");
    }

    #[test]
    fn groups_and_expanded_rows() {
        let mut opts = Options::new(Format::Table);
        opts.group_columns = 2;
        let mut buf = Vec::new();
        let mut w = RowWriter::new(
            &mut buf,
            vec!["kind".into(), "name".into(), "column".into()],
            opts,
        )
        .unwrap();
        for (k, n, c) in [("table", "a", "x"), ("table", "a", "y"), ("view", "b", "z")] {
            w.row(&[k.into(), n.into(), c.into()]).unwrap();
        }
        w.finish().unwrap();
        assert_eq!(
            String::from_utf8(buf).unwrap(),
            "table: a\ncolumn\n------\nx\ny\n\nview: b\ncolumn\n------\nz\n(3 rows)\n"
        );
        let mut opts = Options::new(Format::Table);
        opts.expanded = true;
        let mut buf = Vec::new();
        let mut w = RowWriter::new(&mut buf, vec!["file".into(), "counts".into()], opts).unwrap();
        w.row(&["a.etl".into(), "1 x\n2 y".into()]).unwrap();
        w.finish().unwrap();
        assert_eq!(
            String::from_utf8(buf).unwrap(),
            "file    a.etl\ncounts  1 x\n        2 y\n"
        );
    }
}
