//! Heap records and rundown → the rows a sink stores, with absolute times. The row
//! model is the same whatever the sink (SQLite, Parquet): one type per table.

use crate::etl::Clock;
use crate::heap::capture::{HeapRow, RowKey, StackRef};
use crate::heap::record::HeapRecord;
use crate::heap::rundown::Rundown;

/// The columns every heap event shares in the database.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Columns {
    pub heap: u64,
    pub address: Option<u64>,
    pub old_address: Option<u64>,
    pub size: Option<u64>,
    pub old_size: Option<u64>,
    pub source: Option<u32>,
}

/// Flattens a record into the shared columns (heap, address, old address, size, old
/// size, source); fields a record does not have are `None`.
pub fn columns(record: &HeapRecord) -> Columns {
    let mut c = Columns::default();
    match *record {
        HeapRecord::Create {
            heap, reserve_size, ..
        } => {
            c.heap = heap;
            c.size = reserve_size;
        }
        HeapRecord::Alloc {
            heap,
            size,
            address,
            source,
        } => {
            c = Columns {
                heap,
                address: Some(address),
                size: Some(size),
                source: Some(source.0),
                ..c
            };
        }
        HeapRecord::ReAlloc {
            heap,
            new_address,
            old_address,
            new_size,
            old_size,
            source,
        } => {
            c = Columns {
                heap,
                address: Some(new_address),
                old_address: Some(old_address),
                size: Some(new_size),
                old_size: Some(old_size),
                source: Some(source.0),
            };
        }
        HeapRecord::Free {
            heap,
            address,
            source,
        } => {
            c = Columns {
                heap,
                address: Some(address),
                source: Some(source.0),
                ..c
            };
        }
        HeapRecord::HeapOnly { heap, .. }
        | HeapRecord::AffinityManagerEnable { heap, .. }
        | HeapRecord::RangeDestroy { heap }
        | HeapRecord::RangeRundown { heap, .. } => c.heap = heap,
        HeapRecord::Expand {
            heap,
            size,
            address,
            ..
        }
        | HeapRecord::Contract {
            heap,
            size,
            address,
            ..
        } => {
            c = Columns {
                heap,
                address: Some(address),
                size: Some(size),
                ..c
            };
        }
        HeapRecord::Snapshot(ref s) => {
            c.heap = s.heap;
            c.size = Some(s.space.committed_space);
        }
        HeapRecord::Subsegment {
            heap,
            subsegment,
            subsegment_size,
            ..
        } => {
            c = Columns {
                heap,
                address: Some(subsegment),
                size: Some(subsegment_size),
                ..c
            };
        }
        HeapRecord::CommitDecommit {
            heap, block, size, ..
        } => {
            c = Columns {
                heap,
                address: Some(block),
                size: Some(size),
                ..c
            };
        }
        HeapRecord::SubsegmentInit {
            heap,
            subsegment,
            block_size,
            ..
        } => {
            c = Columns {
                heap,
                address: Some(subsegment),
                size: Some(block_size),
                ..c
            };
        }
        HeapRecord::AffinitySlotAssigned { .. } => {}
        HeapRecord::SubsegmentActivated { heap, subsegment }
        | HeapRecord::AffinitySlotChanged {
            heap, subsegment, ..
        }
        | HeapRecord::SubsegmentReuseThreshold {
            heap, subsegment, ..
        } => {
            c.heap = heap;
            c.address = Some(subsegment);
        }
        HeapRecord::RangeCreate {
            heap,
            first_range_size,
            ..
        } => {
            c.heap = heap;
            c.size = Some(first_range_size);
        }
        HeapRecord::Range {
            heap,
            address,
            size,
            ..
        } => {
            c = Columns {
                heap,
                address: Some(address),
                size: Some(size),
                ..c
            };
        }
    }
    c
}

/// One heap event as stored (reallocs or heap_events), before it gets its id.
#[derive(Debug, Clone)]
pub struct HeapEventRow {
    pub key: RowKey,
    pub time_ns: i64,
    pub ts_raw: u64,
    pub pid: u32,
    pub tid: u32,
    pub cpu: u16,
    pub opcode: u8,
    pub pointer_size: u8,
    pub heap: u64,
    pub address: Option<u64>,
    pub old_address: Option<u64>,
    pub size: Option<u64>,
    pub old_size: Option<u64>,
    pub source: Option<u32>,
    pub stack_id: Option<i64>,
    /// The ReAlloc this Alloc/Free belongs to (internal pair of a moving realloc).
    pub realloc_link: Option<RowKey>,
    pub extra: Option<String>,
    pub file_offset: u64,
}

impl HeapEventRow {
    pub fn from_heap(r: &HeapRow, clock: &Clock) -> HeapEventRow {
        let info = &r.event.info;
        let c = columns(&r.event.record);
        let extra = match &r.event.record {
            HeapRecord::Alloc { .. }
            | HeapRecord::ReAlloc { .. }
            | HeapRecord::Free { .. }
            | HeapRecord::HeapOnly { .. } => None,
            other => serde_json::to_string(other).ok(),
        };
        HeapEventRow {
            key: r.key,
            time_ns: clock.unix_ns(info.ts_raw),
            ts_raw: info.ts_raw,
            pid: info.pid,
            tid: info.tid,
            cpu: info.cpu,
            opcode: info.opcode,
            pointer_size: info.pointer_size,
            heap: c.heap,
            address: c.address,
            old_address: c.old_address,
            size: c.size,
            old_size: c.old_size,
            source: c.source,
            stack_id: match r.stack {
                StackRef::Id(id) => Some(id),
                _ => None,
            },
            realloc_link: r.realloc_link,
            extra,
            file_offset: info.offset,
        }
    }
}

/// Rundown with absolute times.
#[derive(Debug, Clone)]
pub struct RundownRow {
    pub time_ns: i64,
    pub item: Rundown,
}

impl RundownRow {
    pub fn new(item: Rundown, clock: &Clock) -> RundownRow {
        let ts = match &item {
            Rundown::Process(p) => p.ts_raw,
            Rundown::Thread(t) => t.ts_raw,
            Rundown::Image(i) => i.ts_raw,
            Rundown::Pdb(_) => 0,
        };
        RundownRow {
            time_ns: clock.unix_ns(ts),
            item,
        }
    }
}

/// A heap event with its id, as a sink stores it (in `reallocs` or `heap_events`).
#[derive(Debug, Clone)]
pub struct StoredRow {
    pub id: i64,
    pub capture_id: i64,
    /// ReAllocs only: the ids of the internal Alloc of the new block and Free of the
    /// old one, when they were logged.
    pub alloc_id: Option<i64>,
    pub free_id: Option<i64>,
    pub row: HeapEventRow,
}

/// A row of `reallocs`.
pub type ReallocRow = StoredRow;
/// A row of `heap_events`.
pub type OtherRow = StoredRow;
