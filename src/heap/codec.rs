//! Heap records ↔ bytes: recognizing heap events in any header form, decoding a
//! payload by its layout ([`super::layout`]) into a [`HeapRecord`], and encoding a
//! record back (the synthesizer's encoder, the inverse of the decoder).

use super::layout;
use super::record::{
    op, opcode_name, EventInfo, HeapError, HeapEvent, HeapRecord, Snapshot, Source, SpaceInfo,
};
use crate::etl::kernel::{GROUP_HEAP, GROUP_PAGE_FAULT, HEAP_GUID, PAGE_FAULT_GUID};
use crate::etl::{Event, Guid, HeaderKind};

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
    let l = layout::layout(group, opcode).ok_or(HeapError::UnknownOpcode(opcode))?;
    let short = |need: usize| HeapError::Short {
        opcode,
        name: opcode_name(opcode).unwrap_or("unknown"),
        ptr: ptr * 8,
        have: payload.len(),
        need,
    };
    let v = l
        .read(payload, version, ptr)
        .ok_or_else(|| short(l.size(version, ptr)))?;
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
                let fixed = l.size(version, ptr);
                let entry = layout::RANGE_ENTRY.size(version, ptr);
                let avail = payload.len().saturating_sub(fixed) / entry;
                if count > avail {
                    return Err(short(fixed.saturating_add(count.saturating_mul(entry))));
                }
                let ranges = (0..count)
                    .filter_map(|i| {
                        let r = layout::RANGE_ENTRY.read(
                            payload.get(fixed + i * entry..)?,
                            version,
                            ptr,
                        )?;
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
    let Some(l) = layout::layout(r.group(), r.opcode()) else {
        return;
    };
    let version = r.version();
    let (values, ranges) = r.values();
    l.write(&values, version, ptr, out);
    for (a, s) in ranges {
        layout::RANGE_ENTRY.write(&[*a, *s], version, ptr, out);
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
