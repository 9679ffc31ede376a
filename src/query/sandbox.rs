//! What ad hoc SQL may do: read the database, and create, fill and drop TEMP objects
//! (reports keep intermediate results in indexed TEMP tables). Nothing else: no write
//! outside TEMP, no ATTACH (which would read or create other files), no VACUUM (whose
//! `INTO` form writes a copy of the database anywhere), no PRAGMA that changes a
//! setting, no extension loading.
//!
//! The database file is also opened read-only; the authorizer is the second wall, and
//! the only one for what a read-only connection still allows (`VACUUM INTO`, `ATTACH`).

use rusqlite::hooks::{AuthAction, AuthContext, Authorization};
use rusqlite::Connection;

/// Why a statement was refused, for the message.
pub const DENIED: &str = "not allowed: heapdb query only reads the database (TEMP tables, indexes and views are allowed; writes, ATTACH, VACUUM and setting PRAGMAs are not)";

/// PRAGMAs that take an argument but only read (`PRAGMA table_info(reallocs)`).
const READING_PRAGMAS: &[&str] = &[
    "table_info",
    "table_xinfo",
    "table_list",
    "index_list",
    "index_info",
    "index_xinfo",
    "foreign_key_list",
    "function_list",
    "pragma_list",
    "collation_list",
    "compile_options",
];

/// Functions with effects outside the query (present in some builds or shells).
const DENIED_FUNCTIONS: &[&str] = &[
    "load_extension",
    "readfile",
    "writefile",
    "edit",
    "fts3_tokenizer",
];

fn is_temp(db: Option<&str>) -> bool {
    db.is_some_and(|d| d.eq_ignore_ascii_case("temp"))
}

/// The decision for one action (public for the tests).
pub fn decide(ctx: &AuthContext<'_>) -> Authorization {
    use AuthAction as A;
    let allow = Authorization::Allow;
    let deny = Authorization::Deny;
    match ctx.action {
        A::Select | A::Read { .. } | A::Recursive | A::Transaction { .. } | A::Savepoint { .. } => {
            allow
        }
        A::Function { function_name } => {
            if DENIED_FUNCTIONS
                .iter()
                .any(|f| f.eq_ignore_ascii_case(function_name))
            {
                deny
            } else {
                allow
            }
        }
        A::Pragma {
            pragma_name,
            pragma_value,
        } => {
            let reading = READING_PRAGMAS
                .iter()
                .any(|p| p.eq_ignore_ascii_case(pragma_name));
            if pragma_value.is_none() || reading {
                allow
            } else {
                deny
            }
        }
        A::CreateTempTable { .. }
        | A::CreateTempIndex { .. }
        | A::CreateTempView { .. }
        | A::DropTempTable { .. }
        | A::DropTempIndex { .. }
        | A::DropTempView { .. } => allow,
        // Rows of TEMP tables (and of the TEMP schema, when a TEMP object is created);
        // a TEMP index is filled by a REINDEX of itself.
        A::Insert { .. }
        | A::Update { .. }
        | A::Delete { .. }
        | A::Reindex { .. }
        | A::AlterTable { .. }
            if is_temp(ctx.database_name) =>
        {
            allow
        }
        _ => deny,
    }
}

/// Installs the authorizer and closes the other doors: no attached databases at all.
pub fn restrict(conn: &Connection) {
    conn.authorizer(Some(|ctx: AuthContext<'_>| decide(&ctx)));
    // VACUUM INTO works by attaching its output file; with no attachment slot it cannot.
    conn.set_limit(rusqlite::limits::Limit::SQLITE_LIMIT_ATTACHED, 0);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temp_objects_are_allowed_and_main_ones_are_not() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE r (source, n); INSERT INTO r VALUES (1, 2)")
            .unwrap();
        restrict(&conn);
        conn.execute_batch(
            "CREATE TEMP TABLE t AS SELECT source, n FROM r; CREATE INDEX temp.t_n ON t (n); \
             INSERT INTO t VALUES (3, 4); UPDATE t SET n = 5; DELETE FROM t WHERE n = 5; \
             CREATE TEMP VIEW v AS SELECT * FROM t; DROP VIEW v; DROP INDEX temp.t_n; DROP TABLE t",
        )
        .unwrap();
        for sql in [
            "INSERT INTO r VALUES (5, 6)",
            "CREATE INDEX r_n ON r (n)",
            "ANALYZE",
            "PRAGMA cache_size = 10",
            "ATTACH ':memory:' AS x",
        ] {
            assert!(conn.execute_batch(sql).is_err(), "{sql}");
        }
    }
}
