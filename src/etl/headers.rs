//! The record header layouts, defined once: the reader ([`super::event`]) reads the
//! fields at these offsets, and the encoders below (used by the synthesizer and the
//! tests) write them there. Offsets are from the start of the record; all fields are
//! little-endian. Sources: the shared ETL format notes §5–§9 (SYSTEM_TRACE_HEADER,
//! PERFINFO_TRACE_HEADER, EVENT_TRACE_HEADER, EVENT_HEADER), phnt `ntwmi.h`.

/// Marker byte (+3) of the kernel and GUID-bearing header kinds.
pub const MARKER_TRACE_HEADER: u8 = 0xC0;

/// SYSTEM_TRACE_HEADER (types 1 = 32-bit, 2 = 64-bit pointers); the compact form
/// (types 3 and 4) stops before the kernel/user times.
pub mod system {
    pub const LEN: usize = 0x20;
    pub const COMPACT_LEN: usize = 0x18;
    pub const TYPE_32: u8 = 0x01;
    pub const TYPE_64: u8 = 0x02;
    pub const TYPE_COMPACT_32: u8 = 0x03;
    pub const TYPE_COMPACT_64: u8 = 0x04;
    /// u16: event version in the low byte; PMC counter count in bits 8–10 and a PEBS
    /// index in bit 15 (8 bytes each, between header and payload).
    pub const VERSION: usize = 0x00;
    pub const HEADER_TYPE: usize = 0x02;
    pub const MARKER: usize = 0x03;
    /// u16: record size, header included.
    pub const SIZE: usize = 0x04;
    /// u16: group << 8 | event type.
    pub const HOOK: usize = 0x06;
    pub const TID: usize = 0x08;
    pub const PID: usize = 0x0C;
    pub const TIMESTAMP: usize = 0x10;
    pub const KERNEL_TIME: usize = 0x18;
    pub const USER_TIME: usize = 0x1C;
}

/// PERFINFO_TRACE_HEADER (types 0x10 = 32-bit, 0x11 = 64-bit): no thread or process.
pub mod perfinfo {
    pub const LEN: usize = 0x10;
    pub const TYPE_32: u8 = 0x10;
    pub const TYPE_64: u8 = 0x11;
    pub const VERSION: usize = 0x00;
    pub const HEADER_TYPE: usize = 0x02;
    pub const MARKER: usize = 0x03;
    pub const SIZE: usize = 0x04;
    pub const HOOK: usize = 0x06;
    pub const TIMESTAMP: usize = 0x08;
}

/// EVENT_TRACE_HEADER, the classic (MOF) header (types 0x0A = 32-bit, 0x14 = 64-bit),
/// and its instance variant (0x0B / 0x15, 0x48 bytes).
pub mod classic {
    pub const LEN: usize = 0x30;
    pub const INSTANCE_LEN: usize = 0x48;
    pub const TYPE_32: u8 = 0x0A;
    pub const TYPE_64: u8 = 0x14;
    pub const TYPE_INSTANCE_32: u8 = 0x0B;
    pub const TYPE_INSTANCE_64: u8 = 0x15;
    pub const SIZE: usize = 0x00;
    pub const HEADER_TYPE: usize = 0x02;
    pub const MARKER: usize = 0x03;
    /// Class.Type: the opcode.
    pub const TYPE: usize = 0x04;
    pub const LEVEL: usize = 0x05;
    /// u16: Class.Version.
    pub const VERSION: usize = 0x06;
    pub const TID: usize = 0x08;
    pub const PID: usize = 0x0C;
    pub const TIMESTAMP: usize = 0x10;
    pub const GUID: usize = 0x18;
    pub const PROCESSOR_TIME: usize = 0x28;
}

/// EVENT_HEADER, the manifest / TraceLogging header (types 0x12 = 32-bit, 0x13 =
/// 64-bit pointers in the payload), followed by extended data items when
/// [`FLAG_EXTENDED_INFO`] is set.
pub mod event_header {
    pub const LEN: usize = 0x50;
    pub const TYPE_32: u8 = 0x12;
    pub const TYPE_64: u8 = 0x13;
    pub const SIZE: usize = 0x00;
    pub const HEADER_TYPE: usize = 0x02;
    pub const MARKER: usize = 0x03;
    pub const FLAGS: usize = 0x04;
    pub const PROPERTY: usize = 0x06;
    pub const TID: usize = 0x08;
    pub const PID: usize = 0x0C;
    pub const TIMESTAMP: usize = 0x10;
    pub const PROVIDER: usize = 0x18;
    /// EVENT_DESCRIPTOR: Id u16, Version u8, Channel u8, Level u8, Opcode u8, Task u16,
    /// Keyword u64.
    pub const ID: usize = 0x28;
    pub const VERSION: usize = 0x2A;
    pub const CHANNEL: usize = 0x2B;
    pub const LEVEL: usize = 0x2C;
    pub const OPCODE: usize = 0x2D;
    pub const TASK: usize = 0x2E;
    pub const KEYWORD: usize = 0x30;
    pub const PROCESSOR_TIME: usize = 0x38;
    pub const ACTIVITY_ID: usize = 0x40;
    pub const FLAG_EXTENDED_INFO: u16 = 0x0001;
    pub const FLAG_STRING_ONLY: u16 = 0x0004;
    pub const FLAG_32_BIT_HEADER: u16 = 0x0020;
    pub const FLAG_64_BIT_HEADER: u16 = 0x0040;
    /// Extended item types carrying a stack (MatchId u64, then addresses).
    pub const EXT_STACK_TRACE32: u16 = 0x0005;
    pub const EXT_STACK_TRACE64: u16 = 0x0006;
}

/// Encoders of the header kinds: each writes the header fields at the offsets above,
/// then the payload, into `out` (cleared first).
pub mod encode {
    use super::*;
    use crate::etl::Guid;

    fn put(out: &mut [u8], at: usize, bytes: &[u8]) {
        out[at..at + bytes.len()].copy_from_slice(bytes);
    }

    fn start(out: &mut Vec<u8>, header_len: usize, payload: &[u8]) {
        out.clear();
        out.resize(header_len, 0);
        out.extend_from_slice(payload);
    }

    /// A SYSTEM_TRACE_HEADER record (32- or 64-bit by `ptr`).
    #[allow(clippy::too_many_arguments)]
    pub fn system(
        out: &mut Vec<u8>,
        ptr: u8,
        version: u8,
        hook: u16,
        tid: u32,
        pid: u32,
        ts: u64,
        payload: &[u8],
    ) {
        use system as s;
        start(out, s::LEN, payload);
        let size = out.len() as u16;
        put(out, s::VERSION, &(version as u16).to_le_bytes());
        out[s::HEADER_TYPE] = if ptr == 4 { s::TYPE_32 } else { s::TYPE_64 };
        out[s::MARKER] = MARKER_TRACE_HEADER;
        put(out, s::SIZE, &size.to_le_bytes());
        put(out, s::HOOK, &hook.to_le_bytes());
        put(out, s::TID, &tid.to_le_bytes());
        put(out, s::PID, &pid.to_le_bytes());
        put(out, s::TIMESTAMP, &ts.to_le_bytes());
    }

    /// A PERFINFO_TRACE_HEADER record (32- or 64-bit by `ptr`).
    pub fn perfinfo(out: &mut Vec<u8>, ptr: u8, version: u8, hook: u16, ts: u64, payload: &[u8]) {
        use perfinfo as p;
        start(out, p::LEN, payload);
        let size = out.len() as u16;
        put(out, p::VERSION, &(version as u16).to_le_bytes());
        out[p::HEADER_TYPE] = if ptr == 4 { p::TYPE_32 } else { p::TYPE_64 };
        out[p::MARKER] = MARKER_TRACE_HEADER;
        put(out, p::SIZE, &size.to_le_bytes());
        put(out, p::HOOK, &hook.to_le_bytes());
        put(out, p::TIMESTAMP, &ts.to_le_bytes());
    }

    /// A classic EVENT_TRACE_HEADER record (32- or 64-bit by `ptr`).
    #[allow(clippy::too_many_arguments)]
    pub fn classic(
        out: &mut Vec<u8>,
        ptr: u8,
        guid: &Guid,
        event_type: u8,
        version: u16,
        tid: u32,
        pid: u32,
        ts: u64,
        payload: &[u8],
    ) {
        use classic as c;
        start(out, c::LEN, payload);
        let size = out.len() as u16;
        put(out, c::SIZE, &size.to_le_bytes());
        out[c::HEADER_TYPE] = if ptr == 4 { c::TYPE_32 } else { c::TYPE_64 };
        out[c::MARKER] = MARKER_TRACE_HEADER;
        out[c::TYPE] = event_type;
        put(out, c::VERSION, &version.to_le_bytes());
        put(out, c::TID, &tid.to_le_bytes());
        put(out, c::PID, &pid.to_le_bytes());
        put(out, c::TIMESTAMP, &ts.to_le_bytes());
        put(out, c::GUID, &guid.0);
    }

    /// An EVENT_HEADER record (32- or 64-bit by `ptr`) with an event descriptor of
    /// `opcode` and `version`, and optional extended data items (`(type, data)`).
    #[allow(clippy::too_many_arguments)]
    pub fn event(
        out: &mut Vec<u8>,
        ptr: u8,
        provider: &Guid,
        opcode: u8,
        version: u8,
        tid: u32,
        pid: u32,
        ts: u64,
        extended: &[(u16, &[u8])],
        payload: &[u8],
    ) {
        use event_header as e;
        // Extended items: each is an 8-byte EVENT_HEADER_EXTENDED_DATA_ITEM (reserved
        // u16 size, type u16, linkage u16, data size u16) then the data, 8-aligned.
        let mut ext = Vec::new();
        for (i, (ty, data)) in extended.iter().enumerate() {
            let size = crate::etl::bytes::align8(8 + data.len());
            let linkage: u16 = (i + 1 < extended.len()) as u16;
            ext.extend_from_slice(&(size as u16).to_le_bytes());
            ext.extend_from_slice(&ty.to_le_bytes());
            ext.extend_from_slice(&linkage.to_le_bytes());
            ext.extend_from_slice(&(data.len() as u16).to_le_bytes());
            ext.extend_from_slice(data);
            ext.resize(ext.len() + size - 8 - data.len(), 0);
        }
        start(out, e::LEN, &ext);
        out.extend_from_slice(payload);
        let size = out.len() as u16;
        let mut flags = if ptr == 4 {
            e::FLAG_32_BIT_HEADER
        } else {
            e::FLAG_64_BIT_HEADER
        };
        if !extended.is_empty() {
            flags |= e::FLAG_EXTENDED_INFO;
        }
        put(out, e::SIZE, &size.to_le_bytes());
        out[e::HEADER_TYPE] = if ptr == 4 { e::TYPE_32 } else { e::TYPE_64 };
        out[e::MARKER] = MARKER_TRACE_HEADER;
        put(out, e::FLAGS, &flags.to_le_bytes());
        put(out, e::TID, &tid.to_le_bytes());
        put(out, e::PID, &pid.to_le_bytes());
        put(out, e::TIMESTAMP, &ts.to_le_bytes());
        put(out, e::PROVIDER, &provider.0);
        out[e::VERSION] = version;
        out[e::OPCODE] = opcode;
    }
}
