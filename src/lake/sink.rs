//! The lake sink: the ingest's second store. Everything but the row tables goes to the
//! catalog (a heapdb database, through the SQLite sink, so ids, duplicates, history and
//! lifetimes summaries are computed by the same code); the rows of `reallocs`,
//! `heap_events` and `blocks` stream into Parquet files as they arrive. At commit, the
//! capture's other tables are read back from the catalog's open transaction into their
//! files, everything is published, and the catalog commits.

use super::parquet::TableWriter;
use super::{capture_date, file_schema, write_tables, Lake, PARTITIONED, ROW_TABLES};
use crate::db::sink::{IndexMode, SqliteSink};
use crate::db::sql::{self, Table};
use crate::ingest::sink::{
    Begin, CaptureEnd, CaptureStart, Catalog, Context, EventBatch, FileFailure, Sink,
};
use crate::ingest::Finished;
use anyhow::{bail, Context as _, Result};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// One row table's file of the capture being written.
struct RowFile {
    table: &'static str,
    writer: TableWriter,
    /// Position of `capture_id` among the `table!` columns (a partition key: not in
    /// the file).
    skip: usize,
}

struct Current {
    capture_id: i64,
    tmp: PathBuf,
    files: Vec<RowFile>,
}

pub struct ParquetSink {
    lake: Lake,
    inner: SqliteSink,
    cur: Option<Current>,
    /// Something was stored: the shared tables' files are rewritten at the end.
    changed: bool,
    parquet_seconds: f64,
}

impl ParquetSink {
    /// Opens (creating if needed) the lake in `dir` for an ingest.
    pub fn open(dir: &Path) -> Result<ParquetSink> {
        let lake = Lake::create_or_open(dir)?;
        // The catalog holds no event rows, so its indexes are small: keep them.
        let inner = SqliteSink::open(&lake.catalog_path(), IndexMode::Keep)?;
        let conn = inner.connection();
        check_columns(conn, &sql::REALLOCS)?;
        check_columns(conn, &sql::HEAP_EVENTS)?;
        check_columns(conn, &sql::BLOCKS)?;
        Ok(ParquetSink {
            lake,
            inner,
            cur: None,
            changed: false,
            parquet_seconds: 0.0,
        })
    }

    pub fn lake(&self) -> &Lake {
        &self.lake
    }

    fn start_files(&self, capture_id: i64) -> Result<Current> {
        self.lake.remove_capture(capture_id)?;
        let tmp = self.lake.capture_tmp(capture_id);
        std::fs::create_dir_all(&tmp).with_context(|| format!("{}: creating", tmp.display()))?;
        let conn = self.inner.connection();
        let mut files = Vec::new();
        for (table, cols) in [
            ("reallocs", sql::REALLOCS.columns),
            ("heap_events", sql::HEAP_EVENTS.columns),
            ("blocks", sql::BLOCKS.columns),
        ] {
            let schema = file_schema(conn, "main", table)?;
            let writer = TableWriter::create(&tmp.join(format!("{table}.parquet")), schema)?;
            let skip = cols
                .iter()
                .position(|c| *c == "capture_id")
                .unwrap_or(usize::MAX);
            files.push(RowFile {
                table,
                writer,
                skip,
            });
        }
        Ok(Current {
            capture_id,
            tmp,
            files,
        })
    }

    fn write_rows(&mut self, b: &EventBatch<'_>) -> Result<()> {
        let Some(cur) = self.cur.as_mut() else {
            bail!(
                "internal: rows of capture {} outside a capture",
                b.capture_id
            );
        };
        for f in &mut cur.files {
            match f.table {
                "reallocs" => push(f, &sql::REALLOCS, b.reallocs)?,
                "heap_events" => push(f, &sql::HEAP_EVENTS, b.others)?,
                _ => push(f, &sql::BLOCKS, b.blocks)?,
            }
        }
        Ok(())
    }

    /// Forgets the files of the capture being written.
    fn drop_files(&mut self) {
        if let Some(cur) = self.cur.take() {
            drop(cur.files);
            self.lake.clean_tmp(&cur.tmp);
        }
    }
}

/// The file columns of a row table must be its `table!` columns in the same order
/// (without `capture_id`): the rows are written in that order.
fn check_columns<R>(conn: &rusqlite::Connection, t: &Table<R>) -> Result<()> {
    let schema = file_schema(conn, "main", t.name)?;
    let file: Vec<&str> = schema.source_columns().map(|c| c.name.as_str()).collect();
    let rows: Vec<&str> = t
        .columns
        .iter()
        .copied()
        .filter(|c| *c != "capture_id")
        .collect();
    if file != rows {
        bail!(
            "internal: the columns heapdb writes to {} ({}) are not the table's ({})",
            t.name,
            rows.join(", "),
            file.join(", ")
        );
    }
    Ok(())
}

fn push<R>(f: &mut RowFile, t: &Table<R>, rows: &[R]) -> Result<()> {
    for r in rows {
        let mut i = 0;
        let w = &mut f.writer;
        let skip = f.skip;
        (t.values)(r, &mut |v| {
            let k = i;
            i += 1;
            if k == skip {
                Ok(())
            } else {
                w.value(v)
            }
        })?;
        w.end_row()?;
    }
    Ok(())
}

impl Sink for ParquetSink {
    fn catalog(&self) -> Result<Box<dyn Catalog>> {
        self.inner.catalog()
    }

    fn prepare(&mut self, incoming_bytes: u64, ctx: Context<'_>) -> Result<()> {
        self.inner.prepare(incoming_bytes, ctx)
    }

    fn begin(&mut self, capture: &CaptureStart, ctx: Context<'_>) -> Result<Begin> {
        let b = self.inner.begin(capture, ctx)?;
        if let Begin::New { capture_id, .. } = b {
            match self.start_files(capture_id) {
                Ok(cur) => self.cur = Some(cur),
                Err(e) => {
                    self.inner.abort()?;
                    return Err(e);
                }
            }
        }
        Ok(b)
    }

    fn write(&mut self, b: &EventBatch<'_>) -> Result<()> {
        self.inner.write(&EventBatch {
            reallocs: &[],
            others: &[],
            blocks: &[],
            ..*b
        })?;
        let t = Instant::now();
        let r = self.write_rows(b);
        self.parquet_seconds += t.elapsed().as_secs_f64();
        if r.is_err() {
            self.drop_files();
            self.inner.abort()?;
        }
        r
    }

    fn commit(&mut self, e: &CaptureEnd, ctx: Context<'_>) -> Result<()> {
        let Some(cur) = self.cur.take() else {
            bail!(
                "internal: commit of capture {} outside a capture",
                e.capture_id
            );
        };
        let lake = self.lake.clone();
        let t = Instant::now();
        let Current {
            capture_id,
            tmp,
            files,
        } = cur;
        let mut files = Some(files);
        let r = self.inner.commit_with(e, ctx, &mut |conn| {
            let mut out = Vec::new();
            for f in files.take().unwrap_or_default() {
                f.writer
                    .finish()
                    .with_context(|| format!("capture {capture_id}: writing {}", f.table))?;
                out.push((
                    f.table.to_string(),
                    tmp.join(format!("{}.parquet", f.table)),
                ));
            }
            let small: Vec<&str> = PARTITIONED
                .iter()
                .copied()
                .filter(|t| !ROW_TABLES.contains(t))
                .collect();
            out.extend(write_tables(conn, "main", capture_id, &small, &tmp)?);
            let date = capture_date(conn, "main", capture_id)?;
            lake.publish(capture_id, &date, &out)
        });
        self.parquet_seconds += t.elapsed().as_secs_f64();
        lake.clean_tmp(&tmp);
        if r.is_err() {
            // Nothing of it may stay visible: the catalog rolls back, so must the files.
            let _ = lake.remove_capture(capture_id);
            self.inner.abort()?;
        } else {
            self.changed = true;
        }
        r
    }

    fn abort(&mut self) -> Result<()> {
        self.drop_files();
        self.inner.abort()
    }

    fn record_failure(&mut self, failure: &FileFailure, ctx: Context<'_>) -> Result<()> {
        self.changed = true;
        self.inner.record_failure(failure, ctx)
    }

    fn finish(&mut self, ctx: Context<'_>) -> Result<Finished> {
        let mut f = self.inner.finish(ctx)?;
        let t = Instant::now();
        let missing = super::all_tables(self.inner.connection())?.iter().any(|t| {
            !super::is_partitioned(t) && !self.lake.dir().join(t).join("part-0.parquet").exists()
        });
        if self.changed || missing {
            let conn = self.inner.connection();
            self.lake.write_shared(conn)?;
            self.lake.describe(conn)?;
        }
        f.phases.insert(0, ("parquet", self.parquet_seconds));
        f.phases.push(("shared tables", t.elapsed().as_secs_f64()));
        Ok(f)
    }
}
