//! Windows' `EVENT_RECORD` → heapdb's [`Event`]: the whole of the ETW decoder's
//! mapping, as plain functions compiled and tested on every platform.
//!
//! Two steps:
//! 1. [`fields_of`] reads the plain fields out of an `EVENT_RECORD` laid out as
//!    Windows lays it out ([`RawEventRecord`], a `#[repr(C)]` mirror of
//!    `evntcons.h`; ferrisetw's `EventRecord` is a `#[repr(transparent)]` wrapper of
//!    the same struct, and hides the processor number and the payload bytes that
//!    heapdb needs). Its only unsafety is following the record's `UserData` and
//!    `ExtendedData` pointers, which ETW guarantees during the callback.
//! 2. [`map_record`], a pure function of those fields and the capture's clock, builds
//!    an [`OwnedEvent`], which lends an [`Event`] identical to the one heapdb's reader
//!    makes of the same record (same provider, opcode, version, pid, tid, CPU, raw
//!    timestamp, pointer size, payload; kernel events get their hook id back from their
//!    GUID so that heap, stack and rundown decoding see no difference).
//!
//! Timestamps: ferrisetw opens files and real-time sessions without
//! `PROCESS_TRACE_MODE_RAW_TIMESTAMP` (hard-coded), so `ProcessTrace` hands out
//! FILETIMEs. heapdb stores raw session-clock values (StackWalk events name their heap
//! event by its raw timestamp), so [`map_record`] turns the FILETIME back into the raw
//! value with the capture's clock ([`Clock::raw_from_filetime`]): exact for clocks of at
//! most 10 MHz (QPC on current Windows, system time), the first tick of the 100 ns for
//! faster ones (CPU cycle counters). See docs/windows.md.

use crate::etl::event::EH_FLAG_EXTENDED_INFO;
use crate::etl::kernel::group_of_provider;
use crate::etl::{Clock, Event, Guid, HeaderKind, Location};

/// `EVENT_HEADER_FLAG_*` (evntcons.h).
pub mod flags {
    pub const EXTENDED_INFO: u16 = 0x0001;
    pub const PRIVATE_SESSION: u16 = 0x0002;
    pub const STRING_ONLY: u16 = 0x0004;
    pub const TRACE_MESSAGE: u16 = 0x0008;
    pub const NO_CPUTIME: u16 = 0x0010;
    pub const HEADER_32_BIT: u16 = 0x0020;
    pub const HEADER_64_BIT: u16 = 0x0040;
    pub const DECODE_GUID: u16 = 0x0080;
    pub const CLASSIC_HEADER: u16 = 0x0100;
    pub const PROCESSOR_INDEX: u16 = 0x0200;
}

/// `GUID` as Windows lays it out.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RawGuid {
    pub data1: u32,
    pub data2: u16,
    pub data3: u16,
    pub data4: [u8; 8],
}

impl RawGuid {
    pub fn to_guid(self) -> Guid {
        Guid::from_fields(self.data1, self.data2, self.data3, self.data4)
    }

    pub fn from_guid(g: &Guid) -> RawGuid {
        let b = g.0;
        RawGuid {
            data1: u32::from_le_bytes([b[0], b[1], b[2], b[3]]),
            data2: u16::from_le_bytes([b[4], b[5]]),
            data3: u16::from_le_bytes([b[6], b[7]]),
            data4: [b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]],
        }
    }
}

/// `EVENT_DESCRIPTOR`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct RawEventDescriptor {
    pub id: u16,
    pub version: u8,
    pub channel: u8,
    pub level: u8,
    pub opcode: u8,
    pub task: u16,
    pub keyword: u64,
}

/// `EVENT_HEADER` (80 bytes).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct RawEventHeader {
    pub size: u16,
    pub header_type: u16,
    pub flags: u16,
    pub event_property: u16,
    pub thread_id: u32,
    pub process_id: u32,
    pub timestamp: i64,
    pub provider_id: RawGuid,
    pub descriptor: RawEventDescriptor,
    /// KernelTime/UserTime or ProcessorTime (a union).
    pub processor_time: u64,
    pub activity_id: RawGuid,
}

/// `ETW_BUFFER_CONTEXT`: `ProcessorNumber` (u8) and `Alignment` (u8) overlay
/// `ProcessorIndex` (u16).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct RawBufferContext {
    pub processor_index: u16,
    pub logger_id: u16,
}

/// `EVENT_HEADER_EXTENDED_DATA_ITEM` (16 bytes; `Linkage` is bit 0 of the third u16).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct RawExtendedItem {
    pub reserved1: u16,
    pub ext_type: u16,
    pub linkage: u16,
    pub data_size: u16,
    pub data_ptr: u64,
}

/// `EVENT_RECORD` (112 bytes on 64-bit Windows).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct RawEventRecord {
    pub header: RawEventHeader,
    pub buffer_context: RawBufferContext,
    pub extended_data_count: u16,
    pub user_data_length: u16,
    pub extended_data: *const RawExtendedItem,
    pub user_data: *const u8,
    pub user_context: *mut std::ffi::c_void,
}

#[cfg(target_pointer_width = "64")]
const _: () = assert!(std::mem::size_of::<RawEventRecord>() == 112);
const _: () = assert!(std::mem::size_of::<RawEventHeader>() == 80);
const _: () = assert!(std::mem::size_of::<RawExtendedItem>() == 16);

/// The plain fields of one `EVENT_RECORD`, borrowed from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordFields<'a> {
    pub provider: Guid,
    pub event_id: u16,
    pub version: u8,
    pub level: u8,
    pub opcode: u8,
    /// `EVENT_HEADER.Flags`.
    pub flags: u16,
    pub pid: u32,
    pub tid: u32,
    /// `EVENT_HEADER.TimeStamp` as delivered (a FILETIME unless the trace was opened
    /// with `PROCESS_TRACE_MODE_RAW_TIMESTAMP`).
    pub timestamp: i64,
    /// The processor: `ProcessorIndex` when the record says so, else
    /// `ProcessorNumber`.
    pub cpu: u16,
    /// `UserData[..UserDataLength]`.
    pub payload: &'a [u8],
    /// `ExtendedData[..ExtendedDataCount]` as (ExtType, data).
    pub extended: Vec<(u16, &'a [u8])>,
}

/// Reads the plain fields of a record.
///
/// # Safety
/// `r.user_data` must point to `r.user_data_length` readable bytes (or be null with a
/// length of 0), `r.extended_data` to `r.extended_data_count` items whose `data_ptr`
/// point to `data_size` readable bytes, all alive for `'a`: what ETW guarantees for the
/// record it passes to the event callback, during the callback.
pub unsafe fn fields_of<'a>(r: &'a RawEventRecord) -> RecordFields<'a> {
    let h = &r.header;
    let payload: &'a [u8] = if r.user_data.is_null() || r.user_data_length == 0 {
        &[]
    } else {
        // SAFETY: the caller guarantees UserData/UserDataLength.
        unsafe { std::slice::from_raw_parts(r.user_data, r.user_data_length as usize) }
    };
    let items: &'a [RawExtendedItem] = if r.extended_data.is_null() || r.extended_data_count == 0 {
        &[]
    } else {
        // SAFETY: the caller guarantees ExtendedData/ExtendedDataCount.
        unsafe { std::slice::from_raw_parts(r.extended_data, r.extended_data_count as usize) }
    };
    let extended = items
        .iter()
        .map(|it| {
            let data: &'a [u8] = if it.data_ptr == 0 || it.data_size == 0 {
                &[]
            } else {
                // SAFETY: the caller guarantees each item's DataPtr/DataSize.
                unsafe {
                    std::slice::from_raw_parts(
                        it.data_ptr as usize as *const u8,
                        it.data_size as usize,
                    )
                }
            };
            (it.ext_type, data)
        })
        .collect();
    let index = r.buffer_context.processor_index;
    RecordFields {
        provider: h.provider_id.to_guid(),
        event_id: h.descriptor.id,
        version: h.descriptor.version,
        level: h.descriptor.level,
        opcode: h.descriptor.opcode,
        flags: h.flags,
        pid: h.process_id,
        tid: h.thread_id,
        timestamp: h.timestamp,
        cpu: if h.flags & flags::PROCESSOR_INDEX != 0 {
            index
        } else {
            // ProcessorNumber is the low byte (little-endian).
            index & 0xFF
        },
        payload,
        extended,
    }
}

/// What the record's timestamps are.
#[derive(Debug, Clone, Copy)]
pub enum Timestamps {
    /// FILETIMEs (ferrisetw's mode): converted back to raw values with this clock.
    FileTime(Clock),
    /// Raw session-clock values (`PROCESS_TRACE_MODE_RAW_TIMESTAMP`).
    Raw,
}

/// heapdb's event, owning its bytes: what the ETW decoder hands on. [`OwnedEvent::event`]
/// lends the [`Event`] the rest of heapdb consumes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnedEvent {
    pub kind: HeaderKind,
    pub provider: Guid,
    pub hook: Option<u16>,
    pub opcode: Option<u8>,
    pub event_id: u16,
    pub version: u16,
    pub level: u8,
    pub pid: Option<u32>,
    pub tid: Option<u32>,
    pub cpu: u16,
    pub timestamp: Option<u64>,
    pub pointer_size: u8,
    pub flags: u16,
    pub payload: Vec<u8>,
    /// Extended data items in the on-disk chained layout heapdb's reader returns
    /// (see [`crate::etl::event::ExtendedItems`]).
    pub extended: Vec<u8>,
    /// Where the record is in the file: heapdb's reader knows, ETW does not (offset 0).
    pub loc: Location,
}

impl OwnedEvent {
    /// A copy of a borrowed event.
    pub fn from_event(e: &Event<'_>) -> OwnedEvent {
        OwnedEvent {
            kind: e.kind,
            provider: e.provider,
            hook: e.hook,
            opcode: e.opcode,
            event_id: e.event_id,
            version: e.version,
            level: e.level,
            pid: e.pid,
            tid: e.tid,
            cpu: e.cpu,
            timestamp: e.timestamp,
            pointer_size: e.pointer_size,
            flags: e.flags,
            payload: e.payload.to_vec(),
            extended: e.extended.to_vec(),
            loc: e.loc,
        }
    }

    /// The event, borrowed.
    pub fn event(&self) -> Event<'_> {
        Event {
            kind: self.kind,
            provider: self.provider,
            hook: self.hook,
            opcode: self.opcode,
            event_id: self.event_id,
            version: self.version,
            level: self.level,
            pid: self.pid,
            tid: self.tid,
            cpu: self.cpu,
            timestamp: self.timestamp,
            pointer_size: self.pointer_size,
            flags: self.flags,
            payload: &self.payload,
            extended: &self.extended,
            record: &self.payload,
            loc: self.loc,
        }
    }
}

/// Lays out extended data items as an EVENT_HEADER record holds them: per item a u16
/// size (8-byte aligned, header included), u16 type, u16 linkage (1 = another follows),
/// u16 data size, then the data.
pub fn chain_extended(items: &[(u16, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, (ty, data)) in items.iter().enumerate() {
        // An item's sizes are u16s: longer data cannot be laid out (ETW's DataSize is a
        // u16 too, so this does not happen).
        let Ok(len) = u16::try_from(data.len()) else {
            continue;
        };
        let size = (8 + data.len()).div_ceil(8) * 8;
        let Ok(size16) = u16::try_from(size) else {
            continue;
        };
        let linkage: u16 = if i + 1 < items.len() { 1 } else { 0 };
        out.extend_from_slice(&size16.to_le_bytes());
        out.extend_from_slice(&ty.to_le_bytes());
        out.extend_from_slice(&linkage.to_le_bytes());
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(data);
        out.resize(out.len() + (size - 8 - data.len()), 0);
    }
    out
}

/// heapdb's event of a record's fields. Pure.
///
/// - pointer size from `EVENT_HEADER_FLAG_32_BIT_HEADER`/`64_BIT_HEADER` (0 when
///   neither is set);
/// - classic events (`EVENT_HEADER_FLAG_CLASSIC_HEADER`) of a kernel group's GUID
///   become SYSTEM events with the hook id `group << 8 | opcode` (heapdb's reader gets
///   the same from the record header), other classic events CLASSIC, the rest
///   EVENT_HEADER events keeping their flags and extended data;
/// - timestamps as described by `ts` (module doc).
pub fn map_record(f: &RecordFields<'_>, ts: &Timestamps) -> OwnedEvent {
    let wide = f.flags & flags::HEADER_64_BIT != 0;
    let pointer_size = if wide {
        8
    } else if f.flags & flags::HEADER_32_BIT != 0 {
        4
    } else {
        0
    };
    let classic = f.flags & flags::CLASSIC_HEADER != 0;
    let group = if classic {
        group_of_provider(&f.provider)
    } else {
        None
    };
    let (kind, hook) = match (classic, group) {
        (true, Some(g)) => (
            if pointer_size == 4 {
                HeaderKind::System32
            } else {
                HeaderKind::System64
            },
            Some((g as u16) << 8 | f.opcode as u16),
        ),
        (true, None) => (
            if pointer_size == 4 {
                HeaderKind::Classic32
            } else {
                HeaderKind::Classic64
            },
            None,
        ),
        (false, _) => (
            if pointer_size == 4 {
                HeaderKind::EventHeader32
            } else {
                HeaderKind::EventHeader64
            },
            None,
        ),
    };
    let extended = if classic {
        Vec::new()
    } else {
        chain_extended(&f.extended)
    };
    let mut flags_out = if classic { 0 } else { f.flags };
    if !classic {
        if extended.is_empty() {
            flags_out &= !EH_FLAG_EXTENDED_INFO;
        } else {
            flags_out |= EH_FLAG_EXTENDED_INFO;
        }
    }
    let timestamp = match ts {
        Timestamps::FileTime(clock) => clock.raw_from_filetime(f.timestamp),
        Timestamps::Raw => f.timestamp as u64,
    };
    OwnedEvent {
        kind,
        provider: f.provider,
        hook,
        opcode: Some(f.opcode),
        event_id: if classic { 0 } else { f.event_id },
        version: f.version as u16,
        level: f.level,
        // As delivered: ETW's record always has them (-1 where a PERFINFO header has
        // none, which heapdb's reader reports as none; -1 is also a value classic
        // headers carry, so it is not turned into none).
        pid: Some(f.pid),
        tid: Some(f.tid),
        cpu: f.cpu,
        timestamp: Some(timestamp),
        pointer_size,
        flags: flags_out,
        payload: f.payload.to_vec(),
        extended,
        // ETW does not say where a record is in the file.
        loc: Location::at(0),
    }
}

/// The fields ETW would deliver for an event heapdb's reader decoded, with its raw
/// timestamp as `ts` says (a FILETIME by the clock, or raw): the inverse of
/// [`map_record`], used to test the mapping against a real capture on any platform and
/// by `verify`'s tests.
pub fn fields_of_event<'a>(e: &Event<'a>, ts: &Timestamps) -> RecordFields<'a> {
    let classic = !matches!(
        e.kind,
        HeaderKind::EventHeader32 | HeaderKind::EventHeader64
    );
    let mut f = if classic {
        flags::CLASSIC_HEADER
    } else {
        e.flags
    };
    f |= match e.pointer_size {
        4 => flags::HEADER_32_BIT,
        8 => flags::HEADER_64_BIT,
        _ => 0,
    };
    if e.cpu > 0xFF {
        f |= flags::PROCESSOR_INDEX;
    }
    let raw = e.timestamp.unwrap_or(0);
    RecordFields {
        provider: e.provider,
        event_id: e.event_id,
        version: e.version as u8,
        level: e.level,
        opcode: e.opcode.unwrap_or(0),
        flags: f,
        pid: e.pid.unwrap_or(u32::MAX),
        tid: e.tid.unwrap_or(u32::MAX),
        timestamp: match ts {
            Timestamps::FileTime(clock) => clock.filetime(raw),
            Timestamps::Raw => raw as i64,
        },
        cpu: e.cpu,
        payload: e.payload,
        extended: e.extended_items().collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::etl::kernel::{HEAP_GUID, STACK_WALK_GUID};

    fn clock() -> Clock {
        Clock::new(&crate::etl::LogfileHeader {
            buffer_size: 65536,
            os_major: 10,
            os_minor: 0,
            os_build: 19045,
            format_major: 2,
            format_minor: 0,
            cpu_count: 4,
            end_time: 0,
            timer_resolution: 156_250,
            maximum_file_size: 0,
            log_file_mode: 0,
            buffers_written: 0,
            pointer_size: 8,
            events_lost: 0,
            cpu_speed_mhz: 0,
            timezone_bias_minutes: 0,
            boot_time: 0,
            perf_freq: 10_000_000,
            start_time: 132_404_548_206_236_167,
            clock_type: crate::etl::ClockType::Qpc,
            buffers_lost: 0,
            logger_name: String::new(),
            log_file_name: String::new(),
            start_raw: 5_000_000,
            layout_pointer_size: 8,
        })
    }

    /// A heap ReAlloc (opcode 0x22) as ETW delivers it: classic header, 64-bit,
    /// ProcessorNumber 3, a FILETIME timestamp.
    fn realloc_record(payload: &[u8]) -> RawEventRecord {
        let mut header = RawEventHeader {
            size: 80,
            header_type: 0,
            flags: flags::CLASSIC_HEADER | flags::HEADER_64_BIT,
            thread_id: 4321,
            process_id: 1234,
            timestamp: 132_404_548_206_236_167 + 250,
            provider_id: RawGuid::from_guid(&HEAP_GUID),
            ..RawEventHeader::default()
        };
        header.descriptor.opcode = 0x22;
        header.descriptor.version = 2;
        header.descriptor.level = 4;
        RawEventRecord {
            header,
            buffer_context: RawBufferContext {
                // ProcessorNumber 3, Alignment 0x08 (what ETW leaves in the high byte)
                processor_index: 0x0803,
                logger_id: 7,
            },
            extended_data_count: 0,
            user_data_length: payload.len() as u16,
            extended_data: std::ptr::null(),
            user_data: payload.as_ptr(),
            user_context: std::ptr::null_mut(),
        }
    }

    #[test]
    fn raw_guid_round_trips() {
        assert_eq!(RawGuid::from_guid(&HEAP_GUID).to_guid(), HEAP_GUID);
        let r = RawGuid::from_guid(&HEAP_GUID);
        assert_eq!((r.data1, r.data2, r.data3), (0x222962ab, 0x6180, 0x4b88));
        assert_eq!(r.data4, [0xa8, 0x25, 0x34, 0x6b, 0x75, 0xf2, 0xa2, 0x4a]);
    }

    #[test]
    fn a_constructed_heap_record_maps_field_by_field() {
        let payload: Vec<u8> = (0u8..64).collect();
        let rec = realloc_record(&payload);
        // SAFETY: user_data points to `payload`, alive for the test; no extended data.
        let f = unsafe { fields_of(&rec) };
        assert_eq!(f.provider, HEAP_GUID);
        assert_eq!((f.opcode, f.version, f.level, f.event_id), (0x22, 2, 4, 0));
        assert_eq!((f.pid, f.tid, f.cpu), (1234, 4321, 3));
        assert_eq!(f.timestamp, 132_404_548_206_236_167 + 250);
        assert_eq!(f.payload, &payload[..]);
        assert!(f.extended.is_empty());

        let e = map_record(&f, &Timestamps::FileTime(clock()));
        assert_eq!(e.kind, HeaderKind::System64);
        assert_eq!(e.provider, HEAP_GUID);
        assert_eq!(e.hook, Some(0x1022));
        assert_eq!(e.opcode, Some(0x22));
        assert_eq!((e.event_id, e.version, e.level), (0, 2, 4));
        assert_eq!((e.pid, e.tid, e.cpu), (Some(1234), Some(4321), 3));
        // 10 MHz QPC anchored at raw 5_000_000 = the start FILETIME.
        assert_eq!(e.timestamp, Some(5_000_250));
        assert_eq!(e.pointer_size, 8);
        assert_eq!(e.flags, 0);
        assert_eq!(e.payload, payload);
        assert!(e.extended.is_empty());
        // Raw mode keeps the value.
        let raw = map_record(&f, &Timestamps::Raw);
        assert_eq!(raw.timestamp, Some(132_404_548_206_236_167 + 250));
    }

    #[test]
    fn processor_index_is_used_when_flagged() {
        let payload = [0u8; 8];
        let mut rec = realloc_record(&payload);
        rec.header.flags |= flags::PROCESSOR_INDEX;
        rec.buffer_context.processor_index = 300;
        // SAFETY: as above.
        let f = unsafe { fields_of(&rec) };
        assert_eq!(f.cpu, 300);
        assert_eq!(map_record(&f, &Timestamps::Raw).cpu, 300);
    }

    #[test]
    fn a_wow64_record_is_32_bit() {
        let payload = [0u8; 8];
        let mut rec = realloc_record(&payload);
        rec.header.flags = flags::CLASSIC_HEADER | flags::HEADER_32_BIT;
        // SAFETY: as above.
        let e = map_record(&unsafe { fields_of(&rec) }, &Timestamps::Raw);
        assert_eq!((e.kind, e.pointer_size), (HeaderKind::System32, 4));
    }

    #[test]
    fn an_event_header_record_keeps_its_stack_item() {
        // A manifest event with a 64-bit stack trace item: MatchId then two frames.
        let mut stack = 99u64.to_le_bytes().to_vec();
        stack.extend_from_slice(&0x7ff6_0000_1000u64.to_le_bytes());
        stack.extend_from_slice(&0x7ff6_0000_2000u64.to_le_bytes());
        let sid = [1u8; 12];
        let items = [
            RawExtendedItem {
                reserved1: 0,
                ext_type: 1, // RELATED_ACTIVITYID-like item before the stack
                linkage: 1,
                data_size: sid.len() as u16,
                data_ptr: sid.as_ptr() as usize as u64,
            },
            RawExtendedItem {
                reserved1: 0,
                ext_type: crate::etl::headers::event_header::EXT_STACK_TRACE64,
                linkage: 0,
                data_size: stack.len() as u16,
                data_ptr: stack.as_ptr() as usize as u64,
            },
        ];
        let payload = [5u8; 3];
        let mut rec = realloc_record(&payload);
        rec.header.flags = flags::HEADER_64_BIT | flags::EXTENDED_INFO;
        rec.header.provider_id = RawGuid::from_guid(&Guid([9; 16]));
        rec.header.descriptor.id = 17;
        rec.extended_data = items.as_ptr();
        rec.extended_data_count = 2;
        // SAFETY: every pointer is to a local alive for the test.
        let f = unsafe { fields_of(&rec) };
        assert_eq!(
            f.extended,
            vec![(1u16, &sid[..]), (items[1].ext_type, &stack[..])]
        );
        let owned = map_record(&f, &Timestamps::Raw);
        assert_eq!(owned.kind, HeaderKind::EventHeader64);
        assert_eq!((owned.hook, owned.event_id), (None, 17));
        assert_eq!(owned.flags & EH_FLAG_EXTENDED_INFO, EH_FLAG_EXTENDED_INFO);
        let e = owned.event();
        let back: Vec<(u16, &[u8])> = e.extended_items().collect();
        assert_eq!(back, f.extended);
        let frames = crate::heap::stack::extended_stack(&e).map(|s| s.to_vec());
        assert_eq!(frames, Some(vec![0x7ff6_0000_1000, 0x7ff6_0000_2000]));
        assert_eq!(e.payload, &payload);
    }

    #[test]
    fn an_unknown_classic_provider_stays_classic() {
        let payload = [0u8; 4];
        let mut rec = realloc_record(&payload);
        rec.header.provider_id = RawGuid::from_guid(&Guid([3; 16]));
        // SAFETY: as above.
        let e = map_record(&unsafe { fields_of(&rec) }, &Timestamps::Raw);
        assert_eq!((e.kind, e.hook), (HeaderKind::Classic64, None));
        // StackWalk's GUID gets its hook, so stack decoding sees the same event.
        rec.header.provider_id = RawGuid::from_guid(&STACK_WALK_GUID);
        rec.header.descriptor.opcode = 0x20;
        // SAFETY: as above.
        let e = map_record(&unsafe { fields_of(&rec) }, &Timestamps::Raw);
        assert_eq!(e.hook, Some(0x1820));
    }

    #[test]
    fn null_pointers_are_empty() {
        let mut rec = realloc_record(&[]);
        rec.user_data = std::ptr::null();
        rec.user_data_length = 12; // a lying length with no buffer: still empty
                                   // SAFETY: null pointers are not followed.
        let f = unsafe { fields_of(&rec) };
        assert!(f.payload.is_empty());
    }
}
