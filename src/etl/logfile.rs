//! TRACE_LOGFILE_HEADER: the payload of the first record of the first buffer.

use super::bytes::{i32_at, u32_at, u64_at, utf16z_at};
use super::event::{Event, HeaderKind};
use serde::Serialize;

/// Clock of the raw timestamps (TRACE_LOGFILE_HEADER.ReservedFlags).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ClockType {
    /// 0: unspecified; treated as QPC when PerfFreq is set, system time otherwise.
    Raw,
    /// 1: QueryPerformanceCounter at PerfFreq Hz.
    Qpc,
    /// 2: system time (100 ns units).
    SystemTime,
    /// 3: CPU cycle counter at CpuSpeedInMHz.
    CpuCycle,
    Unknown(u32),
}

impl ClockType {
    pub fn from_u32(v: u32) -> ClockType {
        match v {
            0 => ClockType::Raw,
            1 => ClockType::Qpc,
            2 => ClockType::SystemTime,
            3 => ClockType::CpuCycle,
            n => ClockType::Unknown(n),
        }
    }
    pub fn name(&self) -> &'static str {
        match self {
            ClockType::Raw => "raw",
            ClockType::Qpc => "qpc",
            ClockType::SystemTime => "system_time",
            ClockType::CpuCycle => "cpu_cycle",
            ClockType::Unknown(_) => "unknown",
        }
    }
}

/// The logfile header fields heapdb uses and reports.
#[derive(Debug, Clone, Serialize)]
pub struct LogfileHeader {
    /// Session buffer size in bytes.
    pub buffer_size: u32,
    pub os_major: u8,
    pub os_minor: u8,
    /// OS build number (ProviderVersion).
    pub os_build: u32,
    /// Trace format version ("1.5", "2.0").
    pub format_major: u8,
    pub format_minor: u8,
    pub cpu_count: u32,
    /// FILETIME; 0 when the session was never closed.
    pub end_time: u64,
    pub timer_resolution: u32,
    pub maximum_file_size: u32,
    pub log_file_mode: u32,
    /// As written by the logger; not reliable (0 in never-closed sessions).
    pub buffers_written: u32,
    pub pointer_size: u32,
    pub events_lost: u32,
    pub cpu_speed_mhz: u32,
    pub timezone_bias_minutes: i32,
    pub boot_time: u64,
    pub perf_freq: u64,
    /// FILETIME (UTC) of the session start.
    pub start_time: u64,
    pub clock_type: ClockType,
    pub buffers_lost: u32,
    pub logger_name: String,
    pub log_file_name: String,
    /// Raw timestamp of the logfile header record: the clock value at `start_time`.
    pub start_raw: u64,
    /// Pointer size of the layout the header was written in (4 = x86, 8 = x64).
    pub layout_pointer_size: u8,
}

impl LogfileHeader {
    /// Decodes the logfile header from its record, or says why it cannot.
    pub fn from_event(e: &Event<'_>) -> Result<LogfileHeader, String> {
        let layout = match e.kind {
            HeaderKind::System32 | HeaderKind::Compact32 => 4usize,
            HeaderKind::System64 | HeaderKind::Compact64 => 8,
            k => {
                return Err(format!(
                    "first record is a {} record, not the logfile header",
                    k.name()
                ))
            }
        };
        if e.hook != Some(0) {
            return Err(format!(
                "first record has hook 0x{:04x}, not the logfile header (0x0000)",
                e.hook.unwrap_or(0)
            ));
        }
        let p = e.payload;
        // x86 and x64 layouts differ only from LoggerName on: two pointer fields.
        let d = 2 * (layout - 4);
        let fixed = 0x110 + d;
        if p.len() < fixed {
            return Err(format!(
                "logfile header payload is {} bytes, expected at least {fixed}",
                p.len()
            ));
        }
        let r32 = |o: usize| u32_at(p, o).unwrap_or(0);
        let r64 = |o: usize| u64_at(p, o).unwrap_or(0);
        let version = r32(0x04);
        let (logger_name, next) = utf16z_at(p, fixed);
        let (log_file_name, _) = if next < p.len() {
            utf16z_at(p, next)
        } else {
            (String::new(), next)
        };
        Ok(LogfileHeader {
            buffer_size: r32(0x00),
            os_major: version as u8,
            os_minor: (version >> 8) as u8,
            format_major: (version >> 16) as u8,
            format_minor: (version >> 24) as u8,
            os_build: r32(0x08),
            cpu_count: r32(0x0C),
            end_time: r64(0x10),
            timer_resolution: r32(0x18),
            maximum_file_size: r32(0x1C),
            log_file_mode: r32(0x20),
            buffers_written: r32(0x24),
            pointer_size: r32(0x2C),
            events_lost: r32(0x30),
            cpu_speed_mhz: r32(0x34),
            timezone_bias_minutes: i32_at(p, 0x40 + d).unwrap_or(0),
            boot_time: r64(0xF0 + d),
            perf_freq: r64(0xF8 + d),
            start_time: r64(0x100 + d),
            clock_type: ClockType::from_u32(r32(0x108 + d)),
            buffers_lost: r32(0x10C + d),
            logger_name,
            log_file_name,
            start_raw: e.timestamp.unwrap_or(0),
            layout_pointer_size: layout as u8,
        })
    }

    /// True when the session wrote compressed buffers (LogFileMode 0x04000000).
    pub fn compressed_mode(&self) -> bool {
        self.log_file_mode & 0x0400_0000 != 0
    }
}
