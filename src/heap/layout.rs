//! The payload layout of every heap event, defined once: the field list of each
//! (opcode, version) with the field types, from which offsets and sizes follow for
//! either pointer width. The decoder ([`super::record::decode_payload`]), the encoder
//! ([`super::record::encode_payload`], used by the synthesizer) and the sizes in error
//! messages all derive from this table.
//!
//! Payloads are packed (`pshpack1` in ntwmi.h): fields follow each other without
//! padding. Field names are the ones of PerfView's `kerneltraceeventparser.mof`
//! (HeapTrace classes) and phnt's `ntwmi.h` ETW_HEAP_EVENT_* structures; see the shared
//! heap-event notes §1.4. Confirmed on a real x64 capture: Alloc v2 (28 bytes),
//! ReAlloc v2 (44), Free v2 (20), Create v3.

use super::record::op;
use crate::etl::bytes::{ptr_at, u32_at};
use crate::etl::kernel::GROUP_PAGE_FAULT;

/// A field's type: pointer-sized (a pointer or a SIZE_T, 4 or 8 bytes by the record's
/// pointer width) or a 32-bit integer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ty {
    Ptr,
    U32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field {
    pub name: &'static str,
    pub ty: Ty,
    /// The first event version that has the field (fields added by a version come
    /// last).
    pub since: u16,
}

const fn p(name: &'static str) -> Field {
    Field {
        name,
        ty: Ty::Ptr,
        since: 0,
    }
}

const fn u(name: &'static str) -> Field {
    Field {
        name,
        ty: Ty::U32,
        since: 0,
    }
}

/// A pointer-sized field added in version 3.
const fn p3(name: &'static str) -> Field {
    Field {
        name,
        ty: Ty::Ptr,
        since: 3,
    }
}

/// One payload layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    /// PerfView's event name.
    pub name: &'static str,
    pub fields: &'static [Field],
}

/// Most fields of any layout (SnapShot v3).
pub const MAX_FIELDS: usize = 10;

macro_rules! layout {
    ($(#[$m:meta])* $id:ident, $name:literal, [$($f:expr),* $(,)?]) => {
        $(#[$m])*
        pub const $id: Layout = Layout { name: $name, fields: &[$($f),*] };
    };
}

layout!(
    CREATE,
    "Create",
    [
        p("HeapHandle"),
        u("Flags"),
        p3("ReserveSize"),
        p3("CommitSize"),
        p3("AllocatedSize")
    ]
);
layout!(
    ALLOC,
    "Alloc",
    [
        p("HeapHandle"),
        p("AllocSize"),
        p("AllocAddress"),
        u("SourceId")
    ]
);
layout!(
    REALLOC,
    "ReAlloc",
    [
        p("HeapHandle"),
        p("NewAllocAddress"),
        p("OldAllocAddress"),
        p("NewAllocSize"),
        p("OldAllocSize"),
        u("SourceId")
    ]
);
layout!(
    FREE,
    "Free",
    [p("HeapHandle"), p("FreeAddress"), u("SourceId")]
);
layout!(
    /// Destroy, Lock, Unlock, Validate, Walk.
    HEAP_ONLY, "HeapOnly", [p("HeapHandle")]);
layout!(
    /// Expand and Contract (whose fields are DeCommittedSize, DeCommitAddress).
    EXPAND,
    "Expand",
    [
        p("HeapHandle"),
        p("CommittedSize"),
        p("CommitAddress"),
        p("FreeSpace"),
        p("CommittedSpace"),
        p("ReservedSpace"),
        u("NoOfUCRs"),
        p3("AllocatedSpace")
    ]
);
layout!(
    SNAPSHOT,
    "SnapShot",
    [
        p("HeapHandle"),
        p("FreeSpace"),
        p("CommittedSpace"),
        p("ReservedSpace"),
        u("HeapFlags"),
        u("ProcessId"),
        p("LargeUCRSpace"),
        u("FreeListLength"),
        u("UCRLength"),
        p3("AllocatedSpace")
    ]
);
layout!(
    /// SubsegmentAlloc, SubsegmentFree, SubsegmentAllocCached, SubsegmentFreeCached.
    SUBSEGMENT,
    "Subsegment",
    [
        p("HeapHandle"),
        p("SubSegment"),
        p("SubSegmentSize"),
        p("BlockSize")
    ]
);
layout!(
    /// Commit, Decommit.
    COMMIT_DECOMMIT,
    "CommitDecommit",
    [p("HeapHandle"), p("Block"), p("Size"), u("Caller")]
);
layout!(
    SUBSEGMENT_INIT,
    "SubsegmentInit",
    [
        p("HeapHandle"),
        p("SubSegment"),
        p("BlockSize"),
        p("BlockCount"),
        u("AffinityIndex")
    ]
);
layout!(
    AFFINITY_MANAGER_ENABLE,
    "AffinityManagerEnable",
    [p("HeapHandle"), u("BucketIndex")]
);
layout!(
    AFFINITY_SLOT_ASSIGNED,
    "AffinitySlotAssigned",
    [u("SlotIndex")]
);
layout!(
    SUBSEGMENT_ACTIVATED,
    "SubSegmentActivated",
    [p("HeapHandle"), p("SubSegment")]
);
layout!(
    AFFINITY_SLOT_CHANGED,
    "AffinitySlotChanged",
    [p("HeapHandle"), p("SubSegment"), u("SlotIndex")]
);
layout!(
    SUBSEGMENT_REUSE_THRESHOLD,
    "SubsegmentReuseThresholdActivated",
    [p("HeapHandle"), p("SubSegment"), u("BucketIndex")]
);
layout!(
    RANGE_CREATE,
    "RangeCreate",
    [p("HeapHandle"), p("FirstRangeSize"), u("Flags")]
);
layout!(
    /// RangeReserve, RangeRelease.
    RANGE,
    "Range",
    [p("HeapHandle"), p("Address"), p("Size")]
);
layout!(RANGE_DESTROY, "RangeDestroy", [p("HeapHandle")]);
layout!(
    /// The fixed part of RangeRundown; `RangeCount` × [`RANGE_ENTRY`] follow.
    RANGE_RUNDOWN,
    "RangeRundown",
    [
        p("HeapHandle"),
        u("Flags"),
        u("ProcessId"),
        u("RangeCount"),
        u("Reserved")
    ]
);
layout!(RANGE_ENTRY, "RangeEntry", [p("Address"), p("Size")]);

/// The layout of a heap event (group 0x10) or HeapRange event (PageFault group,
/// opcodes 100–104), whatever its version; the fields of a given version are
/// [`Layout::fields_of`]. A newer version is read by its known prefix (trailing bytes
/// are tolerated).
pub fn layout(group: u8, opcode: u8) -> Option<&'static Layout> {
    if group == GROUP_PAGE_FAULT {
        return Some(match opcode {
            op::RANGE_CREATE => &RANGE_CREATE,
            op::RANGE_RESERVE | op::RANGE_RELEASE => &RANGE,
            op::RANGE_DESTROY => &RANGE_DESTROY,
            op::RANGE_RUNDOWN => &RANGE_RUNDOWN,
            _ => return None,
        });
    }
    Some(match opcode {
        op::CREATE => &CREATE,
        op::ALLOC => &ALLOC,
        op::REALLOC => &REALLOC,
        op::FREE => &FREE,
        op::DESTROY | op::LOCK | op::UNLOCK | op::VALIDATE | op::WALK => &HEAP_ONLY,
        op::EXPAND | op::CONTRACT => &EXPAND,
        op::SNAPSHOT..=op::EXTEND_SNAPSHOT => &SNAPSHOT,
        op::SUBSEGMENT_ALLOC..=op::SUBSEGMENT_FREE_CACHED => &SUBSEGMENT,
        op::COMMIT | op::DECOMMIT => &COMMIT_DECOMMIT,
        op::SUBSEGMENT_INIT => &SUBSEGMENT_INIT,
        op::AFFINITY_MANAGER_ENABLE => &AFFINITY_MANAGER_ENABLE,
        op::AFFINITY_SLOT_ASSIGNED => &AFFINITY_SLOT_ASSIGNED,
        op::SUBSEGMENT_ACTIVATED => &SUBSEGMENT_ACTIVATED,
        op::AFFINITY_SLOT_CHANGED => &AFFINITY_SLOT_CHANGED,
        op::SUBSEGMENT_REUSE_THRESHOLD => &SUBSEGMENT_REUSE_THRESHOLD,
        _ => return None,
    })
}

impl Ty {
    #[inline(always)]
    pub fn size(self, ptr: u8) -> usize {
        match self {
            Ty::Ptr => ptr as usize,
            Ty::U32 => 4,
        }
    }
}

impl Layout {
    /// The fields a record of `version` has.
    pub fn fields_of(&self, version: u16) -> &'static [Field] {
        let n = self
            .fields
            .iter()
            .take_while(|f| f.since <= version)
            .count();
        &self.fields[..n]
    }

    /// Bytes of the layout of `version` with pointers of `ptr` bytes.
    #[inline]
    pub fn size(&self, version: u16, ptr: u8) -> usize {
        self.fields_of(version).iter().map(|f| f.ty.size(ptr)).sum()
    }

    /// Offset of each field of `version`.
    pub fn offsets(&self, version: u16, ptr: u8) -> Vec<usize> {
        let mut at = 0;
        self.fields_of(version)
            .iter()
            .map(|f| {
                let o = at;
                at += f.ty.size(ptr);
                o
            })
            .collect()
    }

    /// Reads the fields of `version` (zero-extended to 64 bits; the fields a version
    /// does not have read as 0), or None when `b` is shorter than the layout. Longer
    /// payloads are fine (padding, newer fields).
    #[inline(always)]
    pub fn read(&self, b: &[u8], version: u16, ptr: u8) -> Option<[u64; MAX_FIELDS]> {
        let mut v = [0u64; MAX_FIELDS];
        let mut at = 0;
        for (slot, f) in v.iter_mut().zip(self.fields_of(version)) {
            *slot = match f.ty {
                Ty::Ptr => ptr_at(b, at, ptr)?,
                Ty::U32 => u32_at(b, at)? as u64,
            };
            at += f.ty.size(ptr);
        }
        Some(v)
    }

    /// Writes `values` (one per field of `version`; pointers truncated to `ptr` bytes,
    /// U32 fields to 32 bits) after `out`'s current end.
    pub fn write(&self, values: &[u64], version: u16, ptr: u8, out: &mut Vec<u8>) {
        for (f, &v) in self.fields_of(version).iter().zip(values) {
            match (f.ty, ptr) {
                (Ty::Ptr, 8) => out.extend_from_slice(&v.to_le_bytes()),
                _ => out.extend_from_slice(&(v as u32).to_le_bytes()),
            }
        }
    }
}

/// Bytes a record's layout needs (the fixed part of RangeRundown), 0 for an unknown
/// opcode.
pub fn layout_size(group: u8, opcode: u8, version: u16, ptr: u8) -> usize {
    layout(group, opcode).map_or(0, |l| l.size(version, ptr))
}
