//! Kernel event groups: the group byte of a SYSTEM/PERFINFO hook id names the provider.

use super::guid::Guid;

const fn g(d1: u32, d2: u16, d3: u16, d4: [u8; 8]) -> Guid {
    Guid::from_fields(d1, d2, d3, d4)
}

/// Provider GUID of each kernel group 0x00..=0x1E (ntwmi EVENT_TRACE_GROUP_*), as TDH
/// reports them.
const GROUPS: [Guid; 0x1F] = [
    g(
        0x68fdd900,
        0x4a3e,
        0x11d1,
        [0x84, 0xf4, 0x00, 0x00, 0xf8, 0x04, 0x64, 0xe3],
    ), // 00 EventTrace
    g(
        0x3d6fa8d4,
        0xfe05,
        0x11d0,
        [0x9d, 0xda, 0x00, 0xc0, 0x4f, 0xd7, 0xba, 0x7c],
    ), // 01 DiskIo
    g(
        0x3d6fa8d3,
        0xfe05,
        0x11d0,
        [0x9d, 0xda, 0x00, 0xc0, 0x4f, 0xd7, 0xba, 0x7c],
    ), // 02 PageFault
    g(
        0x3d6fa8d0,
        0xfe05,
        0x11d0,
        [0x9d, 0xda, 0x00, 0xc0, 0x4f, 0xd7, 0xba, 0x7c],
    ), // 03 Process
    g(
        0x90cbdc39,
        0x4a3e,
        0x11d1,
        [0x84, 0xf4, 0x00, 0x00, 0xf8, 0x04, 0x64, 0xe3],
    ), // 04 FileIo
    g(
        0x3d6fa8d1,
        0xfe05,
        0x11d0,
        [0x9d, 0xda, 0x00, 0xc0, 0x4f, 0xd7, 0xba, 0x7c],
    ), // 05 Thread
    g(
        0x9a280ac0,
        0xc8e0,
        0x11d1,
        [0x84, 0xe2, 0x00, 0xc0, 0x4f, 0xb9, 0x98, 0xa2],
    ), // 06 TcpIp
    g(
        0x3282fc76,
        0xfeed,
        0x498e,
        [0x8a, 0xa7, 0xe7, 0x0f, 0x45, 0x9d, 0x43, 0x0e],
    ), // 07 Job
    g(
        0xbf3a50c5,
        0xa9c9,
        0x4988,
        [0xa0, 0x05, 0x2d, 0xf0, 0xb7, 0xc8, 0x0f, 0x80],
    ), // 08 UdpIp
    g(
        0xae53722e,
        0xc863,
        0x11d2,
        [0x86, 0x59, 0x00, 0xc0, 0x4f, 0xa3, 0x21, 0xa1],
    ), // 09 Registry
    g(
        0x13976d09,
        0xa327,
        0x438c,
        [0x95, 0x0b, 0x7f, 0x03, 0x19, 0x28, 0x15, 0xc7],
    ), // 0A DbgPrint
    g(
        0x01853a65,
        0x418f,
        0x4f36,
        [0xae, 0xfc, 0xdc, 0x0f, 0x1d, 0x2f, 0xd2, 0x35],
    ), // 0B Config
    g(
        0x99134383,
        0x5248,
        0x43fc,
        [0x83, 0x4b, 0x52, 0x94, 0x54, 0xe7, 0x5d, 0xf3],
    ), // 0C Spare1
    g(
        0x42695762,
        0xea50,
        0x497a,
        [0x90, 0x68, 0x5c, 0xbb, 0xb3, 0x5e, 0x0b, 0x95],
    ), // 0D Wnf
    g(
        0x0268a8b6,
        0x74fd,
        0x4302,
        [0x9d, 0xd0, 0x6e, 0x8f, 0x17, 0x95, 0xc0, 0xcf],
    ), // 0E Pool
    g(
        0xce1dbfb4,
        0x137e,
        0x4da6,
        [0x87, 0xb0, 0x3f, 0x59, 0xaa, 0x10, 0x2c, 0xbc],
    ), // 0F PerfInfo
    g(
        0x222962ab,
        0x6180,
        0x4b88,
        [0xa8, 0x25, 0x34, 0x6b, 0x75, 0xf2, 0xa2, 0x4a],
    ), // 10 Heap
    g(
        0x89497f50,
        0xeffe,
        0x4440,
        [0x8c, 0xf2, 0xce, 0x6b, 0x1c, 0xdc, 0xac, 0xa7],
    ), // 11 Object
    g(
        0xe43445e0,
        0x0903,
        0x48c3,
        [0xb8, 0x78, 0xff, 0x0f, 0xcc, 0xeb, 0xdd, 0x04],
    ), // 12 Power
    g(
        0xa9152f00,
        0x3f58,
        0x4bee,
        [0x92, 0xa1, 0x70, 0xc7, 0xd0, 0x79, 0xd5, 0xdd],
    ), // 13 ModBound
    g(
        0x2cb15d1d,
        0x5fc1,
        0x11d2,
        [0xab, 0xe1, 0x00, 0xa0, 0xc9, 0x11, 0xf5, 0x18],
    ), // 14 Image
    g(
        0xb2d14872,
        0x7c5b,
        0x463d,
        [0x84, 0x19, 0xee, 0x9b, 0xf7, 0xd2, 0x3e, 0x04],
    ), // 15 Dpc
    g(
        0x7687a439,
        0xf752,
        0x45b8,
        [0xb7, 0x41, 0x32, 0x1a, 0xec, 0x0f, 0x8d, 0xf9],
    ), // 16 CC
    g(
        0x3ac66736,
        0xcc59,
        0x4cff,
        [0x81, 0x15, 0x8d, 0xf5, 0x0e, 0x39, 0x81, 0x6b],
    ), // 17 CritSec
    g(
        0xdef2fe46,
        0x7bd6,
        0x4b80,
        [0xbd, 0x94, 0xf5, 0x7f, 0xe2, 0x0d, 0x0c, 0xe3],
    ), // 18 StackWalk
    g(
        0x9aec974b,
        0x5b8e,
        0x4118,
        [0x9b, 0x92, 0x31, 0x86, 0xd8, 0x00, 0x2c, 0xe5],
    ), // 19 UMS
    g(
        0x45d8cccd,
        0x539f,
        0x4b72,
        [0xa8, 0xb7, 0x5c, 0x68, 0x31, 0x42, 0x60, 0x9a],
    ), // 1A ALPC
    g(
        0xd837ca92,
        0x12b9,
        0x44a5,
        [0xad, 0x6a, 0x3a, 0x65, 0xb3, 0x57, 0x8a, 0xa8],
    ), // 1B SplitIo
    g(
        0xc861d0e2,
        0xa2c1,
        0x4d36,
        [0x9f, 0x9c, 0x97, 0x0b, 0xab, 0x94, 0x3a, 0x12],
    ), // 1C ThreadPool
    g(
        0x7f2a405c,
        0x69b5,
        0x4bf9,
        [0xa1, 0xf5, 0x30, 0xe8, 0xf1, 0xaf, 0xab, 0x5e],
    ), // 1D Hypervisor
    g(
        0x2ce9a149,
        0xeffe,
        0x42f0,
        [0xa6, 0x35, 0xa1, 0xd3, 0x9e, 0x26, 0xc8, 0xf2],
    ), // 1E HypervisorX
];

pub const EVENT_TRACE_GUID: Guid = GROUPS[0x00];
pub const PAGE_FAULT_GUID: Guid = GROUPS[0x02];
pub const PROCESS_GUID: Guid = GROUPS[0x03];
pub const THREAD_GUID: Guid = GROUPS[0x05];
pub const HEAP_GUID: Guid = GROUPS[0x10];
pub const IMAGE_GUID: Guid = GROUPS[0x14];
pub const STACK_WALK_GUID: Guid = GROUPS[0x18];

pub const GROUP_EVENT_TRACE: u8 = 0x00;
pub const GROUP_PAGE_FAULT: u8 = 0x02;
pub const GROUP_PROCESS: u8 = 0x03;
pub const GROUP_THREAD: u8 = 0x05;
pub const GROUP_HEAP: u8 = 0x10;
pub const GROUP_IMAGE: u8 = 0x14;
pub const GROUP_STACK_WALK: u8 = 0x18;

/// Maps a kernel hook id (group << 8 | type) to (provider GUID, opcode).
///
/// Hook 0x030A is the Image provider's Load event although its group byte says Process
/// (sechost maps it so; dissect.etl and Geoff Chappell agree). Groups past the table get
/// the nil GUID, as dissect.etl does, so they are still counted.
#[inline]
pub fn provider_of_hook(hook: u16) -> (Guid, u8) {
    let group = (hook >> 8) as u8;
    let opcode = hook as u8;
    if hook == 0x030A {
        return (IMAGE_GUID, opcode);
    }
    let guid = GROUPS.get(group as usize).copied().unwrap_or(Guid::NIL);
    (guid, opcode)
}

/// The kernel group whose provider GUID this is: the inverse of [`provider_of_hook`]
/// for events that arrive with a GUID instead of a hook id (Windows' own consumer
/// reports kernel events by their event class GUID). Image events map to their own
/// group (0x14), whatever hook they were written with.
pub fn group_of_provider(provider: &Guid) -> Option<u8> {
    GROUPS
        .iter()
        .position(|g| g == provider)
        .and_then(|i| u8::try_from(i).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_map_to_tdh_guids() {
        assert_eq!(
            provider_of_hook(0x1022).0.to_string(),
            "222962ab-6180-4b88-a825-346b75f2a24a"
        );
        assert_eq!(provider_of_hook(0x1022).1, 34);
        assert_eq!(
            provider_of_hook(0x1820).0.to_string(),
            "def2fe46-7bd6-4b80-bd94-f57fe20d0ce3"
        );
        assert_eq!(provider_of_hook(0x030A).0, IMAGE_GUID);
        assert_eq!(provider_of_hook(0x0301).0, PROCESS_GUID);
        assert_eq!(provider_of_hook(0x2001).0, Guid::NIL);
    }

    #[test]
    fn providers_map_back_to_their_group() {
        assert_eq!(group_of_provider(&HEAP_GUID), Some(GROUP_HEAP));
        assert_eq!(group_of_provider(&STACK_WALK_GUID), Some(GROUP_STACK_WALK));
        assert_eq!(
            group_of_provider(&EVENT_TRACE_GUID),
            Some(GROUP_EVENT_TRACE)
        );
        assert_eq!(group_of_provider(&IMAGE_GUID), Some(GROUP_IMAGE));
        assert_eq!(group_of_provider(&Guid([7; 16])), None);
        for hook in [0x1022u16, 0x1820, 0x0301, 0x0501, 0x1E00] {
            let (g, op) = provider_of_hook(hook);
            assert_eq!(
                group_of_provider(&g).map(|grp| (grp as u16) << 8 | op as u16),
                Some(hook)
            );
        }
    }

    #[test]
    fn table_matches_the_format_doc() {
        // Copied from docs/etl-format.md §7, in group order.
        let doc = [
            "68fdd900-4a3e-11d1-84f4-0000f80464e3",
            "3d6fa8d4-fe05-11d0-9dda-00c04fd7ba7c",
            "3d6fa8d3-fe05-11d0-9dda-00c04fd7ba7c",
            "3d6fa8d0-fe05-11d0-9dda-00c04fd7ba7c",
            "90cbdc39-4a3e-11d1-84f4-0000f80464e3",
            "3d6fa8d1-fe05-11d0-9dda-00c04fd7ba7c",
            "9a280ac0-c8e0-11d1-84e2-00c04fb998a2",
            "3282fc76-feed-498e-8aa7-e70f459d430e",
            "bf3a50c5-a9c9-4988-a005-2df0b7c80f80",
            "ae53722e-c863-11d2-8659-00c04fa321a1",
            "13976d09-a327-438c-950b-7f03192815c7",
            "01853a65-418f-4f36-aefc-dc0f1d2fd235",
            "99134383-5248-43fc-834b-529454e75df3",
            "42695762-ea50-497a-9068-5cbbb35e0b95",
            "0268a8b6-74fd-4302-9dd0-6e8f1795c0cf",
            "ce1dbfb4-137e-4da6-87b0-3f59aa102cbc",
            "222962ab-6180-4b88-a825-346b75f2a24a",
            "89497f50-effe-4440-8cf2-ce6b1cdcaca7",
            "e43445e0-0903-48c3-b878-ff0fccebdd04",
            "a9152f00-3f58-4bee-92a1-70c7d079d5dd",
            "2cb15d1d-5fc1-11d2-abe1-00a0c911f518",
            "b2d14872-7c5b-463d-8419-ee9bf7d23e04",
            "7687a439-f752-45b8-b741-321aec0f8df9",
            "3ac66736-cc59-4cff-8115-8df50e39816b",
            "def2fe46-7bd6-4b80-bd94-f57fe20d0ce3",
            "9aec974b-5b8e-4118-9b92-3186d8002ce5",
            "45d8cccd-539f-4b72-a8b7-5c683142609a",
            "d837ca92-12b9-44a5-ad6a-3a65b3578aa8",
            "c861d0e2-a2c1-4d36-9f9c-970bab943a12",
            "7f2a405c-69b5-4bf9-a1f5-30e8f1afab5e",
            "2ce9a149-effe-42f0-a635-a1d39e26c8f2",
        ];
        for (i, want) in doc.iter().enumerate() {
            assert_eq!(GROUPS[i].to_string(), *want, "group 0x{i:02x}");
        }
    }
}
