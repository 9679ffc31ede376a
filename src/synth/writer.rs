//! Writes ETL files the way Windows does: a header buffer holding the logfile header,
//! then per-CPU buffers of the session buffer size, flushed when full, records 8-byte
//! aligned, unused space 0xFF. Optionally compresses every buffer but the first
//! (LZ77 plain XPRESS, as `xperf -merge -compress` / the relogger do).

use crate::etl::buffer::{BUFFER_HEADER_SIZE, FLAG_COMPRESSED, FLAG_FLUSH, FLAG_PROC_INDEX};
use crate::etl::bytes::align8;
use crate::etl::time::FILETIME_UNIX_EPOCH;
use crate::etl::xpress;
use std::io::{self, Seek, SeekFrom, Write};

/// Session-level settings written into the logfile header.
#[derive(Debug, Clone)]
pub struct SessionInfo {
    pub buffer_size: u32,
    pub cpus: u16,
    /// 4 = a 32-bit session (x86 logfile header layout, SYSTEM32 header record).
    pub pointer_size: u8,
    pub perf_freq: u64,
    /// FILETIME of the session start; `start_raw` is the clock value at that instant.
    pub start_filetime: u64,
    pub start_raw: u64,
    pub os_build: u32,
    pub logger_name: String,
    pub log_file_name: String,
    pub compress: bool,
    pub pid: u32,
    pub tid: u32,
}

impl SessionInfo {
    /// UTC ns since 1970 of a raw timestamp under this session's clock.
    pub fn unix_ns(&self, raw: u64) -> i64 {
        let delta = raw as i128 - self.start_raw as i128;
        let start = (self.start_filetime as i128 - FILETIME_UNIX_EPOCH as i128) * 100;
        (start + delta * 1_000_000_000 / self.perf_freq as i128) as i64
    }
}

struct CpuBuffer {
    data: Vec<u8>,
    last_ts: u64,
}

/// Statistics of what was written.
#[derive(Debug, Clone, Default)]
pub struct Written {
    pub bytes: u64,
    pub buffers: u32,
    pub records: u64,
}

pub struct EtlWriter<W: Write + Seek> {
    out: W,
    s: SessionInfo,
    cpus: Vec<CpuBuffer>,
    seq: u64,
    scratch: Vec<u8>,
    written: Written,
    last_ts: u64,
    events_lost: u32,
}

const LOGGER_ID: u16 = 0x21;
const MODE_SEQUENTIAL: u32 = 0x0000_0001;
const MODE_COMPRESSED: u32 = 0x0400_0000;
const MODE_RELOG: u32 = 0x0001_0000;

impl<W: Write + Seek> EtlWriter<W> {
    /// Writes the header buffer and returns a writer for the event buffers.
    pub fn new(out: W, s: SessionInfo) -> io::Result<EtlWriter<W>> {
        assert!(s.buffer_size as usize >= 4096 && s.cpus > 0);
        let cpus = (0..s.cpus)
            .map(|_| CpuBuffer {
                data: Vec::with_capacity(s.buffer_size as usize),
                last_ts: 0,
            })
            .collect();
        let mut w = EtlWriter {
            out,
            s,
            cpus,
            seq: 0,
            scratch: Vec::new(),
            written: Written::default(),
            last_ts: 0,
            events_lost: 0,
        };
        let header = w.header_buffer(0, 0);
        w.out.write_all(&header)?;
        w.written.bytes += header.len() as u64;
        w.written.buffers += 1;
        w.written.records += 1;
        Ok(w)
    }

    /// The logfile header's EventsLost (written by `finish`).
    pub fn set_events_lost(&mut self, n: u32) {
        self.events_lost = n;
    }

    pub fn session(&self) -> &SessionInfo {
        &self.s
    }

    fn log_file_mode(&self) -> u32 {
        if self.s.compress {
            MODE_SEQUENTIAL | MODE_RELOG | MODE_COMPRESSED
        } else {
            MODE_SEQUENTIAL
        }
    }

    /// The header buffer: buffer header + logfile header record, filler to the size.
    fn header_buffer(&self, end_filetime: u64, buffers_written: u32) -> Vec<u8> {
        let s = &self.s;
        let ptr = s.pointer_size as usize;
        let d = 2 * (ptr - 4);
        let mut p = vec![0u8; 0x110 + d];
        let put32 =
            |p: &mut Vec<u8>, o: usize, v: u32| p[o..o + 4].copy_from_slice(&v.to_le_bytes());
        let put64 =
            |p: &mut Vec<u8>, o: usize, v: u64| p[o..o + 8].copy_from_slice(&v.to_le_bytes());
        put32(&mut p, 0x00, s.buffer_size);
        // OS 10.0, trace format 1.5 (2.0 when compressed, as relogged files say).
        let version = if s.compress { 0x0002_000a } else { 0x0501_000a };
        put32(&mut p, 0x04, version);
        put32(&mut p, 0x08, s.os_build);
        put32(&mut p, 0x0C, s.cpus as u32);
        put64(&mut p, 0x10, end_filetime);
        put32(&mut p, 0x18, 156_250);
        put32(&mut p, 0x1C, 0);
        put32(&mut p, 0x20, self.log_file_mode());
        put32(&mut p, 0x24, buffers_written);
        put32(&mut p, 0x28, 1);
        put32(&mut p, 0x2C, s.pointer_size as u32);
        put32(&mut p, 0x30, self.events_lost);
        put32(&mut p, 0x34, 2_904);
        // LoggerName / LogFileName slots hold small numbers in files (timer source).
        put32(&mut p, 0x38, 9);
        put32(&mut p, 0x38 + ptr, 6);
        // TIME_ZONE_INFORMATION: UTC (bias 0, names "UTC").
        let tz = 0x40 + d;
        let utc: Vec<u8> = "UTC".encode_utf16().flat_map(|u| u.to_le_bytes()).collect();
        p[tz + 4..tz + 4 + utc.len()].copy_from_slice(&utc);
        p[tz + 4 + 64 + 16 + 4..tz + 4 + 64 + 16 + 4 + utc.len()].copy_from_slice(&utc);
        put64(
            &mut p,
            0xF0 + d,
            s.start_filetime.saturating_sub(36_000_000_000),
        );
        put64(&mut p, 0xF8 + d, s.perf_freq);
        put64(&mut p, 0x100 + d, s.start_filetime);
        put32(&mut p, 0x108 + d, 1); // QPC clock
        put32(&mut p, 0x10C + d, 0);
        for name in [&s.logger_name, &s.log_file_name] {
            for u in name.encode_utf16() {
                p.extend_from_slice(&u.to_le_bytes());
            }
            p.extend_from_slice(&[0, 0]);
        }
        let mut rec = Vec::new();
        system_record(
            &mut rec,
            s.pointer_size,
            2,
            0x0000,
            s.tid,
            s.pid,
            s.start_raw,
            &p,
        );
        let mut buf = vec![0xFFu8; s.buffer_size as usize];
        buf[BUFFER_HEADER_SIZE..BUFFER_HEADER_SIZE + rec.len()].copy_from_slice(&rec);
        // Windows counts the last record's alignment padding in the used length: every
        // buffer of the real corpus ends on an 8-byte boundary (etl-parser relies on it).
        let filled = align8(BUFFER_HEADER_SIZE + rec.len()) as u32;
        buf[BUFFER_HEADER_SIZE + rec.len()..filled as usize].fill(0);
        buffer_header(
            &mut buf[..BUFFER_HEADER_SIZE],
            s.buffer_size,
            filled,
            0,
            0,
            0,
            FLAG_FLUSH,
            4,
            if s.compress { 3 } else { 0 },
        );
        buf
    }

    /// Appends one complete record (header included) to the buffer of `cpu`, flushing
    /// that buffer first when the record does not fit.
    pub fn push(&mut self, cpu: u16, ts: u64, record: &[u8]) -> io::Result<()> {
        let cpu = (cpu % self.s.cpus) as usize;
        let room = self.s.buffer_size as usize - BUFFER_HEADER_SIZE;
        let need = align8(record.len());
        assert!(
            need <= room,
            "record of {} bytes exceeds the buffer",
            record.len()
        );
        if self.cpus[cpu].data.len() + need > room {
            self.flush_cpu(cpu, 0)?;
        }
        let b = &mut self.cpus[cpu];
        b.data.extend_from_slice(record);
        b.data.resize(b.data.len() + (need - record.len()), 0);
        b.last_ts = ts;
        self.last_ts = self.last_ts.max(ts);
        self.written.records += 1;
        Ok(())
    }

    fn flush_cpu(&mut self, cpu: usize, extra_flags: u16) -> io::Result<()> {
        if self.cpus[cpu].data.is_empty() {
            return Ok(());
        }
        self.seq += 1;
        let size = self.s.buffer_size as usize;
        let filled = (BUFFER_HEADER_SIZE + self.cpus[cpu].data.len()) as u32;
        let ts = self.cpus[cpu].last_ts;
        let mut flags = FLAG_PROC_INDEX | extra_flags;
        let out_len;
        if self.s.compress {
            flags |= FLAG_COMPRESSED;
            xpress::compress(&self.cpus[cpu].data, &mut self.scratch);
            out_len = BUFFER_HEADER_SIZE + self.scratch.len();
            let mut hdr = [0u8; BUFFER_HEADER_SIZE];
            buffer_header(
                &mut hdr,
                out_len as u32,
                filled,
                ts,
                self.seq,
                cpu as u16,
                flags,
                0,
                3,
            );
            self.out.write_all(&hdr)?;
            self.out.write_all(&self.scratch)?;
        } else {
            out_len = size;
            let mut hdr = [0u8; BUFFER_HEADER_SIZE];
            buffer_header(
                &mut hdr,
                size as u32,
                filled,
                ts,
                self.seq,
                cpu as u16,
                flags,
                0,
                3,
            );
            self.out.write_all(&hdr)?;
            self.out.write_all(&self.cpus[cpu].data)?;
            let fill = size - filled as usize;
            self.scratch.clear();
            self.scratch.resize(fill, 0xFF);
            self.out.write_all(&self.scratch)?;
        }
        self.written.bytes += out_len as u64;
        self.written.buffers += 1;
        self.cpus[cpu].data.clear();
        Ok(())
    }

    /// Flushes every CPU's last buffer (flagged as the final flush) and patches the
    /// logfile header with the end time and buffer count.
    pub fn finish(mut self, end_raw: u64) -> io::Result<(W, Written)> {
        for cpu in 0..self.cpus.len() {
            self.flush_cpu(cpu, FLAG_FLUSH)?;
        }
        let end_raw = end_raw.max(self.last_ts);
        let end_ft = self.s.start_filetime
            + ((end_raw - self.s.start_raw) as u128 * 10_000_000 / self.s.perf_freq as u128) as u64;
        let header = self.header_buffer(end_ft, self.written.buffers);
        self.out.seek(SeekFrom::Start(0))?;
        self.out.write_all(&header)?;
        self.out.seek(SeekFrom::End(0))?;
        self.out.flush()?;
        Ok((self.out, self.written))
    }
}

#[allow(clippy::too_many_arguments)]
fn buffer_header(
    h: &mut [u8],
    size: u32,
    filled: u32,
    ts: u64,
    seq: u64,
    cpu: u16,
    flags: u16,
    buffer_type: u16,
    state: u32,
) {
    h.fill(0);
    h[0x00..0x04].copy_from_slice(&size.to_le_bytes());
    h[0x04..0x08].copy_from_slice(&filled.to_le_bytes());
    h[0x08..0x0C].copy_from_slice(&filled.to_le_bytes());
    h[0x10..0x18].copy_from_slice(&ts.to_le_bytes());
    h[0x18..0x20].copy_from_slice(&seq.to_le_bytes());
    h[0x28..0x2A].copy_from_slice(&cpu.to_le_bytes());
    h[0x2A..0x2C].copy_from_slice(&LOGGER_ID.to_le_bytes());
    h[0x2C..0x30].copy_from_slice(&(if state == 0 { 3 } else { state }).to_le_bytes());
    h[0x30..0x34].copy_from_slice(&filled.to_le_bytes());
    h[0x34..0x36].copy_from_slice(&flags.to_le_bytes());
    h[0x36..0x38].copy_from_slice(&buffer_type.to_le_bytes());
}

pub use crate::etl::headers::encode::{
    classic as classic_record, event as event_record, perfinfo as perfinfo_record,
    system as system_record,
};
