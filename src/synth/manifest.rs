//! `manifest.json`: what a synthesized capture holds, counted as it was written. Tests
//! and benchmarks compare decoders and the database against it.

use super::Options;
use crate::heap::record::{EventInfo, HeapRecord};
use serde::Serialize;
use std::collections::BTreeMap;

/// One heap event as written: what a decoder must read back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TruthOp {
    #[serde(flatten)]
    pub info: EventInfo,
    pub record: HeapRecord,
    pub stack_id: Option<i64>,
    /// This Alloc/Free was logged as part of a moving ReAlloc.
    pub internal: bool,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct ReallocStats {
    pub total: u64,
    pub moved: u64,
    pub in_place: u64,
    pub grown: u64,
    pub shrunk: u64,
    pub same_size: u64,
    /// Moving reallocs logged with their internal Alloc + Free.
    pub with_internal_alloc_free: u64,
    pub sum_new_size: u64,
    pub sum_old_size: u64,
    pub by_source: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct HeapStats {
    pub pid: u32,
    pub handle: u64,
    /// What the heap is, the same every night: 'default' (the process heap, which
    /// predates the trace) or 'private@<call site that created it>'.
    pub identity: String,
    pub private: bool,
    pub created: bool,
    pub destroyed: bool,
    pub allocs: u64,
    pub reallocs: u64,
    pub frees: u64,
    pub alloc_bytes: u64,
    pub realloc_new_bytes: u64,
    pub realloc_old_bytes: u64,
    pub other_events: u64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct ProcessStats {
    pub pid: u32,
    pub name: String,
    pub command_line: String,
    pub pointer_size: u8,
    pub segment_heap: bool,
    pub threads: Vec<u32>,
    pub heap_events: u64,
    pub reallocs: u64,
    pub exited: bool,
    /// Name (lowercase), plus the arguments of the command line when another process
    /// of the capture has the same name: the same every night.
    pub identity: String,
    /// The process's call sites (all of them, used or not this night).
    pub sites: Vec<SiteStats>,
}

/// What one call site did in one capture.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SiteStats {
    /// Frames as `module+0xRVA` (module lowercase), innermost first: the same every
    /// night of one build.
    pub frames: Vec<String>,
    /// The first frame in the program's own code (after the heap's and the CRT's).
    pub call_site: String,
    /// Allocs (not the internal Alloc of a moving ReAlloc) and ReAllocs of blocks
    /// allocated here.
    pub allocs: u64,
    pub reallocs: u64,
    pub moves: u64,
    pub bytes_copied: u64,
    /// Share of its process's allocations (1 for all but a planted regression).
    pub weight: f64,
}

/// The regression planted with `--regression`, as written in this capture.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RegressionTruth {
    pub process: String,
    pub call_site: String,
    pub frames: Vec<String>,
    pub factor: f64,
    pub weight: f64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct FileManifest {
    pub path: String,
    pub bytes: u64,
    pub buffers: u32,
    /// Every record, the logfile header included.
    pub events: u64,
    pub heap_events: u64,
    /// Events per `"<provider>/<opcode>"`, as `heapdb dump --summary` counts them.
    pub counts: BTreeMap<String, u64>,
    /// Heap events per opcode name.
    pub heap_opcodes: BTreeMap<String, u64>,
    pub reallocs: ReallocStats,
    pub alloc_count: u64,
    pub alloc_bytes: u64,
    pub free_count: u64,
    /// Alloc/Free events that belong to a moving ReAlloc.
    pub internal_allocs: u64,
    pub internal_frees: u64,
    pub records_32bit: u64,
    pub events_with_stack: u64,
    pub distinct_stacks: u64,
    pub live_blocks_at_end: u64,
    pub live_bytes_at_end: u64,
    pub start_time_utc_ns: i64,
    /// Raw (QPC, 10 MHz) timestamp of the session start.
    pub start_raw: u64,
    pub processes: Vec<ProcessStats>,
    pub heaps: Vec<HeapStats>,
    pub regression: Option<RegressionTruth>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Manifest {
    pub heapdb_version: &'static str,
    pub options: Options,
    pub files: Vec<FileManifest>,
}
