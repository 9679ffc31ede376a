//! Process, thread and image events (kernel rundown and start/stop) and the PDB
//! identities KernelTraceControl injects when a trace is merged: what turns pids and
//! addresses into names.

use crate::etl::bytes::{cstr_at, ptr_at, u32_at, u8_at, utf16z_at};
use crate::etl::kernel::{GROUP_IMAGE, GROUP_PROCESS, GROUP_THREAD};
use crate::etl::{Event, Guid};

/// KernelTraceControl's ImageID provider (classic events injected by xperf/WPR merge).
pub const IMAGE_ID_GUID: Guid = Guid::from_fields(
    0xb3e675d7,
    0x2554,
    0x4f18,
    [0x83, 0x0b, 0x27, 0x62, 0x73, 0x25, 0x60, 0xde],
);
pub const IMAGE_ID_OP_IMAGE_ID: u8 = 0;
pub const IMAGE_ID_OP_DBG_ID_RSDS: u8 = 36;

/// What an event says about the life of a process, thread or image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Start / Load.
    Start,
    /// End / Unload.
    End,
    /// Rundown at session start (DCStart): already running.
    RundownStart,
    /// Rundown at session end (DCEnd): still running.
    RundownEnd,
    /// Process Defunct (39): a zombie seen by the rundown.
    Defunct,
}

impl Phase {
    fn from_opcode(op: u8) -> Option<Phase> {
        Some(match op {
            1 | 10 => Phase::Start,
            2 => Phase::End,
            3 => Phase::RundownStart,
            4 => Phase::RundownEnd,
            39 => Phase::Defunct,
            _ => return None,
        })
    }
    pub fn name(&self) -> &'static str {
        match self {
            Phase::Start => "start",
            Phase::End => "end",
            Phase::RundownStart => "dcstart",
            Phase::RundownEnd => "dcend",
            Phase::Defunct => "defunct",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessInfo {
    pub phase: Phase,
    pub ts_raw: u64,
    pub unique_key: u64,
    pub pid: u32,
    pub parent_pid: u32,
    pub session_id: u32,
    pub exit_status: i32,
    pub image_name: String,
    pub command_line: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThreadInfo {
    pub phase: Phase,
    pub ts_raw: u64,
    pub pid: u32,
    pub tid: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageInfo {
    pub phase: Phase,
    pub ts_raw: u64,
    pub pid: u32,
    pub base: u64,
    pub size: u64,
    pub checksum: u32,
    pub timedatestamp: u32,
    pub path: String,
}

/// PDB identity of an image (KernelTraceControl DbgID_RSDS).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PdbInfo {
    pub pid: u32,
    pub base: u64,
    pub guid: Guid,
    pub age: u32,
    pub pdb_path: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rundown {
    Process(ProcessInfo),
    Thread(ThreadInfo),
    Image(ImageInfo),
    Pdb(PdbInfo),
}

/// Decodes process/thread/image/PDB events; `None` for anything else or a record too
/// short to hold the fields heapdb needs (names are optional: a truncated name is kept
/// as far as it goes).
pub fn decode(e: &Event<'_>) -> Option<Rundown> {
    let p = e.payload;
    let ptr = e.pointer_size;
    if ptr != 4 && ptr != 8 {
        return None;
    }
    let ts_raw = e.timestamp.unwrap_or(0);
    if let Some(hook) = e.hook {
        let group = (hook >> 8) as u8;
        let op = hook as u8;
        let phase = Phase::from_opcode(op)?;
        // Hook 0x030A is Image Load despite its Process group byte.
        if group == GROUP_IMAGE || hook == 0x030A {
            return image(p, ptr, phase, ts_raw, e.version).map(Rundown::Image);
        }
        if group == GROUP_PROCESS {
            return process(p, ptr, phase, ts_raw, e.version).map(Rundown::Process);
        }
        if group == GROUP_THREAD && op <= 4 {
            let (pid, tid) = if e.version == 0 {
                (u32_at(p, 4)?, u32_at(p, 0)?)
            } else {
                (u32_at(p, 0)?, u32_at(p, 4)?)
            };
            return Some(Rundown::Thread(ThreadInfo {
                phase,
                ts_raw,
                pid,
                tid,
            }));
        }
        return None;
    }
    if e.provider == IMAGE_ID_GUID && e.opcode == Some(IMAGE_ID_OP_DBG_ID_RSDS) {
        let pz = ptr as usize;
        let base = ptr_at(p, 0, ptr)?;
        let pid = u32_at(p, pz)?;
        let guid = Guid::read(p, pz + 4)?;
        let age = u32_at(p, pz + 20)?;
        let (pdb_path, _) = cstr_at(p, pz + 24);
        return Some(Rundown::Pdb(PdbInfo {
            pid,
            base,
            guid,
            age,
            pdb_path,
        }));
    }
    None
}

fn process(p: &[u8], ptr: u8, phase: Phase, ts_raw: u64, version: u16) -> Option<ProcessInfo> {
    let pz = ptr as usize;
    let d = pz - 4; // HostOffset: each pointer before a field shifts it by ptr - 4
    let unique_key = ptr_at(p, 0, ptr)?;
    let pid = u32_at(p, 4 + d)?;
    let parent_pid = u32_at(p, 8 + d)?;
    let session_id = u32_at(p, 12 + d)?;
    let exit_status = u32_at(p, 16 + d)? as i32;
    // v3 adds DirectoryTableBase (a pointer), v4 Flags (u32), before the user SID.
    let sid_at = match version {
        0..=2 => 20 + d,
        3 => 20 + 2 * d + 4,
        _ => 24 + 2 * d + 4,
    };
    let after_sid = skip_sid(p, sid_at, pz)?;
    let (image_name, next) = cstr_at(p, after_sid);
    let (command_line, _) = if version >= 2 {
        utf16z_at(p, next)
    } else {
        (String::new(), next)
    };
    Some(ProcessInfo {
        phase,
        ts_raw,
        unique_key,
        pid,
        parent_pid,
        session_id,
        exit_status,
        image_name,
        command_line,
    })
}

/// Skips the user SID: 4 zero bytes when absent, else TOKEN_USER (two pointers) and a
/// SID of 8 + 4 × SubAuthorityCount bytes (PerfView's SkipSID).
fn skip_sid(p: &[u8], at: usize, pz: usize) -> Option<usize> {
    if u32_at(p, at)? == 0 {
        return Some(at + 4);
    }
    let sid = at + 2 * pz;
    let count = u8_at(p, sid + 1)? as usize;
    Some(sid + 8 + 4 * count)
}

fn image(p: &[u8], ptr: u8, phase: Phase, ts_raw: u64, version: u16) -> Option<ImageInfo> {
    let pz = ptr as usize;
    let base = ptr_at(p, 0, ptr)?;
    let size = ptr_at(p, pz, ptr)?;
    if version < 2 {
        // v0/v1: base, size, [pid], file name.
        let (pid, name_at) = if version == 1 {
            (u32_at(p, 2 * pz)?, 2 * pz + 4)
        } else {
            (0, 2 * pz)
        };
        let (path, _) = utf16z_at(p, name_at);
        return Some(ImageInfo {
            phase,
            ts_raw,
            pid,
            base,
            size,
            checksum: 0,
            timedatestamp: 0,
            path,
        });
    }
    let pid = u32_at(p, 2 * pz)?;
    let checksum = u32_at(p, 2 * pz + 4)?;
    let timedatestamp = u32_at(p, 2 * pz + 8)?;
    // Reserved0 u32, DefaultBase ptr, Reserved1..4 u32, then the file name.
    let name_at = 2 * pz + 16 + pz + 16;
    let (path, _) = utf16z_at(p, name_at);
    Some(ImageInfo {
        phase,
        ts_raw,
        pid,
        base,
        size,
        checksum,
        timedatestamp,
        path,
    })
}
