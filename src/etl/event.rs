//! Records inside a buffer: classifying the header kinds and decoding each into an
//! [`Event`] (provider, opcode/id, version, pid/tid, timestamp, pointer size, payload).
//!
//! One file, over 600 lines, because it is one state machine: the walk over a buffer's
//! records, where every header kind decides how far the next record is; the header
//! layouts themselves are in [`super::headers`].

use super::bytes::{align8, u16_at, u32_at, u64_at, u8_at};
use super::error::{Error, ErrorKind, Location};
use super::guid::Guid;
use super::headers;
use super::kernel;

/// The on-disk header kind of a record. The suffix is the pointer size of its payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum HeaderKind {
    System32,
    System64,
    Compact32,
    Compact64,
    PerfInfo32,
    PerfInfo64,
    Classic32,
    Classic64,
    Instance32,
    Instance64,
    EventHeader32,
    EventHeader64,
    /// WPP / TraceMessage record (marker flags 0x90).
    Wpp,
    /// A header type Windows defines but that carries no decodable identity
    /// (TIMED 0x0C, ERROR 0x0D, WNODE 0x0E, MESSAGE 0x0F, ULONG32_TIME). Kept opaque.
    Other(u8),
}

impl HeaderKind {
    /// Stable lowercase name used by `heapdb dump` and the database.
    pub fn name(&self) -> &'static str {
        match self {
            HeaderKind::System32 => "system32",
            HeaderKind::System64 => "system64",
            HeaderKind::Compact32 => "compact32",
            HeaderKind::Compact64 => "compact64",
            HeaderKind::PerfInfo32 => "perfinfo32",
            HeaderKind::PerfInfo64 => "perfinfo64",
            HeaderKind::Classic32 => "classic32",
            HeaderKind::Classic64 => "classic64",
            HeaderKind::Instance32 => "instance32",
            HeaderKind::Instance64 => "instance64",
            HeaderKind::EventHeader32 => "event32",
            HeaderKind::EventHeader64 => "event64",
            HeaderKind::Wpp => "wpp",
            HeaderKind::Other(_) => "other",
        }
    }

    /// True for the kernel "system" kinds whose identity is a hook id.
    pub fn is_kernel(&self) -> bool {
        matches!(
            self,
            HeaderKind::System32
                | HeaderKind::System64
                | HeaderKind::Compact32
                | HeaderKind::Compact64
                | HeaderKind::PerfInfo32
                | HeaderKind::PerfInfo64
        )
    }
}

/// EVENT_HEADER flag: extended data items follow the header.
pub const EH_FLAG_EXTENDED_INFO: u16 = headers::event_header::FLAG_EXTENDED_INFO;
/// EVENT_HEADER flag: the payload is one NUL-terminated UTF-16 string.
pub const EH_FLAG_STRING_ONLY: u16 = headers::event_header::FLAG_STRING_ONLY;

/// One decoded record. Borrowed from the buffer's record bytes (zero-copy).
#[derive(Debug, Clone, Copy)]
pub struct Event<'a> {
    pub kind: HeaderKind,
    /// Provider GUID: from the record for GUID-bearing headers, from the kernel group for
    /// SYSTEM/PERFINFO headers, the TMF message GUID for WPP (nil when absent).
    pub provider: Guid,
    /// Kernel hook id (group << 8 | type) for SYSTEM/COMPACT/PERFINFO records.
    pub hook: Option<u16>,
    /// Opcode (event type). `None` for WPP messages, which have none.
    pub opcode: Option<u8>,
    /// EVENT_HEADER event id, WPP message number; 0 for kernel and classic events.
    pub event_id: u16,
    pub version: u16,
    pub level: u8,
    pub pid: Option<u32>,
    pub tid: Option<u32>,
    /// CPU from the buffer that holds the record.
    pub cpu: u16,
    /// Raw timestamp in the session clock (`None` only for WPP records without one).
    pub timestamp: Option<u64>,
    /// Pointer size of the payload (4 or 8); 0 when the record does not say (WPP
    /// without pointer flags, opaque kinds).
    pub pointer_size: u8,
    /// EVENT_HEADER Flags, WPP OptionFlags; 0 otherwise.
    pub flags: u16,
    pub payload: &'a [u8],
    /// EVENT_HEADER extended data items (raw, chained by their linkage bit).
    pub extended: &'a [u8],
    /// The whole record, header included.
    pub record: &'a [u8],
    pub loc: Location,
}

impl<'a> Event<'a> {
    /// File offset of the record (of its buffer, for compressed buffers).
    pub fn offset(&self) -> u64 {
        self.loc.file_offset()
    }

    /// Iterates the extended data items of an EVENT_HEADER record as (type, data).
    pub fn extended_items(&self) -> ExtendedItems<'a> {
        ExtendedItems {
            data: self.extended,
            pos: 0,
        }
    }
}

/// Extended data items of an EVENT_HEADER record.
pub struct ExtendedItems<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Iterator for ExtendedItems<'a> {
    type Item = (u16, &'a [u8]);
    fn next(&mut self) -> Option<Self::Item> {
        let size = u16_at(self.data, self.pos)? as usize;
        let ty = u16_at(self.data, self.pos + 2)?;
        let len = u16_at(self.data, self.pos + 6)? as usize;
        let data = self.data.get(self.pos + 8..self.pos + 8 + len)?;
        if size < 8 {
            return None;
        }
        self.pos += size;
        Some((ty, data))
    }
}

/// Iterator over the records of one buffer.
pub struct Events<'a> {
    data: &'a [u8],
    pos: usize,
    loc: Location,
    cpu: u16,
    done: bool,
    /// When set, only kernel records of this group are decoded; the others are skipped
    /// by size without building an event (a fast pre-scan).
    only_group: Option<u8>,
}

/// Size of the fixed part of each header kind (layouts in [`super::headers`]).
const SYSTEM_HEADER: usize = headers::system::LEN;
const COMPACT_HEADER: usize = headers::system::COMPACT_LEN;
const PERFINFO_HEADER: usize = headers::perfinfo::LEN;
const CLASSIC_HEADER: usize = headers::classic::LEN;
const INSTANCE_HEADER: usize = headers::classic::INSTANCE_LEN;
const EVENT_HEADER: usize = headers::event_header::LEN;
const WPP_HEADER: usize = 8;

enum Step<'a> {
    Event(Event<'a>, usize),
    /// A bad record that can be skipped by its size: report and go on.
    Skip(ErrorKind, usize),
    /// A sound record the caller did not ask for (see `only_group`).
    Ignore(usize),
    /// A bad record whose size cannot be trusted: report and stop the buffer.
    Stop(ErrorKind),
}

impl<'a> Events<'a> {
    pub fn new(data: &'a [u8], loc: Location, cpu: u16) -> Events<'a> {
        Events {
            data,
            pos: 0,
            loc,
            cpu,
            done: false,
            only_group: None,
        }
    }

    /// Restricts the walk to kernel (SYSTEM/COMPACT/PERFINFO) records of one group;
    /// other records are stepped over by size (errors are still reported).
    pub fn only_group(mut self, group: u8) -> Events<'a> {
        self.only_group = Some(group);
        self
    }

    fn loc_at(&self, pos: usize) -> Location {
        Location {
            record_pos: Some(pos as u32),
            ..self.loc
        }
    }

    #[inline(always)]
    fn step(&self, rec_start: usize) -> Step<'a> {
        let rest = &self.data[rec_start..];
        let (Some(marker), Some(size0)) = (u32_at(rest, 0), u16_at(rest, 0)) else {
            return Step::Stop(ErrorKind::BadRecord("record header cut short".into()));
        };
        let htype = (marker >> 16) as u8;
        let mflags = (marker >> 24) as u8;
        let loc = self.loc_at(rec_start);

        // Size field and minimum header size of each kind.
        // A record whose size cannot be trusted ends the buffer: there is no way to
        // find the next record.
        let sized = |size: usize, min: usize| -> Result<&'a [u8], ErrorKind> {
            if size == 0 {
                return Err(ErrorKind::BadRecord("record size is 0".into()));
            }
            if size < min {
                return Err(ErrorKind::BadRecord(format!(
                    "record size {size} is smaller than its {min}-byte header"
                )));
            }
            if size > rest.len() {
                return Err(ErrorKind::BadRecord(format!(
                    "record size {size} runs past the end of its buffer ({} bytes left)",
                    rest.len()
                )));
            }
            Ok(&rest[..size])
        };

        if mflags & 0x80 == 0 {
            return Step::Stop(ErrorKind::BadRecord(format!(
                "marker 0x{marker:08x} is not an ETW trace header"
            )));
        }

        if mflags == headers::MARKER_TRACE_HEADER {
            use headers::{perfinfo as p, system as s};
            let kernel = match htype {
                s::TYPE_32 => Some((HeaderKind::System32, SYSTEM_HEADER, 4)),
                s::TYPE_64 => Some((HeaderKind::System64, SYSTEM_HEADER, 8)),
                s::TYPE_COMPACT_32 => Some((HeaderKind::Compact32, COMPACT_HEADER, 4)),
                s::TYPE_COMPACT_64 => Some((HeaderKind::Compact64, COMPACT_HEADER, 8)),
                p::TYPE_32 => Some((HeaderKind::PerfInfo32, PERFINFO_HEADER, 4)),
                p::TYPE_64 => Some((HeaderKind::PerfInfo64, PERFINFO_HEADER, 8)),
                _ => None,
            };
            if let Some((kind, hdr, ptr)) = kernel {
                let size = u16_at(rest, 4).unwrap_or(0) as usize;
                let rec = match sized(size, hdr) {
                    Ok(r) => r,
                    Err(k) => return Step::Stop(k),
                };
                if self.only_group.is_some_and(|g| rest.get(7) != Some(&g)) {
                    return Step::Ignore(rec.len());
                }
                return self.kernel_event(kind, hdr, ptr, rec, loc);
            }
            let other = match htype {
                headers::classic::TYPE_32 => Some((HeaderKind::Classic32, CLASSIC_HEADER, 4)),
                headers::classic::TYPE_64 => Some((HeaderKind::Classic64, CLASSIC_HEADER, 8)),
                headers::classic::TYPE_INSTANCE_32 => {
                    Some((HeaderKind::Instance32, INSTANCE_HEADER, 4))
                }
                headers::classic::TYPE_INSTANCE_64 => {
                    Some((HeaderKind::Instance64, INSTANCE_HEADER, 8))
                }
                headers::event_header::TYPE_32 => {
                    Some((HeaderKind::EventHeader32, EVENT_HEADER, 4))
                }
                headers::event_header::TYPE_64 => {
                    Some((HeaderKind::EventHeader64, EVENT_HEADER, 8))
                }
                0x0C..=0x0F => Some((HeaderKind::Other(htype), 4, 0)),
                _ => None,
            };
            let Some((kind, hdr, ptr)) = other else {
                return self.unknown(marker, size0 as usize, rest.len());
            };
            let rec = match sized(size0 as usize, hdr) {
                Ok(r) => r,
                Err(k) => return Step::Stop(k),
            };
            if self.only_group.is_some() {
                return Step::Ignore(rec.len());
            }
            return match kind {
                HeaderKind::EventHeader32 | HeaderKind::EventHeader64 => {
                    self.event_header(kind, ptr, rec, loc)
                }
                HeaderKind::Other(_) => Step::Event(self.opaque(kind, rec, loc), rec.len()),
                _ => self.classic(kind, hdr, ptr, rec, loc),
            };
        }
        if mflags == 0x90 {
            let rec = match sized(size0 as usize, WPP_HEADER) {
                Ok(r) => r,
                Err(k) => return Step::Stop(k),
            };
            if self.only_group.is_some() {
                return Step::Ignore(rec.len());
            }
            return self.wpp(rec, loc);
        }
        if mflags == 0xB0 {
            // TRACE_HEADER_ULONG32_TIME: size u16 @0; never seen in a capture. Opaque.
            let rec = match sized(size0 as usize, 4) {
                Ok(r) => r,
                Err(k) => return Step::Stop(k),
            };
            return Step::Event(self.opaque(HeaderKind::Other(htype), rec, loc), rec.len());
        }
        self.unknown(marker, size0 as usize, rest.len())
    }

    /// An unknown header kind: report it, and skip it by the u16 at +0 when that size
    /// is plausible (the layout of every known kind except SYSTEM/PERFINFO puts the size
    /// there); otherwise nothing after it in the buffer can be trusted.
    fn unknown(&self, marker: u32, size: usize, left: usize) -> Step<'a> {
        if size >= 8 && size <= left {
            Step::Skip(ErrorKind::UnknownHeader(marker), size)
        } else {
            Step::Stop(ErrorKind::UnknownHeader(marker))
        }
    }

    fn base(&self, kind: HeaderKind, rec: &'a [u8], loc: Location) -> Event<'a> {
        Event {
            kind,
            provider: Guid::NIL,
            hook: None,
            opcode: None,
            event_id: 0,
            version: 0,
            level: 0,
            pid: None,
            tid: None,
            cpu: self.cpu,
            timestamp: None,
            pointer_size: 0,
            flags: 0,
            payload: &[],
            extended: &[],
            record: rec,
            loc,
        }
    }

    fn opaque(&self, kind: HeaderKind, rec: &'a [u8], loc: Location) -> Event<'a> {
        let mut e = self.base(kind, rec, loc);
        e.payload = rec.get(4..).unwrap_or(&[]);
        e
    }

    #[inline(always)]
    fn kernel_event(
        &self,
        kind: HeaderKind,
        hdr: usize,
        ptr: u8,
        rec: &'a [u8],
        loc: Location,
    ) -> Step<'a> {
        use headers::{perfinfo as p, system as s};
        let version_word = u16_at(rec, s::VERSION).unwrap_or(0);
        let hook = u16_at(rec, s::HOOK).unwrap_or(0);
        // PMC counters (bits 8-10) and a PEBS index (bit 15) sit between header and
        // payload; the record size includes them.
        let extra =
            8 * ((version_word >> 8) & 7) as usize + if version_word & 0x8000 != 0 { 8 } else { 0 };
        let payload_start = hdr + extra;
        let mut e = self.base(kind, rec, loc);
        let (provider, opcode) = kernel::provider_of_hook(hook);
        e.provider = provider;
        e.opcode = Some(opcode);
        e.hook = Some(hook);
        e.version = version_word & 0xFF;
        e.pointer_size = ptr;
        if hdr == PERFINFO_HEADER {
            e.timestamp = u64_at(rec, p::TIMESTAMP);
        } else {
            e.tid = u32_at(rec, s::TID);
            e.pid = u32_at(rec, s::PID);
            e.timestamp = u64_at(rec, s::TIMESTAMP);
        }
        match rec.get(payload_start..) {
            Some(p) => {
                e.payload = p;
                Step::Event(e, rec.len())
            }
            None => Step::Skip(
                ErrorKind::BadRecord(format!(
                    "record size {} leaves no room for its {extra} bytes of PMC/PEBS data",
                    rec.len()
                )),
                rec.len(),
            ),
        }
    }

    fn classic(
        &self,
        kind: HeaderKind,
        hdr: usize,
        ptr: u8,
        rec: &'a [u8],
        loc: Location,
    ) -> Step<'a> {
        use headers::classic as c;
        let mut e = self.base(kind, rec, loc);
        e.opcode = u8_at(rec, c::TYPE);
        e.level = u8_at(rec, c::LEVEL).unwrap_or(0);
        e.version = u16_at(rec, c::VERSION).unwrap_or(0);
        e.tid = u32_at(rec, c::TID);
        e.pid = u32_at(rec, c::PID);
        e.timestamp = u64_at(rec, c::TIMESTAMP);
        e.provider = Guid::read(rec, c::GUID).unwrap_or(Guid::NIL);
        e.pointer_size = ptr;
        e.payload = rec.get(hdr..).unwrap_or(&[]);
        Step::Event(e, rec.len())
    }

    fn event_header(&self, kind: HeaderKind, ptr: u8, rec: &'a [u8], loc: Location) -> Step<'a> {
        use headers::event_header as h;
        let mut e = self.base(kind, rec, loc);
        e.flags = u16_at(rec, h::FLAGS).unwrap_or(0);
        e.tid = u32_at(rec, h::TID);
        e.pid = u32_at(rec, h::PID);
        e.timestamp = u64_at(rec, h::TIMESTAMP);
        e.provider = Guid::read(rec, h::PROVIDER).unwrap_or(Guid::NIL);
        e.event_id = u16_at(rec, h::ID).unwrap_or(0);
        e.version = u8_at(rec, h::VERSION).unwrap_or(0) as u16;
        e.level = u8_at(rec, h::LEVEL).unwrap_or(0);
        e.opcode = u8_at(rec, h::OPCODE);
        e.pointer_size = ptr;
        let mut pos = EVENT_HEADER;
        if e.flags & EH_FLAG_EXTENDED_INFO != 0 {
            // Follow the linkage bit, not "while it looks like an item" (dissect.etl's
            // mistake on WindowsUpdate.etl, format doc §14.5).
            loop {
                let (Some(size), Some(linkage)) = (u16_at(rec, pos), u16_at(rec, pos + 4)) else {
                    return Step::Skip(
                        ErrorKind::BadRecord(
                            "extended data item cut short by the record size".into(),
                        ),
                        rec.len(),
                    );
                };
                let size = size as usize;
                if size < 8 || pos + size > rec.len() {
                    return Step::Skip(
                        ErrorKind::BadRecord(format!(
                            "extended data item of size {size} at +{pos} does not fit the {}-byte record",
                            rec.len()
                        )),
                        rec.len(),
                    );
                }
                pos += size;
                if linkage & 1 == 0 {
                    break;
                }
            }
            e.extended = &rec[EVENT_HEADER..pos];
        }
        e.payload = &rec[pos..];
        Step::Event(e, rec.len())
    }

    fn wpp(&self, rec: &'a [u8], loc: Location) -> Step<'a> {
        let mut e = self.base(HeaderKind::Wpp, rec, loc);
        let opts = u16_at(rec, 6).unwrap_or(0);
        e.event_id = u16_at(rec, 4).unwrap_or(0);
        e.flags = opts;
        let mut pos = WPP_HEADER;
        let short = || {
            Step::Skip(
                ErrorKind::BadRecord(format!(
                    "WPP record of {} bytes is shorter than its option fields (flags 0x{opts:04x})",
                    rec.len()
                )),
                rec.len(),
            )
        };
        if opts & 0x0001 != 0 {
            pos += 4; // sequence number
        }
        if opts & 0x0002 != 0 {
            match Guid::read(rec, pos) {
                Some(g) => e.provider = g,
                None => return short(),
            }
            pos += 16;
        } else if opts & 0x0004 != 0 {
            pos += 4; // component id
        }
        if opts & 0x0008 != 0 {
            match u64_at(rec, pos) {
                Some(t) => e.timestamp = Some(t),
                None => return short(),
            }
            pos += 8;
        }
        if opts & 0x0020 != 0 {
            match (u32_at(rec, pos), u32_at(rec, pos + 4)) {
                (Some(t), Some(p)) => {
                    e.tid = Some(t);
                    e.pid = Some(p);
                }
                _ => return short(),
            }
            pos += 8;
        }
        e.pointer_size = if opts & 0x0080 != 0 {
            8
        } else if opts & 0x0040 != 0 {
            4
        } else {
            0
        };
        match rec.get(pos..) {
            Some(p) => e.payload = p,
            None => return short(),
        }
        Step::Event(e, rec.len())
    }
}

impl<'a> Iterator for Events<'a> {
    type Item = Result<Event<'a>, Error>;

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if self.done || self.pos + 4 > self.data.len() {
                return None;
            }
            let marker = u32_at(self.data, self.pos).unwrap_or(0);
            // Unused space is 0xFF filler; a zero word also ends the records (s4).
            if marker == 0xFFFF_FFFF || marker == 0 {
                self.done = true;
                return None;
            }
            let start = self.pos;
            if let Some(item) = self.advance(start) {
                return Some(item);
            }
        }
    }
}

impl<'a> Events<'a> {
    /// Decodes the record at `start` and moves past it; `None` for an ignored record.
    #[inline]
    fn advance(&mut self, start: usize) -> Option<Result<Event<'a>, Error>> {
        match self.step(start) {
            Step::Ignore(size) => {
                self.pos = start + align8(size);
                None
            }
            Step::Event(e, size) => {
                self.pos = start + align8(size);
                Some(Ok(e))
            }
            Step::Skip(kind, size) => {
                self.pos = start + align8(size);
                Some(Err(Error::new(kind, self.loc_at(start))))
            }
            Step::Stop(kind) => {
                self.done = true;
                Some(Err(Error::new(kind, self.loc_at(start))))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loc() -> Location {
        Location {
            buffer_offset: 0,
            record_pos: None,
            compressed: false,
        }
    }

    /// A SYSTEM64 heap Free record with `pmc` counters and an optional PEBS index
    /// between header and payload (no sample has them; the layout is ntwmi's).
    fn system64(pmc: u16, pebs: bool) -> Vec<u8> {
        let extra = 8 * pmc as usize + if pebs { 8 } else { 0 };
        let payload = [0x11u8; 20];
        let size = 0x20 + extra + payload.len();
        let version = 2 | (pmc << 8) | if pebs { 0x8000 } else { 0 };
        let mut r = Vec::new();
        r.extend_from_slice(&version.to_le_bytes());
        r.extend_from_slice(&[0x02, 0xC0]);
        r.extend_from_slice(&(size as u16).to_le_bytes());
        r.extend_from_slice(&0x1024u16.to_le_bytes());
        r.extend_from_slice(&77u32.to_le_bytes()); // tid
        r.extend_from_slice(&55u32.to_le_bytes()); // pid
        r.extend_from_slice(&123_456u64.to_le_bytes());
        r.extend_from_slice(&[0; 8]); // kernel/user time
        r.extend(std::iter::repeat_n(0xEE, extra));
        r.extend_from_slice(&payload);
        r.resize(crate::etl::bytes::align8(r.len()), 0xAB);
        r
    }

    #[test]
    fn pmc_and_pebs_bytes_are_skipped() {
        for (pmc, pebs) in [(0, false), (2, false), (0, true), (3, true), (7, true)] {
            let rec = system64(pmc, pebs);
            let mut it = Events::new(&rec, loc(), 3);
            let e = it.next().unwrap().unwrap();
            assert_eq!(e.version, 2);
            assert_eq!(e.hook, Some(0x1024));
            assert_eq!(e.opcode, Some(0x24));
            assert_eq!(
                (e.pid, e.tid, e.timestamp),
                (Some(55), Some(77), Some(123_456))
            );
            assert_eq!(e.payload, &[0x11; 20], "pmc {pmc} pebs {pebs}");
            assert_eq!(e.cpu, 3);
            assert!(it.next().is_none());
        }
    }

    #[test]
    fn pmc_count_larger_than_the_record_is_a_record_error() {
        let mut rec = system64(0, false);
        rec[1] = 0x87; // 7 PMC counters + PEBS announced, none present
        let mut it = Events::new(&rec, loc(), 0);
        let err = it.next().unwrap().unwrap_err();
        assert!(err.to_string().contains("PMC/PEBS"), "{err}");
    }

    #[test]
    fn wpp_option_fields_are_read_by_their_flags() {
        // CldFlt layout: flags 0xAA = GUID + timestamp + tid/pid + 64-bit arguments.
        let mut r = Vec::new();
        let size = 8 + 16 + 8 + 8 + 4;
        r.extend_from_slice(&(size as u16).to_le_bytes());
        r.extend_from_slice(&[0x00, 0x90]);
        r.extend_from_slice(&15u16.to_le_bytes()); // message number
        r.extend_from_slice(&0x00AAu16.to_le_bytes());
        r.extend_from_slice(&[7; 16]);
        r.extend_from_slice(&999u64.to_le_bytes());
        r.extend_from_slice(&244u32.to_le_bytes());
        r.extend_from_slice(&4u32.to_le_bytes());
        r.extend_from_slice(&[1, 2, 3, 4]);
        r.resize(48, 0xFF);
        let e = Events::new(&r, loc(), 0).next().unwrap().unwrap();
        assert_eq!(e.kind, HeaderKind::Wpp);
        assert_eq!(e.provider, Guid([7; 16]));
        assert_eq!((e.event_id, e.opcode), (15, None));
        assert_eq!((e.timestamp, e.tid, e.pid), (Some(999), Some(244), Some(4)));
        assert_eq!(e.pointer_size, 8);
        assert_eq!(e.payload, &[1, 2, 3, 4]);
    }
}
