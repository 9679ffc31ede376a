//! Decoding a capture: heap events with their stacks and the link between a moving
//! ReAlloc and its internal Alloc/Free, stacks, rundown and problems.
//!
//! A capture is decoded in two passes over windows of its buffers: [`KeyCollector`]
//! gathers the stack-cache definitions (which can come after the events that use
//! them), then [`Decoder`] runs each CPU's buffers through its [`CpuStream`] (CPU
//! streams in parallel inside a window) and hands out the batches that can no longer
//! change. Both passes take windows from any source (`EtlFile::for_each_window` for
//! bytes in memory, `EtlReader::for_each_window` for a stream).

use super::record::HeapEvent;
use super::rundown::Rundown;
use super::stack::{self, stack_id, KeyTable, StackEvent};
use super::stream::CpuStream;
use crate::etl::source::{WINDOW_BUFFERS, WINDOW_BYTES};
use crate::etl::{Buffer, Error, EtlFile};
use rayon::prelude::*;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::ops::ControlFlow;

/// How an event's stack was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StackRef {
    None,
    /// The stack's id (plain StackWalk, or a resolved cache key).
    Id(i64),
    /// Stack caching: user / kernel key references (0 = none), resolved when the batch
    /// is released.
    Keys {
        user: u64,
        kernel: u64,
    },
}

/// Identity of a record in its file: (buffer index in file order, record index in the
/// buffer). Deterministic, so links between rows survive any reordering.
pub type RowKey = (u32, u32);

/// A heap event with what its CPU's stream taught us about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeapRow {
    pub event: HeapEvent,
    pub stack: StackRef,
    /// For the Alloc and Free that a moving ReAlloc logs with itself: that ReAlloc.
    pub realloc_link: Option<RowKey>,
    pub key: RowKey,
}

/// Counters (summed per capture).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    pub events: u64,
    pub heap_events: u64,
    pub bad_records: u64,
    pub unknown_versions: u64,
    /// Heap records with 32-bit pointers (WOW64 processes in a 64-bit capture).
    pub records_32bit: u64,
    pub stacks_matched: u64,
    /// StackWalk records whose (timestamp, thread) matched no recent event.
    pub stacks_orphan: u64,
    /// StackWalk records that belong to other (non-heap) events.
    pub stacks_other: u64,
    pub key_refs_unresolved: u64,
    pub moving_reallocs_linked: u64,
    /// Heap-provider events (in any header form) that could not be decoded.
    pub heap_undecoded: u64,
}

impl Stats {
    pub fn add(&mut self, o: &Stats) {
        self.events += o.events;
        self.heap_events += o.heap_events;
        self.bad_records += o.bad_records;
        self.unknown_versions += o.unknown_versions;
        self.records_32bit += o.records_32bit;
        self.stacks_matched += o.stacks_matched;
        self.stacks_orphan += o.stacks_orphan;
        self.stacks_other += o.stacks_other;
        self.key_refs_unresolved += o.key_refs_unresolved;
        self.moving_reallocs_linked += o.moving_reallocs_linked;
        self.heap_undecoded += o.heap_undecoded;
    }
}

/// A bad record or buffer: file offset and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub offset: u64,
    pub message: String,
}

impl From<&Error> for Problem {
    fn from(e: &Error) -> Problem {
        Problem {
            offset: e.offset(),
            message: e.to_string(),
        }
    }
}

/// What one buffer (or a whole file, for small inputs) decodes to.
#[derive(Debug, Default)]
pub struct Batch {
    /// Index of the buffer in file order.
    pub buffer_index: u32,
    pub rows: Vec<HeapRow>,
    /// Plain stacks first seen in this batch: (id, frames innermost first).
    pub stacks: Vec<(i64, Vec<u64>)>,
    pub rundown: Vec<Rundown>,
    pub problems: Vec<Problem>,
    pub stats: Stats,
}

/// A stack-cache definition: (key, time, stack id, frames).
type KeyDef = (u64, u64, i64, Vec<u64>);

/// Collects the stack-key definitions (StackWalk KeyDelete/KeyRundown) of a capture,
/// window by window. Cheap: only StackWalk records are decoded, buffers in parallel.
#[derive(Default)]
pub struct KeyCollector {
    defs: Vec<KeyDef>,
}

impl KeyCollector {
    pub fn new() -> KeyCollector {
        KeyCollector::default()
    }

    pub fn add(&mut self, window: &[Result<Buffer<'_>, Error>]) {
        let found = window
            .par_iter()
            .fold(
                || (Vec::new(), Vec::new()),
                |(mut acc, mut scratch): (Vec<KeyDef>, Vec<u8>), b| {
                    let Ok(b) = b else {
                        return (acc, scratch);
                    };
                    if let Ok(events) = b.events(&mut scratch) {
                        for e in events
                            .only_group(crate::etl::kernel::GROUP_STACK_WALK)
                            .flatten()
                        {
                            if let Some(Ok(StackEvent::KeyDef { key, ts, frames })) =
                                stack::decode(&e)
                            {
                                acc.push((key, ts, stack_id(&frames), frames));
                            }
                        }
                    }
                    (acc, scratch)
                },
            )
            .map(|(acc, _)| acc)
            .reduce(Vec::new, |mut a, b| {
                a.extend(b);
                a
            });
        self.defs.extend(found);
    }

    /// The key table, and the stacks the definitions hold (by id).
    pub fn finish(self) -> (KeyTable, Vec<(i64, Vec<u64>)>) {
        let mut table = KeyTable::default();
        let mut stacks = Vec::new();
        let mut seen = HashSet::new();
        for (key, ts, id, frames) in self.defs {
            table.add(key, ts, id);
            if seen.insert(id) {
                stacks.push((id, frames));
            }
        }
        table.finish();
        stacks.sort_by_key(|s| s.0);
        (table, stacks)
    }
}

/// Runs the buffers of a capture through per-CPU streams, window by window, handing
/// every final batch to the sink in a deterministic order (by buffer index within each
/// window's released set).
pub struct Decoder<'k> {
    keys: &'k KeyTable,
    streams: BTreeMap<u16, (CpuStream, Vec<u8>)>,
    /// Errors of the buffer walk (between buffers), reported at the end.
    walk_problems: Vec<Problem>,
}

impl<'k> Decoder<'k> {
    pub fn new(keys: &'k KeyTable) -> Decoder<'k> {
        Decoder {
            keys,
            streams: BTreeMap::new(),
            walk_problems: Vec::new(),
        }
    }

    pub fn add<F: FnMut(Batch)>(&mut self, window: &[Result<Buffer<'_>, Error>], sink: F) {
        let mut by_cpu: BTreeMap<u16, Vec<&Buffer<'_>>> = BTreeMap::new();
        for item in window {
            match item {
                Ok(b) => by_cpu.entry(b.header.cpu()).or_default().push(b),
                Err(e) => self.walk_problems.push(Problem::from(e)),
            }
        }
        self.run(by_cpu, false, sink);
    }

    /// Ends the capture: releases the batches every stream still holds.
    pub fn finish<F: FnMut(Batch)>(mut self, mut sink: F) {
        self.run(BTreeMap::new(), true, &mut sink);
        if !self.walk_problems.is_empty() {
            sink(Batch {
                buffer_index: u32::MAX,
                problems: std::mem::take(&mut self.walk_problems),
                ..Batch::default()
            });
        }
    }

    fn run<F: FnMut(Batch)>(
        &mut self,
        mut by_cpu: BTreeMap<u16, Vec<&Buffer<'_>>>,
        last: bool,
        mut sink: F,
    ) {
        for cpu in by_cpu.keys() {
            self.streams.entry(*cpu).or_default();
        }
        let keys = self.keys;
        #[allow(clippy::type_complexity)]
        let mut work: Vec<(&mut (CpuStream, Vec<u8>), Vec<&Buffer<'_>>)> = self
            .streams
            .iter_mut()
            .map(|(cpu, s)| (s, by_cpu.remove(cpu).unwrap_or_default()))
            .collect();
        let mut out: Vec<Batch> = work
            .par_iter_mut()
            .flat_map_iter(|((stream, scratch), bufs)| {
                let mut v: Vec<Batch> = bufs
                    .iter()
                    .filter_map(|b| stream.feed(b, scratch, keys))
                    .collect();
                if last {
                    v.extend(stream.finish(keys));
                }
                v
            })
            .collect();
        out.sort_by_key(|b| b.buffer_index);
        for b in out {
            sink(b);
        }
    }
}

/// Collects the stack-key definitions of a capture in memory.
pub fn key_definitions(file: &EtlFile<'_>) -> (KeyTable, Vec<(i64, Vec<u64>)>) {
    let mut k = KeyCollector::new();
    file.for_each_window(WINDOW_BYTES, WINDOW_BUFFERS, |w| {
        k.add(w);
        ControlFlow::Continue(())
    });
    k.finish()
}

/// Decodes the buffers of a capture in memory through per-CPU streams, `window`
/// buffers at a time, calling `sink` with every final batch.
pub fn decode_buffers<F: FnMut(Batch)>(
    file: &EtlFile<'_>,
    keys: &KeyTable,
    window: usize,
    mut sink: F,
) {
    let mut d = Decoder::new(keys);
    file.for_each_window(usize::MAX, window, |w| {
        d.add(w, &mut sink);
        ControlFlow::Continue(())
    });
    d.finish(&mut sink);
}

/// Decodes a whole capture in memory into one batch (for tests, tools and small
/// files; ingest streams batches instead). Rows are in release order; stacks
/// deduplicated.
pub fn decode_file(file: &EtlFile<'_>) -> Batch {
    let (keys, key_stacks) = key_definitions(file);
    let mut all = Batch::default();
    let mut seen: HashSet<i64> = key_stacks.iter().map(|s| s.0).collect();
    all.stacks.extend(key_stacks);
    let mut add = |mut one: Batch| {
        all.rows.append(&mut one.rows);
        for s in one.stacks.drain(..) {
            if seen.insert(s.0) {
                all.stacks.push(s);
            }
        }
        all.rundown.append(&mut one.rundown);
        all.problems.append(&mut one.problems);
        all.stats.add(&one.stats);
    };
    decode_buffers(file, &keys, 256, &mut add);
    all
}

/// Index of each row by key, for resolving `realloc_link`s of a decoded file.
pub fn index_by_key(rows: &[HeapRow]) -> HashMap<RowKey, usize> {
    rows.iter().enumerate().map(|(i, r)| (r.key, i)).collect()
}
