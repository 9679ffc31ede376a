//! The Parquet heap lake: the same tables as the SQLite database, as Apache Parquet
//! files that DuckDB, Spark or Trino read in place.
//!
//! ```text
//! DIR/_heapdb/lake.json        what this is: format, version, tables and their columns
//! DIR/_heapdb/catalog.sqlite   a heapdb database holding every table but the row
//!                              tables' rows (fingerprints, ids, stacks, history): the
//!                              ingest's duplicate check, id sequences and identities
//! DIR/<table>/capture_date=YYYY-MM-DD/capture_id=N/part-0.parquet   per-capture tables
//! DIR/<table>/part-0.parquet   tables shared by all captures (stacks, sites, ...)
//! DIR/_tmp/                    files being written (never read by engines)
//! ```
//!
//! A capture's files are written under `_tmp/`, renamed into their partitions (the
//! `captures` file last), then the catalog commits: a killed run leaves at most a
//! partition of a capture the catalog does not know, which the next run writing that
//! capture id deletes before it starts. Readers glob `DIR/<table>/**/*.parquet` and
//! never see a half-written file. Layout and types: schema/lake.md.

pub mod export;
pub mod parquet;
pub mod sink;
pub mod sql;
pub mod views;

use self::parquet::{FileSchema, TableWriter};
use anyhow::{bail, Context as _, Result};
use rusqlite::Connection;
use std::path::{Path, PathBuf};

/// `lake.json`'s `format`.
pub const FORMAT: &str = "heapdb-lake";
/// The layout version this heapdb writes; a lake of a higher version is refused.
pub const VERSION: u64 = 1;

/// Tables with rows per capture: Hive-partitioned by capture date and id.
pub const PARTITIONED: &[&str] = &[
    "captures",
    "reallocs",
    "heap_events",
    "blocks",
    "processes",
    "threads",
    "images",
    "capture_stacks",
    "heaps",
    "site_stats",
    "capture_labels",
    "block_counts",
    "process_usage",
    "heap_event_counts",
];

/// The row tables: in the lake only, never in the catalog.
pub const ROW_TABLES: &[&str] = &["reallocs", "heap_events", "blocks"];

/// A lake directory.
#[derive(Debug, Clone)]
pub struct Lake {
    dir: PathBuf,
}

/// What `lake.json` says.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct Marker {
    pub format: String,
    pub version: u64,
    #[serde(default)]
    pub heapdb: String,
    #[serde(default)]
    pub tables: Vec<TableInfo>,
}

#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct TableInfo {
    pub name: String,
    /// Partitioned by `capture_date` (DATE) and `capture_id` (BIGINT): the files
    /// hold every column but `capture_id`, which comes from the path.
    pub partitioned: bool,
    /// The columns as engines see the table (the SQLite table's, then the `*_utc`
    /// timestamps).
    pub columns: Vec<ColumnInfo>,
}

#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct ColumnInfo {
    pub name: String,
    /// As DuckDB names it (BIGINT, DOUBLE, VARCHAR, BLOB, TIMESTAMP WITH TIME ZONE).
    #[serde(rename = "type")]
    pub sql_type: String,
    /// As the files store it (INT64, DOUBLE, BYTE_ARRAY STRING, ...): engine-neutral.
    #[serde(default)]
    pub parquet_type: String,
    pub nullable: bool,
}

impl Lake {
    /// Opens a lake for writing, creating it when `dir` is missing or empty; refuses a
    /// directory with other contents or a lake of a newer heapdb.
    pub fn create_or_open(dir: &Path) -> Result<Lake> {
        let lake = Lake {
            dir: dir.to_path_buf(),
        };
        if dir.exists() && !dir.is_dir() {
            bail!("{}: is a file, not a lake directory", dir.display());
        }
        if lake.marker_path().exists() {
            lake.read_marker()?;
            return Ok(lake);
        }
        if dir.exists() {
            let mut entries =
                std::fs::read_dir(dir).with_context(|| format!("{}: listing", dir.display()))?;
            if entries.next().is_some() {
                bail!(
                    "{}: not a heapdb lake (no _heapdb/lake.json) and not empty; give a new or empty directory",
                    dir.display()
                );
            }
        }
        std::fs::create_dir_all(lake.meta_dir())
            .with_context(|| format!("{}: creating", lake.meta_dir().display()))?;
        lake.write_marker(Vec::new())?;
        Ok(lake)
    }

    /// Opens an existing lake (for reading its layout).
    pub fn open(dir: &Path) -> Result<Lake> {
        let lake = Lake {
            dir: dir.to_path_buf(),
        };
        if !dir.is_dir() {
            bail!("{}: no such lake directory", dir.display());
        }
        if !lake.marker_path().exists() {
            bail!(
                "{}: not a heapdb lake (no _heapdb/lake.json; write one with `heapdb ingest --parquet` or `heapdb export`)",
                dir.display()
            );
        }
        lake.read_marker()?;
        Ok(lake)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn meta_dir(&self) -> PathBuf {
        self.dir.join("_heapdb")
    }

    fn marker_path(&self) -> PathBuf {
        self.meta_dir().join("lake.json")
    }

    pub fn catalog_path(&self) -> PathBuf {
        self.meta_dir().join("catalog.sqlite")
    }

    fn tmp_dir(&self) -> PathBuf {
        self.dir.join("_tmp")
    }

    /// Where a capture's files are written before they are published.
    fn capture_tmp(&self, capture_id: i64) -> PathBuf {
        self.tmp_dir()
            .join(format!("capture_id={capture_id}.{}", std::process::id()))
    }

    pub fn read_marker(&self) -> Result<Marker> {
        let p = self.marker_path();
        let text =
            std::fs::read_to_string(&p).with_context(|| format!("{}: reading", p.display()))?;
        let m: Marker = serde_json::from_str(&text)
            .map_err(|e| anyhow::anyhow!("{}: not a heapdb lake marker: {e}", p.display()))?;
        if m.format != FORMAT {
            bail!(
                "{}: not a heapdb lake (format {:?}, expected {FORMAT:?})",
                p.display(),
                m.format
            );
        }
        if m.version > VERSION {
            bail!(
                "{}: written by a newer heapdb ({}; lake version {}, this heapdb {} writes version {VERSION}); upgrade heapdb",
                self.dir.display(),
                if m.heapdb.is_empty() { "unknown version" } else { m.heapdb.as_str() },
                m.version,
                env!("CARGO_PKG_VERSION")
            );
        }
        Ok(m)
    }

    fn write_marker(&self, tables: Vec<TableInfo>) -> Result<()> {
        let m = Marker {
            format: FORMAT.to_string(),
            version: VERSION,
            heapdb: env!("CARGO_PKG_VERSION").to_string(),
            tables,
        };
        let p = self.marker_path();
        let tmp = p.with_extension("json.tmp");
        let text = serde_json::to_string_pretty(&m)? + "\n";
        std::fs::write(&tmp, text).with_context(|| format!("{}: writing", tmp.display()))?;
        std::fs::rename(&tmp, &p).with_context(|| format!("{}: writing", p.display()))?;
        Ok(())
    }

    /// Rewrites `lake.json` with the tables and columns of the catalog's schema.
    pub fn describe(&self, catalog: &Connection) -> Result<()> {
        let mut tables = Vec::new();
        for t in all_tables(catalog)? {
            // As engines see the table: capture_id (from the path when partitioned) in
            // its place, the `*_utc` twins at the end.
            let s = FileSchema::new(&t, &table_columns(catalog, "main", &t)?);
            tables.push(TableInfo {
                partitioned: is_partitioned(&t),
                name: t,
                columns: s
                    .columns
                    .iter()
                    .map(|c| ColumnInfo {
                        name: c.name.clone(),
                        sql_type: c.kind.sql_type().to_string(),
                        parquet_type: c.kind.parquet_type().to_string(),
                        nullable: !c.required,
                    })
                    .collect(),
            });
        }
        self.write_marker(tables)
    }

    fn partition_dir(&self, table: &str, date: &str, capture_id: i64) -> PathBuf {
        self.dir
            .join(table)
            .join(format!("capture_date={date}"))
            .join(format!("capture_id={capture_id}"))
    }

    /// Deletes whatever a killed run left of `capture_id`: its temporary files and any
    /// partition the catalog never committed.
    pub fn remove_capture(&self, capture_id: i64) -> Result<()> {
        let prefix = format!("capture_id={capture_id}.");
        if let Ok(entries) = std::fs::read_dir(self.tmp_dir()) {
            for e in entries.flatten() {
                if e.file_name().to_string_lossy().starts_with(&prefix) {
                    remove_dir(&e.path())?;
                }
            }
        }
        let part = format!("capture_id={capture_id}");
        for t in PARTITIONED {
            let Ok(dates) = std::fs::read_dir(self.dir.join(t)) else {
                continue;
            };
            for d in dates.flatten() {
                let p = d.path().join(&part);
                if p.exists() {
                    remove_dir(&p)?;
                }
            }
        }
        Ok(())
    }

    /// Publishes a capture's files (written by [`write_tables`] into `tmp`): each is
    /// renamed into its partition, `captures` last, and the directories are synced.
    pub fn publish(&self, capture_id: i64, date: &str, files: &[(String, PathBuf)]) -> Result<()> {
        let mut ordered: Vec<&(String, PathBuf)> = files.iter().collect();
        ordered.sort_by_key(|(t, _)| t == "captures");
        for (t, f) in ordered {
            let dir = self.partition_dir(t, date, capture_id);
            std::fs::create_dir_all(&dir)
                .with_context(|| format!("{}: creating", dir.display()))?;
            let dest = dir.join("part-0.parquet");
            std::fs::rename(f, &dest)
                .with_context(|| format!("{}: publishing {}", dest.display(), f.display()))?;
            sync_dir(&dir);
            if let Some(parent) = dir.parent() {
                sync_dir(parent);
            }
        }
        Ok(())
    }

    /// Rewrites the files of the tables shared by all captures from the catalog (each
    /// to a temporary name, then renamed over the old one).
    pub fn write_shared(&self, catalog: &Connection) -> Result<()> {
        std::fs::create_dir_all(self.tmp_dir())?;
        for t in all_tables(catalog)? {
            if is_partitioned(&t) {
                continue;
            }
            let schema = file_schema(catalog, "main", &t)?;
            let tmp = self
                .tmp_dir()
                .join(format!("{t}.{}.parquet", std::process::id()));
            let sql = format!("SELECT {} FROM main.{t}", select_list(&schema));
            write_query(catalog, &sql, [], &tmp, schema)?;
            let dir = self.dir.join(&t);
            std::fs::create_dir_all(&dir)?;
            let dest = dir.join("part-0.parquet");
            std::fs::rename(&tmp, &dest)
                .with_context(|| format!("{}: publishing", dest.display()))?;
            sync_dir(&dir);
        }
        sync_dir(&self.dir);
        Ok(())
    }

    /// Removes temporary files this process left (after a failed write).
    fn clean_tmp(&self, path: &Path) {
        let _ = remove_dir(path);
    }
}

fn remove_dir(p: &Path) -> Result<()> {
    match std::fs::remove_dir_all(p) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("{}: removing", p.display())),
    }
}

/// Makes renames in `dir` durable (best effort: not every platform opens directories).
fn sync_dir(dir: &Path) {
    if let Ok(f) = std::fs::File::open(dir) {
        let _ = f.sync_all();
    }
}

pub fn is_partitioned(table: &str) -> bool {
    PARTITIONED.contains(&table)
}

/// The tables of a heapdb database, in schema order.
pub fn all_tables(conn: &Connection) -> Result<Vec<String>> {
    let mut st = conn.prepare(
        "SELECT name FROM main.sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY rowid",
    )?;
    let names = st
        .query_map([], |r| r.get::<_, String>(0))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(names)
}

/// A table's columns: (name, declared type, NOT NULL).
pub fn table_columns(
    conn: &Connection,
    schema: &str,
    table: &str,
) -> Result<Vec<(String, String, bool)>> {
    let mut st = conn.prepare(&format!("PRAGMA {schema}.table_info({table})"))?;
    let cols = st
        .query_map([], |r| {
            Ok((
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, bool>(3)?,
            ))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    if cols.is_empty() {
        bail!("{schema}.{table}: no such table");
    }
    Ok(cols)
}

/// The columns of a table's lake files: the table's, without `capture_id` when it is
/// a partition key, plus the `*_utc` twins.
pub fn file_schema(conn: &Connection, schema: &str, table: &str) -> Result<FileSchema> {
    let mut cols = table_columns(conn, schema, table)?;
    if is_partitioned(table) {
        cols.retain(|(n, ..)| n != "capture_id");
    }
    Ok(FileSchema::new(table, &cols))
}

/// `a, b, c`: the source columns of a file schema, for a SELECT.
fn select_list(s: &FileSchema) -> String {
    s.source_columns()
        .map(|c| format!("\"{}\"", c.name))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Writes the rows of a query (its columns in the file's source column order) to a
/// new Parquet file.
fn write_query<P: rusqlite::Params>(
    conn: &Connection,
    sql: &str,
    params: P,
    path: &Path,
    schema: FileSchema,
) -> Result<u64> {
    let mut w = TableWriter::create(path, schema)?;
    let mut st = conn.prepare(sql)?;
    let n = st.column_count();
    let mut rows = st.query(params)?;
    while let Some(r) = rows.next()? {
        for i in 0..n {
            w.value(r.get_ref(i)?)?;
        }
        w.end_row()?;
    }
    w.finish()
}

/// The partition date of a capture: the UTC date its session started.
pub fn capture_date(conn: &Connection, schema: &str, capture_id: i64) -> Result<String> {
    let ns: Option<i64> = conn.query_row(
        &format!(
            "SELECT coalesce(start_time_ns, first_event_ns) FROM {schema}.captures WHERE capture_id = ?1"
        ),
        [capture_id],
        |r| r.get(0),
    )?;
    Ok(crate::etl::time::rfc3339(ns.unwrap_or(0))
        .chars()
        .take(10)
        .collect())
}

/// Writes the rows of `capture_id` of each of `tables` (read from `schema` of `conn`)
/// into `tmp`, one file per table; returns (table, file).
pub fn write_tables(
    conn: &Connection,
    schema: &str,
    capture_id: i64,
    tables: &[&str],
    tmp: &Path,
) -> Result<Vec<(String, PathBuf)>> {
    std::fs::create_dir_all(tmp).with_context(|| format!("{}: creating", tmp.display()))?;
    let mut out = Vec::new();
    // The row tables are read by their id range (a rowid range scan), as the reports
    // read them; the capture_id test stays for captures whose ranges are unknown.
    let (lo, hi, blo, bhi): (Option<i64>, Option<i64>, Option<i64>, Option<i64>) = conn.query_row(
        &format!("SELECT first_event_id, last_event_id, first_block_id, last_block_id FROM {schema}.captures WHERE capture_id = ?1"),
        [capture_id],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
    )?;
    let range = |key: &str, lo: Option<i64>, hi: Option<i64>| match (lo, hi) {
        (Some(lo), Some(hi)) => format!(" AND {key} BETWEEN {lo} AND {hi} ORDER BY {key}"),
        _ => format!(" ORDER BY {key}"),
    };
    for t in tables {
        let fs = file_schema(conn, schema, t)?;
        let order = match *t {
            "reallocs" | "heap_events" => range("id", lo, hi),
            "blocks" => range("block_id", blo, bhi),
            _ => String::new(),
        };
        // `+`: the row tables by their id range, not by an index on capture_id.
        let key = if order.is_empty() {
            "capture_id"
        } else {
            "+capture_id"
        };
        let sql = format!(
            "SELECT {} FROM {schema}.{t} WHERE {key} = ?1{order}",
            select_list(&fs)
        );
        let path = tmp.join(format!("{t}.parquet"));
        write_query(conn, &sql, [capture_id], &path, fs)
            .with_context(|| format!("capture {capture_id}: writing {t}"))?;
        out.push((t.to_string(), path));
    }
    Ok(out)
}
