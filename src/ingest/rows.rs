//! Heap records and rundown → the rows the writer inserts, with absolute times.

use crate::etl::Clock;
use crate::heap::capture::{HeapRow, RowKey, StackRef};
use crate::heap::record::HeapRecord;
use crate::heap::rundown::Rundown;

/// One heap event as stored (reallocs or heap_events).
#[derive(Debug, Clone)]
pub struct EventRow {
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

impl EventRow {
    pub fn from_heap(r: &HeapRow, clock: &Clock) -> EventRow {
        let info = &r.event.info;
        let c = r.event.record.columns();
        let extra = match &r.event.record {
            HeapRecord::Alloc { .. }
            | HeapRecord::ReAlloc { .. }
            | HeapRecord::Free { .. }
            | HeapRecord::HeapOnly { .. } => None,
            other => serde_json::to_string(other).ok(),
        };
        EventRow {
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
