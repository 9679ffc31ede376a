//! Every heap payload layout against bytes written by hand from outside definitions,
//! not by heapdb's own encoder:
//!
//! - x64 v2 Alloc (28 bytes), ReAlloc (44) and Free (20): the field order confirmed on
//!   a real heap capture decoded independently (HeapHandle, AllocSize, AllocAddress,
//!   SourceId / HeapHandle, NewAddress, OldAddress, NewSize, OldSize, SourceId /
//!   HeapHandle, FreeAddress, SourceId).
//! - The other heap events: PerfView's `KernelTraceEventParser.cs` templates
//!   (Heap*TraceData, lengths `HostOffset(x, n)` = x + n·(pointer size − 4)) and
//!   `kerneltraceeventparser.mof` HeapTrace classes, as restated in the shared heap
//!   notes §1.4, and phnt `ntwmi.h` ETW_HEAP_EVENT_* (pshpack1).
//! - HeapRange (PageFault group, 100–104): `kerneltraceeventparser.mof` classes
//!   PageFault_HeapRangeCreate (HeapHandle pointer, FirstRangeSize SizeT,
//!   HRCreateFlags uint32), PageFault_HeapRangeTypeGroup (HeapHandle, HRAddress,
//!   HRSize SizeT), PageFault_HeapRangeDestroy and PageFault_HeapRangeRundown (read at
//!   microsoft/perfview 3368f33f); the rundown's Reserved field and range entries from
//!   phnt.
//!
//! And for every (opcode, version, pointer size): the decoder accepts exactly the
//! layout's size and rejects one byte fewer.

use heapdb::etl::HeaderKind;
use heapdb::heap::layout::{self, Ty};
use heapdb::heap::record::{
    decode_payload, encode_payload, layout_size, op, HeapError, HeapRecord, Snapshot, Source,
    SpaceInfo,
};

/// Bytes from a hex string; spaces and `|` separate fields for the reader.
fn hex(s: &str) -> Vec<u8> {
    let digits: String = s.chars().filter(|c| c.is_ascii_hexdigit()).collect();
    (0..digits.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&digits[i..i + 2], 16).unwrap())
        .collect()
}

fn decode(group: u8, opcode: u8, version: u16, ptr: u8, bytes: &[u8]) -> HeapRecord {
    let kind = if ptr == 8 {
        HeaderKind::System64
    } else {
        HeaderKind::System32
    };
    let r = decode_payload(group, opcode, version, ptr, kind, bytes)
        .unwrap_or_else(|e| panic!("opcode {opcode} v{version} {ptr}: {e}"));
    // The encoder, derived from the same layout table, gives the bytes back.
    let mut again = Vec::new();
    encode_payload(&mut again, &r, ptr);
    assert_eq!(
        again, bytes,
        "opcode {opcode} v{version} {ptr}-byte pointers"
    );
    r
}

const HEAP: u8 = 0x10;
const PAGE_FAULT: u8 = 0x02;

#[test]
fn alloc_realloc_free_as_confirmed_on_a_real_x64_capture() {
    // ReAlloc v2, 44 bytes: HeapHandle 0x0000021c5a2b0000 | NewAddress 0x0000021c5a2d1f40
    // | OldAddress 0x0000021c5a2c0a80 | NewSize 0x180 | OldSize 0xc0 | SourceId 2 (LFH).
    let b = hex("00002b5a1c020000 | 401f2d5a1c020000 | 800a2c5a1c020000 | 8001000000000000 | c000000000000000 | 02000000");
    assert_eq!(b.len(), 44);
    assert_eq!(
        decode(HEAP, op::REALLOC, 2, 8, &b),
        HeapRecord::ReAlloc {
            heap: 0x0000_021c_5a2b_0000,
            new_address: 0x0000_021c_5a2d_1f40,
            old_address: 0x0000_021c_5a2c_0a80,
            new_size: 0x180,
            old_size: 0xc0,
            source: Source::LFH,
        }
    );
    // Alloc v2, 28 bytes: HeapHandle | AllocSize 0x28 | AllocAddress | SourceId 3 (main).
    let b = hex("00002b5a1c020000 | 2800000000000000 | 7033305a1c020000 | 03000000");
    assert_eq!(b.len(), 28);
    assert_eq!(
        decode(HEAP, op::ALLOC, 2, 8, &b),
        HeapRecord::Alloc {
            heap: 0x0000_021c_5a2b_0000,
            size: 0x28,
            address: 0x0000_021c_5a30_3370,
            source: Source::MAIN,
        }
    );
    // Free v2, 20 bytes: HeapHandle | FreeAddress | SourceId 4 (slow path).
    let b = hex("00002b5a1c020000 | 7033305a1c020000 | 04000000");
    assert_eq!(b.len(), 20);
    assert_eq!(
        decode(HEAP, op::FREE, 2, 8, &b),
        HeapRecord::Free {
            heap: 0x0000_021c_5a2b_0000,
            address: 0x0000_021c_5a30_3370,
            source: Source::SLOW,
        }
    );
}

#[test]
fn thirty_two_bit_layouts_shrink_every_pointer_and_size_t() {
    // PerfView HeapReallocTraceData: HostOffset(24, 5) = 24 bytes on 32-bit.
    let b = hex("00003e00 | 48a24000 | 10a04000 | 40000000 | 20000000 | 06000000");
    assert_eq!(
        decode(HEAP, op::REALLOC, 2, 4, &b),
        HeapRecord::ReAlloc {
            heap: 0x003e_0000,
            new_address: 0x0040_a248,
            old_address: 0x0040_a010,
            new_size: 0x40,
            old_size: 0x20,
            source: Source::SEGMENT,
        }
    );
    // Alloc 16 bytes, Free 12 bytes.
    let b = hex("00003e00 | 10000000 | 48a24000 | 01000000");
    assert_eq!(
        decode(HEAP, op::ALLOC, 2, 4, &b),
        HeapRecord::Alloc {
            heap: 0x003e_0000,
            size: 0x10,
            address: 0x0040_a248,
            source: Source::LOOKASIDE,
        }
    );
    let b = hex("00003e00 | 48a24000 | 05000000");
    assert_eq!(
        decode(HEAP, op::FREE, 2, 4, &b),
        HeapRecord::Free {
            heap: 0x003e_0000,
            address: 0x0040_a248,
            source: Source::INVALID,
        }
    );
    // Create v2 (HeapHandle, Flags): 8 bytes.
    let b = hex("00003e00 | 02100000");
    assert_eq!(
        decode(HEAP, op::CREATE, 2, 4, &b),
        HeapRecord::Create {
            heap: 0x003e_0000,
            flags: 0x1002,
            reserve_size: None,
            commit_size: None,
            allocated_size: None,
        }
    );
}

#[test]
fn create_expand_contract_snapshot() {
    // Create v3 x64, 36 bytes: HeapHandle | Flags | ReserveSize | CommitSize | AllocatedSize.
    let b =
        hex("0000b01c00020000 | 02100000 | 0000100000000000 | 0010000000000000 | 0008000000000000");
    assert_eq!(b.len(), 36);
    assert_eq!(
        decode(HEAP, op::CREATE, 3, 8, &b),
        HeapRecord::Create {
            heap: 0x0000_0200_1cb0_0000,
            flags: 0x1002,
            reserve_size: Some(0x10_0000),
            commit_size: Some(0x1000),
            allocated_size: Some(0x800),
        }
    );
    // Expand v3 x64, 60 bytes: HeapHandle | CommittedSize | CommitAddress | FreeSpace |
    // CommittedSpace | ReservedSpace | NoOfUCRs | AllocatedSpace.
    let expand = "0000b01c00020000 | 0000010000000000 | 0000c11c00020000 | 0030000000000000 | 0000200000000000 | 0000000100000000 | 03000000 | 00d0000000000000";
    let space = SpaceInfo {
        free_space: 0x3000,
        committed_space: 0x20_0000,
        reserved_space: 0x100_0000,
        allocated_space: Some(0xd000),
    };
    assert_eq!(hex(expand).len(), 60);
    assert_eq!(
        decode(HEAP, op::EXPAND, 3, 8, &hex(expand)),
        HeapRecord::Expand {
            heap: 0x0000_0200_1cb0_0000,
            size: 0x1_0000,
            address: 0x0000_0200_1cc1_0000,
            ucr_count: 3,
            space: Box::new(space),
        }
    );
    // Contract has the same layout (DeCommittedSize, DeCommitAddress).
    assert!(matches!(
        decode(HEAP, op::CONTRACT, 3, 8, &hex(expand)),
        HeapRecord::Contract { ucr_count: 3, .. }
    ));
    // SnapShot v2 x64, 56 bytes: HeapHandle | FreeSpace | CommittedSpace | ReservedSpace |
    // HeapFlags | ProcessId | LargeUCRSpace | FreeListLength | UCRLength; v3 adds
    // AllocatedSpace (64 bytes).
    let v2 = "0000b01c00020000 | 0030000000000000 | 0000200000000000 | 0000000100000000 | 02100000 | 10270000 | 0020000000000000 | 07000000 | 04000000";
    assert_eq!(hex(v2).len(), 56);
    let want = |allocated| {
        HeapRecord::Snapshot(Box::new(Snapshot {
            opcode: op::SNAPSHOT,
            heap: 0x0000_0200_1cb0_0000,
            space: SpaceInfo {
                allocated_space: allocated,
                ..space
            },
            heap_flags: 0x1002,
            process_id: 10000,
            large_ucr_space: 0x2000,
            free_list_length: 7,
            ucr_length: 4,
        }))
    };
    assert_eq!(decode(HEAP, op::SNAPSHOT, 2, 8, &hex(v2)), want(None));
    let v3 = format!("{v2} | 00d0000000000000");
    assert_eq!(hex(&v3).len(), 64);
    assert_eq!(
        decode(HEAP, op::SNAPSHOT, 3, 8, &hex(&v3)),
        want(Some(0xd000))
    );
}

#[test]
fn subsegment_commit_and_affinity_events() {
    let heap = "0000b01c00020000";
    let sub = "0040b11c00020000";
    // SubsegmentAlloc x64, 32 bytes: HeapHandle | SubSegment | SubSegmentSize | BlockSize.
    assert_eq!(
        decode(
            HEAP,
            op::SUBSEGMENT_ALLOC,
            2,
            8,
            &hex(&format!("{heap}{sub} 0040000000000000 3000000000000000"))
        ),
        HeapRecord::Subsegment {
            opcode: op::SUBSEGMENT_ALLOC,
            heap: 0x0000_0200_1cb0_0000,
            subsegment: 0x0000_0200_1cb1_4000,
            subsegment_size: 0x4000,
            block_size: 0x30,
        }
    );
    // Commit x64, 28 bytes: HeapHandle | Block | Size | Caller (a reason code).
    assert_eq!(
        decode(
            HEAP,
            op::COMMIT,
            2,
            8,
            &hex(&format!("{heap}{sub} 0020000000000000 0d000000"))
        ),
        HeapRecord::CommitDecommit {
            opcode: op::COMMIT,
            heap: 0x0000_0200_1cb0_0000,
            block: 0x0000_0200_1cb1_4000,
            size: 0x2000,
            caller: 13,
        }
    );
    // SubsegmentInit x64, 36 bytes: HeapHandle | SubSegment | BlockSize | BlockCount |
    // AffinityIndex.
    assert_eq!(
        decode(
            HEAP,
            op::SUBSEGMENT_INIT,
            2,
            8,
            &hex(&format!(
                "{heap}{sub} 2000000000000000 8000000000000000 02000000"
            ))
        ),
        HeapRecord::SubsegmentInit {
            heap: 0x0000_0200_1cb0_0000,
            subsegment: 0x0000_0200_1cb1_4000,
            block_size: 0x20,
            block_count: 0x80,
            affinity_index: 2,
        }
    );
    // AffinityManagerEnable (HeapHandle, BucketIndex), AffinitySlotAssigned (SlotIndex),
    // SubSegmentActivated (HeapHandle, SubSegment), AffinitySlotChanged and
    // SubsegmentReuseThresholdActivated (HeapHandle, SubSegment, index).
    assert_eq!(
        decode(
            HEAP,
            op::AFFINITY_MANAGER_ENABLE,
            2,
            8,
            &hex(&format!("{heap} 2a000000"))
        ),
        HeapRecord::AffinityManagerEnable {
            heap: 0x0000_0200_1cb0_0000,
            bucket_index: 42
        }
    );
    assert_eq!(
        decode(HEAP, op::AFFINITY_SLOT_ASSIGNED, 2, 8, &hex("05000000")),
        HeapRecord::AffinitySlotAssigned { slot_index: 5 }
    );
    assert_eq!(
        decode(
            HEAP,
            op::SUBSEGMENT_ACTIVATED,
            2,
            8,
            &hex(&format!("{heap}{sub}"))
        ),
        HeapRecord::SubsegmentActivated {
            heap: 0x0000_0200_1cb0_0000,
            subsegment: 0x0000_0200_1cb1_4000
        }
    );
    assert_eq!(
        decode(
            HEAP,
            op::AFFINITY_SLOT_CHANGED,
            2,
            8,
            &hex(&format!("{heap}{sub} 03000000"))
        ),
        HeapRecord::AffinitySlotChanged {
            heap: 0x0000_0200_1cb0_0000,
            subsegment: 0x0000_0200_1cb1_4000,
            slot_index: 3
        }
    );
    assert_eq!(
        decode(
            HEAP,
            op::SUBSEGMENT_REUSE_THRESHOLD,
            2,
            8,
            &hex(&format!("{heap}{sub} 11000000"))
        ),
        HeapRecord::SubsegmentReuseThreshold {
            heap: 0x0000_0200_1cb0_0000,
            subsegment: 0x0000_0200_1cb1_4000,
            bucket_index: 17
        }
    );
    // Destroy, Lock, Unlock, Validate, Walk: HeapHandle only.
    for opcode in [op::DESTROY, op::LOCK, op::UNLOCK, op::VALIDATE, op::WALK] {
        assert_eq!(
            decode(HEAP, opcode, 2, 8, &hex(heap)),
            HeapRecord::HeapOnly {
                opcode,
                heap: 0x0000_0200_1cb0_0000
            }
        );
    }
}

#[test]
fn heap_range_events() {
    // PageFault_HeapRangeCreate x64: HeapHandle | FirstRangeSize | HRCreateFlags (20 bytes).
    assert_eq!(
        decode(
            PAGE_FAULT,
            op::RANGE_CREATE,
            2,
            8,
            &hex("0000b01c00020000 0000100000000000 01000000")
        ),
        HeapRecord::RangeCreate {
            heap: 0x0000_0200_1cb0_0000,
            first_range_size: 0x10_0000,
            flags: 1
        }
    );
    // PageFault_HeapRangeTypeGroup (Reserve 102, Release 103): HeapHandle | HRAddress | HRSize.
    assert_eq!(
        decode(
            PAGE_FAULT,
            op::RANGE_RELEASE,
            2,
            4,
            &hex("00003e00 00004500 00000100")
        ),
        HeapRecord::Range {
            opcode: op::RANGE_RELEASE,
            heap: 0x003e_0000,
            address: 0x0045_0000,
            size: 0x1_0000
        }
    );
    // Rundown x64: HeapHandle | HRFlags | HRPid | HRRangeCount 2 | Reserved | 2 × (Address, Size).
    let b = hex("0000b01c00020000 01000000 10270000 02000000 00000000 | 0000b01c00020000 0000100000000000 | 0000d01c00020000 0000020000000000");
    assert_eq!(
        decode(PAGE_FAULT, op::RANGE_RUNDOWN, 2, 8, &b),
        HeapRecord::RangeRundown {
            heap: 0x0000_0200_1cb0_0000,
            flags: 1,
            process_id: 10000,
            ranges: vec![
                (0x0000_0200_1cb0_0000, 0x10_0000),
                (0x0000_0200_1cd0_0000, 0x2_0000)
            ]
        }
    );
}

/// For every (opcode, version, pointer size): exactly `layout_size` bytes decode, one
/// fewer is a `Short` error that names that size.
#[test]
fn every_layout_accepts_its_size_and_rejects_one_byte_less() {
    let mut checked = 0;
    for opcode in (32u8..=58).chain(100..=104) {
        let group = if opcode >= 100 { PAGE_FAULT } else { HEAP };
        for version in [2u16, 3] {
            for ptr in [4u8, 8] {
                let kind = if ptr == 8 {
                    HeaderKind::System64
                } else {
                    HeaderKind::System32
                };
                let l = layout::layout(group, opcode).expect("every heap opcode has a layout");
                let size = layout_size(opcode, version, ptr);
                let by_fields: usize = l
                    .fields_of(version)
                    .iter()
                    .map(|f| if f.ty == Ty::Ptr { ptr as usize } else { 4 })
                    .sum();
                assert_eq!(size, by_fields);
                assert!(size > 0, "opcode {opcode}");
                let exact = vec![0u8; size];
                assert!(
                    decode_payload(group, opcode, version, ptr, kind, &exact).is_ok(),
                    "opcode {opcode} v{version} {ptr}: {size} bytes"
                );
                match decode_payload(group, opcode, version, ptr, kind, &exact[..size - 1]) {
                    Err(HeapError::Short { have, need, .. }) => {
                        assert_eq!(
                            (have, need),
                            (size - 1, size),
                            "opcode {opcode} v{version} {ptr}"
                        )
                    }
                    other => panic!("opcode {opcode} v{version} {ptr}: {other:?}"),
                }
                checked += 1;
            }
        }
    }
    assert_eq!(checked, 32 * 4);
    // The sizes the shared notes tabulate (§1.4), for the record.
    assert_eq!(layout_size(op::REALLOC, 2, 8), 44);
    assert_eq!(layout_size(op::REALLOC, 2, 4), 24);
    assert_eq!(layout_size(op::ALLOC, 2, 8), 28);
    assert_eq!(layout_size(op::FREE, 2, 8), 20);
    assert_eq!(layout_size(op::CREATE, 3, 8), 36);
    assert_eq!(layout_size(op::EXPAND, 3, 4), 32);
    assert_eq!(layout_size(op::SNAPSHOT, 3, 8), 64);
    assert_eq!(layout_size(op::COMMIT, 2, 8), 28);
}
