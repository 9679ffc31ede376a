//! Result sets → text: aligned tables for people; csv, tsv, json, jsonl, markdown for
//! scripts. Integer columns that hold addresses print in hex.

use rusqlite::types::Value;
use std::io::{self, Write};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Table,
    Csv,
    Tsv,
    Json,
    Jsonl,
    Markdown,
}

/// Columns whose integers are addresses (heap handles, blocks, image bases, frames).
pub fn is_address_column(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    matches!(
        n.as_str(),
        "heap" | "address" | "base" | "leaf" | "final_address" | "unique_key"
    ) || n.ends_with("_address")
        || (n.ends_with("address") && !n.ends_with("_hex"))
}

/// A cell as text (NULL as empty).
pub fn cell(v: &Value, hex: bool) -> String {
    match v {
        Value::Null => String::new(),
        Value::Integer(i) if hex => format!("0x{:x}", *i as u64),
        Value::Integer(i) => i.to_string(),
        Value::Real(f) => format!("{f}"),
        Value::Text(t) => t.clone(),
        Value::Blob(b) => b.iter().map(|x| format!("{x:02x}")).collect(),
    }
}

fn json_value(v: &Value, hex: bool) -> serde_json::Value {
    match v {
        Value::Null => serde_json::Value::Null,
        // Hex strings keep addresses above 2^53 exact in JSON.
        Value::Integer(i) if hex => serde_json::Value::String(format!("0x{:x}", *i as u64)),
        Value::Integer(i) => serde_json::Value::from(*i),
        Value::Real(f) => serde_json::Number::from_f64(*f)
            .map(serde_json::Value::Number)
            .unwrap_or(serde_json::Value::Null),
        Value::Text(t) => serde_json::Value::String(t.clone()),
        Value::Blob(b) => serde_json::Value::String(b.iter().map(|x| format!("{x:02x}")).collect()),
    }
}

fn csv_escape(s: &str, sep: char) -> String {
    if s.contains(sep) || s.contains('"') || s.contains('\n') || s.contains('\r') {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// Writes rows as they come (csv, tsv, jsonl, json) or after all of them (table,
/// markdown: the widths depend on every row).
pub struct Writer<W: Write> {
    out: W,
    format: Format,
    columns: Vec<String>,
    hex: Vec<bool>,
    buffered: Vec<Vec<String>>,
    numeric: Vec<bool>,
    rows: u64,
}

/// Widest a table cell gets before it is cut (with "…").
const MAX_WIDTH: usize = 60;

impl<W: Write> Writer<W> {
    pub fn new(
        out: W,
        format: Format,
        columns: Vec<String>,
        hex_addresses: bool,
    ) -> io::Result<Writer<W>> {
        let hex = columns
            .iter()
            .map(|c| hex_addresses && is_address_column(c))
            .collect();
        let n = columns.len();
        let mut w = Writer {
            out,
            format,
            columns,
            hex,
            buffered: Vec::new(),
            numeric: vec![true; n],
            rows: 0,
        };
        match format {
            Format::Csv => {
                let line: Vec<String> = w.columns.iter().map(|c| csv_escape(c, ',')).collect();
                writeln!(w.out, "{}", line.join(","))?;
            }
            Format::Tsv => writeln!(w.out, "{}", w.columns.join("\t"))?,
            Format::Json => write!(w.out, "[")?,
            _ => {}
        }
        Ok(w)
    }

    pub fn row(&mut self, values: &[Value]) -> io::Result<()> {
        self.rows += 1;
        match self.format {
            Format::Csv | Format::Tsv => {
                let sep = if self.format == Format::Csv {
                    ','
                } else {
                    '\t'
                };
                let cells: Vec<String> = values
                    .iter()
                    .zip(&self.hex)
                    .map(|(v, &h)| {
                        let c = cell(v, h);
                        if sep == ',' {
                            csv_escape(&c, ',')
                        } else {
                            c.replace(['\t', '\n'], " ")
                        }
                    })
                    .collect();
                writeln!(self.out, "{}", cells.join(&sep.to_string()))
            }
            Format::Json | Format::Jsonl => {
                let mut obj = serde_json::Map::new();
                for ((c, v), &h) in self.columns.iter().zip(values).zip(&self.hex) {
                    obj.insert(c.clone(), json_value(v, h));
                }
                let text = serde_json::Value::Object(obj).to_string();
                if self.format == Format::Json {
                    let sep = if self.rows == 1 { "\n" } else { ",\n" };
                    write!(self.out, "{sep}{text}")
                } else {
                    writeln!(self.out, "{text}")
                }
            }
            Format::Table | Format::Markdown => {
                for (i, v) in values.iter().enumerate() {
                    if matches!(v, Value::Text(_) | Value::Blob(_))
                        || (self.hex[i] && !matches!(v, Value::Null))
                    {
                        self.numeric[i] = false;
                    }
                }
                self.buffered.push(
                    values
                        .iter()
                        .zip(&self.hex)
                        .map(|(v, &h)| cell(v, h))
                        .collect(),
                );
                Ok(())
            }
        }
    }

    /// Finishes the output; returns the number of rows.
    pub fn finish(mut self) -> io::Result<u64> {
        match self.format {
            Format::Json => writeln!(self.out, "{}]", if self.rows > 0 { "\n" } else { "" })?,
            Format::Table => self.table()?,
            Format::Markdown => self.markdown()?,
            _ => {}
        }
        self.out.flush()?;
        Ok(self.rows)
    }

    fn cut(s: &str) -> String {
        if s.chars().count() > MAX_WIDTH {
            let mut t: String = s.chars().take(MAX_WIDTH - 1).collect();
            t.push('…');
            t
        } else {
            s.to_string()
        }
    }

    fn table(&mut self) -> io::Result<()> {
        let rows: Vec<Vec<String>> = self
            .buffered
            .iter()
            .map(|r| r.iter().map(|c| Self::cut(c)).collect())
            .collect();
        let mut widths: Vec<usize> = self.columns.iter().map(|c| c.chars().count()).collect();
        for r in &rows {
            for (i, c) in r.iter().enumerate() {
                widths[i] = widths[i].max(c.chars().count());
            }
        }
        let pad = |s: &str, w: usize, right: bool| {
            let n = s.chars().count();
            if right {
                format!("{}{s}", " ".repeat(w - n))
            } else {
                format!("{s}{}", " ".repeat(w - n))
            }
        };
        let header: Vec<String> = self
            .columns
            .iter()
            .enumerate()
            .map(|(i, c)| pad(c, widths[i], self.numeric[i]))
            .collect();
        writeln!(self.out, "{}", header.join("  ").trim_end())?;
        let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
        writeln!(self.out, "{}", rule.join("  "))?;
        for r in &rows {
            let line: Vec<String> = r
                .iter()
                .enumerate()
                .map(|(i, c)| pad(c, widths[i], self.numeric[i]))
                .collect();
            writeln!(self.out, "{}", line.join("  ").trim_end())?;
        }
        writeln!(
            self.out,
            "({} row{})",
            self.rows,
            if self.rows == 1 { "" } else { "s" }
        )
    }

    fn markdown(&mut self) -> io::Result<()> {
        let esc = |s: &str| s.replace('|', "\\|").replace('\n', " ");
        writeln!(
            self.out,
            "| {} |",
            self.columns
                .iter()
                .map(|c| esc(c))
                .collect::<Vec<_>>()
                .join(" | ")
        )?;
        let align: Vec<&str> = self
            .numeric
            .iter()
            .map(|&n| if n { "---:" } else { "---" })
            .collect();
        writeln!(self.out, "| {} |", align.join(" | "))?;
        for r in &self.buffered {
            writeln!(
                self.out,
                "| {} |",
                r.iter().map(|c| esc(c)).collect::<Vec<_>>().join(" | ")
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(format: Format) -> String {
        let mut buf = Vec::new();
        let mut w = Writer::new(
            &mut buf,
            format,
            vec!["name".into(), "new_address".into(), "n".into()],
            true,
        )
        .unwrap();
        w.row(&[
            Value::Text("a,\"b\"".into()),
            Value::Integer(0x1f00),
            Value::Integer(3),
        ])
        .unwrap();
        w.row(&[Value::Null, Value::Integer(-1), Value::Real(1.5)])
            .unwrap();
        assert_eq!(w.finish().unwrap(), 2);
        String::from_utf8(buf).unwrap()
    }

    #[test]
    fn formats() {
        assert_eq!(
            render(Format::Csv),
            "name,new_address,n\n\"a,\"\"b\"\"\",0x1f00,3\n,0xffffffffffffffff,1.5\n"
        );
        assert_eq!(
            render(Format::Tsv),
            "name\tnew_address\tn\na,\"b\"\t0x1f00\t3\n\t0xffffffffffffffff\t1.5\n"
        );
        assert_eq!(
            render(Format::Jsonl),
            "{\"name\":\"a,\\\"b\\\"\",\"new_address\":\"0x1f00\",\"n\":3}\n{\"name\":null,\"new_address\":\"0xffffffffffffffff\",\"n\":1.5}\n"
        );
        let json: serde_json::Value = serde_json::from_str(&render(Format::Json)).unwrap();
        assert_eq!(json[0]["new_address"], "0x1f00");
        assert_eq!(json.as_array().unwrap().len(), 2);
        let t = render(Format::Table);
        assert!(
            t.starts_with("name   new_address           n\n-----  ------------------  ---\n"),
            "{t}"
        );
        assert!(t.contains("a,\"b\"  0x1f00                3\n"), "{t}");
        assert!(t.ends_with("(2 rows)\n"));
        let md = render(Format::Markdown);
        assert!(
            md.starts_with("| name | new_address | n |\n| --- | --- | ---: |\n"),
            "{md}"
        );
        assert!(
            is_address_column("old_address")
                && is_address_column("heap")
                && !is_address_column("heap_hex")
                && !is_address_column("size")
        );
    }
}
