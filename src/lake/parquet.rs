//! One Parquet file of one table, written row by row with bounded memory.
//!
//! The rows come as SQLite values (the same [`ValueRef`]s an INSERT binds), so the
//! ingest (rows from [`crate::db::sql`]'s tables) and the export (rows read back from a
//! database) share this writer. Each column is encoded as it arrives by arrow-rs's
//! low-level column writer into its own in-memory chunk (compressed pages, not values);
//! at the end of a row group the chunks are spliced into the file one after another.
//! Memory is therefore a row group's *compressed* columns plus a few thousand buffered
//! values per column, whatever the capture's size.

use anyhow::{bail, Context as _, Result};
use bytes::Bytes;
use parquet::basic::{
    Compression, Encoding, LogicalType, Repetition, TimeUnit, Type as PhysicalType, ZstdLevel,
};
use parquet::column::page::{CompressedPage, PageWriteSpec, PageWriter};
use parquet::column::writer::{get_column_writer, ColumnWriter};
use parquet::data_type::ByteArray;
use parquet::file::properties::{EnabledStatistics, WriterProperties, WriterVersion};
use parquet::file::writer::{SerializedFileWriter, SerializedPageWriter, TrackedWrite};
use parquet::schema::types::{ColumnPath, SchemaDescriptor, Type};
use rusqlite::types::ValueRef;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Rows per row group: large enough for scans, small enough to bound memory.
pub const ROW_GROUP_ROWS: usize = 1 << 20;

/// Values buffered per column before they go to its encoder.
const SCRATCH_ROWS: usize = 4096;

/// A column's storage class, from its SQLite declared type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// INTEGER: INT64 (addresses and sizes as the bit pattern of their u64, as in SQLite).
    Int,
    /// A `*_utc` copy of an INTEGER `*_ns` column: INT64 TIMESTAMP(NANOS, UTC).
    Timestamp,
    /// REAL: DOUBLE.
    Real,
    /// TEXT: BYTE_ARRAY (UTF8).
    Text,
    /// BLOB: BYTE_ARRAY.
    Blob,
}

impl Kind {
    /// The kind of an SQLite declared type (type affinity rules, simplified to the
    /// types schema/ uses).
    pub fn of_declared(decl: &str) -> Kind {
        let d = decl.to_ascii_uppercase();
        if d.contains("INT") {
            Kind::Int
        } else if d.contains("CHAR") || d.contains("TEXT") || d.contains("CLOB") {
            Kind::Text
        } else if d.contains("REAL") || d.contains("FLOA") || d.contains("DOUB") {
            Kind::Real
        } else if d.contains("BLOB") {
            Kind::Blob
        } else {
            // NUMERIC affinity: heapdb's schema has none; INTEGER is the closest.
            Kind::Int
        }
    }

    /// The Parquet type of the files' column (for lake.json).
    pub fn parquet_type(self) -> &'static str {
        match self {
            Kind::Int => "INT64",
            Kind::Timestamp => "INT64 TIMESTAMP(NANOS, isAdjustedToUTC)",
            Kind::Real => "DOUBLE",
            Kind::Text => "BYTE_ARRAY STRING",
            Kind::Blob => "BYTE_ARRAY",
        }
    }

    /// The SQL type an engine sees (for lake.json and the view script).
    pub fn sql_type(self) -> &'static str {
        match self {
            Kind::Int => "BIGINT",
            Kind::Timestamp => "TIMESTAMP WITH TIME ZONE",
            Kind::Real => "DOUBLE",
            Kind::Text => "VARCHAR",
            Kind::Blob => "BLOB",
        }
    }
}

/// A column of a lake file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    pub name: String,
    pub kind: Kind,
    pub required: bool,
}

/// The columns of one table's files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileSchema {
    pub table: String,
    pub columns: Vec<Column>,
    /// For each column, the `*_utc` column that mirrors it, if any.
    pub utc_of: Vec<Option<usize>>,
}

/// Integer columns with few distinct values per file (processes, threads, heaps,
/// kinds, stacks): dictionary-encoded. The others (addresses, sizes, times, ids) would
/// fill a dictionary only to fall back to plain encoding: measured, interning them was
/// the writer's largest cost.
fn few_values(name: &str) -> bool {
    matches!(
        name,
        "pid"
            | "tid"
            | "cpu"
            | "heap"
            | "source"
            | "opcode"
            | "moved"
            | "pointer_size"
            | "realloc_internal"
            | "stack_id"
            | "start_stack_id"
            | "end_stack_id"
            | "start_kind"
            | "end_kind"
            | "site_id"
            | "kind"
            | "depth"
    )
}

/// Columns whose values grow with the row order: delta-encoded, no dictionary.
fn monotonic(name: &str) -> bool {
    matches!(
        name,
        "id" | "block_id" | "time_ns" | "ts_raw" | "file_offset" | "alloc_id" | "free_id"
    ) || name.ends_with("_utc")
}

impl FileSchema {
    /// `columns` are the table's (name, declared type, NOT NULL) in schema order; every
    /// INTEGER column named `*_ns` gains a `*_utc` timestamp twin at the end.
    pub fn new(table: &str, columns: &[(String, String, bool)]) -> FileSchema {
        let mut cols: Vec<Column> = columns
            .iter()
            .map(|(n, t, nn)| Column {
                name: n.clone(),
                kind: Kind::of_declared(t),
                required: *nn,
            })
            .collect();
        let mut utc_of = vec![None; cols.len()];
        for i in 0..cols.len() {
            if cols[i].kind == Kind::Int {
                if let Some(base) = cols[i].name.strip_suffix("_ns") {
                    utc_of[i] = Some(cols.len());
                    let c = Column {
                        name: format!("{base}_utc"),
                        kind: Kind::Timestamp,
                        required: cols[i].required,
                    };
                    cols.push(c);
                    utc_of.push(None);
                }
            }
        }
        FileSchema {
            table: table.to_string(),
            columns: cols,
            utc_of,
        }
    }

    /// The columns a row supplies (the `*_utc` twins are filled by the writer).
    pub fn source_columns(&self) -> impl Iterator<Item = &Column> {
        self.columns.iter().filter(|c| c.kind != Kind::Timestamp)
    }

    fn parquet_type(&self) -> Result<Type> {
        let mut fields = Vec::with_capacity(self.columns.len());
        for c in &self.columns {
            let (phys, logical) = match c.kind {
                Kind::Int => (PhysicalType::INT64, None),
                Kind::Timestamp => (
                    PhysicalType::INT64,
                    Some(LogicalType::timestamp(true, TimeUnit::NANOS)),
                ),
                Kind::Real => (PhysicalType::DOUBLE, None),
                Kind::Text => (PhysicalType::BYTE_ARRAY, Some(LogicalType::String)),
                Kind::Blob => (PhysicalType::BYTE_ARRAY, None),
            };
            let t = Type::primitive_type_builder(&c.name, phys)
                .with_repetition(if c.required {
                    Repetition::REQUIRED
                } else {
                    Repetition::OPTIONAL
                })
                .with_logical_type(logical)
                .build()?;
            fields.push(Arc::new(t));
        }
        Ok(Type::group_type_builder("schema")
            .with_fields(fields)
            .build()?)
    }

    fn properties(&self) -> Result<WriterProperties> {
        let mut b = WriterProperties::builder()
            .set_writer_version(WriterVersion::PARQUET_1_0)
            .set_compression(Compression::ZSTD(ZstdLevel::try_new(1)?))
            .set_statistics_enabled(EnabledStatistics::Page)
            .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
            .set_created_by(format!("heapdb {}", env!("CARGO_PKG_VERSION")));
        for c in &self.columns {
            let p = ColumnPath::from(c.name.as_str());
            if monotonic(&c.name) {
                b = b
                    .set_column_dictionary_enabled(p.clone(), false)
                    .set_column_encoding(p, Encoding::DELTA_BINARY_PACKED);
            } else if matches!(c.kind, Kind::Int | Kind::Real) && !few_values(&c.name) {
                b = b.set_column_dictionary_enabled(p, false);
            }
        }
        Ok(b.build())
    }
}

/// A column chunk being encoded in memory; the column writer owns a page writer that
/// appends to it, and the bytes are taken out when the chunk is closed.
#[derive(Clone, Default)]
struct SharedBuf(Arc<Mutex<Vec<u8>>>);

impl SharedBuf {
    fn take(&self) -> Vec<u8> {
        match self.0.lock() {
            Ok(mut v) => std::mem::take(&mut *v),
            Err(p) => std::mem::take(&mut *p.into_inner()),
        }
    }
}

impl Write for SharedBuf {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut v = self
            .0
            .lock()
            .map_err(|_| std::io::Error::other("column buffer lock poisoned"))?;
        v.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// arrow-rs's page writer borrows its sink; this one owns it (the serialized page
/// writer keeps no state between pages, so one is made per call), which lets the
/// column writers live as long as the row group instead of one call.
struct OwnedPageWriter {
    sink: TrackedWrite<SharedBuf>,
}

impl PageWriter for OwnedPageWriter {
    fn write_page(&mut self, page: CompressedPage) -> parquet::errors::Result<PageWriteSpec> {
        SerializedPageWriter::new(&mut self.sink).write_page(page)
    }
    fn close(&mut self) -> parquet::errors::Result<()> {
        SerializedPageWriter::new(&mut self.sink).close()
    }
}

/// Values waiting for a column's encoder, with their definition levels.
enum Scratch {
    Int(Vec<i64>),
    Real(Vec<f64>),
    Bytes(Vec<ByteArray>),
}

struct ColumnState {
    buf: SharedBuf,
    writer: Option<ColumnWriter<'static>>,
    scratch: Scratch,
    defs: Vec<i16>,
}

/// One table file being written (to `path`, a temporary name the caller renames).
pub struct TableWriter {
    schema: FileSchema,
    descr: Arc<SchemaDescriptor>,
    props: Arc<WriterProperties>,
    file: Option<SerializedFileWriter<BufWriter<File>>>,
    path: PathBuf,
    cols: Vec<ColumnState>,
    /// The next source column of the row being pushed.
    next: usize,
    /// File index of each source column.
    source_index: Vec<usize>,
    buffered: usize,
    in_group: usize,
    rows: u64,
}

impl TableWriter {
    pub fn create(path: &Path, schema: FileSchema) -> Result<TableWriter> {
        let t = Arc::new(schema.parquet_type()?);
        let descr = Arc::new(SchemaDescriptor::new(t.clone()));
        let props = Arc::new(schema.properties()?);
        let f = File::create(path).with_context(|| format!("{}: creating", path.display()))?;
        let file =
            SerializedFileWriter::new(BufWriter::with_capacity(1 << 20, f), t, props.clone())
                .with_context(|| format!("{}: starting a Parquet file", path.display()))?;
        let cols = schema
            .columns
            .iter()
            .map(|c| ColumnState {
                buf: SharedBuf::default(),
                writer: None,
                scratch: match c.kind {
                    Kind::Int | Kind::Timestamp => Scratch::Int(Vec::new()),
                    Kind::Real => Scratch::Real(Vec::new()),
                    Kind::Text | Kind::Blob => Scratch::Bytes(Vec::new()),
                },
                defs: Vec::new(),
            })
            .collect();
        let source_index = schema
            .columns
            .iter()
            .enumerate()
            .filter(|(_, c)| c.kind != Kind::Timestamp)
            .map(|(i, _)| i)
            .collect();
        Ok(TableWriter {
            schema,
            descr,
            props,
            file: Some(file),
            path: path.to_path_buf(),
            cols,
            next: 0,
            source_index,
            buffered: 0,
            in_group: 0,
            rows: 0,
        })
    }

    pub fn schema(&self) -> &FileSchema {
        &self.schema
    }

    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// The next value of the current row, in [`FileSchema::source_columns`] order.
    pub fn value(&mut self, v: ValueRef<'_>) -> Result<()> {
        let Some(&i) = self.source_index.get(self.next) else {
            bail!(
                "{}: a row of {} has more than {} values",
                self.path.display(),
                self.schema.table,
                self.source_index.len()
            );
        };
        self.next += 1;
        self.put(i, v)?;
        if let Some(j) = self.schema.utc_of[i] {
            self.put(j, v)?;
        }
        Ok(())
    }

    fn put(&mut self, i: usize, v: ValueRef<'_>) -> Result<()> {
        let c = &self.schema.columns[i];
        let st = &mut self.cols[i];
        let present = match (&mut st.scratch, v) {
            (_, ValueRef::Null) => {
                if c.required {
                    bail!(
                        "{}: NULL in the NOT NULL column {}.{}",
                        self.path.display(),
                        self.schema.table,
                        c.name
                    );
                }
                false
            }
            (Scratch::Int(s), ValueRef::Integer(x)) => {
                s.push(x);
                true
            }
            (Scratch::Real(s), ValueRef::Real(x)) => {
                s.push(x);
                true
            }
            (Scratch::Real(s), ValueRef::Integer(x)) => {
                s.push(x as f64);
                true
            }
            (Scratch::Bytes(s), ValueRef::Text(b) | ValueRef::Blob(b)) => {
                s.push(ByteArray::from(b.to_vec()));
                true
            }
            (_, other) => bail!(
                "{}: {}.{} ({}) cannot hold a {:?} value",
                self.path.display(),
                self.schema.table,
                c.name,
                c.kind.sql_type(),
                other.data_type()
            ),
        };
        if !c.required {
            st.defs.push(present as i16);
        }
        Ok(())
    }

    /// Ends the current row (every source column must have had its value).
    pub fn end_row(&mut self) -> Result<()> {
        if self.next != self.source_index.len() {
            bail!(
                "{}: a row of {} has {} values, the table has {} columns",
                self.path.display(),
                self.schema.table,
                self.next,
                self.source_index.len()
            );
        }
        self.next = 0;
        self.rows += 1;
        self.buffered += 1;
        self.in_group += 1;
        if self.buffered >= SCRATCH_ROWS {
            self.drain()?;
        }
        if self.in_group >= ROW_GROUP_ROWS {
            self.close_group()?;
        }
        Ok(())
    }

    /// Hands the buffered values to the column encoders.
    fn drain(&mut self) -> Result<()> {
        if self.buffered == 0 {
            return Ok(());
        }
        for (i, st) in self.cols.iter_mut().enumerate() {
            let w = match &mut st.writer {
                Some(w) => w,
                None => st.writer.insert(get_column_writer(
                    self.descr.column(i),
                    self.props.clone(),
                    Box::new(OwnedPageWriter {
                        sink: TrackedWrite::new(st.buf.clone()),
                    }),
                )),
            };
            let defs = (!self.schema.columns[i].required).then_some(st.defs.as_slice());
            match (&mut st.scratch, w) {
                (Scratch::Int(s), ColumnWriter::Int64ColumnWriter(w)) => {
                    w.write_batch(s, defs, None)?;
                    s.clear();
                }
                (Scratch::Real(s), ColumnWriter::DoubleColumnWriter(w)) => {
                    w.write_batch(s, defs, None)?;
                    s.clear();
                }
                (Scratch::Bytes(s), ColumnWriter::ByteArrayColumnWriter(w)) => {
                    w.write_batch(s, defs, None)?;
                    s.clear();
                }
                _ => bail!("internal: column writer of the wrong type"),
            }
            st.defs.clear();
        }
        self.buffered = 0;
        Ok(())
    }

    fn close_group(&mut self) -> Result<()> {
        self.drain()?;
        if self.in_group == 0 {
            return Ok(());
        }
        let Some(file) = self.file.as_mut() else {
            bail!("internal: the Parquet file is closed");
        };
        let mut rg = file.next_row_group()?;
        for st in &mut self.cols {
            let Some(w) = st.writer.take() else {
                bail!("internal: a column of a non-empty row group has no writer");
            };
            let closed = w.close()?;
            let bytes = Bytes::from(st.buf.take());
            rg.append_column(&bytes, closed)?;
        }
        rg.close()?;
        self.in_group = 0;
        Ok(())
    }

    /// Writes the last row group and the footer, and syncs the file to disk.
    pub fn finish(mut self) -> Result<u64> {
        let path = self.path.clone();
        let named = || format!("{}: writing", path.display());
        self.close_group().with_context(named)?;
        let Some(file) = self.file.take() else {
            bail!("internal: the Parquet file is closed");
        };
        let w = file.into_inner().with_context(named)?;
        let f = w
            .into_inner()
            .map_err(|e| e.into_error())
            .with_context(named)?;
        f.sync_all().with_context(named)?;
        Ok(self.rows)
    }
}
