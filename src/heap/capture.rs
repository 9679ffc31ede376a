//! Decoding a capture: heap events with their stacks and the link between a moving
//! ReAlloc and its internal Alloc/Free, stacks, rundown and problems.
//!
//! Matching is done per CPU: a StackWalk record follows its event in the same CPU's
//! buffer stream, and so do the Alloc/Free a moving ReAlloc logs with itself, but either
//! can spill into that CPU's next buffer. [`CpuStream`] therefore decodes one CPU's
//! buffers in order and holds each batch back until the CPU's next buffer has been seen.
//! CPU streams are independent, so they decode in parallel.

use super::record::{self, HeapEvent, HeapRecord};
use super::rundown::{self, Rundown};
use super::stack::{self, stack_id, KeyTable, StackEvent};
use crate::etl::{Buffer, Error, EtlFile};
use rayon::prelude::*;
use std::collections::{BTreeMap, HashMap, HashSet};

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

/// Collects stack-key definitions (StackWalk KeyDelete/KeyRundown) of the whole file.
/// Returns the key table and the defined stacks. Cheap: only StackWalk records are
/// decoded, buffers in parallel.
pub fn key_definitions(file: &EtlFile<'_>) -> (KeyTable, Vec<(i64, Vec<u64>)>) {
    key_definitions_windowed(file, usize::MAX, |_, _| {})
}

/// [`key_definitions`], `window` buffers at a time; `window_done(start, end)` is called
/// with the file range of each window once it has been read.
pub fn key_definitions_windowed<F>(
    file: &EtlFile<'_>,
    window: usize,
    mut window_done: F,
) -> (KeyTable, Vec<(i64, Vec<u64>)>)
where
    F: FnMut(u64, u64),
{
    let mut defs: Vec<(u64, u64, i64, Vec<u64>)> = Vec::new();
    let mut pending: Vec<Buffer<'_>> = Vec::new();
    let mut flush = |pending: &mut Vec<Buffer<'_>>, defs: &mut Vec<(u64, u64, i64, Vec<u64>)>| {
        if pending.is_empty() {
            return;
        }
        defs.extend(key_defs_of(pending));
        let start = pending[0].offset;
        let last = pending[pending.len() - 1];
        window_done(start, last.offset + last.header.buffer_size() as u64);
        pending.clear();
    };
    for b in file.buffers().flatten() {
        pending.push(b);
        if pending.len() >= window {
            flush(&mut pending, &mut defs);
        }
    }
    flush(&mut pending, &mut defs);
    let mut table = KeyTable::default();
    let mut stacks = Vec::new();
    let mut seen = HashSet::new();
    for (key, ts, id, frames) in defs {
        table.add(key, ts, id);
        if seen.insert(id) {
            stacks.push((id, frames));
        }
    }
    table.finish();
    stacks.sort_by_key(|s| s.0);
    (table, stacks)
}

fn key_defs_of(buffers: &[Buffer<'_>]) -> Vec<(u64, u64, i64, Vec<u64>)> {
    buffers
        .par_iter()
        .fold(
            || (Vec::new(), Vec::new()),
            |(mut acc, mut scratch), b| {
                if let Ok(events) = b.events(&mut scratch) {
                    for e in events
                        .only_group(crate::etl::kernel::GROUP_STACK_WALK)
                        .flatten()
                    {
                        if let Some(Ok(StackEvent::KeyDef { key, ts, frames })) = stack::decode(&e)
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
        })
}

/// Recent events of a CPU's stream, to match the StackWalk records that follow them
/// (a power of two).
const RECENT: usize = 64;

/// Stack ids are already well-mixed 63-bit hashes: hash sets of them need no hashing.
#[derive(Default, Clone, Copy)]
pub struct IdHasher(u64);

impl std::hash::Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ b as u64;
        }
    }
    fn write_i64(&mut self, v: i64) {
        self.0 = v as u64;
    }
}

pub type IdHash = std::hash::BuildHasherDefault<IdHasher>;
/// How far back (in heap events) a moving ReAlloc's internal Alloc/Free are looked for.
const LINK_WINDOW: usize = 8;

/// Which batch a recent row lives in.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Bank {
    Held,
    Current,
}

#[derive(Clone, Copy)]
struct Recent {
    ts: u64,
    tid: u32,
    row: Option<(Bank, u32)>,
}

/// Matching state of one CPU's buffer stream (see the module doc). Feed the CPU's
/// buffers in file order; each call returns the batch that can no longer change.
#[derive(Default)]
pub struct CpuStream {
    recent: Vec<Recent>,
    recent_pos: usize,
    /// The batch of the CPU's previous buffer: its last events may still receive a
    /// stack or a ReAlloc link from the next buffer.
    held: Option<Batch>,
    /// Stacks this stream has already emitted (each is emitted once per stream).
    seen_stacks: HashSet<i64, IdHash>,
    /// Rows of the last batch, to size the next one.
    last_rows: usize,
}

impl CpuStream {
    /// Decodes `b`, the next buffer of this CPU, and returns the batch before it, which
    /// is now final.
    pub fn feed(
        &mut self,
        b: &Buffer<'_>,
        scratch: &mut Vec<u8>,
        keys: &KeyTable,
    ) -> Option<Batch> {
        for r in &mut self.recent {
            r.row = match r.row {
                Some((Bank::Current, i)) => Some((Bank::Held, i)),
                _ => None,
            };
        }
        let mut cur = Batch {
            buffer_index: b.index,
            rows: Vec::with_capacity(self.last_rows + self.last_rows / 4),
            ..Batch::default()
        };
        let mut held = self.held.take();
        self.decode(b, scratch, &mut cur, held.as_mut());
        self.last_rows = cur.rows.len();
        self.held = Some(cur);
        held.map(|mut h| {
            finish(&mut h, keys);
            h
        })
    }

    /// Ends the stream: returns the last batch.
    pub fn finish(&mut self, keys: &KeyTable) -> Option<Batch> {
        self.recent.clear();
        self.held.take().map(|mut h| {
            finish(&mut h, keys);
            h
        })
    }

    #[inline]
    fn remember(&mut self, ts: u64, tid: u32, row: Option<(Bank, u32)>) {
        let entry = Recent { ts, tid, row };
        if self.recent.len() < RECENT {
            self.recent.push(entry);
        } else {
            self.recent[self.recent_pos] = entry;
        }
        self.recent_pos = (self.recent_pos + 1) & (RECENT - 1);
    }

    /// The most recent event with this timestamp and thread: `Some(Some(row))` for a
    /// heap event, `Some(None)` for another event, `None` when nothing matches.
    fn find(&self, ts: u64, tid: u32) -> Option<Option<(Bank, u32)>> {
        let n = self.recent.len();
        let mut other = false;
        for k in 0..n {
            // Newest first (a full ring wraps at RECENT, a power of two).
            let i = if n == RECENT {
                (self.recent_pos + RECENT - 1 - k) & (RECENT - 1)
            } else {
                n - 1 - k
            };
            let r = &self.recent[i];
            if r.ts == ts && r.tid == tid {
                match r.row {
                    Some(row) => return Some(Some(row)),
                    None => other = true,
                }
            }
        }
        other.then_some(None)
    }

    fn decode(
        &mut self,
        b: &Buffer<'_>,
        scratch: &mut Vec<u8>,
        cur: &mut Batch,
        mut held: Option<&mut Batch>,
    ) {
        let events = match b.events(scratch) {
            Ok(ev) => ev,
            Err(e) => {
                cur.problems.push(Problem::from(&e));
                return;
            }
        };
        for (seq, item) in events.enumerate() {
            let e = match item {
                Ok(e) => e,
                Err(err) => {
                    cur.stats.bad_records += 1;
                    cur.problems.push(Problem::from(&err));
                    continue;
                }
            };
            cur.stats.events += 1;
            let mut row_ref = None;
            if let Some(decoded) = record::decode(&e) {
                match decoded {
                    Ok(ev) => {
                        cur.stats.heap_events += 1;
                        if !record::is_known_version(ev.info.opcode, ev.info.version) {
                            cur.stats.unknown_versions += 1;
                        }
                        if ev.info.pointer_size == 4 {
                            cur.stats.records_32bit += 1;
                        }
                        let idx = cur.rows.len() as u32;
                        cur.rows.push(HeapRow {
                            event: ev,
                            stack: StackRef::None,
                            realloc_link: None,
                            key: (b.index, seq as u32),
                        });
                        if link_moving_realloc(held.as_deref_mut(), cur) {
                            cur.stats.moving_reallocs_linked += 1;
                        }
                        row_ref = Some((Bank::Current, idx));
                    }
                    Err(err) => {
                        cur.stats.bad_records += 1;
                        cur.problems.push(Problem {
                            offset: e.offset(),
                            message: err.to_string(),
                        });
                    }
                }
            } else if let Some(decoded) = stack::decode(&e) {
                match decoded {
                    Ok(StackEvent::Stack {
                        event_ts,
                        tid,
                        frames,
                        ..
                    }) => match self.find(event_ts, tid) {
                        Some(Some((bank, i))) => {
                            let r = row_at(&mut cur.rows, held.as_deref_mut(), bank, i);
                            if r.stack == StackRef::None {
                                let id = frames.id();
                                r.stack = StackRef::Id(id);
                                cur.stats.stacks_matched += 1;
                                if self.seen_stacks.insert(id) {
                                    cur.stacks.push((id, frames.to_vec()));
                                }
                            } else {
                                cur.stats.stacks_other += 1;
                            }
                        }
                        Some(None) => cur.stats.stacks_other += 1,
                        None => cur.stats.stacks_orphan += 1,
                    },
                    Ok(StackEvent::KeyRef {
                        event_ts,
                        tid,
                        key,
                        kernel,
                        ..
                    }) => match self.find(event_ts, tid) {
                        Some(Some((bank, i))) => {
                            let r = row_at(&mut cur.rows, held.as_deref_mut(), bank, i);
                            let (mut user_k, mut kernel_k) = match r.stack {
                                StackRef::Keys { user, kernel } => (user, kernel),
                                _ => (0, 0),
                            };
                            if kernel {
                                kernel_k = key;
                            } else {
                                user_k = key;
                            }
                            r.stack = StackRef::Keys {
                                user: user_k,
                                kernel: kernel_k,
                            };
                        }
                        Some(None) => cur.stats.stacks_other += 1,
                        None => cur.stats.stacks_orphan += 1,
                    },
                    Ok(StackEvent::KeyDef { .. }) => {}
                    Err(err) => {
                        cur.stats.bad_records += 1;
                        cur.problems.push(Problem {
                            offset: e.offset(),
                            message: err.to_string(),
                        });
                    }
                }
                continue; // a stack record is nobody's event to match
            } else if let Some(r) = rundown::decode(&e) {
                cur.rundown.push(r);
            }
            if let (Some(ts), Some(tid)) = (e.timestamp, e.tid) {
                self.remember(ts, tid, row_ref);
            }
        }
    }
}

/// The row a recent-event entry points at: in the current batch or the held one.
fn row_at<'r>(
    current: &'r mut [HeapRow],
    held: Option<&'r mut Batch>,
    bank: Bank,
    i: u32,
) -> &'r mut HeapRow {
    match bank {
        Bank::Current => &mut current[i as usize],
        Bank::Held => &mut held.expect("a held-bank entry implies a held batch").rows[i as usize],
    }
}

/// Resolves cached stacks of a final batch (the user part; the kernel part of a
/// user-mode heap call is the syscall path, used only when no user part exists).
fn finish(batch: &mut Batch, keys: &KeyTable) {
    for r in &mut batch.rows {
        if let StackRef::Keys { user, kernel } = r.stack {
            let ts = r.event.info.ts_raw;
            let resolved = Some(user)
                .filter(|&k| k != 0)
                .and_then(|k| keys.resolve(k, ts))
                .or_else(|| {
                    Some(kernel)
                        .filter(|&k| k != 0)
                        .and_then(|k| keys.resolve(k, ts))
                });
            match resolved {
                Some(id) => {
                    r.stack = StackRef::Id(id);
                    batch.stats.stacks_matched += 1;
                }
                None => {
                    batch.stats.key_refs_unresolved += 1;
                    r.stack = StackRef::None;
                }
            }
        }
    }
}

/// Links the newest row of `cur` when it is a moving ReAlloc with the Alloc of its
/// new block and the Free of its old one. ntdll logs both inside RtlReAllocateHeap, back
/// to back, just before the ReAlloc (heap notes §4.3): so both must be the thread's two
/// events right before it (in either order), on the same heap, the Alloc of exactly
/// the new size. Requiring the pair, not one of them, keeps a plain Free followed by a
/// realloc of a block another thread re-allocated at that address from being linked.
/// The thread's previous events are searched among the CPU's last [`LINK_WINDOW`] heap
/// rows, the held batch included (the pair can straddle a buffer boundary).
/// Returns true when the ReAlloc was linked.
fn link_moving_realloc(mut held: Option<&mut Batch>, cur: &mut Batch) -> bool {
    let new = cur.rows.len() - 1;
    let me = &cur.rows[new];
    let info = me.event.info;
    let key = me.key;
    let HeapRecord::ReAlloc {
        heap,
        new_address,
        old_address,
        new_size,
        ..
    } = me.event.record
    else {
        return false;
    };
    if new_address == old_address {
        return false;
    }
    // The thread's two previous heap events, newest first: (bank, index).
    let mut prev: Vec<(Bank, usize)> = Vec::with_capacity(2);
    let same_thread = |r: &HeapRow| r.event.info.tid == info.tid && r.event.info.pid == info.pid;
    for i in (new.saturating_sub(LINK_WINDOW)..new).rev() {
        if prev.len() == 2 {
            break;
        }
        if same_thread(&cur.rows[i]) {
            prev.push((Bank::Current, i));
        }
    }
    let scanned = new.min(LINK_WINDOW);
    if prev.len() < 2 && scanned < LINK_WINDOW {
        if let Some(h) = held.as_deref() {
            let n = h.rows.len();
            for i in (n.saturating_sub(LINK_WINDOW - scanned)..n).rev() {
                if prev.len() == 2 {
                    break;
                }
                if same_thread(&h.rows[i]) {
                    prev.push((Bank::Held, i));
                }
            }
        }
    }
    if prev.len() < 2 {
        return false;
    }
    let row =
        |held: &Option<&mut Batch>, cur: &Batch, (bank, i): (Bank, usize)| -> (HeapRecord, bool) {
            let r = match bank {
                Bank::Current => &cur.rows[i],
                Bank::Held => &held.as_deref().expect("held batch").rows[i],
            };
            (r.event.record.clone(), r.realloc_link.is_none())
        };
    let is_alloc = |r: &HeapRecord| matches!(*r, HeapRecord::Alloc { heap: h, address, size, .. } if h == heap && address == new_address && size == new_size);
    let is_free = |r: &HeapRecord| matches!(*r, HeapRecord::Free { heap: h, address, .. } if h == heap && address == old_address);
    let (a, a_free) = row(&held, cur, prev[0]);
    let (b, b_free) = row(&held, cur, prev[1]);
    let pair = (is_alloc(&a) && is_free(&b)) || (is_free(&a) && is_alloc(&b));
    if !(pair && a_free && b_free) {
        return false;
    }
    for (bank, i) in prev {
        match bank {
            Bank::Current => cur.rows[i].realloc_link = Some(key),
            Bank::Held => held.as_deref_mut().expect("held batch").rows[i].realloc_link = Some(key),
        }
    }
    true
}

/// Decodes the buffers of a file through per-CPU streams, calling `sink` with every
/// final batch. Batches are produced per window of `window` buffers (CPU streams in
/// parallel inside a window) and handed to `sink` in a deterministic order: by buffer
/// index within each window's released set.
pub fn decode_buffers<F>(file: &EtlFile<'_>, keys: &KeyTable, window: usize, sink: F)
where
    F: FnMut(Batch),
{
    decode_buffers_windowed(file, keys, window, sink, |_, _| {});
}

/// [`decode_buffers`], calling `window_done(start, end)` with the file range of each
/// window once its bytes are no longer needed.
pub fn decode_buffers_windowed<F, W>(
    file: &EtlFile<'_>,
    keys: &KeyTable,
    window: usize,
    mut sink: F,
    mut window_done: W,
) where
    F: FnMut(Batch),
    W: FnMut(u64, u64),
{
    let mut streams: BTreeMap<u16, (CpuStream, Vec<u8>)> = BTreeMap::new();
    let mut pending: Vec<Buffer<'_>> = Vec::with_capacity(window);
    let mut pre_problems = Vec::new();
    let mut run = |pending: &mut Vec<Buffer<'_>>,
                   streams: &mut BTreeMap<u16, (CpuStream, Vec<u8>)>,
                   sink: &mut F,
                   last: bool| {
        let range = match (pending.first(), pending.last()) {
            (Some(f), Some(l)) => Some((f.offset, l.offset + l.header.buffer_size() as u64)),
            _ => None,
        };
        let mut by_cpu: BTreeMap<u16, Vec<Buffer<'_>>> = BTreeMap::new();
        for b in pending.drain(..) {
            by_cpu.entry(b.header.cpu()).or_default().push(b);
        }
        for cpu in by_cpu.keys() {
            streams.entry(*cpu).or_default();
        }
        #[allow(clippy::type_complexity)]
        let mut work: Vec<(u16, &mut (CpuStream, Vec<u8>), Vec<Buffer<'_>>)> = streams
            .iter_mut()
            .map(|(cpu, s)| (*cpu, s, by_cpu.remove(cpu).unwrap_or_default()))
            .collect();
        let mut out: Vec<Batch> = work
            .par_iter_mut()
            .flat_map_iter(|(_, (stream, scratch), bufs)| {
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
        if let Some((start, end)) = range {
            window_done(start, end);
        }
        for b in out {
            sink(b);
        }
    };
    for b in file.buffers() {
        match b {
            Ok(b) => {
                pending.push(b);
                if pending.len() >= window {
                    run(&mut pending, &mut streams, &mut sink, false);
                }
            }
            Err(e) => pre_problems.push(Problem::from(&e)),
        }
    }
    run(&mut pending, &mut streams, &mut sink, true);
    if !pre_problems.is_empty() {
        sink(Batch {
            buffer_index: u32::MAX,
            problems: pre_problems,
            ..Batch::default()
        });
    }
}

/// Decodes a whole file into one batch (for tests, tools and small files; ingest
/// streams batches instead). Rows are in release order; stacks deduplicated.
pub fn decode_file(file: &EtlFile<'_>) -> Batch {
    let (keys, key_stacks) = key_definitions(file);
    let mut all = Batch::default();
    let mut seen: HashSet<i64> = key_stacks.iter().map(|s| s.0).collect();
    all.stacks.extend(key_stacks);
    decode_buffers(file, &keys, 256, |mut one| {
        all.rows.append(&mut one.rows);
        for s in one.stacks.drain(..) {
            if seen.insert(s.0) {
                all.stacks.push(s);
            }
        }
        all.rundown.append(&mut one.rundown);
        all.problems.append(&mut one.problems);
        all.stats.add(&one.stats);
    });
    all
}

/// Index of each row by key, for resolving `realloc_link`s of a decoded file.
pub fn index_by_key(rows: &[HeapRow]) -> HashMap<RowKey, usize> {
    rows.iter().enumerate().map(|(i, r)| (r.key, i)).collect()
}
