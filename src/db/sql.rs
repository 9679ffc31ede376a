//! Every row heapdb writes, as (column, value) pairs in one place: the column list of
//! each INSERT and the values bound to it come from the same line, so a new column
//! cannot be bound in the wrong position; a test checks each list against `schema/`.

use crate::ingest::identity::{Frame, HeapIdentity, SiteRow, SiteStat};
use crate::ingest::lifetimes::{BlockRow, CountKey, EventKey, KindCount, SiteCount, Usage};
use crate::ingest::rows::{OtherRow, ReallocRow};
use crate::ingest::rundown::{ImageRow, ProcessRow, ThreadRow};
use crate::ingest::sink::{CaptureEnd, CaptureStart, FileFailure};
use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::Statement;

/// Addresses, sizes and raw times are stored as the bit pattern of their u64 (see
/// schema/001_tables.sql).
pub fn sql_u64(v: u64) -> i64 {
    v as i64
}

/// A table's columns and how one row binds to them.
pub struct Table<R: ?Sized> {
    pub name: &'static str,
    pub columns: &'static [&'static str],
    /// Binds one row's values to parameters `base + 1 ..= base + columns.len()`.
    pub bind: fn(&mut Statement<'_>, usize, &R) -> rusqlite::Result<()>,
    /// Hands one row's values, in column order, to a writer that is not SQLite (the
    /// Parquet lake): the same expressions as `bind`, so both stores get the same row.
    pub values: fn(&R, &mut ValueSink<'_>) -> anyhow::Result<()>,
}

/// Where [`Table::values`] hands a row's values.
pub type ValueSink<'a> = dyn FnMut(ValueRef<'_>) -> anyhow::Result<()> + 'a;

/// The value a [`rusqlite::ToSql`] produced, as SQLite would store it.
pub fn value_ref<'a>(v: &'a ToSqlOutput<'a>) -> anyhow::Result<ValueRef<'a>> {
    match v {
        ToSqlOutput::Borrowed(v) => Ok(*v),
        ToSqlOutput::Owned(v) => Ok(v.into()),
        _ => anyhow::bail!("internal: a row value that is neither borrowed nor owned"),
    }
}

impl<R: ?Sized> Table<R> {
    /// `INSERT INTO t (columns) VALUES (?,..),(?,..)...` for `rows` rows.
    pub fn insert_sql(&self, rows: usize) -> String {
        self.insert_sql_into(self.name, rows)
    }

    /// [`Table::insert_sql`] into another table of the same columns (a staging table).
    pub fn insert_sql_into(&self, table: &str, rows: usize) -> String {
        let one = format!("({})", vec!["?"; self.columns.len()].join(","));
        format!(
            "INSERT INTO {table} ({}) VALUES {}",
            self.columns.join(", "),
            vec![one; rows].join(",")
        )
    }

    /// The staging table of an append: the same columns, no key, no index, in the
    /// TEMP database (it never reaches the database file).
    pub fn staging(&self) -> String {
        format!("stage_{}", self.name)
    }

    /// `CREATE TEMP TABLE stage_t (columns)`.
    pub fn create_staging_sql(&self) -> String {
        format!(
            "CREATE TEMP TABLE IF NOT EXISTS {} ({})",
            self.staging(),
            self.columns.join(", ")
        )
    }

    /// Moves the staged rows into the table in one set-based statement, then empties
    /// the staging table.
    pub fn flush_staging_sql(&self, order_by: &str) -> String {
        let cols = self.columns.join(", ");
        format!(
            "INSERT INTO main.{t} ({cols}) SELECT {cols} FROM temp.{s} ORDER BY {order_by}; DELETE FROM temp.{s};",
            t = self.name,
            s = self.staging()
        )
    }

    /// `UPDATE t SET c2 = ?2, ... WHERE c1 = ?1`: the first column is the key.
    pub fn update_sql(&self) -> String {
        let sets: Vec<String> = self
            .columns
            .iter()
            .enumerate()
            .skip(1)
            .map(|(i, c)| format!("{c} = ?{}", i + 1))
            .collect();
        format!(
            "UPDATE {} SET {} WHERE {} = ?1",
            self.name,
            sets.join(", "),
            self.columns.first().copied().unwrap_or("rowid")
        )
    }
}

/// `table!(NAME, "table", RowType, r => [column = value, ...])`.
macro_rules! table {
    ($(#[$m:meta])* $name:ident, $table:literal, $row:ty, $r:ident => [$($col:ident = $val:expr),* $(,)?]) => {
        $(#[$m])*
        pub const $name: Table<$row> = Table {
            name: $table,
            columns: &[$(stringify!($col)),*],
            bind: |st, base, $r| {
                let mut i = base;
                $(
                    i += 1;
                    st.raw_bind_parameter(i, $val)?;
                )*
                let _ = i;
                Ok(())
            },
            values: |$r, f| {
                $(
                    let x = $val;
                    let v = rusqlite::ToSql::to_sql(&x)?;
                    f(value_ref(&v)?)?;
                )*
                Ok(())
            },
        };
    };
}

table!(REALLOCS, "reallocs", ReallocRow, r => [
    id = r.id,
    capture_id = r.capture_id,
    time_ns = r.row.time_ns,
    ts_raw = sql_u64(r.row.ts_raw),
    pid = r.row.pid,
    tid = r.row.tid,
    cpu = r.row.cpu,
    heap = sql_u64(r.row.heap),
    new_address = sql_u64(r.row.address.unwrap_or(0)),
    old_address = sql_u64(r.row.old_address.unwrap_or(0)),
    new_size = sql_u64(r.row.size.unwrap_or(0)),
    old_size = sql_u64(r.row.old_size.unwrap_or(0)),
    source = r.row.source.unwrap_or(0),
    moved = (r.row.address != r.row.old_address) as i32,
    pointer_size = r.row.pointer_size,
    stack_id = r.row.stack_id,
    alloc_id = r.alloc_id,
    free_id = r.free_id,
    file_offset = sql_u64(r.row.file_offset),
]);

table!(HEAP_EVENTS, "heap_events", OtherRow, r => [
    id = r.id,
    capture_id = r.capture_id,
    time_ns = r.row.time_ns,
    ts_raw = sql_u64(r.row.ts_raw),
    pid = r.row.pid,
    tid = r.row.tid,
    cpu = r.row.cpu,
    opcode = r.row.opcode,
    heap = sql_u64(r.row.heap),
    address = r.row.address.map(sql_u64),
    size = r.row.size.map(sql_u64),
    source = r.row.source,
    pointer_size = r.row.pointer_size,
    stack_id = r.row.stack_id,
    realloc_internal = r.row.realloc_link.is_some() as i32,
    extra = r.row.extra.as_deref(),
    file_offset = sql_u64(r.row.file_offset),
]);

/// A stack: (id, frames innermost first).
pub type StackRow = (i64, Vec<u64>);

table!(STACKS, "stacks", StackRow, s => [
    stack_id = s.0,
    depth = s.1.len() as i64,
    leaf = s.1.first().map(|&f| sql_u64(f)),
]);

/// One frame: (stack id, depth, address).
pub type FrameRow = (i64, usize, u64);

table!(STACK_FRAMES, "stack_frames", FrameRow, f => [
    stack_id = f.0,
    depth = f.1 as i64,
    address = sql_u64(f.2),
]);

table!(PROCESSES, "processes", (i64, ProcessRow), x => [
    capture_id = x.0,
    pid = x.1.pid,
    name = x.1.name.as_deref(),
    command_line = x.1.command_line.as_deref(),
    parent_pid = x.1.parent_pid,
    session_id = x.1.session_id,
    unique_key = x.1.unique_key.map(sql_u64),
    start_ns = x.1.start_ns,
    end_ns = x.1.end_ns,
    seen_as = x.1.seen_as,
    identity = x.1.identity.as_str(),
]);

table!(THREADS, "threads", (i64, ThreadRow), x => [
    capture_id = x.0,
    pid = x.1.pid,
    tid = x.1.tid,
    start_ns = x.1.start_ns,
    end_ns = x.1.end_ns,
]);

table!(IMAGES, "images", (i64, ImageRow), x => [
    capture_id = x.0,
    pid = x.1.pid,
    base = sql_u64(x.1.base),
    size = sql_u64(x.1.size),
    path = x.1.path.as_str(),
    name = x.1.name.as_str(),
    checksum = x.1.checksum,
    timedatestamp = x.1.timedatestamp,
    pdb_guid = x.1.pdb.as_ref().map(|p| p.guid.to_string()),
    pdb_age = x.1.pdb.as_ref().map(|p| p.age),
    pdb_path = x.1.pdb.as_ref().map(|p| p.pdb_path.as_str()),
    load_ns = x.1.load_ns,
    unload_ns = x.1.unload_ns,
]);

table!(SITES, "sites", SiteRow, s => [
    site_id = s.site_id,
    depth = s.frames.len() as i64,
    call_depth = s.call_depth as i64,
    call_site = s.call_site.as_str(),
    caller_module = s.caller_module.as_deref(),
]);

/// One frame of a site: (site id, depth, frame).
pub type SiteFrameRow = (i64, usize, Frame);

table!(SITE_FRAMES, "site_frames", SiteFrameRow, f => [
    site_id = f.0,
    depth = f.1 as i64,
    module = match &f.2 { Frame::Module { module, .. } => Some(module.as_str()), Frame::Address(_) => None },
    rva = match &f.2 { Frame::Module { rva, .. } => Some(sql_u64(*rva)), Frame::Address(_) => None },
    address = match &f.2 { Frame::Address(a) => Some(sql_u64(*a)), Frame::Module { .. } => None },
]);

table!(CAPTURE_STACKS, "capture_stacks", (i64, (u32, i64, i64)), x => [
    capture_id = x.0,
    pid = x.1 .0,
    stack_id = x.1 .1,
    site_id = x.1 .2,
]);

table!(HEAPS, "heaps", (i64, HeapIdentity), x => [
    capture_id = x.0,
    pid = x.1.pid,
    heap = sql_u64(x.1.heap),
    process = x.1.process.as_str(),
    identity = x.1.identity.as_str(),
    kind = x.1.kind,
    created_ns = x.1.created_ns,
    destroyed_ns = x.1.destroyed_ns,
    create_site_id = x.1.create_site_id,
    events = sql_u64(x.1.events),
]);

table!(SITE_STATS, "site_stats", (i64, SiteStat), x => [
    capture_id = x.0,
    pid = x.1.pid,
    heap = sql_u64(x.1.heap),
    process = x.1.process.as_str(),
    heap_identity = x.1.heap_identity.as_str(),
    site_id = x.1.site_id,
    allocs = sql_u64(x.1.counts.allocs),
    alloc_bytes = sql_u64(x.1.counts.alloc_bytes),
    reallocs = sql_u64(x.1.counts.reallocs),
    moves = sql_u64(x.1.counts.moves),
    bytes_copied = sql_u64(x.1.counts.bytes_copied),
    bytes_grown = sql_u64(x.1.counts.bytes_grown),
]);

table!(CAPTURE_LABELS, "capture_labels", (i64, (String, String)), x => [
    capture_id = x.0,
    key = x.1 .0.as_str(),
    value = x.1 .1.as_str(),
]);

table!(
    /// A capture as it starts loading.
    CAPTURE_START, "captures", CaptureStart, s => [
    path = s.path.as_str(),
    file_name = s.file_name.as_str(),
    size_bytes = sql_u64(s.size),
    fingerprint = s.fingerprint.as_str(),
    os_version = format!("{}.{}", s.header.os_major, s.header.os_minor),
    os_build = s.header.os_build,
    pointer_size = s.header.pointer_size,
    cpu_count = s.header.cpu_count,
    clock_type = s.header.clock_type.name(),
    perf_freq = sql_u64(s.header.perf_freq),
    buffer_size = s.header.buffer_size,
    logger_name = s.header.logger_name.as_str(),
    start_time_ns = crate::etl::time::filetime_to_unix_ns(s.header.start_time),
    end_time_ns = (s.header.end_time != 0).then(|| crate::etl::time::filetime_to_unix_ns(s.header.end_time)),
    events_lost = s.header.events_lost,
    buffers_lost = s.header.buffers_lost,
    ingest_started = s.started.as_str(),
    heapdb_version = env!("CARGO_PKG_VERSION"),
    status = "loading",
]);

table!(
    /// What is known of a capture once it is loaded (an UPDATE keyed by capture_id).
    CAPTURE_END, "captures", CaptureEnd, e => [
    capture_id = e.capture_id,
    first_event_ns = e.first_ns,
    last_event_ns = e.last_ns,
    events_seen = sql_u64(e.stats.events),
    events_decoded = sql_u64(e.stats.heap_events),
    events_skipped = sql_u64(e.stats.events.saturating_sub(e.stats.heap_events)),
    events_bad = sql_u64(e.stats.bad_records.max(e.problems)),
    unknown_versions = sql_u64(e.stats.unknown_versions),
    records_32bit = sql_u64(e.stats.records_32bit),
    stacks_matched = sql_u64(e.stats.stacks_matched),
    stacks_orphan = sql_u64(e.stats.stacks_orphan),
    moving_reallocs_linked = sql_u64(e.stats.moving_reallocs_linked),
    heap_events_undecoded = sql_u64(e.stats.heap_undecoded),
    first_event_id = e.first_event_id,
    last_event_id = e.last_event_id,
    first_block_id = e.lifetimes.first_block_id,
    last_block_id = e.lifetimes.next_block_id - 1,
    events_out_of_order = sql_u64(e.lifetimes.stats.out_of_order),
    ingest_finished = e.finished.as_str(),
    status = if e.problems > 0 { "complete_with_errors" } else { "complete" },
]);

table!(BLOCKS, "blocks", BlockRow, b => [
    block_id = b.block_id,
    capture_id = b.capture_id,
    pid = b.pid,
    heap = sql_u64(b.heap),
    address = sql_u64(b.address),
    size = b.size.map(sql_u64),
    source = b.source,
    start_kind = b.start_kind.code(),
    start_ns = b.start_ns,
    start_event_id = b.start_event_id,
    start_stack_id = b.start_stack_id,
    end_kind = b.end_kind.code(),
    end_ns = b.end_ns,
    end_event_id = b.end_event_id,
    end_stack_id = b.end_stack_id,
    prev_block_id = b.prev_block_id,
    chain_id = b.chain_id,
    chain_index = b.chain_index,
]);

/// A row of `block_counts`: (capture, (pid, heap, start kind, end kind), count).
pub type BlockCountRow = (i64, CountKey, SiteCount);

table!(BLOCK_COUNTS, "block_counts", BlockCountRow, x => [
    capture_id = x.0,
    pid = x.1 .0,
    heap = sql_u64(x.1 .1),
    start_stack_id = x.1 .2,
    start_kind = x.1 .3.name(),
    end_kind = x.1 .4.name(),
    blocks = sql_u64(x.2.blocks),
    bytes = sql_u64(x.2.bytes),
    min_start_ns = x.2.min_start_ns,
    timed_blocks = sql_u64(x.2.timed),
    lifetime_ns = x.2.lifetime_ns,
]);

/// A row of `heap_event_counts`: (capture, key, count).
pub type EventCountRow = (i64, EventKey, KindCount);

table!(HEAP_EVENT_COUNTS, "heap_event_counts", EventCountRow, x => [
    capture_id = x.0,
    pid = x.1 .0,
    heap = sql_u64(x.1 .1),
    opcode = x.1 .2,
    source = x.1 .3,
    realloc_internal = x.1 .4 as i32,
    events = sql_u64(x.2.blocks),
    bytes = sql_u64(x.2.bytes),
]);

/// A row of `process_usage`: (capture, pid, usage).
pub type UsageRow = (i64, u32, Usage);

table!(PROCESS_USAGE, "process_usage", UsageRow, x => [
    capture_id = x.0,
    pid = x.1,
    peak_bytes = sql_u64(x.2.peak_bytes),
    peak_blocks = sql_u64(x.2.peak_blocks),
    peak_ns = x.2.peak_ns,
    peak_event_id = x.2.peak_event_id,
    end_bytes = sql_u64(x.2.end_bytes),
    end_blocks = sql_u64(x.2.end_blocks),
]);

/// An ingest error: the failure, and the capture it belongs to (None when the whole
/// file was refused).
pub type ErrorRow = (Option<i64>, FileFailure);

table!(INGEST_ERRORS, "ingest_errors", ErrorRow, e => [
    capture_id = e.0,
    path = e.1.path.as_str(),
    fingerprint = e.1.fingerprint.as_str(),
    byte_offset = e.1.offset.map(sql_u64),
    message = e.1.message.as_str(),
]);

/// Inserts an ingest error once (bind with [`INGEST_ERRORS`]): the table's UNIQUE
/// constraint does not see two rows with a NULL offset as equal, so the check is
/// explicit (`IS` compares NULLs).
pub const INGEST_ERROR_ONCE: &str =
    "INSERT INTO ingest_errors (capture_id, path, fingerprint, byte_offset, message) \
     SELECT ?1, ?2, ?3, ?4, ?5 WHERE NOT EXISTS (SELECT 1 FROM ingest_errors \
     WHERE path = ?2 AND fingerprint = ?3 AND byte_offset IS ?4 AND message = ?5)";

/// The capture with a fingerprint: (capture id, first path).
pub const FIND_CAPTURE: &str = "SELECT capture_id, path FROM captures WHERE fingerprint = ?1";

/// The next event id: ids of reallocs and heap_events share one sequence.
/// The captures' own ranges count too: a lake's catalog keeps no event rows.
pub const NEXT_EVENT_ID: &str = "SELECT max(coalesce((SELECT max(id) FROM reallocs), 0), coalesce((SELECT max(id) FROM heap_events), 0), coalesce((SELECT max(last_event_id) FROM captures), 0)) + 1";

/// The next block id.
pub const NEXT_BLOCK_ID: &str = "SELECT max(coalesce((SELECT max(block_id) FROM blocks), 0), coalesce((SELECT max(last_block_id) FROM captures), 0)) + 1";

/// Heap events already stored (an estimate from the id ranges, which is exact unless
/// captures were removed).
pub const EVENTS_STORED: &str = "SELECT coalesce((SELECT max(id) - min(id) + 1 FROM reallocs), 0) + coalesce((SELECT max(id) - min(id) + 1 FROM heap_events), 0)";

#[cfg(test)]
mod tests {
    use super::*;

    /// Every column bound exists in the table; every column of the table that is not
    /// bound may be left out (it has a default, is nullable, or is the row id).
    fn check<R: ?Sized>(conn: &rusqlite::Connection, t: &Table<R>, full: bool) {
        let mut st = conn
            .prepare(&format!("PRAGMA table_info({})", t.name))
            .unwrap();
        let cols: Vec<(String, bool, bool, bool)> = st
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(1)?,
                    r.get::<_, bool>(3)?,
                    r.get::<_, Option<String>>(4)?.is_some(),
                    r.get::<_, i64>(5)? > 0,
                ))
            })
            .unwrap()
            .map(|r| r.unwrap())
            .collect();
        for c in t.columns {
            assert!(
                cols.iter().any(|(n, ..)| n == c),
                "{}.{c} is not a column of schema/",
                t.name
            );
        }
        if full {
            for (n, not_null, default, pk) in &cols {
                if *not_null && !default && !pk {
                    assert!(
                        t.columns.contains(&n.as_str()),
                        "{}.{n} is NOT NULL but never written",
                        t.name
                    );
                }
            }
        }
        // The statements prepare against the schema.
        conn.prepare(&t.insert_sql(2)).unwrap();
    }

    #[test]
    fn every_statement_matches_the_schema() {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        crate::db::apply_schema(&conn).unwrap();
        check(&conn, &REALLOCS, true);
        check(&conn, &HEAP_EVENTS, true);
        check(&conn, &STACKS, true);
        check(&conn, &STACK_FRAMES, true);
        check(&conn, &PROCESSES, true);
        check(&conn, &THREADS, true);
        check(&conn, &IMAGES, true);
        check(&conn, &CAPTURE_START, true);
        check(&conn, &CAPTURE_END, false);
        check(&conn, &INGEST_ERRORS, true);
        check(&conn, &SITES, true);
        check(&conn, &SITE_FRAMES, true);
        check(&conn, &CAPTURE_STACKS, true);
        check(&conn, &HEAPS, true);
        check(&conn, &SITE_STATS, true);
        check(&conn, &CAPTURE_LABELS, true);
        check(&conn, &BLOCKS, true);
        check(&conn, &BLOCK_COUNTS, true);
        check(&conn, &PROCESS_USAGE, true);
        check(&conn, &HEAP_EVENT_COUNTS, true);
        conn.prepare(&CAPTURE_END.update_sql()).unwrap();
        for sql in [
            INGEST_ERROR_ONCE,
            FIND_CAPTURE,
            NEXT_EVENT_ID,
            NEXT_BLOCK_ID,
            EVENTS_STORED,
        ] {
            conn.prepare(sql).unwrap();
        }
        assert_eq!(
            REALLOCS.insert_sql(1),
            "INSERT INTO reallocs (id, capture_id, time_ns, ts_raw, pid, tid, cpu, heap, new_address, old_address, new_size, old_size, source, moved, pointer_size, stack_id, alloc_id, free_id, file_offset) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
        );
    }
}
