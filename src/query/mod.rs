//! `heapdb query`: canned reports and ad hoc SQL on a read-only connection, with
//! parameters, formats, Ctrl-C and timeouts.

pub mod output;
pub mod reports;
pub mod schema_doc;

use output::{Format, Writer};
use rusqlite::types::Value;
use rusqlite::{Connection, InterruptHandle};
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

/// Why a query did not complete.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
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

/// A parameter value given on the command line: `0x...` hex and decimal integers,
/// reals, and the words `all`, `latest`, `previous`, `null`, `none` (NULL, which the
/// reports read as "no filter" / "the default capture"). Anything else is text.
pub fn parse_value(s: &str) -> Value {
    let t = s.trim();
    if let Some(h) = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        if let Ok(v) = u64::from_str_radix(h, 16) {
            return Value::Integer(v as i64);
        }
    }
    if let Ok(v) = t.parse::<i64>() {
        return Value::Integer(v);
    }
    if let Ok(v) = t.parse::<u64>() {
        return Value::Integer(v as i64);
    }
    if let Ok(v) = t.parse::<f64>() {
        return Value::Real(v);
    }
    match t.to_ascii_lowercase().as_str() {
        "all" | "latest" | "previous" | "null" | "none" | "" => Value::Null,
        _ => Value::Text(s.to_string()),
    }
}

/// Splits SQL text into statements at top-level semicolons (outside strings, quoted
/// identifiers and comments), keeping each statement's offset in the text.
pub fn split_statements(sql: &str) -> Vec<(usize, &str)> {
    let b = sql.as_bytes();
    let mut out = Vec::new();
    let (mut i, mut start) = (0, 0);
    while i < b.len() {
        match b[i] {
            q @ (b'\'' | b'"' | b'`') => {
                i += 1;
                while i < b.len() && b[i] != q {
                    i += 1;
                }
            }
            b'[' => {
                while i < b.len() && b[i] != b']' {
                    i += 1;
                }
            }
            b'-' if b.get(i + 1) == Some(&b'-') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                i += 2;
                while i + 1 < b.len() && !(b[i] == b'*' && b[i + 1] == b'/') {
                    i += 1;
                }
                i += 1;
            }
            b';' => {
                out.push((start, &sql[start..=i]));
                start = i + 1;
            }
            _ => {}
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
    let offset = offset.min(sql.len());
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

/// The interrupt handle of the running query, for the Ctrl-C handler.
fn current() -> &'static Mutex<Option<InterruptHandle>> {
    static CURRENT: OnceLock<Mutex<Option<InterruptHandle>>> = OnceLock::new();
    CURRENT.get_or_init(|| Mutex::new(None))
}

/// Installs a Ctrl-C handler that interrupts the running query (once per process).
pub fn install_ctrlc() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        let _ = ctrlc::set_handler(|| {
            if let Ok(g) = current().lock() {
                if let Some(h) = g.as_ref() {
                    h.interrupt();
                }
            }
        });
    });
}

/// Runs `sql` (one or more statements) with named parameters, writing each result set.
/// Returns the number of rows written.
pub fn run_sql(
    conn: &Connection,
    sql: &str,
    params: &[(String, Value)],
    out: &mut dyn Write,
    format: Format,
    hex: bool,
    timeout: Option<Duration>,
) -> Result<u64, QueryError> {
    if let Ok(mut g) = current().lock() {
        *g = Some(conn.get_interrupt_handle());
    }
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
    let result = run_statements(conn, sql, params, out, format, hex);
    done.store(true, Ordering::SeqCst);
    if let Ok(mut g) = current().lock() {
        *g = None;
    }
    match result {
        Err(QueryError::Sql { message, .. }) if message.contains("interrupted") => {
            if timed_out.load(Ordering::SeqCst) {
                Err(QueryError::TimedOut(timeout.unwrap_or_default()))
            } else {
                Err(QueryError::Interrupted)
            }
        }
        r => r,
    }
}

fn sql_error(e: rusqlite::Error, sql: &str, base: usize) -> QueryError {
    match e {
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

fn run_statements(
    conn: &Connection,
    sql: &str,
    params: &[(String, Value)],
    out: &mut dyn Write,
    format: Format,
    hex: bool,
) -> Result<u64, QueryError> {
    let statements = split_statements(sql);
    if statements.is_empty() {
        return Err(QueryError::Usage("no SQL statement given".into()));
    }
    let mut total = 0;
    for (n, (base, text)) in statements.iter().enumerate() {
        let mut st = conn.prepare(text).map_err(|e| sql_error(e, sql, *base))?;
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
                .map_err(|e| sql_error(e, sql, *base))?;
        }
        let columns: Vec<String> = st.column_names().iter().map(|s| s.to_string()).collect();
        if n > 0 && !columns.is_empty() && matches!(format, Format::Table | Format::Markdown) {
            writeln!(out)?;
        }
        let ncol = columns.len();
        let mut rows = st.raw_query();
        let mut w = if ncol > 0 {
            Some(Writer::new(&mut *out, format, columns, hex)?)
        } else {
            None
        };
        let mut values = Vec::with_capacity(ncol);
        while let Some(row) = rows.next().map_err(|e| sql_error(e, sql, *base))? {
            values.clear();
            for i in 0..ncol {
                values.push(
                    row.get::<_, Value>(i)
                        .map_err(|e| sql_error(e, sql, *base))?,
                );
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
    fn values_and_statements() {
        assert_eq!(parse_value("0x1F"), Value::Integer(31));
        assert_eq!(parse_value("0xffffffffffffffff"), Value::Integer(-1));
        assert_eq!(parse_value("42"), Value::Integer(42));
        assert_eq!(parse_value("1.5"), Value::Real(1.5));
        assert_eq!(parse_value("all"), Value::Null);
        assert_eq!(parse_value("devenv.exe"), Value::Text("devenv.exe".into()));
        let s = split_statements("SELECT ';' AS a; -- x;\nSELECT 2 /* ; */;\n-- only a comment;\n");
        assert_eq!(s.len(), 2, "{s:?}");
        assert_eq!(s[0].1, "SELECT ';' AS a;");
        assert!(s[1].1.contains("SELECT 2"));
        assert_eq!(
            locate("SELECT\n  fro x", 9),
            "  at line 2, column 3:\n    fro x\n    ^"
        );
    }
}
