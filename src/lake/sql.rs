//! `heapdb lake-sql`: a canned report as a statement DuckDB (or Spark) runs over the
//! lake's views. The reports' SQL runs there unchanged (with the prelude of
//! `heapdb lake-views`); what other engines lack is SQLite's `:name` parameters, so
//! this is the one place that rewrites them: each `:name` becomes its value as a
//! literal. `--param label.KEY=VALUE` becomes a temporary `captures` view over the
//! labelled captures, as `heapdb query` does in SQLite.

use rusqlite::types::Value;

/// A value as an SQL literal that DuckDB and Spark read with SQLite's meaning.
pub fn literal(v: &Value) -> String {
    match v {
        Value::Null => "NULL".to_string(),
        Value::Integer(i) => i.to_string(),
        // A bare 1.5 is a DECIMAL in DuckDB and Spark; SQLite's reals are doubles.
        Value::Real(f) => format!("CAST({f:?} AS DOUBLE)"),
        Value::Text(t) => format!("'{}'", t.replace('\'', "''")),
        Value::Blob(b) => {
            let hex: String = b.iter().map(|x| format!("{x:02X}")).collect();
            format!("from_hex('{hex}')")
        }
    }
}

/// `sql` with every `:name` parameter (outside strings, quoted names and comments)
/// replaced by the literal of its value; a name not in `params` is NULL, as SQLite
/// binds an unset parameter.
pub fn inline_params(sql: &str, params: &[(String, Value)]) -> String {
    rewrite_params(sql, |name| {
        let v = params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .unwrap_or(Value::Null);
        literal(&v)
    })
}

/// The `:name` parameters of `sql`, in order of appearance (repeats included).
pub fn param_names(sql: &str) -> Vec<String> {
    let mut names = Vec::new();
    rewrite_params(sql, |name| {
        names.push(name.to_string());
        String::new()
    });
    names
}

/// `sql` with each `:name` parameter replaced by `f(name)`.
fn rewrite_params(sql: &str, mut f: impl FnMut(&str) -> String) -> String {
    let b = sql.as_bytes();
    let mut out = String::with_capacity(sql.len());
    let mut i = 0;
    let mut start = 0;
    let is_ident = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    while i < b.len() {
        if let Some(j) = crate::query::skip_quoted(b, i) {
            i = j;
            continue;
        }
        match b[i] {
            // `::` is a cast in DuckDB and Spark, never a parameter.
            b':' if b.get(i + 1) == Some(&b':') => i += 2,
            b':' if b
                .get(i + 1)
                .is_some_and(|c| c.is_ascii_alphabetic() || *c == b'_') =>
            {
                let name_start = i + 1;
                let mut j = name_start;
                while j < b.len() && is_ident(b[j]) {
                    j += 1;
                }
                out.push_str(&sql[start..i]);
                out.push_str(&f(&sql[name_start..j]));
                i = j;
                start = j;
            }
            _ => i += 1,
        }
    }
    out.push_str(&sql[start.min(sql.len())..]);
    out
}

/// The statements that make `captures` (and heapdb's views over it) show only the
/// captures with every one of these labels, for the statements that follow; `undo`
/// statements put things back.
pub fn label_filter(filters: &[(String, String)]) -> (String, String) {
    if filters.is_empty() {
        return (String::new(), String::new());
    }
    let quote = |s: &str| format!("'{}'", s.replace('\'', "''"));
    let wheres: Vec<String> = filters
        .iter()
        .map(|(k, v)| {
            let op = if v.contains(['*', '?', '[']) {
                "GLOB"
            } else {
                "="
            };
            format!(
                "capture_id IN (SELECT capture_id FROM lake.capture_labels WHERE key = {} AND value {op} {})",
                quote(k),
                quote(v)
            )
        })
        .collect();
    let mut setup = format!(
        "-- --param label.*: only the captures with these labels (lake.captures: the lake's table,\n-- see `heapdb lake-views`).\nCREATE OR REPLACE TEMP VIEW captures AS SELECT * FROM lake.captures WHERE {};\n",
        wheres.join(" AND ")
    );
    let mut undo = String::new();
    for (name, sql) in crate::db::view_statements() {
        setup.push_str(&sql.replacen("CREATE VIEW", "CREATE OR REPLACE TEMP VIEW", 1));
        setup.push_str(";\n");
        undo.push_str(&format!("DROP VIEW IF EXISTS temp.{name};\n"));
    }
    undo.push_str("DROP VIEW IF EXISTS temp.captures;\n");
    (setup, undo)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_become_literals_outside_strings_and_comments() {
        let p = vec![
            ("capture".to_string(), Value::Integer(17)),
            ("min_size".to_string(), Value::Real(1.5)),
            ("by".to_string(), Value::Text("it's".to_string())),
            ("heap".to_string(), Value::Integer(-1)),
        ];
        assert_eq!(
            inline_params(
                "SELECT ':capture', \":capture\" -- :capture\nFROM t /* :heap */ WHERE c = :capture AND h=:heap AND s > :min_size AND b = :by AND x = :unset AND y::BIGINT = 1",
                &p
            ),
            "SELECT ':capture', \":capture\" -- :capture\nFROM t /* :heap */ WHERE c = 17 AND h=-1 AND s > CAST(1.5 AS DOUBLE) AND b = 'it''s' AND x = NULL AND y::BIGINT = 1"
        );
        // Names run to the last identifier character; a prefix is not a match.
        assert_eq!(
            inline_params(
                "coalesce(:capture_a, :capture)",
                &[("capture".into(), Value::Integer(3))]
            ),
            "coalesce(NULL, 3)"
        );
        // Unterminated strings and comments end the text without a panic.
        assert_eq!(inline_params("SELECT ':x", &p), "SELECT ':x");
        assert_eq!(inline_params("SELECT 1 /* :x", &p), "SELECT 1 /* :x");
        assert_eq!(inline_params(":", &p), ":");
    }

    #[test]
    fn every_canned_report_loses_all_its_parameters_and_only_them() {
        for r in crate::query::reports::all() {
            let mut found = param_names(r.sql);
            found.sort();
            found.dedup();
            let mut declared: Vec<String> = r.params.iter().map(|p| p.name.clone()).collect();
            declared.sort();
            assert_eq!(found, declared, "{}: parameters in the SQL", r.name);
            let bound = r.bind(&[]).unwrap_or_else(|_| {
                // Required parameters: give each a value.
                r.params
                    .iter()
                    .map(|p| (p.name.clone(), Value::Integer(1)))
                    .collect()
            });
            let s = inline_params(r.sql, &bound);
            assert!(
                param_names(&s).is_empty(),
                "{}: a parameter survived",
                r.name
            );
            // Nothing else changed: the text between parameters is the same.
            assert_eq!(
                inline_params(&s, &[]),
                s,
                "{}: a second pass changes nothing",
                r.name
            );
        }
    }
}
