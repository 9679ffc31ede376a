//! Whole-file statistics: what `heapdb dump --summary` prints and what the tests compare
//! with the reference parsers.

use super::source::{WINDOW_BUFFERS, WINDOW_BYTES};
use super::{Buffer, Error, EtlFile, EtlReader, Guid, HeaderKind, LogfileHeader};
use rayon::prelude::*;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::ops::ControlFlow;

/// Per-file counts. Keys of `counts` are `"<provider>/<opcode>"`, with opcode `-1` for
/// records that have none (WPP messages).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    pub events: u64,
    pub buffers: u64,
    pub compressed_buffers: u64,
    pub header_kinds: BTreeMap<String, u64>,
    pub counts: BTreeMap<String, u64>,
    /// Errors found, in file order (buffer by buffer).
    #[serde(skip)]
    pub errors: Vec<Error>,
}

#[derive(Default)]
struct Tally {
    events: u64,
    buffers: u64,
    compressed: u64,
    kinds: HashMap<HeaderKind, u64>,
    counts: HashMap<(Guid, i16), u64>,
    errors: Vec<(u64, Error)>,
}

impl Tally {
    fn merge(mut self, o: Tally) -> Tally {
        self.events += o.events;
        self.buffers += o.buffers;
        self.compressed += o.compressed;
        for (k, v) in o.kinds {
            *self.kinds.entry(k).or_default() += v;
        }
        for (k, v) in o.counts {
            *self.counts.entry(k).or_default() += v;
        }
        self.errors.extend(o.errors);
        self
    }
}

/// The count key of an event: provider and opcode (-1 when the record has none).
pub fn count_key(provider: &Guid, opcode: Option<u8>) -> String {
    match opcode {
        Some(op) => format!("{provider}/{op}"),
        None => format!("{provider}/-1"),
    }
}

/// Counts the events of a capture window by window (buffers of a window in parallel).
#[derive(Default)]
pub struct Summarizer {
    t: Tally,
}

impl Summarizer {
    pub fn new() -> Summarizer {
        Summarizer::default()
    }

    pub fn add(&mut self, window: &[Result<Buffer<'_>, Error>]) {
        let t = window
            .par_iter()
            .fold(
                || (Tally::default(), Vec::new()),
                |(mut t, mut scratch), item| {
                    let b = match item {
                        Ok(b) => b,
                        Err(e) => {
                            t.errors.push((e.offset(), e.clone()));
                            return (t, scratch);
                        }
                    };
                    t.buffers += 1;
                    if b.header.is_compressed() {
                        t.compressed += 1;
                    }
                    match b.events(&mut scratch) {
                        Ok(events) => {
                            for ev in events {
                                match ev {
                                    Ok(e) => {
                                        t.events += 1;
                                        *t.kinds.entry(e.kind).or_default() += 1;
                                        let op = e.opcode.map(i16::from).unwrap_or(-1);
                                        *t.counts.entry((e.provider, op)).or_default() += 1;
                                    }
                                    Err(err) => t.errors.push((b.offset, err)),
                                }
                            }
                        }
                        Err(err) => t.errors.push((b.offset, err)),
                    }
                    (t, scratch)
                },
            )
            .map(|(t, _)| t)
            .reduce(Tally::default, Tally::merge);
        let mine = std::mem::take(&mut self.t);
        self.t = mine.merge(t);
    }

    pub fn finish(self) -> Summary {
        let mut t = self.t;
        t.errors.sort_by_key(|(off, e)| (*off, e.loc.record_pos));
        let mut kinds: Vec<_> = t.kinds.into_iter().collect();
        kinds.sort();
        Summary {
            events: t.events,
            buffers: t.buffers,
            compressed_buffers: t.compressed,
            header_kinds: kinds
                .into_iter()
                .map(|(k, v)| {
                    let name = match k {
                        HeaderKind::Other(ty) => format!("other:0x{ty:02x}"),
                        k => k.name().to_string(),
                    };
                    (name, v)
                })
                .collect(),
            counts: t
                .counts
                .into_iter()
                .map(|((g, op), v)| (format!("{g}/{op}"), v))
                .collect(),
            errors: t.errors.into_iter().map(|(_, e)| e).collect(),
        }
    }
}

/// Counts every event of a capture in memory.
pub fn summarize(file: &EtlFile<'_>) -> Summary {
    let mut s = Summarizer::new();
    file.for_each_window(WINDOW_BYTES, WINDOW_BUFFERS, |w| {
        s.add(w);
        ControlFlow::Continue(())
    });
    s.finish()
}

/// Counts every event of a capture read from a stream.
pub fn summarize_reader<R: std::io::Read + Send>(r: &mut EtlReader<R>) -> Summary {
    let mut s = Summarizer::new();
    r.for_each_window(WINDOW_BYTES, WINDOW_BUFFERS, |w| {
        s.add(w);
        ControlFlow::Continue(())
    });
    s.finish()
}

/// Logfile header fields as `heapdb dump --summary` prints them.
#[derive(Debug, Clone, Serialize)]
pub struct HeaderFields {
    pub buffer_size: u32,
    pub os_version: String,
    pub os_build: u32,
    pub trace_format: String,
    pub cpu_count: u32,
    pub pointer_size: u32,
    pub clock_type: &'static str,
    pub clock_type_raw: u32,
    pub perf_freq: u64,
    pub cpu_speed_mhz: u32,
    pub start_time: u64,
    pub start_time_utc: String,
    pub end_time: u64,
    pub end_time_utc: Option<String>,
    pub start_raw: u64,
    pub log_file_mode: u32,
    pub buffers_written: u32,
    pub events_lost: u32,
    pub buffers_lost: u32,
    pub timer_resolution: u32,
    pub logger_name: String,
    pub log_file_name: String,
}

impl HeaderFields {
    pub fn new(h: &LogfileHeader) -> HeaderFields {
        use super::time::{filetime_to_unix_ns, rfc3339};
        let clock_raw = match h.clock_type {
            super::ClockType::Raw => 0,
            super::ClockType::Qpc => 1,
            super::ClockType::SystemTime => 2,
            super::ClockType::CpuCycle => 3,
            super::ClockType::Unknown(n) => n,
        };
        HeaderFields {
            buffer_size: h.buffer_size,
            os_version: format!("{}.{}", h.os_major, h.os_minor),
            os_build: h.os_build,
            trace_format: format!("{}.{}", h.format_major, h.format_minor),
            cpu_count: h.cpu_count,
            pointer_size: h.pointer_size,
            clock_type: h.clock_type.name(),
            clock_type_raw: clock_raw,
            perf_freq: h.perf_freq,
            cpu_speed_mhz: h.cpu_speed_mhz,
            start_time: h.start_time,
            start_time_utc: rfc3339(filetime_to_unix_ns(h.start_time)),
            end_time: h.end_time,
            end_time_utc: (h.end_time != 0).then(|| rfc3339(filetime_to_unix_ns(h.end_time))),
            start_raw: h.start_raw,
            log_file_mode: h.log_file_mode,
            buffers_written: h.buffers_written,
            events_lost: h.events_lost,
            buffers_lost: h.buffers_lost,
            timer_resolution: h.timer_resolution,
            logger_name: h.logger_name.clone(),
            log_file_name: h.log_file_name.clone(),
        }
    }
}
