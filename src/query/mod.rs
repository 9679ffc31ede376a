//! `heapdb query`: canned reports and ad hoc SQL on a read-only, sandboxed connection,
//! with parameters, any output format, cancellation and timeouts.

pub mod params;
pub mod reports;
pub mod sandbox;
pub mod schema_doc;

use crate::cancel::Cancel;
use crate::output::{self, RowWriter};
use rusqlite::types::Value;
use rusqlite::Connection;
use std::io::{Read, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub use params::{parse_param, parse_value};

/// Largest SQL text heapdb reads (a file, or stdin): SQL is written by people; anything
/// larger is a mistake (a capture, `/dev/zero`) that must not fill memory.
pub const MAX_SQL_BYTES: u64 = 16 << 20;

/// Why a query did not complete.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// The request itself is wrong (unknown report or parameter, bad value, bad file):
    /// a usage error.
    #[error("{0}")]
    Usage(String),
    /// SQLite's message and where in the SQL it points.
    #[error("SQL error: {message}{}", location.as_ref().map(|l| format!("\n{l}")).unwrap_or_default())]
    Sql {
        message: String,
        location: Option<String>,
    },
    #[error("interrupted")]
    Interrupted,
    #[error("query timed out after {0:?}")]
    TimedOut(Duration),
    #[error("writing output: {0}")]
    Io(#[from] std::io::Error),
}

/// Reads SQL from a file: it must be a regular file of text, at most [`MAX_SQL_BYTES`].
pub fn read_sql_file(path: &Path) -> Result<String, QueryError> {
    let usage = |m: String| QueryError::Usage(format!("{}: {m}", path.display()));
    let meta = std::fs::metadata(path).map_err(|e| usage(e.to_string()))?;
    if !meta.is_file() {
        return Err(usage(
            "not a regular file (an SQL file is expected)".to_string(),
        ));
    }
    let f = std::fs::File::open(path).map_err(|e| usage(e.to_string()))?;
    read_sql(f).map_err(|e| match e {
        QueryError::Usage(m) => usage(m),
        other => other,
    })
}

/// Reads SQL from a stream (stdin), with the same limit as files.
pub fn read_sql(r: impl Read) -> Result<String, QueryError> {
    let mut bytes = Vec::new();
    r.take(MAX_SQL_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| QueryError::Usage(format!("reading SQL: {e}")))?;
    if bytes.len() as u64 > MAX_SQL_BYTES {
        return Err(QueryError::Usage(format!(
            "SQL text larger than {} MiB; refused",
            MAX_SQL_BYTES >> 20
        )));
    }
    if bytes.contains(&0) {
        return Err(QueryError::Usage(
            "not text (it holds a NUL byte); refused as SQL".into(),
        ));
    }
    String::from_utf8(bytes)
        .map_err(|e| QueryError::Usage(format!("not UTF-8 text ({e}); refused as SQL")))
}

/// `--param label.KEY=VALUE`: from here on, the statements of `conn` see as `captures`
/// only the captures that have every one of these labels (a VALUE with `*`, `?` or `[`
/// is a GLOB pattern), and so do the views (re-created in TEMP over the filtered
/// table): the canned reports' default capture becomes the latest such capture, and
/// cross-capture reports compare only those. Returns how many captures are selected;
/// none is a usage error that lists the values the keys have.
pub fn select_captures(conn: &Connection, filters: &[(String, String)]) -> Result<i64, QueryError> {
    if filters.is_empty() {
        return Ok(-1);
    }
    let quote = |s: &str| format!("'{}'", s.replace('\'', "''"));
    let mut wheres = Vec::new();
    for (k, v) in filters {
        if !crate::ingest::labels::valid_key(k) {
            return Err(QueryError::Usage(format!(
                "--param label.{k}: a label key is letters, digits, '_', '-' and '.'"
            )));
        }
        let op = if v.contains(['*', '?', '[']) {
            "GLOB"
        } else {
            "="
        };
        wheres.push(format!(
            "capture_id IN (SELECT capture_id FROM main.capture_labels WHERE key = {} AND value {op} {})",
            quote(k),
            quote(v)
        ));
    }
    let sqlite = |e: rusqlite::Error| QueryError::Sql {
        message: e.to_string(),
        location: None,
    };
    conn.execute_batch(&format!(
        "CREATE TEMP VIEW captures AS SELECT * FROM main.captures WHERE {};",
        wheres.join(" AND ")
    ))
    .map_err(sqlite)?;
    for (_, sql) in crate::db::view_statements() {
        let temp = sql.replacen("CREATE VIEW", "CREATE TEMP VIEW", 1);
        conn.execute_batch(&temp).map_err(sqlite)?;
    }
    let n: i64 = conn
        .query_row("SELECT count(*) FROM temp.captures", [], |r| r.get(0))
        .map_err(sqlite)?;
    if n == 0 {
        let mut known = Vec::new();
        for (k, _) in filters {
            let mut st = conn
                .prepare("SELECT DISTINCT value FROM main.capture_labels WHERE key = ?1 ORDER BY value LIMIT 20")
                .map_err(sqlite)?;
            let values: Vec<String> = st
                .query_map([k], |r| r.get(0))
                .map_err(sqlite)?
                .collect::<rusqlite::Result<_>>()
                .map_err(sqlite)?;
            known.push(if values.is_empty() {
                format!("no capture has a label {k:?}")
            } else {
                format!("{k} is one of: {}", values.join(", "))
            });
        }
        let asked: Vec<String> = filters.iter().map(|(k, v)| format!("{k}={v}")).collect();
        return Err(QueryError::Usage(format!(
            "no capture is labelled {} ({})",
            asked.join(" and "),
            known.join("; ")
        )));
    }
    Ok(n)
}

/// When a string literal, quoted name (`"x"`, `` `x` ``, `[x]`) or comment starts at
/// byte `i` of SQL text, the offset just past it (the end of the text when it is not
/// closed; a doubled quote inside a quote is part of it); else None. The lexing that
/// [`split_statements`] and the lake's parameter rewrite (`crate::lake::sql`) share.
pub fn skip_quoted(b: &[u8], i: usize) -> Option<usize> {
    let find = |from: usize, pat: &[u8]| {
        b.get(from..)
            .and_then(|rest| rest.windows(pat.len()).position(|w| w == pat))
            .map(|p| from + p)
    };
    match (b.get(i)?, b.get(i + 1)) {
        (&q @ (b'\'' | b'"' | b'`'), _) => {
            let mut j = i + 1;
            while j < b.len() {
                if b[j] == q {
                    if b.get(j + 1) == Some(&q) {
                        j += 2;
                        continue;
                    }
                    return Some(j + 1);
                }
                j += 1;
            }
            Some(b.len())
        }
        (b'[', _) => Some(find(i + 1, b"]").map_or(b.len(), |j| j + 1)),
        (b'-', Some(b'-')) => Some(find(i + 2, b"\n").unwrap_or(b.len())),
        (b'/', Some(b'*')) => Some(find(i + 2, b"*/").map_or(b.len(), |j| j + 2)),
        _ => None,
    }
}

/// Splits SQL text into statements at top-level semicolons (outside strings, quoted
/// identifiers and comments), keeping each statement's offset in the text.
pub fn split_statements(sql: &str) -> Vec<(usize, &str)> {
    let b = sql.as_bytes();
    let mut out = Vec::new();
    let (mut i, mut start) = (0, 0);
    while i < b.len() {
        if let Some(j) = skip_quoted(b, i) {
            i = j;
            continue;
        }
        if b[i] == b';' {
            out.push((start, &sql[start..=i]));
            start = i + 1;
        }
        i += 1;
    }
    if start < sql.len() {
        out.push((start, &sql[start..]));
    }
    // Drop pieces that hold only whitespace and comments.
    out.into_iter()
        .filter(|(_, s)| {
            s.lines()
                .map(|l| l.split("--").next().unwrap_or(""))
                .any(|l| !l.trim().is_empty() && l.trim() != ";")
        })
        .collect()
}

/// "line L, column C" and the line with a caret under the offset.
fn locate(sql: &str, offset: usize) -> String {
    let mut offset = offset.min(sql.len());
    while !sql.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &sql[..offset];
    let line_no = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
    let col = sql[line_start..offset].chars().count() + 1;
    let line = sql[line_start..].lines().next().unwrap_or("");
    format!(
        "  at line {line_no}, column {col}:\n  {line}\n  {}^",
        " ".repeat(col - 1)
    )
}

fn sql_error(e: rusqlite::Error, sql: &str, base: usize) -> QueryError {
    match e {
        rusqlite::Error::SqliteFailure(err, _)
            if err.code == rusqlite::ErrorCode::OperationInterrupted =>
        {
            QueryError::Interrupted
        }
        rusqlite::Error::SqliteFailure(err, _)
            if err.code == rusqlite::ErrorCode::AuthorizationForStatementDenied =>
        {
            QueryError::Sql {
                message: sandbox::DENIED.to_string(),
                location: None,
            }
        }
        rusqlite::Error::SqlInputError { msg, offset, .. } if msg.contains("not authorized") => {
            QueryError::Sql {
                message: format!("{msg}: {}", sandbox::DENIED),
                location: (offset >= 0).then(|| locate(sql, base + offset as usize)),
            }
        }
        rusqlite::Error::SqlInputError { msg, offset, .. } => QueryError::Sql {
            message: msg,
            location: (offset >= 0).then(|| locate(sql, base + offset as usize)),
        },
        rusqlite::Error::SqliteFailure(err, msg) => QueryError::Sql {
            message: msg.unwrap_or_else(|| err.to_string()),
            location: None,
        },
        other => QueryError::Sql {
            message: other.to_string(),
            location: None,
        },
    }
}

/// Runs `sql` (one or more statements) with named parameters, writing each result set
/// in the given format. Stops at the first request of `cancel` or when `timeout`
/// expires. Returns the number of rows written.
pub fn run_sql(
    conn: &Connection,
    sql: &str,
    params: &[(String, Value)],
    out: &mut dyn Write,
    opts: output::Options,
    timeout: Option<Duration>,
    cancel: &Cancel,
) -> Result<u64, QueryError> {
    let _registered = cancel.register(conn.get_interrupt_handle(), 1);
    let done = Arc::new(AtomicBool::new(false));
    let timed_out = Arc::new(AtomicBool::new(false));
    if let Some(t) = timeout {
        let (done, timed_out, handle) =
            (done.clone(), timed_out.clone(), conn.get_interrupt_handle());
        std::thread::spawn(move || {
            std::thread::sleep(t);
            if !done.load(Ordering::SeqCst) {
                timed_out.store(true, Ordering::SeqCst);
                handle.interrupt();
            }
        });
    }
    let result = if cancel.requested() {
        Err(QueryError::Interrupted)
    } else {
        run_statements(conn, sql, params, out, opts)
    };
    done.store(true, Ordering::SeqCst);
    match result {
        Err(QueryError::Interrupted) if timed_out.load(Ordering::SeqCst) => {
            Err(QueryError::TimedOut(timeout.unwrap_or_default()))
        }
        r => r,
    }
}

/// Prepares one statement of `sql` (at offset `base`) and binds its named parameters.
fn prepare<'c>(
    conn: &'c Connection,
    sql: &str,
    base: usize,
    text: &str,
    params: &[(String, Value)],
) -> Result<rusqlite::Statement<'c>, QueryError> {
    let mut st = conn.prepare(text).map_err(|e| sql_error(e, sql, base))?;
    for i in 1..=st.parameter_count() {
        let name = st.parameter_name(i).unwrap_or("").to_string();
        let key = name.trim_start_matches([':', '@', '$']);
        let value = params
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
            .ok_or_else(|| {
                QueryError::Usage(format!(
                    "no value for parameter {name} (give --param {key}=VALUE)"
                ))
            })?;
        st.raw_bind_parameter(i, value)
            .map_err(|e| sql_error(e, sql, base))?;
    }
    Ok(st)
}

/// A result set held in memory: for callers that draw or compare rows (`heapdb
/// report`) rather than print them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Rows {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Value>>,
}

impl Rows {
    /// The index of a column; a missing column is a programming error in the caller,
    /// reported rather than panicking.
    pub fn col(&self, name: &str) -> Result<usize, QueryError> {
        self.columns
            .iter()
            .position(|c| c == name)
            .ok_or_else(|| QueryError::Sql {
                message: format!("result has no column {name:?}"),
                location: None,
            })
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }
}

/// Runs `sql` (one or more statements) and returns the rows of its last statement
/// that returns columns.
pub fn collect(
    conn: &Connection,
    sql: &str,
    params: &[(String, Value)],
) -> Result<Rows, QueryError> {
    let mut last = Rows::default();
    for (base, text) in split_statements(sql) {
        let mut st = prepare(conn, sql, base, text, params)?;
        let columns: Vec<String> = st.column_names().iter().map(|s| s.to_string()).collect();
        let ncol = columns.len();
        let mut rows = st.raw_query();
        let mut out = Vec::new();
        while let Some(row) = rows.next().map_err(|e| sql_error(e, sql, base))? {
            let mut values = Vec::with_capacity(ncol);
            for i in 0..ncol {
                values.push(
                    row.get::<_, Value>(i)
                        .map_err(|e| sql_error(e, sql, base))?,
                );
            }
            out.push(values);
        }
        if ncol > 0 {
            last = Rows { columns, rows: out };
        }
    }
    Ok(last)
}

/// Runs the canned report `name` with the given parameters (the others at their
/// defaults), exactly as `heapdb query NAME --param ...` does.
pub fn run_report(
    conn: &Connection,
    name: &str,
    given: &[(String, Value)],
) -> Result<Rows, QueryError> {
    let r = reports::get(name)?;
    let params = r.bind(given)?;
    collect(conn, r.sql, &params)
}

fn run_statements(
    conn: &Connection,
    sql: &str,
    params: &[(String, Value)],
    out: &mut dyn Write,
    opts: output::Options,
) -> Result<u64, QueryError> {
    let statements = split_statements(sql);
    if statements.is_empty() {
        return Err(QueryError::Usage("no SQL statement given".into()));
    }
    let mut total = 0;
    let mut sets = 0;
    for (base, text) in &statements {
        let mut st = prepare(conn, sql, *base, text, params)?;
        let columns: Vec<String> = st.column_names().iter().map(|s| s.to_string()).collect();
        let ncol = columns.len();
        if ncol > 0 && sets > 0 && opts.format.is_for_people() {
            writeln!(out)?;
        }
        let mut rows = st.raw_query();
        let mut w = if ncol > 0 {
            sets += 1;
            Some(RowWriter::new(&mut *out, columns, opts)?)
        } else {
            None
        };
        let mut values: Vec<output::Value> = Vec::with_capacity(ncol);
        while let Some(row) = rows.next().map_err(|e| sql_error(e, sql, *base))? {
            values.clear();
            for i in 0..ncol {
                let v: Value = row.get(i).map_err(|e| sql_error(e, sql, *base))?;
                values.push(v.into());
            }
            if let Some(w) = w.as_mut() {
                w.row(&values)?;
            }
        }
        if let Some(w) = w {
            total += w.finish()?;
        }
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_and_locations() {
        let s = split_statements("SELECT ';' AS a; -- x;\nSELECT 2 /* ; */;\n-- only a comment;\n");
        assert_eq!(s.len(), 2, "{s:?}");
        assert_eq!(s[0].1, "SELECT ';' AS a;");
        assert!(s[1].1.contains("SELECT 2"));
        assert_eq!(
            locate("SELECT\n  fro x", 9),
            "  at line 2, column 3:\n    fro x\n    ^"
        );
    }

    #[test]
    fn sql_text_is_bounded_and_must_be_text() {
        assert_eq!(read_sql(&b"SELECT 1"[..]).unwrap(), "SELECT 1");
        let e = read_sql(&b"SELECT 1;\0"[..]).unwrap_err().to_string();
        assert!(e.contains("NUL"), "{e}");
        let big = vec![b' '; MAX_SQL_BYTES as usize + 1];
        let e = read_sql(&big[..]).unwrap_err().to_string();
        assert!(e.contains("16 MiB"), "{e}");
        // An endless stream is read only up to the limit.
        let e = read_sql(std::io::repeat(b'x')).unwrap_err().to_string();
        assert!(e.contains("16 MiB"), "{e}");
    }
}
