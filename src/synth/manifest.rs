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

/// One block lifetime as an observer following the block lifetime model (the rules of
/// heapdb's `blocks` table) must find it in the WRITTEN events: recorded by the
/// synthesizer from what it did and what it wrote, not derived from heapdb.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TruthBlock {
    pub pid: u32,
    /// The heap handle.
    pub heap: u64,
    pub address: u64,
    /// None for a block first seen by a Free (a Free carries no size).
    pub size: Option<u64>,
    /// The Source of the start event (Alloc or ReAlloc); for a block first seen by a
    /// Free: the Free's Source; first seen as a ReAlloc's old side: None.
    pub source: Option<u32>,
    /// The stack id written with the start event (Alloc/ReAlloc with stacks on).
    pub stack_id: Option<i64>,
    /// `alloc`, `realloc`, `before_trace` or `lost_alloc`.
    pub start_kind: &'static str,
    /// UTC ns (None for `before_trace` / `lost_alloc`).
    pub start_ns: Option<i64>,
    /// `free`, `realloc_moved`, `realloc_in_place`, `heap_destroyed`,
    /// `process_exited`, `lost_free` or `live_at_end`.
    pub end_kind: &'static str,
    /// UTC ns (None for `live_at_end`).
    pub end_ns: Option<i64>,
    /// Position in its realloc chain (0 = the chain's first block).
    pub chain_index: u32,
    /// Number of lifetimes in its whole chain.
    pub chain_len: u32,
}

/// Blocks ending `live_at_end` (start kind alloc or realloc) of one call site.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct LiveAtEndSite {
    pub pid: u32,
    /// The process's identity (see `ProcessStats::identity`).
    pub process: String,
    pub call_site: String,
    pub stack_id: Option<i64>,
    pub blocks: u64,
    pub bytes: u64,
}

/// A process's peak of outstanding bytes (live blocks started alloc/realloc), the
/// first time it is reached.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PeakTruth {
    pub pid: u32,
    pub identity: String,
    pub peak_bytes: u64,
    /// Outstanding blocks at that instant (not the maximum number of blocks).
    pub peak_blocks: u64,
    /// UTC ns of the event that reached the peak (None: never above 0).
    pub peak_time_ns: Option<i64>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ProcessExitTruth {
    pub pid: u32,
    /// UTC ns of its Process End event.
    pub time_ns: i64,
    /// Observed-live blocks (any start kind) that ended `process_exited`.
    pub live_blocks: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct HeapDestroyTruth {
    pub pid: u32,
    pub heap: u64,
    pub time_ns: i64,
    /// Observed-live blocks that ended `heap_destroyed`.
    pub live_blocks: u64,
}

/// What the block lifetime model finds in the written events (see `TruthBlock`).
#[derive(Debug, Clone, Default, Serialize)]
pub struct LifetimeTruth {
    /// Blocks the processes held before the trace started (created by the simulator).
    pub pre_trace_blocks: u64,
    /// Alloc and Free events that happened but were not written.
    pub lost_allocs: u64,
    pub lost_frees: u64,
    /// Lifetimes per `"start_kind/end_kind"`.
    pub blocks: BTreeMap<String, u64>,
    pub live_at_end_by_site: Vec<LiveAtEndSite>,
    /// Chain length (>= 2) -> number of chains.
    pub chains: BTreeMap<u32, u64>,
    pub longest_chain: u32,
    pub peaks: Vec<PeakTruth>,
    pub process_exits: Vec<ProcessExitTruth>,
    pub heaps_destroyed: Vec<HeapDestroyTruth>,
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
    /// The process wrote its Process End (mid-trace or at the end; see
    /// `LifetimeTruth::process_exits`).
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
    /// The first frame in the program's own code (after the heap's and the CRT's): for a
    /// site through heapdemo, heapdemo's `heap_realloc` frame.
    pub call_site: String,
    /// The stack id its events carry in this capture (the frames' absolute addresses).
    pub stack_id: i64,
    /// Allocs (not the internal Alloc of a moving ReAlloc) and ReAllocs of blocks
    /// allocated here, as written (lost Allocs are not counted; see `lifetimes`).
    pub allocs: u64,
    pub reallocs: u64,
    pub moves: u64,
    pub bytes_copied: u64,
    /// Relative share of its process's allocations: 1, 2 for a site through heapdemo,
    /// times the factor of a planted regression.
    pub weight: f64,
    /// For a site that allocates through heapdemo.dll (absent otherwise): which build of
    /// it and which call chain, and the function symbolization must name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub demo: Option<DemoSiteTruth>,
}

/// A call site that allocates through `heapdemo.dll`, the fixture DLL of
/// fixtures/symbols (see `symbols::demo_module`).
#[derive(Debug, Clone, Default, Serialize)]
pub struct DemoSiteTruth {
    /// `heapdemo.dll`.
    pub module: String,
    /// The build, as its fixtures/symbols directory: `x64`, `x64-build2` or `x86`.
    pub build: String,
    /// The demo call chain in its frames: `line_reader`, `json_writer` or `vector`.
    pub chain: String,
    /// The outer function of its first heapdemo frame that is not `heap_realloc`, as
    /// llvm-symbolizer names it (e.g. `JsonWriter::Grow(unsigned __int64)`): the call
    /// function symbolization must find.
    pub call_function: String,
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
    /// Alloc and Free events written (lost ones are in `lifetimes`).
    pub alloc_count: u64,
    pub alloc_bytes: u64,
    pub free_count: u64,
    /// Alloc/Free events that belong to a moving ReAlloc.
    pub internal_allocs: u64,
    pub internal_frees: u64,
    pub records_32bit: u64,
    pub events_with_stack: u64,
    pub distinct_stacks: u64,
    /// Blocks (and their bytes) ending `live_at_end` under the block lifetime model
    /// whose start kind is `alloc` or `realloc` (blocks from before the trace, ghosts of
    /// lost Frees included when their Alloc was written; see `lifetimes`).
    pub live_blocks_at_end: u64,
    pub live_bytes_at_end: u64,
    pub start_time_utc_ns: i64,
    /// Raw (QPC, 10 MHz) timestamp of the session start.
    pub start_raw: u64,
    pub processes: Vec<ProcessStats>,
    pub heaps: Vec<HeapStats>,
    pub regression: Option<RegressionTruth>,
    /// The block lifetime model's view of the written events.
    pub lifetimes: LifetimeTruth,
}

#[derive(Debug, Clone, Serialize)]
pub struct Manifest {
    pub heapdb_version: &'static str,
    pub options: Options,
    pub files: Vec<FileManifest>,
}
