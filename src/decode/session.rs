//! The `EVENT_TRACE_PROPERTIES` block `StartTraceW` takes, laid out byte by byte:
//! what `heapdb record` hands Windows to start its sessions. Pure (compiled and tested
//! on every platform); the Windows code only passes the bytes on.
//!
//! The heap session is not an ordinary provider session (docs/windows.md, "Recording
//! a heap session"): `Wnode.Guid` is the heap provider's GUID and an *extension block*
//! after the names, announced by `EnableFlags = 0x80FF0000 | its byte offset`, says
//! which processes to trace (`ETW_EXT_PIDS`) and which heap events get a stack walk
//! (`ETW_EXT_STACKWALK_FILTER`). The extension layout: one DWORD `total length in
//! DWORDs | item count << 16`, then per item a DWORD `length in DWORDs (header
//! included) | type << 16` and its DWORDs.

use crate::etl::kernel::HEAP_GUID;
use crate::etl::Guid;

/// `sizeof(EVENT_TRACE_PROPERTIES)` on 64-bit Windows (`WNODE_HEADER` is 48 bytes).
pub const PROPERTIES_SIZE: usize = 120;
/// `sizeof(EVENT_TRACE_PROPERTIES)` on 32-bit Windows (the thread-id HANDLE is 4).
pub const PROPERTIES_SIZE_32: usize = 112;

pub const WNODE_FLAG_TRACED_GUID: u32 = 0x0002_0000;
pub const EVENT_TRACE_FILE_MODE_SEQUENTIAL: u32 = 0x0000_0001;
pub const EVENT_TRACE_REAL_TIME_MODE: u32 = 0x0000_0100;
pub const EVENT_TRACE_SYSTEM_LOGGER_MODE: u32 = 0x0200_0000;
pub const EVENT_TRACE_FLAG_PROCESS: u32 = 0x0000_0001;
pub const EVENT_TRACE_FLAG_THREAD: u32 = 0x0000_0002;
pub const EVENT_TRACE_FLAG_IMAGE_LOAD: u32 = 0x0000_0004;
/// `EVENT_TRACE_FLAG_EXTENSION`: the low 16 bits of EnableFlags are the extension
/// block's byte offset.
pub const EVENT_TRACE_FLAG_EXTENSION: u32 = 0x80FF_0000;
/// `Wnode.ClientContext` 1: timestamps from QueryPerformanceCounter (what heapdb's
/// clock and the StackWalk payload's raw timestamps are in).
pub const CLOCK_QPC: u32 = 1;

/// `ETW_EXT_PIDS`.
pub const EXT_PIDS: u16 = 2;
/// `ETW_EXT_STACKWALK_FILTER`.
pub const EXT_STACKWALK_FILTER: u16 = 3;
/// The heap hooks that get a stack walk: group 0x10 (heap) << 8 | opcode (Alloc 0x21,
/// ReAlloc 0x22), as PerfView and xperf `-stackwalk HeapAlloc+HeapRealloc` ask.
pub const HEAP_STACK_HOOKS: [u16; 2] = [0x1021, 0x1022];

/// One item of the extension block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Extension {
    /// Trace these processes.
    Pids(Vec<u32>),
    /// Stack walks for these hooks.
    StackWalk(Vec<u16>),
}

impl Extension {
    fn kind(&self) -> u16 {
        match self {
            Extension::Pids(_) => EXT_PIDS,
            Extension::StackWalk(_) => EXT_STACKWALK_FILTER,
        }
    }
    fn data(&self) -> Vec<u32> {
        match self {
            Extension::Pids(p) => p.clone(),
            Extension::StackWalk(h) => h.iter().map(|&h| h as u32).collect(),
        }
    }
}

/// A session to start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionSpec {
    pub name: String,
    /// `Wnode.Guid` (None: zeros, for Windows to choose).
    pub guid: Option<Guid>,
    pub log_file_mode: u32,
    /// Also write the events to this `.etl` file.
    pub log_file: Option<String>,
    pub enable_flags: u32,
    /// Buffer size in KiB, minimum and maximum buffers.
    pub buffer_kib: u32,
    pub min_buffers: u32,
    pub max_buffers: u32,
    /// Seconds between flushes of partly filled buffers (what a real-time consumer
    /// waits at most).
    pub flush_seconds: u32,
    pub extensions: Vec<Extension>,
}

impl SessionSpec {
    /// The heap session: the processes `pids`, stack walks for Alloc and ReAlloc with
    /// `stacks`, real time, and into `log_file` too when given.
    pub fn heap(name: &str, pids: &[u32], stacks: bool, log_file: Option<&str>) -> SessionSpec {
        let mut extensions = vec![Extension::Pids(pids.to_vec())];
        if stacks {
            extensions.push(Extension::StackWalk(HEAP_STACK_HOOKS.to_vec()));
        }
        SessionSpec {
            name: name.to_string(),
            guid: Some(HEAP_GUID),
            log_file_mode: EVENT_TRACE_REAL_TIME_MODE
                | if log_file.is_some() {
                    EVENT_TRACE_FILE_MODE_SEQUENTIAL
                } else {
                    0
                },
            log_file: log_file.map(str::to_string),
            enable_flags: 0,
            // Heap tracing is verbose: 1 MiB buffers, up to 512 of them before events
            // are lost (what PerfView and UIforETW use, within a factor of two).
            buffer_kib: 1024,
            min_buffers: 64,
            max_buffers: 512,
            flush_seconds: 1,
            extensions,
        }
    }

    /// The kernel session of the processes, threads and images (their start and end
    /// events, and the rundown of those already running): a private system logger.
    pub fn kernel(name: &str) -> SessionSpec {
        SessionSpec {
            name: name.to_string(),
            guid: None,
            log_file_mode: EVENT_TRACE_REAL_TIME_MODE | EVENT_TRACE_SYSTEM_LOGGER_MODE,
            log_file: None,
            enable_flags: EVENT_TRACE_FLAG_PROCESS
                | EVENT_TRACE_FLAG_THREAD
                | EVENT_TRACE_FLAG_IMAGE_LOAD,
            buffer_kib: 256,
            min_buffers: 16,
            max_buffers: 64,
            flush_seconds: 1,
            extensions: Vec::new(),
        }
    }
}

/// Why a session's properties cannot be laid out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LayoutError {
    #[error("the session name is empty or longer than 1023 characters")]
    Name,
    #[error("the log file name is longer than 1023 characters")]
    LogFile,
    #[error("too many process ids or hooks for the extension block (at most 65535 DWORDs)")]
    TooLarge,
}

fn utf16z(s: &str) -> Vec<u8> {
    s.encode_utf16()
        .chain(std::iter::once(0))
        .flat_map(u16::to_le_bytes)
        .collect()
}

fn put_u32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

/// The bytes of `EVENT_TRACE_PROPERTIES` (64-bit layout) for `spec`, the session name,
/// the log file name and the extension block after it. `Wnode.BufferSize` is the
/// whole length.
pub fn properties(spec: &SessionSpec) -> Result<Vec<u8>, LayoutError> {
    if spec.name.is_empty() || spec.name.encode_utf16().count() > 1023 {
        return Err(LayoutError::Name);
    }
    let name = utf16z(&spec.name);
    let file = match &spec.log_file {
        Some(f) if f.encode_utf16().count() > 1023 => return Err(LayoutError::LogFile),
        Some(f) => utf16z(f),
        None => Vec::new(),
    };
    let name_at = PROPERTIES_SIZE;
    let file_at = name_at + name.len();
    let mut ext_at = file_at + file.len();
    let mut ext: Vec<u32> = Vec::new();
    if !spec.extensions.is_empty() {
        ext_at = ext_at.next_multiple_of(4);
        ext.push(0);
        for x in &spec.extensions {
            let data = x.data();
            let len = data.len() + 1;
            if len > 0xFFFF {
                return Err(LayoutError::TooLarge);
            }
            ext.push(len as u32 | (x.kind() as u32) << 16);
            ext.extend(data);
        }
        if ext.len() > 0xFFFF || ext_at > 0xFFFF {
            return Err(LayoutError::TooLarge);
        }
        ext[0] = ext.len() as u32 | (spec.extensions.len() as u32) << 16;
    }
    let total = if ext.is_empty() {
        file_at + file.len()
    } else {
        ext_at + ext.len() * 4
    };
    let mut b = vec![0u8; total];
    // WNODE_HEADER
    put_u32(&mut b, 0, total as u32);
    b[24..40].copy_from_slice(&spec.guid.unwrap_or(Guid::NIL).0);
    put_u32(&mut b, 40, CLOCK_QPC);
    put_u32(&mut b, 44, WNODE_FLAG_TRACED_GUID);
    // The session's own fields.
    put_u32(&mut b, 48, spec.buffer_kib);
    put_u32(&mut b, 52, spec.min_buffers);
    put_u32(&mut b, 56, spec.max_buffers);
    put_u32(&mut b, 60, 0); // MaximumFileSize: none
    put_u32(&mut b, 64, spec.log_file_mode);
    put_u32(&mut b, 68, spec.flush_seconds);
    let flags = if ext.is_empty() {
        spec.enable_flags
    } else {
        EVENT_TRACE_FLAG_EXTENSION | ext_at as u32
    };
    put_u32(&mut b, 72, flags);
    put_u32(
        &mut b,
        112,
        if file.is_empty() { 0 } else { file_at as u32 },
    );
    put_u32(&mut b, 116, name_at as u32);
    b[name_at..name_at + name.len()].copy_from_slice(&name);
    b[file_at..file_at + file.len()].copy_from_slice(&file);
    for (i, w) in ext.iter().enumerate() {
        put_u32(&mut b, ext_at + 4 * i, *w);
    }
    Ok(b)
}

/// Room for what `ControlTraceW` (stop, query) writes back: the properties and two
/// names of up to 1023 characters.
pub fn control_buffer() -> Vec<u8> {
    let total = PROPERTIES_SIZE + 2 * 2048;
    let mut b = vec![0u8; total];
    put_u32(&mut b, 0, total as u32);
    put_u32(&mut b, 116, PROPERTIES_SIZE as u32);
    put_u32(&mut b, 112, (PROPERTIES_SIZE + 2048) as u32);
    b
}

/// (EventsLost, RealTimeBuffersLost + LogBuffersLost) from properties Windows filled.
pub fn lost(b: &[u8]) -> (u32, u32) {
    let at = |o: usize| {
        b.get(o..o + 4)
            .and_then(|s| s.try_into().ok())
            .map_or(0, u32::from_le_bytes)
    };
    (at(88), at(96).saturating_add(at(100)))
}

/// The name a session of heapdb's carries, with the pid of the heapdb that started it
/// (so that a later heapdb can tell a session left by a killed one).
pub fn session_name(pid: u32, role: &str) -> String {
    format!("heapdb-record-{pid}-{role}")
}

/// The pid in a name [`session_name`] made, if it is one.
pub fn session_owner(name: &str) -> Option<u32> {
    let rest = name.strip_prefix("heapdb-record-")?;
    let (pid, role) = rest.split_once('-')?;
    if role.is_empty() {
        return None;
    }
    pid.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u32_at(b: &[u8], at: usize) -> u32 {
        u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
    }

    /// The heap session for pid 4242 with stacks, laid out by hand from the format
    /// (docs/windows.md) and PerfView's StartWindowsHeapSession: name "hs" at 120
    /// (3 UTF-16 units = 6 bytes → 126), extension block at 128 (126 rounded up to a
    /// DWORD): header 0x0002_0006 (6 DWORDs, 2 items), pids item 0x0002_0002, 4242,
    /// stack item 0x0003_0003, 0x1021, 0x1022; total 128 + 24 = 152.
    #[test]
    fn heap_session_by_hand() {
        let b = properties(&SessionSpec::heap("hs", &[4242], true, None)).unwrap();
        assert_eq!(b.len(), 152);
        assert_eq!(u32_at(&b, 0), 152, "Wnode.BufferSize");
        assert_eq!(
            &b[24..40],
            &[
                0xab, 0x62, 0x29, 0x22, 0x80, 0x61, 0x88, 0x4b, 0xa8, 0x25, 0x34, 0x6b, 0x75, 0xf2,
                0xa2, 0x4a
            ],
            "Wnode.Guid: 222962ab-6180-4b88-a825-346b75f2a24a"
        );
        assert_eq!(u32_at(&b, 40), 1, "ClientContext: QPC");
        assert_eq!(u32_at(&b, 44), 0x0002_0000, "WNODE_FLAG_TRACED_GUID");
        assert_eq!(u32_at(&b, 48), 1024);
        assert_eq!(u32_at(&b, 64), 0x100, "real time only");
        assert_eq!(u32_at(&b, 72), 0x80FF_0000 | 128, "extension at byte 128");
        assert_eq!(u32_at(&b, 112), 0, "no log file");
        assert_eq!(u32_at(&b, 116), 120);
        assert_eq!(&b[120..126], &[b'h', 0, b's', 0, 0, 0]);
        assert_eq!(&b[126..128], &[0, 0], "padding");
        let ext: Vec<u32> = (0..6).map(|i| u32_at(&b, 128 + 4 * i)).collect();
        assert_eq!(
            ext,
            vec![0x0002_0006, 0x0002_0002, 4242, 0x0003_0003, 0x1021, 0x1022]
        );
    }

    /// Two pids, no stacks, a log file: name "ab" (6 bytes, 120..126), file "c.etl"
    /// (12 bytes, 126..138), extension at 140: header 0x0001_0004, item 0x0002_0003,
    /// 7, 9; total 156; sequential file mode on.
    #[test]
    fn heap_session_with_file_and_two_pids() {
        let b = properties(&SessionSpec::heap("ab", &[7, 9], false, Some("c.etl"))).unwrap();
        assert_eq!(b.len(), 156);
        assert_eq!(u32_at(&b, 0), 156);
        assert_eq!(u32_at(&b, 64), 0x101);
        assert_eq!(u32_at(&b, 112), 126);
        assert_eq!(u32_at(&b, 116), 120);
        assert_eq!(&b[126..138], &utf16z("c.etl")[..]);
        assert_eq!(u32_at(&b, 72), 0x80FF_0000 | 140);
        let ext: Vec<u32> = (0..4).map(|i| u32_at(&b, 140 + 4 * i)).collect();
        assert_eq!(ext, vec![0x0001_0004, 0x0002_0003, 7, 9]);
    }

    #[test]
    fn kernel_session() {
        let b = properties(&SessionSpec::kernel("k")).unwrap();
        assert_eq!(b.len(), 124);
        assert_eq!(u32_at(&b, 0), 124);
        assert_eq!(&b[24..40], &[0; 16]);
        assert_eq!(u32_at(&b, 64), 0x0200_0100);
        assert_eq!(u32_at(&b, 72), 7, "process, thread, image load");
    }

    #[test]
    fn refusals() {
        assert_eq!(
            properties(&SessionSpec::heap("", &[1], false, None)),
            Err(LayoutError::Name)
        );
        let many: Vec<u32> = (0..70_000).collect();
        assert_eq!(
            properties(&SessionSpec::heap("x", &many, false, None)),
            Err(LayoutError::TooLarge)
        );
        let long = "f".repeat(1024);
        assert_eq!(
            properties(&SessionSpec::heap("x", &[1], false, Some(&long))),
            Err(LayoutError::LogFile)
        );
    }

    #[test]
    fn control_buffer_and_lost() {
        let mut b = control_buffer();
        assert_eq!(u32_at(&b, 0) as usize, b.len());
        assert_eq!(u32_at(&b, 116), 120);
        put_u32(&mut b, 88, 5);
        put_u32(&mut b, 96, 2);
        put_u32(&mut b, 100, 3);
        assert_eq!(lost(&b), (5, 5));
        assert_eq!(lost(&[0u8; 4]), (0, 0));
    }

    #[test]
    fn names() {
        let n = session_name(1234, "heap");
        assert_eq!(n, "heapdb-record-1234-heap");
        assert_eq!(session_owner(&n), Some(1234));
        assert_eq!(session_owner("heapdb-record-x-heap"), None);
        assert_eq!(session_owner("NT Kernel Logger"), None);
        assert_eq!(session_owner("heapdb-record-12"), None);
    }
}
