//! Rows → text, for every command that prints rows (`dump`, `query`, `reports`,
//! `schema`): one format vocabulary, one set of rules for hex addresses.
//!
//! | format | for | shape |
//! |---|---|---|
//! | `table` | people | aligned columns; widths from the first [`WIDTH_WINDOW`] rows, then streamed |
//! | `markdown` | people, issues, wikis | a pipe table, streamed |
//! | `csv`, `tsv` | spreadsheets, scripts | a header line, then one line per row |
//! | `json` | scripts | one array of objects per result set |
//! | `jsonl` | scripts, `jq` | one object per line |
//!
//! Every format streams: memory stays flat whatever the number of rows (the table and
//! markdown formats hold back only the first rows, to size the columns).

mod table;

pub use table::WIDTH_WINDOW;

use std::io::{self, Write};

/// An output format. The same names mean the same thing in every command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Table,
    Csv,
    Tsv,
    Json,
    Jsonl,
    Markdown,
}

impl Format {
    pub const ALL: [Format; 6] = [
        Format::Table,
        Format::Csv,
        Format::Tsv,
        Format::Json,
        Format::Jsonl,
        Format::Markdown,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Format::Table => "table",
            Format::Csv => "csv",
            Format::Tsv => "tsv",
            Format::Json => "json",
            Format::Jsonl => "jsonl",
            Format::Markdown => "markdown",
        }
    }

    pub fn from_name(name: &str) -> Option<Format> {
        Format::ALL.into_iter().find(|f| f.name() == name)
    }

    /// Formats meant to be read by people (aligned, cut, with a row count).
    pub fn is_for_people(self) -> bool {
        matches!(self, Format::Table | Format::Markdown)
    }
}

/// A cell. Integers that are addresses print in hex (see [`is_address_column`]).
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Int(i64),
    Real(f64),
    Text(String),
    Blob(Vec<u8>),
    /// A nested value: as JSON in `json`/`jsonl`, as `text` everywhere else (where a
    /// JSON blob would not help a reader).
    Nested {
        json: serde_json::Value,
        text: String,
    },
}

impl From<rusqlite::types::Value> for Value {
    fn from(v: rusqlite::types::Value) -> Value {
        use rusqlite::types::Value as V;
        match v {
            V::Null => Value::Null,
            V::Integer(i) => Value::Int(i),
            V::Real(f) => Value::Real(f),
            V::Text(t) => Value::Text(t),
            V::Blob(b) => Value::Blob(b),
        }
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Value {
        Value::Text(s.to_string())
    }
}

impl From<String> for Value {
    fn from(s: String) -> Value {
        Value::Text(s)
    }
}

impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Value {
        v.map_or(Value::Null, Into::into)
    }
}

macro_rules! int_value {
    ($($t:ty),*) => {$(
        impl From<$t> for Value {
            fn from(v: $t) -> Value {
                Value::Int(v as i64)
            }
        }
    )*};
}
int_value!(i64, i32, u32, u16, u8, usize);

impl From<u64> for Value {
    /// The bit pattern, as the database stores addresses (see schema/001_tables.sql).
    fn from(v: u64) -> Value {
        Value::Int(v as i64)
    }
}

/// Columns whose integers are addresses (heap handles, blocks, image bases, frames):
/// they print in hex (`0x1f0000`), also in JSON (as strings, exact above 2^53).
pub fn is_address_column(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    matches!(
        n.as_str(),
        "heap" | "address" | "base" | "leaf" | "unique_key"
    ) || n.ends_with("address")
}

fn hex_digits(b: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(b.len() * 2);
    for &x in b {
        s.push(DIGITS[(x >> 4) as usize] as char);
        s.push(DIGITS[(x & 15) as usize] as char);
    }
    s
}

/// Bytes as lowercase hex (payloads, blobs).
pub fn hex(b: &[u8]) -> String {
    hex_digits(b)
}

/// A cell as text (NULL as empty).
pub fn cell_text(v: &Value, hex: bool) -> String {
    match v {
        Value::Null => String::new(),
        Value::Int(i) if hex => format!("0x{:x}", *i as u64),
        Value::Int(i) => i.to_string(),
        Value::Real(f) => format!("{f}"),
        Value::Text(t) => t.clone(),
        Value::Blob(b) => hex_digits(b),
        Value::Nested { text, .. } => text.clone(),
    }
}

fn json_value(v: &Value, hex: bool) -> serde_json::Value {
    match v {
        Value::Null => serde_json::Value::Null,
        Value::Int(i) if hex => serde_json::Value::String(format!("0x{:x}", *i as u64)),
        Value::Int(i) => serde_json::Value::from(*i),
        Value::Real(f) => serde_json::Number::from_f64(*f)
            .map(serde_json::Value::Number)
            .unwrap_or(serde_json::Value::Null),
        Value::Text(t) => serde_json::Value::String(t.clone()),
        Value::Blob(b) => serde_json::Value::String(hex_digits(b)),
        Value::Nested { json, .. } => json.clone(),
    }
}

/// How a [`RowWriter`] prints.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    pub format: Format,
    /// Print address columns in hex (see [`is_address_column`]).
    pub hex_addresses: bool,
    /// `json`: indent objects (for one object per file, as `dump --summary` prints).
    pub pretty_json: bool,
    /// `table`/`markdown`: the leading columns that name a group; each group is printed
    /// under its own heading (`schema` groups columns by table).
    pub group_columns: usize,
    /// `table`: one `column: value` line per cell instead of columns (for wide rows
    /// that are one record each, such as `dump --summary`).
    pub expanded: bool,
    /// `table`: print the `(N rows)` footer.
    pub row_count: bool,
    /// `table`: text longer than this is cut with `…`.
    pub max_width: usize,
}

impl Options {
    pub fn new(format: Format) -> Options {
        Options {
            format,
            hex_addresses: true,
            pretty_json: false,
            group_columns: 0,
            expanded: false,
            row_count: true,
            max_width: table::MAX_WIDTH,
        }
    }
}

enum Sink<W: Write> {
    Csv(csv::Writer<W>),
    Json { out: W },
    People(table::TableWriter<W>),
}

/// Writes one result set row by row.
pub struct RowWriter<W: Write> {
    sink: Sink<W>,
    opts: Options,
    columns: Vec<String>,
    hex: Vec<bool>,
    rows: u64,
}

impl<W: Write> RowWriter<W> {
    pub fn new(out: W, columns: Vec<String>, opts: Options) -> io::Result<RowWriter<W>> {
        let hex: Vec<bool> = columns
            .iter()
            .map(|c| opts.hex_addresses && is_address_column(c))
            .collect();
        let sink = match opts.format {
            Format::Csv | Format::Tsv => {
                // TSV is never quoted: tabs and line breaks inside a value become
                // spaces, so every line splits on tabs (what `cut` and `awk -F'\t'` expect).
                let tsv = opts.format == Format::Tsv;
                let mut w = csv::WriterBuilder::new()
                    .delimiter(if tsv { b'\t' } else { b',' })
                    .quote_style(if tsv {
                        csv::QuoteStyle::Never
                    } else {
                        csv::QuoteStyle::Necessary
                    })
                    .from_writer(out);
                for c in &columns {
                    w.write_field(tsv_safe(c, tsv).as_bytes()).map_err(csv_io)?;
                }
                w.write_record(None::<&[u8]>).map_err(csv_io)?;
                Sink::Csv(w)
            }
            Format::Json => {
                let mut out = out;
                out.write_all(b"[")?;
                Sink::Json { out }
            }
            Format::Jsonl => Sink::Json { out },
            Format::Table | Format::Markdown => Sink::People(table::TableWriter::new(
                out,
                columns.clone(),
                hex.clone(),
                opts,
            )),
        };
        Ok(RowWriter {
            sink,
            opts,
            columns,
            hex,
            rows: 0,
        })
    }

    pub fn columns(&self) -> &[String] {
        &self.columns
    }

    pub fn row(&mut self, values: &[Value]) -> io::Result<()> {
        self.rows += 1;
        match &mut self.sink {
            Sink::Csv(w) => {
                let tsv = self.opts.format == Format::Tsv;
                for (v, &h) in values.iter().zip(&self.hex) {
                    w.write_field(tsv_safe(&cell_text(v, h), tsv).as_bytes())
                        .map_err(csv_io)?;
                }
                w.write_record(None::<&[u8]>).map_err(csv_io)
            }
            Sink::Json { out } => {
                let mut obj = serde_json::Map::with_capacity(values.len());
                for ((c, v), &h) in self.columns.iter().zip(values).zip(&self.hex) {
                    obj.insert(c.clone(), json_value(v, h));
                }
                let obj = serde_json::Value::Object(obj);
                if self.opts.format == Format::Json {
                    out.write_all(if self.rows == 1 { b"\n" } else { b",\n" })?;
                    if self.opts.pretty_json {
                        serde_json::to_writer_pretty(&mut *out, &obj)?;
                    } else {
                        serde_json::to_writer(&mut *out, &obj)?;
                    }
                    Ok(())
                } else {
                    serde_json::to_writer(&mut *out, &obj)?;
                    out.write_all(b"\n")
                }
            }
            Sink::People(t) => t.row(values),
        }
    }

    /// Ends the result set; returns the number of rows written.
    pub fn finish(self) -> io::Result<u64> {
        match self.sink {
            Sink::Csv(mut w) => w.flush()?,
            Sink::Json { mut out } => {
                if self.opts.format == Format::Json {
                    writeln!(out, "{}]", if self.rows > 0 { "\n" } else { "" })?;
                }
                out.flush()?;
            }
            Sink::People(t) => t.finish(self.rows)?,
        }
        Ok(self.rows)
    }
}

fn tsv_safe(s: &str, tsv: bool) -> std::borrow::Cow<'_, str> {
    if tsv && s.contains(['\t', '\n', '\r']) {
        s.replace(['\t', '\n', '\r'], " ").into()
    } else {
        s.into()
    }
}

fn csv_io(e: csv::Error) -> io::Error {
    match e.into_kind() {
        csv::ErrorKind::Io(e) => e,
        other => io::Error::other(format!("{other:?}")),
    }
}

/// True when writing failed because the reader went away (`heapdb dump | head`): not an
/// error worth a message.
pub fn is_broken_pipe(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::BrokenPipe
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render_with(opts: Options) -> String {
        let mut buf = Vec::new();
        let mut w = RowWriter::new(
            &mut buf,
            vec!["name".into(), "new_address".into(), "n".into()],
            opts,
        )
        .unwrap();
        w.row(&[
            Value::Text("a,\"b\"".into()),
            Value::Int(0x1f00),
            Value::Int(3),
        ])
        .unwrap();
        w.row(&[Value::Null, Value::Int(-1), Value::Real(1.5)])
            .unwrap();
        assert_eq!(w.finish().unwrap(), 2);
        String::from_utf8(buf).unwrap()
    }

    fn render(format: Format) -> String {
        render_with(Options::new(format))
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
        let mut no_hex = Options::new(Format::Csv);
        no_hex.hex_addresses = false;
        assert!(render_with(no_hex).contains(",7936,3\n"));
    }

    #[test]
    fn nested_values_are_json_in_json_and_text_elsewhere() {
        let v = Value::Nested {
            json: serde_json::json!([{"name": "capture"}]),
            text: "capture=latest".into(),
        };
        for (format, want) in [
            (Format::Jsonl, "{\"p\":[{\"name\":\"capture\"}]}\n"),
            (Format::Csv, "p\ncapture=latest\n"),
        ] {
            let mut buf = Vec::new();
            let mut w = RowWriter::new(&mut buf, vec!["p".into()], Options::new(format)).unwrap();
            w.row(std::slice::from_ref(&v)).unwrap();
            w.finish().unwrap();
            assert_eq!(String::from_utf8(buf).unwrap(), want);
        }
    }
}
