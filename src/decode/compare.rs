//! Two decodings of one capture, event by event: what `heapdb verify` reports.
//!
//! Both sources are read whole and their events grouped by CPU. Each CPU's events are
//! compared in order, position by position: ETW's `ProcessTrace` merges the per-CPU
//! buffer streams by time but keeps each stream's order, which is the order heapdb's
//! reader gives per CPU. Compared per event: provider, opcode, version, pid, tid, CPU
//! (the grouping), timestamp (as a FILETIME, the resolution ETW delivers), payload
//! bytes; and for heap events the decoded heap record, field by field. Not compared:
//! the header kind (ETW reports kernel events by GUID, not by on-disk header), file
//! offsets (ETW has none), level and flags.
//!
//! Both decodings are held in memory (about the capture's size per side).

use super::record::OwnedEvent;
use super::{EventSource, SourceError};
use crate::heap::record;
use std::collections::BTreeMap;
use std::ops::ControlFlow;

/// How to compare.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Differences kept in detail (all are counted).
    pub max_differences: usize,
    /// Timestamps may differ by this many 100 ns ticks (0: exactly equal).
    pub time_tolerance: u64,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            max_differences: 20,
            time_tolerance: 0,
        }
    }
}

/// One decoder's side of a comparison.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Side {
    pub decoder: &'static str,
    pub events: u64,
    pub heap_events: u64,
    /// Records the decoder reported it could not read.
    pub record_errors: u64,
    pub first_errors: Vec<String>,
    /// Events per CPU.
    pub per_cpu: BTreeMap<u16, u64>,
}

/// One difference: where, which field, both values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Difference {
    pub cpu: u16,
    /// Position of the event among its CPU's events (0-based).
    pub position: u64,
    /// `provider`, `opcode`, `version`, `pid`, `tid`, `timestamp`, `payload`,
    /// `heap.<field>`, `heap` (decoded on one side only) or `missing`.
    pub field: String,
    pub a: String,
    pub b: String,
}

/// The result of a comparison.
#[derive(Debug, Clone, Default)]
pub struct Comparison {
    pub a: Side,
    pub b: Side,
    /// Events present on both sides at the same CPU and position.
    pub compared: u64,
    /// Of those, events with at least one field different.
    pub differing: u64,
    /// Heap events decoded on both sides, and those whose records differ.
    pub heap_compared: u64,
    pub heap_differing: u64,
    /// Events one side has past the end of the other's CPU stream.
    pub only_a: u64,
    pub only_b: u64,
    /// Differing events per field.
    pub by_field: BTreeMap<String, u64>,
    /// The first differences (at most `Options::max_differences`), in CPU order.
    pub differences: Vec<Difference>,
}

impl Comparison {
    /// True when the two decodings agree on everything compared and neither side
    /// reported unreadable records.
    pub fn is_equal(&self) -> bool {
        self.differing == 0
            && self.only_a == 0
            && self.only_b == 0
            && self.a.record_errors == 0
            && self.b.record_errors == 0
    }
}

struct Collected {
    side: Side,
    by_cpu: BTreeMap<u16, Vec<OwnedEvent>>,
}

fn collect(source: &mut dyn EventSource) -> Result<Collected, SourceError> {
    let mut side = Side {
        decoder: source.decoder().name(),
        ..Side::default()
    };
    let mut by_cpu: BTreeMap<u16, Vec<OwnedEvent>> = BTreeMap::new();
    source.for_each(&mut |item| {
        match item {
            Ok(e) => {
                side.events += 1;
                if record::is_heap_event(e) {
                    side.heap_events += 1;
                }
                *side.per_cpu.entry(e.cpu).or_default() += 1;
                by_cpu
                    .entry(e.cpu)
                    .or_default()
                    .push(OwnedEvent::from_event(e));
            }
            Err(err) => {
                side.record_errors += 1;
                if side.first_errors.len() < 5 {
                    side.first_errors.push(err.to_string());
                }
            }
        }
        ControlFlow::Continue(())
    })?;
    Ok(Collected { side, by_cpu })
}

fn opt<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map(|v| v.to_string()).unwrap_or_else(|| "none".into())
}

/// A payload in short: its length and the first differing byte.
fn payloads(a: &[u8], b: &[u8]) -> (String, String) {
    let at = a
        .iter()
        .zip(b)
        .position(|(x, y)| x != y)
        .unwrap_or(a.len().min(b.len()));
    let show = |p: &[u8]| {
        let byte = p
            .get(at)
            .map(|v| format!("0x{v:02x}"))
            .unwrap_or_else(|| "end".into());
        format!("{} bytes, byte {at} = {byte}", p.len())
    };
    (show(a), show(b))
}

/// Compares the decodings of one capture by two sources (usually heapdb's reader and
/// ETW's). Timestamps are compared as FILETIMEs by `a`'s clock.
pub fn compare(
    a: &mut dyn EventSource,
    b: &mut dyn EventSource,
    opts: &Options,
) -> Result<Comparison, SourceError> {
    let clock = *a.clock();
    let ca = collect(a)?;
    let cb = collect(b)?;
    let mut c = Comparison {
        a: ca.side,
        b: cb.side,
        ..Comparison::default()
    };
    let mut cpus: Vec<u16> = ca.by_cpu.keys().chain(cb.by_cpu.keys()).copied().collect();
    cpus.sort_unstable();
    cpus.dedup();
    let empty = Vec::new();
    for cpu in cpus {
        let ea = ca.by_cpu.get(&cpu).unwrap_or(&empty);
        let eb = cb.by_cpu.get(&cpu).unwrap_or(&empty);
        for pos in 0..ea.len().max(eb.len()) {
            let mut diffs: Vec<(String, String, String)> = Vec::new();
            match (ea.get(pos), eb.get(pos)) {
                (Some(x), Some(y)) => {
                    c.compared += 1;
                    compare_events(x, y, &clock, opts, &mut c, &mut diffs);
                    if !diffs.is_empty() {
                        c.differing += 1;
                    }
                }
                (Some(x), None) => {
                    c.only_a += 1;
                    diffs.push(("missing".into(), describe(x), "none".into()));
                }
                (None, Some(y)) => {
                    c.only_b += 1;
                    diffs.push(("missing".into(), "none".into(), describe(y)));
                }
                (None, None) => {}
            }
            let mut fields_seen = std::collections::BTreeSet::new();
            for (field, va, vb) in diffs {
                if fields_seen.insert(field.clone()) {
                    *c.by_field.entry(field.clone()).or_default() += 1;
                }
                if c.differences.len() < opts.max_differences {
                    c.differences.push(Difference {
                        cpu,
                        position: pos as u64,
                        field,
                        a: va,
                        b: vb,
                    });
                }
            }
        }
    }
    Ok(c)
}

fn describe(e: &OwnedEvent) -> String {
    format!(
        "{} opcode {} pid {} tid {} ts {}",
        e.provider,
        opt(e.opcode),
        opt(e.pid),
        opt(e.tid),
        opt(e.timestamp)
    )
}

fn compare_events(
    x: &OwnedEvent,
    y: &OwnedEvent,
    clock: &crate::etl::Clock,
    opts: &Options,
    c: &mut Comparison,
    diffs: &mut Vec<(String, String, String)>,
) {
    let mut field = |name: &str, a: String, b: String| {
        if a != b {
            diffs.push((name.to_string(), a, b));
        }
    };
    field("provider", x.provider.to_string(), y.provider.to_string());
    field("opcode", opt(x.opcode), opt(y.opcode));
    field("version", x.version.to_string(), y.version.to_string());
    // A header without a pid/tid (PERFINFO) is compared as ETW's -1.
    field(
        "pid",
        x.pid.unwrap_or(u32::MAX).to_string(),
        y.pid.unwrap_or(u32::MAX).to_string(),
    );
    field(
        "tid",
        x.tid.unwrap_or(u32::MAX).to_string(),
        y.tid.unwrap_or(u32::MAX).to_string(),
    );
    let (ta, tb) = (
        x.timestamp.map(|t| clock.filetime(t)),
        y.timestamp.map(|t| clock.filetime(t)),
    );
    let close = match (ta, tb) {
        (Some(a), Some(b)) => a.abs_diff(b) <= opts.time_tolerance,
        (a, b) => a == b,
    };
    if !close {
        diffs.push((
            "timestamp".into(),
            format!("{} (raw {})", opt(ta), opt(x.timestamp)),
            format!("{} (raw {})", opt(tb), opt(y.timestamp)),
        ));
    }
    if x.payload != y.payload {
        let (a, b) = payloads(&x.payload, &y.payload);
        diffs.push(("payload".into(), a, b));
    }
    let (hx, hy) = (record::decode(&x.event()), record::decode(&y.event()));
    match (hx, hy) {
        (Some(Ok(a)), Some(Ok(b))) => {
            c.heap_compared += 1;
            let before = diffs.len();
            heap_fields(&a.record, &b.record, diffs);
            if diffs.len() > before {
                c.heap_differing += 1;
            }
        }
        (None, None) => {}
        (Some(Err(a)), Some(Err(b))) => {
            if a != b {
                diffs.push(("heap".into(), a.to_string(), b.to_string()));
            }
        }
        (a, b) => {
            let show = |h: Option<Result<record::HeapEvent, record::HeapError>>| match h {
                None => "not a heap event".to_string(),
                Some(Ok(e)) => format!("heap {:?}", e.record.opcode()),
                Some(Err(e)) => e.to_string(),
            };
            diffs.push(("heap".into(), show(a), show(b)));
        }
    }
}

/// The fields of two heap records that differ, by their serialized names.
fn heap_fields(
    a: &record::HeapRecord,
    b: &record::HeapRecord,
    diffs: &mut Vec<(String, String, String)>,
) {
    if a == b {
        return;
    }
    let (va, vb) = (serde_json::to_value(a), serde_json::to_value(b));
    match (va, vb) {
        (Ok(serde_json::Value::Object(ma)), Ok(serde_json::Value::Object(mb))) => {
            let mut keys: Vec<&String> = ma.keys().chain(mb.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                let (x, y) = (ma.get(k), mb.get(k));
                if x != y {
                    let s = |v: Option<&serde_json::Value>| {
                        v.map(|v| v.to_string()).unwrap_or_else(|| "absent".into())
                    };
                    diffs.push((format!("heap.{k}"), s(x), s(y)));
                }
            }
        }
        _ => diffs.push(("heap".into(), format!("{a:?}"), format!("{b:?}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::{HeapdbSource, Remapped};
    use crate::etl::EtlReader;
    use std::io::Cursor;

    fn capture(opts: crate::synth::Options) -> Vec<u8> {
        let mut out = Cursor::new(Vec::new());
        crate::synth::write_capture(&mut out, &opts, 0).unwrap();
        out.into_inner()
    }

    fn small() -> Vec<u8> {
        capture(crate::synth::Options {
            events_per_file: 3000,
            buffer_size: 8192,
            cpus: 3,
            stacks: crate::synth::StackMode::Plain,
            ..Default::default()
        })
    }

    fn source(bytes: &[u8]) -> HeapdbSource<Cursor<Vec<u8>>> {
        HeapdbSource::new(EtlReader::new(Cursor::new(bytes.to_vec()), bytes.len() as u64).unwrap())
    }

    #[test]
    fn a_capture_equals_itself_through_the_etw_mapping() {
        let bytes = small();
        let c = compare(
            &mut source(&bytes),
            &mut Remapped::new(source(&bytes)),
            &Options::default(),
        )
        .unwrap();
        assert!(c.is_equal(), "{:#?}", c.differences);
        assert_eq!(c.a.decoder, "heapdb");
        assert_eq!(c.b.decoder, "etw-mapped");
        assert!(c.a.events > 3000, "{}", c.a.events);
        assert_eq!(c.a.events, c.b.events);
        assert_eq!(c.compared, c.a.events);
        assert_eq!(c.a.per_cpu.len(), 3);
        assert_eq!(c.a.per_cpu, c.b.per_cpu);
        assert!(c.heap_compared >= 3000, "{}", c.heap_compared);
        assert_eq!(c.heap_compared, c.a.heap_events);
        assert!(c.differences.is_empty());
    }

    #[test]
    fn perturbed_fields_are_found_and_named() {
        let bytes = small();
        // Event 100: pid; event 200: one payload byte (a heap record's field); event
        // 300: timestamp off by 2 ticks.
        let perturbed = Remapped::perturbed(source(&bytes), |n, e| match n {
            100 => e.pid = e.pid.map(|p| p ^ 1),
            200 => {
                if let Some(b) = e.payload.get_mut(8) {
                    *b ^= 0x10;
                }
            }
            300 => e.timestamp = e.timestamp.map(|t| t + 2),
            _ => {}
        });
        let mut b = perturbed;
        let c = compare(&mut source(&bytes), &mut b, &Options::default()).unwrap();
        assert!(!c.is_equal());
        assert_eq!(c.differing, 3, "{:#?}", c.differences);
        assert_eq!(c.only_a + c.only_b, 0);
        assert_eq!(c.by_field.get("pid"), Some(&1));
        assert_eq!(c.by_field.get("payload"), Some(&1));
        assert_eq!(c.by_field.get("timestamp"), Some(&1));
        let pid = c.differences.iter().find(|d| d.field == "pid").unwrap();
        assert_eq!(
            pid.a.parse::<u32>().unwrap() ^ 1,
            pid.b.parse::<u32>().unwrap()
        );
        let p = c.differences.iter().find(|d| d.field == "payload").unwrap();
        assert!(p.a.contains("byte 8 = "), "{p:?}");
        assert!(p.b.contains("byte 8 = "), "{p:?}");
        // The payload flip lands in a heap record: a heap field differs too (or the
        // event was not a heap event, and then no heap field may differ).
        let heap_fields: u64 = c
            .by_field
            .iter()
            .filter(|(k, _)| k.starts_with("heap."))
            .map(|(_, v)| *v)
            .sum();
        assert_eq!(heap_fields, c.heap_differing);
        // Within the tolerance, the timestamp is no longer a difference.
        let mut b = Remapped::perturbed(source(&bytes), |n, e| {
            if n == 300 {
                e.timestamp = e.timestamp.map(|t| t + 2);
            }
        });
        let tolerant = Options {
            time_tolerance: 2,
            ..Options::default()
        };
        let c = compare(&mut source(&bytes), &mut b, &tolerant).unwrap();
        assert!(c.is_equal(), "{:#?}", c.differences);
    }

    #[test]
    fn a_heap_field_is_named() {
        let bytes = small();
        // Find a heap event and change its decoded address: the payload's first
        // pointer field (HeapHandle) for every heap opcode.
        let mut target = None;
        source(&bytes)
            .for_each(&mut |item| {
                if let Ok(e) = item {
                    let alloc = matches!(
                        record::decode(e),
                        Some(Ok(record::HeapEvent {
                            record: record::HeapRecord::Alloc { .. },
                            ..
                        }))
                    );
                    if alloc && target.is_none() {
                        target = Some((e.cpu, e.timestamp));
                    }
                }
                ControlFlow::Continue(())
            })
            .unwrap();
        let (cpu, ts) = target.unwrap();
        let mut done = false;
        let mut b = Remapped::perturbed(source(&bytes), move |_, e| {
            if !done && e.cpu == cpu && e.timestamp == ts && record::is_heap_event(&e.event()) {
                e.payload[0] ^= 0x40;
                done = true;
            }
        });
        let c = compare(&mut source(&bytes), &mut b, &Options::default()).unwrap();
        assert_eq!(c.heap_differing, 1, "{:#?}", c.differences);
        let heap: Vec<&Difference> = c
            .differences
            .iter()
            .filter(|d| d.field.starts_with("heap."))
            .collect();
        assert_eq!(heap.len(), 1, "{heap:#?}");
        assert_eq!(heap[0].field, "heap.heap");
        let (x, y): (u64, u64) = (heap[0].a.parse().unwrap(), heap[0].b.parse().unwrap());
        assert_eq!(x ^ y, 0x40);
    }

    #[test]
    fn a_missing_event_is_reported() {
        let bytes = small();
        // A source that drops the last event of CPU 1.
        struct Drop1<S>(S, u64);
        impl<S: EventSource> EventSource for Drop1<S> {
            fn decoder(&self) -> crate::decode::Decoder {
                crate::decode::Decoder::Etw
            }
            fn header(&self) -> &crate::etl::LogfileHeader {
                self.0.header()
            }
            fn clock(&self) -> &crate::etl::Clock {
                self.0.clock()
            }
            fn has_offsets(&self) -> bool {
                false
            }
            fn for_each(
                &mut self,
                f: &mut dyn FnMut(
                    Result<&crate::etl::Event<'_>, &crate::etl::Error>,
                ) -> ControlFlow<()>,
            ) -> Result<(), SourceError> {
                let skip = self.1;
                let mut n = 0u64;
                self.0.for_each(&mut |item| {
                    if let Ok(e) = item {
                        if e.cpu == 1 {
                            n += 1;
                            if n == skip {
                                return ControlFlow::Continue(());
                            }
                        }
                    }
                    f(item)
                })
            }
        }
        let a = collect(&mut source(&bytes)).unwrap();
        let last = a.side.per_cpu[&1];
        let c = compare(
            &mut source(&bytes),
            &mut Drop1(source(&bytes), last),
            &Options::default(),
        )
        .unwrap();
        assert!(!c.is_equal());
        assert_eq!((c.only_a, c.only_b, c.differing), (1, 0, 0));
        assert_eq!(c.differences.len(), 1);
        assert_eq!(c.differences[0].cpu, 1);
        assert_eq!(c.differences[0].position, last - 1);
        assert_eq!(c.differences[0].field, "missing");
        assert_eq!(c.b.events + 1, c.a.events);
    }
}
