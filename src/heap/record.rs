//! Typed heap records (HeapTraceProvider, kernel group 0x10, opcodes 32–58) and the
//! HeapRange events (PageFault group, opcodes 100–104), decoded to the byte from the
//! layouts in the shared heap-events notes §1.4. Pointer width comes from each record's
//! header, never from the file.

use super::layout;
use crate::etl::kernel::{GROUP_HEAP, GROUP_PAGE_FAULT, HEAP_GUID, PAGE_FAULT_GUID};
use crate::etl::{Event, Guid, HeaderKind};
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

/// The HeapRange provider (d781ca11-61c0-4387-b83d-af52d3d2dd6a): its events arrive
/// in the PageFault group as opcodes 100–104, and may carry its own GUID in a
/// GUID-bearing header.
pub const HEAP_RANGE_GUID: Guid = Guid::from_fields(
    0xd781ca11,
    0x61c0,
    0x4387,
    [0xb8, 0x3d, 0xaf, 0x52, 0xd3, 0xd2, 0xdd, 0x6a],
);

/// The heap identity of an event: (kernel group, opcode) when it is one of the heap
/// provider's (group 0x10) or a HeapRange event, whatever header carries it. Heap
/// events are classic "system" events (a hook id) in every capture seen so far, but no
/// public capture shows what every Windows version writes, so the same events in a
/// classic EVENT_TRACE_HEADER or an EVENT_HEADER (recognized by provider GUID) count
/// too. `Some((group, None))`: a heap-provider event without an opcode (a WPP form),
/// which cannot be decoded.
#[inline]
pub fn heap_identity(e: &Event<'_>) -> Option<(u8, Option<u8>)> {
    let is_range = |op: u8| (op::RANGE_RUNDOWN..=op::RANGE_DESTROY).contains(&op);
    match e.hook {
        Some(hook) => {
            let (group, opcode) = ((hook >> 8) as u8, hook as u8);
            (group == GROUP_HEAP || (group == GROUP_PAGE_FAULT && is_range(opcode)))
                .then_some((group, Some(opcode)))
        }
        None if e.provider == HEAP_GUID => Some((GROUP_HEAP, e.opcode)),
        None if e.provider == HEAP_RANGE_GUID
            || (e.provider == PAGE_FAULT_GUID && e.opcode.is_some_and(is_range)) =>
        {
            Some((GROUP_PAGE_FAULT, e.opcode))
        }
        None => None,
    }
}

/// Is this event one of the heap provider's (group 0x10), or a HeapRange event?
#[inline]
pub fn is_heap_event(e: &Event<'_>) -> bool {
    heap_identity(e).is_some()
}

/// Decodes a heap (or HeapRange) event, in whatever header it came. Returns `None` for
/// events of other providers. Records longer than their layout are accepted (padding,
/// newer fields); shorter ones are an error for that record.
#[inline]
pub fn decode(e: &Event<'_>) -> Option<Result<HeapEvent, HeapError>> {
    let (group, opcode) = heap_identity(e)?;
    let Some(opcode) = opcode else {
        return Some(Err(HeapError::NoOpcode(e.kind.name())));
    };
    Some(
        decode_payload(group, opcode, e.version, e.pointer_size, e.kind, e.payload).map(|record| {
            HeapEvent {
                info: EventInfo {
                    opcode,
                    version: e.version,
                    pid: e.pid.unwrap_or(u32::MAX),
                    tid: e.tid.unwrap_or(u32::MAX),
                    cpu: e.cpu,
                    ts_raw: e.timestamp.unwrap_or(0),
                    pointer_size: e.pointer_size,
                    offset: e.offset(),
                },
                record,
            }
        }),
    )
}

/// Decodes a heap payload given its group, opcode, version and pointer size, by the
/// layout of [`super::layout`].
#[inline]
pub fn decode_payload(
    group: u8,
    opcode: u8,
    version: u16,
    ptr: u8,
    kind: HeaderKind,
    payload: &[u8],
) -> Result<HeapRecord, HeapError> {
    if ptr != 4 && ptr != 8 {
        return Err(HeapError::NoPointerSize(kind.name()));
    }
    let l = layout::layout(group, opcode, version).ok_or(HeapError::UnknownOpcode(opcode))?;
    let short = |need: usize| HeapError::Short {
        opcode,
        name: opcode_name(opcode).unwrap_or("unknown"),
        ptr: ptr * 8,
        have: payload.len(),
        need,
    };
    let v = l.read(payload, ptr).ok_or_else(|| short(l.size(ptr)))?;
    let u32_ = |i: usize| v[i] as u32;
    let space = |at: usize, allocated: Option<usize>| SpaceInfo {
        free_space: v[at],
        committed_space: v[at + 1],
        reserved_space: v[at + 2],
        allocated_space: allocated.map(|i| v[i]),
    };
    let v3 = version >= 3;
    Ok(if group == GROUP_PAGE_FAULT {
        match opcode {
            op::RANGE_CREATE => HeapRecord::RangeCreate {
                heap: v[0],
                first_range_size: v[1],
                flags: u32_(2),
            },
            op::RANGE_RESERVE | op::RANGE_RELEASE => HeapRecord::Range {
                opcode,
                heap: v[0],
                address: v[1],
                size: v[2],
            },
            op::RANGE_DESTROY => HeapRecord::RangeDestroy { heap: v[0] },
            _ => {
                // RangeRundown: RangeCount entries follow the fixed part. Bounded by the
                // payload, not by the (untrusted) count.
                let count = v[3] as usize;
                let fixed = l.size(ptr);
                let entry = layout::RANGE_ENTRY.size(ptr);
                let avail = payload.len().saturating_sub(fixed) / entry;
                if count > avail {
                    return Err(short(fixed.saturating_add(count.saturating_mul(entry))));
                }
                let ranges = (0..count)
                    .filter_map(|i| {
                        let r = layout::RANGE_ENTRY.read(payload.get(fixed + i * entry..)?, ptr)?;
                        Some((r[0], r[1]))
                    })
                    .collect();
                HeapRecord::RangeRundown {
                    heap: v[0],
                    flags: u32_(1),
                    process_id: u32_(2),
                    ranges,
                }
            }
        }
    } else {
        match opcode {
            op::CREATE => HeapRecord::Create {
                heap: v[0],
                flags: u32_(1),
                reserve_size: v3.then_some(v[2]),
                commit_size: v3.then_some(v[3]),
                allocated_size: v3.then_some(v[4]),
            },
            op::ALLOC => HeapRecord::Alloc {
                heap: v[0],
                size: v[1],
                address: v[2],
                source: Source(u32_(3)),
            },
            op::REALLOC => HeapRecord::ReAlloc {
                heap: v[0],
                new_address: v[1],
                old_address: v[2],
                new_size: v[3],
                old_size: v[4],
                source: Source(u32_(5)),
            },
            op::FREE => HeapRecord::Free {
                heap: v[0],
                address: v[1],
                source: Source(u32_(2)),
            },
            op::EXPAND | op::CONTRACT => {
                let space = Box::new(space(3, v3.then_some(7)));
                let (heap, size, address, ucr_count) = (v[0], v[1], v[2], u32_(6));
                if opcode == op::EXPAND {
                    HeapRecord::Expand {
                        heap,
                        size,
                        address,
                        ucr_count,
                        space,
                    }
                } else {
                    HeapRecord::Contract {
                        heap,
                        size,
                        address,
                        ucr_count,
                        space,
                    }
                }
            }
            op::SNAPSHOT..=op::EXTEND_SNAPSHOT => HeapRecord::Snapshot(Box::new(Snapshot {
                opcode,
                heap: v[0],
                space: space(1, v3.then_some(9)),
                heap_flags: u32_(4),
                process_id: u32_(5),
                large_ucr_space: v[6],
                free_list_length: u32_(7),
                ucr_length: u32_(8),
            })),
            op::SUBSEGMENT_ALLOC..=op::SUBSEGMENT_FREE_CACHED => HeapRecord::Subsegment {
                opcode,
                heap: v[0],
                subsegment: v[1],
                subsegment_size: v[2],
                block_size: v[3],
            },
            op::COMMIT | op::DECOMMIT => HeapRecord::CommitDecommit {
                opcode,
                heap: v[0],
                block: v[1],
                size: v[2],
                caller: u32_(3),
            },
            op::SUBSEGMENT_INIT => HeapRecord::SubsegmentInit {
                heap: v[0],
                subsegment: v[1],
                block_size: v[2],
                block_count: v[3],
                affinity_index: u32_(4),
            },
            op::AFFINITY_MANAGER_ENABLE => HeapRecord::AffinityManagerEnable {
                heap: v[0],
                bucket_index: u32_(1),
            },
            op::AFFINITY_SLOT_ASSIGNED => HeapRecord::AffinitySlotAssigned {
                slot_index: u32_(0),
            },
            op::SUBSEGMENT_ACTIVATED => HeapRecord::SubsegmentActivated {
                heap: v[0],
                subsegment: v[1],
            },
            op::AFFINITY_SLOT_CHANGED => HeapRecord::AffinitySlotChanged {
                heap: v[0],
                subsegment: v[1],
                slot_index: u32_(2),
            },
            op::SUBSEGMENT_REUSE_THRESHOLD => HeapRecord::SubsegmentReuseThreshold {
                heap: v[0],
                subsegment: v[1],
                bucket_index: u32_(2),
            },
            // Destroy, Lock, Unlock, Validate, Walk (the layout table has no other).
            _ => HeapRecord::HeapOnly { opcode, heap: v[0] },
        }
    })
}

impl HeapRecord {
    /// The event version this record is written with: 3 for the layouts that grew a
    /// field in version 3 when the record has it, 2 otherwise.
    pub fn version(&self) -> u16 {
        match self {
            HeapRecord::Create {
                reserve_size: Some(_),
                ..
            } => 3,
            HeapRecord::Expand { space, .. } | HeapRecord::Contract { space, .. }
                if space.allocated_space.is_some() =>
            {
                3
            }
            HeapRecord::Snapshot(s) if s.space.allocated_space.is_some() => 3,
            _ => 2,
        }
    }

    /// The layout values of the record, in field order (the inverse of
    /// [`decode_payload`]), and the range entries of a RangeRundown.
    pub fn values(&self) -> (Vec<u64>, &[(u64, u64)]) {
        let sp = |s: &SpaceInfo| [s.free_space, s.committed_space, s.reserved_space];
        let v: Vec<u64> = match self {
            HeapRecord::Create {
                heap,
                flags,
                reserve_size,
                commit_size,
                allocated_size,
            } => [
                Some(*heap),
                Some(*flags as u64),
                *reserve_size,
                *commit_size,
                *allocated_size,
            ]
            .into_iter()
            .flatten()
            .collect(),
            HeapRecord::Alloc {
                heap,
                size,
                address,
                source,
            } => vec![*heap, *size, *address, source.0 as u64],
            HeapRecord::ReAlloc {
                heap,
                new_address,
                old_address,
                new_size,
                old_size,
                source,
            } => vec![
                *heap,
                *new_address,
                *old_address,
                *new_size,
                *old_size,
                source.0 as u64,
            ],
            HeapRecord::Free {
                heap,
                address,
                source,
            } => vec![*heap, *address, source.0 as u64],
            HeapRecord::HeapOnly { heap, .. } | HeapRecord::RangeDestroy { heap } => vec![*heap],
            HeapRecord::Expand {
                heap,
                size,
                address,
                ucr_count,
                space,
            }
            | HeapRecord::Contract {
                heap,
                size,
                address,
                ucr_count,
                space,
            } => {
                let mut v = vec![*heap, *size, *address];
                v.extend(sp(space));
                v.push(*ucr_count as u64);
                v.extend(space.allocated_space);
                v
            }
            HeapRecord::Snapshot(s) => {
                let mut v = vec![s.heap];
                v.extend(sp(&s.space));
                v.extend([
                    s.heap_flags as u64,
                    s.process_id as u64,
                    s.large_ucr_space,
                    s.free_list_length as u64,
                    s.ucr_length as u64,
                ]);
                v.extend(s.space.allocated_space);
                v
            }
            HeapRecord::Subsegment {
                heap,
                subsegment,
                subsegment_size,
                block_size,
                ..
            } => vec![*heap, *subsegment, *subsegment_size, *block_size],
            HeapRecord::CommitDecommit {
                heap,
                block,
                size,
                caller,
                ..
            } => vec![*heap, *block, *size, *caller as u64],
            HeapRecord::SubsegmentInit {
                heap,
                subsegment,
                block_size,
                block_count,
                affinity_index,
            } => vec![
                *heap,
                *subsegment,
                *block_size,
                *block_count,
                *affinity_index as u64,
            ],
            HeapRecord::AffinityManagerEnable { heap, bucket_index } => {
                vec![*heap, *bucket_index as u64]
            }
            HeapRecord::AffinitySlotAssigned { slot_index } => vec![*slot_index as u64],
            HeapRecord::SubsegmentActivated { heap, subsegment } => vec![*heap, *subsegment],
            HeapRecord::AffinitySlotChanged {
                heap,
                subsegment,
                slot_index,
            } => vec![*heap, *subsegment, *slot_index as u64],
            HeapRecord::SubsegmentReuseThreshold {
                heap,
                subsegment,
                bucket_index,
            } => vec![*heap, *subsegment, *bucket_index as u64],
            HeapRecord::RangeCreate {
                heap,
                first_range_size,
                flags,
            } => vec![*heap, *first_range_size, *flags as u64],
            HeapRecord::Range {
                heap,
                address,
                size,
                ..
            } => vec![*heap, *address, *size],
            HeapRecord::RangeRundown {
                heap,
                flags,
                process_id,
                ranges,
            } => {
                return (
                    vec![
                        *heap,
                        *flags as u64,
                        *process_id as u64,
                        ranges.len() as u64,
                        0,
                    ],
                    ranges,
                )
            }
        };
        (v, &[])
    }

    /// The kernel group of the record: 0x10 (heap) or the PageFault group (HeapRange).
    pub fn group(&self) -> u8 {
        if (op::RANGE_RUNDOWN..=op::RANGE_DESTROY).contains(&self.opcode()) {
            GROUP_PAGE_FAULT
        } else {
            GROUP_HEAP
        }
    }
}

/// The payload bytes of a record with the given pointer size, by its layout (the
/// inverse of [`decode_payload`]).
pub fn encode_payload(out: &mut Vec<u8>, r: &HeapRecord, ptr: u8) {
    let Some(l) = layout::layout(r.group(), r.opcode(), r.version()) else {
        return;
    };
    let (values, ranges) = r.values();
    l.write(&values, ptr, out);
    for (a, s) in ranges {
        layout::RANGE_ENTRY.write(&[*a, *s], ptr, out);
    }
}

/// Bytes a record's layout needs (the fixed part of RangeRundown).
pub fn layout_size(opcode: u8, version: u16, ptr: u8) -> usize {
    let group = if (op::RANGE_RUNDOWN..=op::RANGE_DESTROY).contains(&opcode) {
        GROUP_PAGE_FAULT
    } else {
        GROUP_HEAP
    };
    layout::layout_size(group, opcode, version, ptr)
}
