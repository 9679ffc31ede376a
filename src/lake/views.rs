//! `heapdb lake-views`: the DuckDB script that makes a lake look like a heapdb database
//! (one view per table over its Parquet files, then heapdb's own views), so the canned
//! reports run on it as they are.

use super::{Lake, TableInfo};
use anyhow::{bail, Result};
use std::path::Path;

/// Settings and macros that give DuckDB SQLite's semantics where the reports rely on
/// them (see the file's comments).
pub const DUCKDB_PRELUDE: &str = include_str!("../../schema/duckdb_prelude.sql");

/// `'text'` as an SQL string literal.
fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

fn ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// True when some `*.parquet` file exists under `dir`.
fn has_files(dir: &Path) -> bool {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return false;
    };
    entries.flatten().any(|e| {
        let p = e.path();
        if p.is_dir() {
            has_files(&p)
        } else {
            p.extension().is_some_and(|x| x == "parquet")
        }
    })
}

/// The `CREATE VIEW` of one table.
fn table_view(root: &str, dir: &Path, t: &TableInfo) -> String {
    let name = format!("lake.{}", ident(&t.name));
    if !has_files(&dir.join(&t.name)) {
        // No file yet (nothing stored in it): an empty view of the right shape, so
        // queries still bind.
        let cols: Vec<String> = t
            .columns
            .iter()
            .map(|c| format!("CAST(NULL AS {}) AS {}", c.sql_type, ident(&c.name)))
            .collect();
        return format!(
            "CREATE OR REPLACE VIEW {name} AS SELECT {} WHERE false;\n",
            cols.join(", ")
        );
    }
    let cols: Vec<String> = t.columns.iter().map(|c| ident(&c.name)).collect();
    if t.partitioned {
        let glob = quote(&format!("{root}/{}/*/*/*.parquet", t.name));
        format!(
            "CREATE OR REPLACE VIEW {name} AS SELECT {}, capture_date\n  FROM read_parquet({glob}, hive_partitioning = true, hive_types = {{'capture_date': DATE, 'capture_id': BIGINT}});\n",
            cols.join(", ")
        )
    } else {
        let glob = quote(&format!("{root}/{}/*.parquet", t.name));
        format!(
            "CREATE OR REPLACE VIEW {name} AS SELECT {}\n  FROM read_parquet({glob});\n",
            cols.join(", ")
        )
    }
}

/// The whole script for the lake in `dir`.
pub fn script(dir: &Path) -> Result<String> {
    let lake = Lake::open(dir)?;
    let m = lake.read_marker()?;
    if m.tables.is_empty() {
        bail!(
            "{}: the lake has no tables yet (no ingest or export has finished in it)",
            dir.display()
        );
    }
    // Absolute, not canonical: Windows' canonical form (\\?\C:\...) is not a path
    // DuckDB's globbing takes.
    let abs = std::path::absolute(dir)?;
    let root = abs.to_string_lossy().replace('\\', "/");
    let mut s = format!(
        "-- heapdb {}: views over the heap lake {root}\n-- Use: heapdb lake-views DIR > views.sql; duckdb -init views.sql\n\n",
        env!("CARGO_PKG_VERSION")
    );
    s.push_str(DUCKDB_PRELUDE);
    s.push_str(
        "\n-- The tables: one view per directory of Parquet files, in schema lake, and under\n-- its plain name (`heapdb lake-sql --param label.K=V` shadows captures with a filtered\n-- TEMP view over lake.captures).\nCREATE SCHEMA IF NOT EXISTS lake;\n",
    );
    for t in &m.tables {
        s.push_str(&table_view(&root, lake.dir(), t));
    }
    for t in &m.tables {
        let n = ident(&t.name);
        s.push_str(&format!(
            "CREATE OR REPLACE VIEW {n} AS SELECT * FROM lake.{n};\n"
        ));
    }
    s.push_str("\n-- heapdb's views (schema/003_views.sql), as in the SQLite database.\n");
    s.push_str(crate::db::VIEWS_SQL);
    Ok(s)
}
