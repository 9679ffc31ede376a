//! Typed heap records (HeapTraceProvider, kernel group 0x10, opcodes 32–58) and the
//! HeapRange events (PageFault group, opcodes 100–104), decoded to the byte from the
//! layouts in the shared heap-events notes §1.4. Pointer width comes from each record's
//! header, never from the file.

use serde::Serialize;
use std::fmt;

/// Where the heap manager served a block from (the event's Source field).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct Source(pub u32);

impl Source {
    pub const LOOKASIDE: Source = Source(1);
    pub const LFH: Source = Source(2);
    pub const MAIN: Source = Source(3);
    pub const SLOW: Source = Source(4);
    pub const INVALID: Source = Source(5);
    pub const SEGMENT: Source = Source(6);

    /// Short name (`lookaside`, `lfh`, `main`, `slow`, `invalid`, `segment`); unknown
    /// values have none and are kept as numbers.
    pub fn name(&self) -> Option<&'static str> {
        Some(match self.0 {
            1 => "lookaside",
            2 => "lfh",
            3 => "main",
            4 => "slow",
            5 => "invalid",
            6 => "segment",
            _ => return None,
        })
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(n) => f.write_str(n),
            None => write!(f, "{}", self.0),
        }
    }
}

/// Heap opcodes (event types of group 0x10).
pub mod op {
    pub const CREATE: u8 = 32;
    pub const ALLOC: u8 = 33;
    pub const REALLOC: u8 = 34;
    pub const DESTROY: u8 = 35;
    pub const FREE: u8 = 36;
    pub const EXPAND: u8 = 37;
    pub const SNAPSHOT: u8 = 38;
    pub const CREATE_SNAPSHOT: u8 = 39;
    pub const DESTROY_SNAPSHOT: u8 = 40;
    pub const EXTEND_SNAPSHOT: u8 = 41;
    pub const CONTRACT: u8 = 42;
    pub const LOCK: u8 = 43;
    pub const UNLOCK: u8 = 44;
    pub const VALIDATE: u8 = 45;
    pub const WALK: u8 = 46;
    pub const SUBSEGMENT_ALLOC: u8 = 47;
    pub const SUBSEGMENT_FREE: u8 = 48;
    pub const SUBSEGMENT_ALLOC_CACHED: u8 = 49;
    pub const SUBSEGMENT_FREE_CACHED: u8 = 50;
    pub const COMMIT: u8 = 51;
    pub const DECOMMIT: u8 = 52;
    pub const SUBSEGMENT_INIT: u8 = 53;
    pub const AFFINITY_MANAGER_ENABLE: u8 = 54;
    pub const AFFINITY_SLOT_ASSIGNED: u8 = 55;
    pub const SUBSEGMENT_ACTIVATED: u8 = 56;
    pub const AFFINITY_SLOT_CHANGED: u8 = 57;
    pub const SUBSEGMENT_REUSE_THRESHOLD: u8 = 58;
    /// HeapRange events (PageFault group): 100 rundown … 104 destroy.
    pub const RANGE_RUNDOWN: u8 = 100;
    pub const RANGE_CREATE: u8 = 101;
    pub const RANGE_RESERVE: u8 = 102;
    pub const RANGE_RELEASE: u8 = 103;
    pub const RANGE_DESTROY: u8 = 104;
}

/// Name of a heap opcode (PerfView's names), for the database's lookup table.
pub fn opcode_name(opcode: u8) -> Option<&'static str> {
    Some(match opcode {
        32 => "Create",
        33 => "Alloc",
        34 => "ReAlloc",
        35 => "Destroy",
        36 => "Free",
        37 => "Expand",
        38 => "SnapShot",
        39 => "CreateSnapshot",
        40 => "DestroySnapshot",
        41 => "ExtendSnapshot",
        42 => "Contract",
        43 => "Lock",
        44 => "Unlock",
        45 => "Validate",
        46 => "Walk",
        47 => "SubsegmentAlloc",
        48 => "SubsegmentFree",
        49 => "SubsegmentAllocCached",
        50 => "SubsegmentFreeCached",
        51 => "Commit",
        52 => "Decommit",
        53 => "SubsegmentInit",
        54 => "AffinityManagerEnable",
        55 => "AffinitySlotAssigned",
        56 => "SubSegmentActivated",
        57 => "AffinitySlotChanged",
        58 => "SubsegmentReuseThresholdActivated",
        100 => "RangeRundown",
        101 => "RangeCreate",
        102 => "RangeReserve",
        103 => "RangeRelease",
        104 => "RangeDestroy",
        _ => return None,
    })
}

/// Versions seen in the OS's own manifest for each opcode (notes §1.2). Other versions
/// are decoded by their known prefix and counted as "unknown version".
pub fn is_known_version(opcode: u8, version: u16) -> bool {
    match opcode {
        op::CREATE | op::SNAPSHOT => version == 2 || version == 3,
        op::EXPAND | op::CONTRACT => version == 3 || version == 2,
        32..=58 => version == 2,
        100..=104 => version <= 2,
        _ => false,
    }
}

/// Heap space counters shared by Expand, Contract and SnapShot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct SpaceInfo {
    pub free_space: u64,
    pub committed_space: u64,
    pub reserved_space: u64,
    /// Only in version 3 records.
    pub allocated_space: Option<u64>,
}

/// A heap SnapShot record (opcodes 38–41).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Snapshot {
    pub opcode: u8,
    pub heap: u64,
    pub space: SpaceInfo,
    pub heap_flags: u32,
    pub process_id: u32,
    pub large_ucr_space: u64,
    pub free_list_length: u32,
    pub ucr_length: u32,
}

/// One heap record, typed by opcode. Addresses and sizes are zero-extended to 64 bits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind")]
pub enum HeapRecord {
    Create {
        heap: u64,
        flags: u32,
        /// Version 3 only.
        reserve_size: Option<u64>,
        commit_size: Option<u64>,
        allocated_size: Option<u64>,
    },
    Alloc {
        heap: u64,
        size: u64,
        address: u64,
        source: Source,
    },
    ReAlloc {
        heap: u64,
        new_address: u64,
        old_address: u64,
        new_size: u64,
        old_size: u64,
        source: Source,
    },
    Free {
        heap: u64,
        address: u64,
        source: Source,
    },
    /// Destroy, Lock, Unlock, Validate, Walk: the heap handle only.
    HeapOnly {
        opcode: u8,
        heap: u64,
    },
    Expand {
        heap: u64,
        size: u64,
        address: u64,
        ucr_count: u32,
        space: Box<SpaceInfo>,
    },
    Contract {
        heap: u64,
        size: u64,
        address: u64,
        ucr_count: u32,
        space: Box<SpaceInfo>,
    },
    /// SnapShot and the ntwmi-only CreateSnapshot/DestroySnapshot/ExtendSnapshot.
    /// Boxed: rare, and large enough to double the size of every record otherwise.
    Snapshot(Box<Snapshot>),
    /// SubsegmentAlloc/Free/AllocCached/FreeCached.
    Subsegment {
        opcode: u8,
        heap: u64,
        subsegment: u64,
        subsegment_size: u64,
        block_size: u64,
    },
    /// Commit / Decommit.
    CommitDecommit {
        opcode: u8,
        heap: u64,
        block: u64,
        size: u64,
        caller: u32,
    },
    SubsegmentInit {
        heap: u64,
        subsegment: u64,
        block_size: u64,
        block_count: u64,
        affinity_index: u32,
    },
    AffinityManagerEnable {
        heap: u64,
        bucket_index: u32,
    },
    AffinitySlotAssigned {
        slot_index: u32,
    },
    SubsegmentActivated {
        heap: u64,
        subsegment: u64,
    },
    AffinitySlotChanged {
        heap: u64,
        subsegment: u64,
        slot_index: u32,
    },
    SubsegmentReuseThreshold {
        heap: u64,
        subsegment: u64,
        bucket_index: u32,
    },
    RangeCreate {
        heap: u64,
        first_range_size: u64,
        flags: u32,
    },
    /// RangeReserve / RangeRelease.
    Range {
        opcode: u8,
        heap: u64,
        address: u64,
        size: u64,
    },
    RangeDestroy {
        heap: u64,
    },
    RangeRundown {
        heap: u64,
        flags: u32,
        process_id: u32,
        ranges: Vec<(u64, u64)>,
    },
}

impl HeapRecord {
    pub fn opcode(&self) -> u8 {
        match self {
            HeapRecord::Create { .. } => op::CREATE,
            HeapRecord::Alloc { .. } => op::ALLOC,
            HeapRecord::ReAlloc { .. } => op::REALLOC,
            HeapRecord::Free { .. } => op::FREE,
            HeapRecord::Snapshot(s) => s.opcode,
            HeapRecord::HeapOnly { opcode, .. }
            | HeapRecord::Subsegment { opcode, .. }
            | HeapRecord::CommitDecommit { opcode, .. }
            | HeapRecord::Range { opcode, .. } => *opcode,
            HeapRecord::Expand { .. } => op::EXPAND,
            HeapRecord::Contract { .. } => op::CONTRACT,
            HeapRecord::SubsegmentInit { .. } => op::SUBSEGMENT_INIT,
            HeapRecord::AffinityManagerEnable { .. } => op::AFFINITY_MANAGER_ENABLE,
            HeapRecord::AffinitySlotAssigned { .. } => op::AFFINITY_SLOT_ASSIGNED,
            HeapRecord::SubsegmentActivated { .. } => op::SUBSEGMENT_ACTIVATED,
            HeapRecord::AffinitySlotChanged { .. } => op::AFFINITY_SLOT_CHANGED,
            HeapRecord::SubsegmentReuseThreshold { .. } => op::SUBSEGMENT_REUSE_THRESHOLD,
            HeapRecord::RangeCreate { .. } => op::RANGE_CREATE,
            HeapRecord::RangeDestroy { .. } => op::RANGE_DESTROY,
            HeapRecord::RangeRundown { .. } => op::RANGE_RUNDOWN,
        }
    }
}

/// Where and when a heap event happened: the header fields every record carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct EventInfo {
    pub opcode: u8,
    pub version: u16,
    pub pid: u32,
    pub tid: u32,
    pub cpu: u16,
    pub ts_raw: u64,
    pub pointer_size: u8,
    pub offset: u64,
}

/// A decoded heap event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HeapEvent {
    #[serde(flatten)]
    pub info: EventInfo,
    pub record: HeapRecord,
}

/// Why a heap record could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeapError {
    #[error(
        "heap {name} record (opcode {opcode}, {ptr}-bit) is {have} bytes, its layout needs {need}"
    )]
    Short {
        opcode: u8,
        name: &'static str,
        ptr: u8,
        have: usize,
        need: usize,
    },
    #[error("unknown heap opcode {0}")]
    UnknownOpcode(u8),
    #[error("heap record with a {0} header has no pointer size")]
    NoPointerSize(&'static str),
    #[error("heap-provider event in a {0} header has no opcode")]
    NoOpcode(&'static str),
}

pub use super::codec::{
    decode, decode_payload, encode_payload, heap_identity, is_heap_event, layout_size,
    HEAP_RANGE_GUID,
};
