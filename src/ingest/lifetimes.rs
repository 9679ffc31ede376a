//! Block lifetimes: WPA's heap model computed while a capture is loaded.
//!
//! Every block is followed from its start (an Alloc, a ReAlloc that produced it, or its
//! first sighting when it was allocated before the trace) to its end (a Free, a ReAlloc
//! that moved or resized it, its heap's Destroy, its process's exit, a later block at
//! the same address while it was live, or the end of the trace), and one [`BlockRow`]
//! is written per lifetime. docs/lifetimes.md states the rules; `schema/001_tables.sql`
//! documents the columns.
//!
//! Lifetimes need the events in time order, and the loader receives them in file order:
//! buffer by buffer, each buffer one CPU's, so two CPUs' events interleave in time.
//! [`Reorder`] merges the CPUs' streams: an event is released once every CPU seen so
//! far has logged something later (a CPU's own events are in time order). A CPU that
//! goes quiet would hold everything back, so at most [`REORDER_EVENTS`] events wait;
//! past that the oldest are released anyway, and an event that then arrives older than
//! what was already released is processed late and counted (`out_of_order`, reported
//! by `data-quality`). Memory is bounded by that window and by the blocks alive (plus
//! one word per address seen, to tell a double free from a block older than the trace),
//! never by the number of events.

use super::fx::{FxMap, MixMap, MixSet};
use super::rows::HeapEventRow;
use crate::heap::record::op;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, VecDeque};

/// Events that may wait for the other CPUs (about 100 bytes each).
pub const REORDER_EVENTS: usize = 1 << 18;

/// How a lifetime started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum StartKind {
    /// An Alloc.
    Alloc,
    /// Produced by a ReAlloc (the chain's previous block is `prev_block_id`).
    Realloc,
    /// First seen being freed or reallocated, at an address the capture had not used
    /// before: allocated before the trace began. Start and size (for a Free) unknown.
    BeforeTrace,
    /// First seen being freed or reallocated at an address the capture had already
    /// used and freed: its Alloc was lost, or this is a double free.
    LostAlloc,
}

impl StartKind {
    /// `blocks.start_kind` (schema/001_tables.sql, table block_start_kinds).
    pub fn code(self) -> u8 {
        match self {
            StartKind::Alloc => 1,
            StartKind::Realloc => 2,
            StartKind::BeforeTrace => 3,
            StartKind::LostAlloc => 4,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            StartKind::Alloc => "alloc",
            StartKind::Realloc => "realloc",
            StartKind::BeforeTrace => "before_trace",
            StartKind::LostAlloc => "lost_alloc",
        }
    }
    /// Whether the block started inside the trace with a known size: only those count
    /// in outstanding bytes.
    pub fn in_trace(self) -> bool {
        matches!(self, StartKind::Alloc | StartKind::Realloc)
    }
}

/// How a lifetime ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EndKind {
    Free,
    /// A ReAlloc copied it to another address (the next block of its chain).
    ReallocMoved,
    /// A ReAlloc resized it where it is (the next block has the same address).
    ReallocInPlace,
    /// Its heap was destroyed while it was live.
    HeapDestroyed,
    /// Its process exited while it was live (end time: the process's end).
    ProcessExited,
    /// A new block started at its address while it was live: its Free was lost (end
    /// time: that new block's start, an upper bound).
    LostFree,
    /// Still live when the trace ended (no end time).
    LiveAtEnd,
}

impl EndKind {
    /// `blocks.end_kind` (schema/001_tables.sql, table block_end_kinds).
    pub fn code(self) -> u8 {
        match self {
            EndKind::Free => 1,
            EndKind::ReallocMoved => 2,
            EndKind::ReallocInPlace => 3,
            EndKind::HeapDestroyed => 4,
            EndKind::ProcessExited => 5,
            EndKind::LostFree => 6,
            EndKind::LiveAtEnd => 7,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            EndKind::Free => "free",
            EndKind::ReallocMoved => "realloc_moved",
            EndKind::ReallocInPlace => "realloc_in_place",
            EndKind::HeapDestroyed => "heap_destroyed",
            EndKind::ProcessExited => "process_exited",
            EndKind::LostFree => "lost_free",
            EndKind::LiveAtEnd => "live_at_end",
        }
    }
}

/// One lifetime: a row of `blocks`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockRow {
    pub block_id: i64,
    pub capture_id: i64,
    pub pid: u32,
    pub heap: u64,
    pub address: u64,
    /// Bytes; `None` for a block first seen being freed (a Free carries no size).
    pub size: Option<u64>,
    pub source: Option<u32>,
    pub start_kind: StartKind,
    pub start_ns: Option<i64>,
    pub start_event_id: Option<i64>,
    pub start_stack_id: Option<i64>,
    pub end_kind: EndKind,
    pub end_ns: Option<i64>,
    pub end_event_id: Option<i64>,
    pub end_stack_id: Option<i64>,
    /// The block this one was reallocated from.
    pub prev_block_id: Option<i64>,
    /// The first block of its realloc chain (itself for an unreallocated block).
    pub chain_id: i64,
    /// Its position in the chain (0 = the first).
    pub chain_index: u32,
}

/// (pid, heap, stack that started the block, start kind, end kind) of `block_counts`.
pub type CountKey = (u32, u64, Option<i64>, StartKind, EndKind);

/// What the lifetimes of one [`CountKey`] add up to: a row of `block_counts`.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct SiteCount {
    pub blocks: u64,
    /// Sum of the known sizes.
    pub bytes: u64,
    /// The earliest known start.
    pub min_start_ns: Option<i64>,
    /// Blocks with both ends known, and the sum of their lifetimes (ns; a float: a long
    /// capture's sum can pass 2^63).
    pub timed: u64,
    pub lifetime_ns: f64,
}

/// Events of one key of `heap_event_counts` (`blocks` counts events, `bytes` sums sizes).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KindCount {
    pub blocks: u64,
    /// Sum of the known sizes.
    pub bytes: u64,
}

/// (pid, heap, opcode, source, internal) of `heap_event_counts`.
pub type EventKey = (u32, u64, u8, Option<u32>, bool);

/// Outstanding bytes of one process (blocks started in the trace and still live):
/// its peak and what was left at the end. A row of `process_usage`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Outstanding now (while the capture is followed).
    pub bytes: u64,
    pub blocks: u64,
    pub peak_bytes: u64,
    pub peak_blocks: u64,
    /// When the peak was first reached, and the event that reached it.
    pub peak_ns: Option<i64>,
    pub peak_event_id: Option<i64>,
    /// Outstanding when the trace ended (0 for a process that exited).
    pub end_bytes: u64,
    pub end_blocks: u64,
}

/// Counters of the lifetime pass, for `data-quality`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LifetimeStats {
    /// Events that took part (Alloc, ReAlloc, Free outside moving ReAllocs; Destroy).
    pub events: u64,
    /// Events processed after a later one (see the module notes).
    pub out_of_order: u64,
    /// Allocs and ReAllocs that returned no block (address 0), and Frees of address 0.
    pub null_address: u64,
    /// The most events that waited for the other CPUs at once (memory: ~100 bytes each).
    pub most_waiting: u64,
}

/// What a capture's lifetimes add up to, at its end.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    pub counts: BTreeMap<CountKey, SiteCount>,
    /// Heap events by (pid, heap, opcode, source, logged inside a moving ReAlloc):
    /// `heap_event_counts` (`blocks` counts events there, `bytes` sums their sizes).
    pub events: BTreeMap<EventKey, KindCount>,
    pub usage: BTreeMap<u32, Usage>,
    pub stats: LifetimeStats,
    pub first_block_id: i64,
    /// The next id (`first_block_id` when the capture has no block).
    pub next_block_id: i64,
}

/// The part of a heap event the lifetimes and the event counts need (owned, so that
/// the rows can be handed to another thread).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ev {
    /// Logged inside a moving ReAlloc (its internal Alloc or Free).
    pub internal: bool,
    pub time_ns: i64,
    pub id: i64,
    pub cpu: u16,
    pub pid: u32,
    pub opcode: u8,
    pub heap: u64,
    pub address: u64,
    pub old_address: u64,
    pub size: u64,
    pub old_size: u64,
    pub source: Option<u32>,
    pub stack_id: Option<i64>,
}

impl Ev {
    pub fn of(r: &HeapEventRow, id: i64) -> Ev {
        Ev {
            internal: r.realloc_link.is_some(),
            time_ns: r.time_ns,
            id,
            cpu: r.cpu,
            pid: r.pid,
            opcode: r.opcode,
            heap: r.heap,
            address: r.address.unwrap_or(0),
            old_address: r.old_address.unwrap_or(0),
            size: r.size.unwrap_or(0),
            old_size: r.old_size.unwrap_or(0),
            source: r.source,
            stack_id: r.stack_id,
        }
    }

    /// Whether it plays a part in the lifetimes: not the other opcodes, nor the
    /// Alloc/Free a moving ReAlloc logs with itself (the ReAlloc alone is the transition).
    pub fn takes_part(&self) -> bool {
        match self.opcode {
            op::ALLOC | op::FREE => !self.internal,
            op::REALLOC | op::DESTROY => true,
            _ => false,
        }
    }
}

/// Merges per-CPU streams into time order (see the module notes).
#[derive(Debug)]
pub struct Reorder {
    limit: usize,
    queues: Vec<CpuQueue>,
    slot: FxMap<u16, usize>,
    /// (time, id, queue) of each non-empty queue's first event.
    heads: BinaryHeap<Reverse<(i64, i64, usize)>>,
    waiting: usize,
    /// The most events that waited at once.
    pub most_waiting: usize,
}

#[derive(Debug, Default)]
struct CpuQueue {
    events: VecDeque<Ev>,
    /// The latest time this CPU logged: its later events come after it.
    latest: i64,
}

impl Reorder {
    /// A merge of `cpus` streams (the capture's processor count: a CPU whose first
    /// buffer comes late in the file must be waited for from the start; more CPUs join
    /// when they show up), holding at most `limit` events.
    pub fn new(limit: usize, cpus: u32) -> Reorder {
        let mut r = Reorder {
            limit: limit.max(1),
            queues: Vec::new(),
            slot: FxMap::default(),
            heads: BinaryHeap::new(),
            waiting: 0,
            most_waiting: 0,
        };
        // A corrupt header may claim any count; more than this is not a real machine.
        for cpu in 0..cpus.min(4096) as u16 {
            r.queue(cpu);
        }
        r
    }

    fn queue(&mut self, cpu: u16) -> usize {
        let n = self.queues.len();
        let q = *self.slot.entry(cpu).or_insert(n);
        if q == n {
            self.queues.push(CpuQueue {
                events: VecDeque::new(),
                latest: i64::MIN,
            });
        }
        q
    }

    pub fn push(&mut self, e: Ev) {
        let q = self.queue(e.cpu);
        let queue = &mut self.queues[q];
        let key = (e.time_ns, e.id);
        match queue.events.back() {
            // A CPU's own events come in time order; one that does not (after a
            // corrupt, wild timestamp) goes to its place, so that the wild event waits
            // at the end of its CPU's queue instead of holding the others back.
            Some(last) if key < (last.time_ns, last.id) => {
                let at = queue.events.partition_point(|x| (x.time_ns, x.id) <= key);
                queue.events.insert(at, e);
                if at == 0 {
                    // A new first event: the heap's entry for the old one goes stale
                    // (`pop` skips it).
                    self.heads.push(Reverse((e.time_ns, e.id, q)));
                }
            }
            Some(_) => queue.events.push_back(e),
            None => {
                queue.events.push_back(e);
                self.heads.push(Reverse((e.time_ns, e.id, q)));
            }
        }
        // The time of its last event, not the largest: a wild time must not make the
        // CPU look further ahead than it is.
        queue.latest = e.time_ns;
        self.waiting += 1;
        self.most_waiting = self.most_waiting.max(self.waiting);
    }

    /// Releases, in time order, the events no CPU can precede any more, and the oldest
    /// beyond the window.
    pub fn release(&mut self, mut out: impl FnMut(Ev)) {
        let safe = self
            .queues
            .iter()
            .map(|q| q.latest)
            .min()
            .unwrap_or(i64::MIN);
        while let Some((t, _)) = self.first() {
            if t > safe && self.waiting <= self.limit {
                break;
            }
            if let Some(e) = self.pop() {
                out(e);
            }
        }
    }

    /// Releases everything (the capture ended).
    pub fn drain(&mut self, mut out: impl FnMut(Ev)) {
        while let Some(e) = self.pop() {
            out(e);
        }
    }

    /// (time, id) of the earliest waiting event, dropping the heap's stale entries.
    fn first(&mut self) -> Option<(i64, i64)> {
        while let Some(&Reverse((t, id, q))) = self.heads.peek() {
            match self.queues[q].events.front() {
                Some(f) if (f.time_ns, f.id) == (t, id) => return Some((t, id)),
                _ => {
                    self.heads.pop();
                }
            }
        }
        None
    }

    fn pop(&mut self) -> Option<Ev> {
        self.first()?;
        let Reverse((_, _, q)) = self.heads.pop()?;
        let queue = &mut self.queues[q];
        let e = queue.events.pop_front()?;
        if let Some(next) = queue.events.front() {
            self.heads.push(Reverse((next.time_ns, next.id, q)));
        }
        self.waiting -= 1;
        Some(e)
    }
}

/// A live block.
#[derive(Debug, Clone, Copy)]
struct Live {
    start_kind: StartKind,
    start_ns: Option<i64>,
    start_event_id: Option<i64>,
    start_stack_id: Option<i64>,
    size: Option<u64>,
    source: Option<u32>,
    prev_block_id: Option<i64>,
    /// `None` for a chain's first block: its own id, given when it ends.
    chain_id: Option<i64>,
    chain_index: u32,
}

/// A live block as it waits in its heap's map: [`Live`] without the `Option`s (their
/// tags double its size, and the maps hold every live block of the capture).
#[derive(Debug, Clone, Copy)]
struct Packed {
    start_ns: i64,
    start_event_id: i64,
    start_stack_id: i64,
    size: u64,
    prev_block_id: i64,
    chain_id: i64,
    source: u32,
    chain_index: u32,
    start_kind: StartKind,
}

/// "None" in a [`Packed`] field: no id, time or stack id takes this value (stack ids are
/// 63-bit hashes, ids count from 1). For sizes, `u64::MAX` is "None": only a corrupt
/// record claims that size, and it then reads back as unknown.
const NO_I64: i64 = i64::MIN;

impl Packed {
    fn pack(l: Live) -> Packed {
        Packed {
            start_ns: l.start_ns.unwrap_or(NO_I64),
            start_event_id: l.start_event_id.unwrap_or(NO_I64),
            start_stack_id: l.start_stack_id.unwrap_or(NO_I64),
            size: l.size.unwrap_or(u64::MAX),
            prev_block_id: l.prev_block_id.unwrap_or(NO_I64),
            chain_id: l.chain_id.unwrap_or(NO_I64),
            source: l.source.unwrap_or(u32::MAX),
            chain_index: l.chain_index,
            start_kind: l.start_kind,
        }
    }
    fn unpack(self) -> Live {
        let i = |v: i64| (v != NO_I64).then_some(v);
        Live {
            start_kind: self.start_kind,
            start_ns: i(self.start_ns),
            start_event_id: i(self.start_event_id),
            start_stack_id: i(self.start_stack_id),
            size: (self.size != u64::MAX).then_some(self.size),
            source: (self.source != u32::MAX).then_some(self.source),
            prev_block_id: i(self.prev_block_id),
            chain_id: i(self.chain_id),
            chain_index: self.chain_index,
        }
    }
}

/// The blocks of one heap: the live ones by address, and the addresses used before and
/// free now (to tell a block from before the trace from one whose Alloc was lost).
#[derive(Debug, Default)]
struct HeapState {
    live: MixMap<u64, Packed>,
    seen: MixSet<u64>,
}

/// How a block ends.
struct End {
    kind: EndKind,
    ns: Option<i64>,
    event_id: Option<i64>,
    stack_id: Option<i64>,
}

/// Follows the blocks of one capture. Feed it every row as the loader numbers them
/// ([`Tracker::row`]), take the finished lifetimes as they come ([`Tracker::take`]),
/// and end it with [`Tracker::finish`].
#[derive(Debug)]
pub struct Tracker {
    capture_id: i64,
    reorder: Reorder,
    /// (pid, heap) → its index in `states`; the last one looked up, cached (runs of
    /// events on one heap are the rule).
    heaps: FxMap<(u32, u64), usize>,
    states: Vec<HeapState>,
    last_heap: Option<((u32, u64), usize)>,
    usage: FxMap<u32, Usage>,
    counts: FxMap<CountKey, SiteCount>,
    events: FxMap<EventKey, KindCount>,
    stats: LifetimeStats,
    last_ns: i64,
    first_block_id: i64,
    next_block_id: i64,
    done: Vec<BlockRow>,
}

impl Tracker {
    /// A tracker for a capture of `cpus` processors whose block ids start at
    /// `first_block_id`.
    pub fn new(capture_id: i64, first_block_id: i64, cpus: u32) -> Tracker {
        Tracker::with_window(capture_id, first_block_id, cpus, REORDER_EVENTS)
    }

    /// [`Tracker::new`] with another reorder window (events).
    pub fn with_window(capture_id: i64, first_block_id: i64, cpus: u32, window: usize) -> Tracker {
        Tracker {
            capture_id,
            reorder: Reorder::new(window, cpus),
            heaps: FxMap::default(),
            states: Vec::new(),
            last_heap: None,
            usage: FxMap::default(),
            counts: FxMap::default(),
            events: FxMap::default(),
            stats: LifetimeStats::default(),
            last_ns: i64::MIN,
            first_block_id,
            next_block_id: first_block_id,
            done: Vec::new(),
        }
    }

    /// A row of the capture, with its event id.
    pub fn row(&mut self, r: &HeapEventRow, id: i64) {
        self.event(Ev::of(r, id));
    }

    /// [`Tracker::row`] for a row already reduced to an [`Ev`].
    pub fn event(&mut self, e: Ev) {
        let c = self
            .events
            .entry((e.pid, e.heap, e.opcode, e.source, e.internal))
            .or_default();
        c.blocks += 1;
        // Sizes come from the capture: a corrupt one must not overflow a sum.
        c.bytes = c.bytes.saturating_add(e.size);
        if e.takes_part() {
            self.reorder.push(e);
        }
    }

    /// The lifetimes that ended since the last call (after processing what can be).
    pub fn take(&mut self) -> Vec<BlockRow> {
        let mut ready = Vec::new();
        self.reorder.release(|e| ready.push(e));
        for e in ready {
            self.apply(e);
        }
        std::mem::take(&mut self.done)
    }

    /// Ends the capture: processes what waits, ends the live blocks (`process_exited`
    /// for a process that ended during the trace, `live_at_end` otherwise), and returns
    /// the last lifetimes and the summary. `process_end(pid)`: when that process ended
    /// during the trace, if it did.
    pub fn finish(self, process_end: impl Fn(u32) -> Option<i64>) -> (Vec<BlockRow>, Summary) {
        let mut all = Vec::new();
        let summary = self
            .finish_with(process_end, usize::MAX, |mut rows| {
                all.append(&mut rows);
                Ok::<(), std::convert::Infallible>(())
            })
            .unwrap_or_else(|e| match e {});
        (all, summary)
    }

    /// [`Tracker::finish`] handing the last lifetimes to `out` at most `chunk` at a time
    /// (a capture can end with hundreds of thousands of live blocks).
    pub fn finish_with<E>(
        mut self,
        process_end: impl Fn(u32) -> Option<i64>,
        chunk: usize,
        mut out: impl FnMut(Vec<BlockRow>) -> Result<(), E>,
    ) -> Result<Summary, E> {
        let mut ready = Vec::new();
        self.reorder.drain(|e| ready.push(e));
        for e in ready {
            self.apply(e);
        }
        self.stats.most_waiting = self.reorder.most_waiting as u64;
        for (pid, u) in self.usage.iter_mut() {
            let exited = process_end(*pid).is_some();
            u.end_bytes = if exited { 0 } else { u.bytes };
            u.end_blocks = if exited { 0 } else { u.blocks };
        }
        let mut keys: Vec<((u32, u64), usize)> = self.heaps.iter().map(|(k, v)| (*k, *v)).collect();
        keys.sort_unstable();
        for ((pid, heap), h) in keys {
            let state = std::mem::take(&mut self.states[h]);
            let mut live: Vec<(u64, Live)> = state
                .live
                .into_iter()
                .map(|(a, p)| (a, p.unpack()))
                .collect();
            live.sort_unstable_by_key(|x| x.0);
            let exit = process_end(pid);
            for (address, l) in live {
                // A block that started after its pid's process ended belongs to a new
                // process with the same pid (pids are reused): it did not exit.
                let end = match exit {
                    Some(x) if l.start_ns.is_none_or(|s| s <= x) => End {
                        kind: EndKind::ProcessExited,
                        ns: Some(x),
                        event_id: None,
                        stack_id: None,
                    },
                    _ => End {
                        kind: EndKind::LiveAtEnd,
                        ns: None,
                        event_id: None,
                        stack_id: None,
                    },
                };
                self.end_block(pid, heap, address, l, end);
                if self.done.len() >= chunk {
                    out(std::mem::take(&mut self.done))?;
                }
            }
        }
        if !self.done.is_empty() {
            out(std::mem::take(&mut self.done))?;
        }
        let mut counts: BTreeMap<_, _> = self.counts.into_iter().collect();
        counts.retain(|_, c| c.blocks > 0);
        let summary = Summary {
            counts,
            usage: self.usage.into_iter().collect(),
            events: self.events.into_iter().collect(),
            stats: self.stats,
            first_block_id: self.first_block_id,
            next_block_id: self.next_block_id,
        };
        Ok(summary)
    }

    fn apply(&mut self, e: Ev) {
        self.stats.events += 1;
        if e.time_ns < self.last_ns {
            self.stats.out_of_order += 1;
        }
        self.last_ns = self.last_ns.max(e.time_ns);
        match e.opcode {
            op::ALLOC => {
                if e.address == 0 {
                    self.stats.null_address += 1;
                    return;
                }
                let l = Live {
                    start_kind: StartKind::Alloc,
                    start_ns: Some(e.time_ns),
                    start_event_id: Some(e.id),
                    start_stack_id: e.stack_id,
                    size: Some(e.size),
                    source: e.source,
                    prev_block_id: None,
                    chain_id: None,
                    chain_index: 0,
                };
                self.start(&e, e.address, l);
            }
            op::FREE => {
                if e.address == 0 {
                    self.stats.null_address += 1;
                    return;
                }
                let old = self.take_live(&e, e.address, None);
                self.end_block(
                    e.pid,
                    e.heap,
                    e.address,
                    old,
                    End {
                        kind: EndKind::Free,
                        ns: Some(e.time_ns),
                        event_id: Some(e.id),
                        stack_id: e.stack_id,
                    },
                );
            }
            op::REALLOC => {
                if e.address == 0 {
                    self.stats.null_address += 1;
                    return;
                }
                let old = self.take_live(&e, e.old_address, Some(e.old_size));
                let moved = e.address != e.old_address;
                let prev = self.end_block(
                    e.pid,
                    e.heap,
                    e.old_address,
                    old,
                    End {
                        kind: if moved {
                            EndKind::ReallocMoved
                        } else {
                            EndKind::ReallocInPlace
                        },
                        ns: Some(e.time_ns),
                        event_id: Some(e.id),
                        stack_id: e.stack_id,
                    },
                );
                let l = Live {
                    start_kind: StartKind::Realloc,
                    start_ns: Some(e.time_ns),
                    start_event_id: Some(e.id),
                    start_stack_id: e.stack_id,
                    size: Some(e.size),
                    source: e.source,
                    prev_block_id: Some(prev),
                    chain_id: Some(old.chain_id.unwrap_or(prev)),
                    chain_index: old.chain_index + 1,
                };
                self.start(&e, e.address, l);
            }
            op::DESTROY => {
                let Some(&h) = self.heaps.get(&(e.pid, e.heap)) else {
                    return;
                };
                let state = &mut self.states[h];
                let mut live: Vec<(u64, Live)> = Vec::with_capacity(state.live.len());
                for (a, p) in state.live.drain() {
                    state.seen.insert(a);
                    live.push((a, p.unpack()));
                }
                live.sort_unstable_by_key(|x| x.0);
                for (address, l) in live {
                    self.end_block(
                        e.pid,
                        e.heap,
                        address,
                        l,
                        End {
                            kind: EndKind::HeapDestroyed,
                            ns: Some(e.time_ns),
                            event_id: Some(e.id),
                            stack_id: e.stack_id,
                        },
                    );
                }
            }
            _ => return,
        }
        self.check_peak(&e);
    }

    fn check_peak(&mut self, e: &Ev) {
        if let Some(u) = self.usage.get_mut(&e.pid) {
            if u.bytes > u.peak_bytes {
                u.peak_bytes = u.bytes;
                u.peak_blocks = u.blocks;
                u.peak_ns = Some(e.time_ns);
                u.peak_event_id = Some(e.id);
            }
        }
    }

    /// The live block at `address`, or the block this event reveals: one from before
    /// the trace (an address not used before), or one whose Alloc was lost.
    fn take_live(&mut self, e: &Ev, address: u64, size: Option<u64>) -> Live {
        let h = self.heap_index(e.pid, e.heap);
        let state = &mut self.states[h];
        let newly_seen = state.seen.insert(address);
        if let Some(p) = state.live.remove(&address) {
            return p.unpack();
        }
        let kind = if newly_seen {
            StartKind::BeforeTrace
        } else {
            StartKind::LostAlloc
        };
        Live {
            start_kind: kind,
            start_ns: None,
            start_event_id: None,
            start_stack_id: None,
            size,
            source: if e.opcode == op::FREE { e.source } else { None },
            prev_block_id: None,
            chain_id: None,
            chain_index: 0,
        }
    }

    /// A block starts at `address`; one still live there lost its Free.
    fn start(&mut self, e: &Ev, address: u64, l: Live) {
        if let (true, Some(size)) = (l.start_kind.in_trace(), l.size) {
            let u = self.usage.entry(e.pid).or_default();
            u.bytes = u.bytes.saturating_add(size);
            u.blocks += 1;
        }
        let h = self.heap_index(e.pid, e.heap);
        if let Some(old) = self.states[h].live.insert(address, Packed::pack(l)) {
            let old = old.unpack();
            self.end_block(
                e.pid,
                e.heap,
                address,
                old,
                End {
                    kind: EndKind::LostFree,
                    ns: Some(e.time_ns),
                    event_id: Some(e.id),
                    stack_id: None,
                },
            );
        }
    }

    fn heap_index(&mut self, pid: u32, heap: u64) -> usize {
        if let Some((k, h)) = self.last_heap {
            if k == (pid, heap) {
                return h;
            }
        }
        let n = self.states.len();
        let h = *self.heaps.entry((pid, heap)).or_insert(n);
        if h == n {
            self.states.push(HeapState::default());
        }
        self.last_heap = Some(((pid, heap), h));
        h
    }

    /// Writes a lifetime; returns its id.
    fn end_block(&mut self, pid: u32, heap: u64, address: u64, l: Live, end: End) -> i64 {
        let id = self.next_block_id;
        self.next_block_id += 1;
        if let (true, Some(size)) = (l.start_kind.in_trace(), l.size) {
            if let Some(u) = self.usage.get_mut(&pid) {
                u.bytes = u.bytes.saturating_sub(size);
                u.blocks = u.blocks.saturating_sub(1);
            }
        }
        let c = self
            .counts
            .entry((pid, heap, l.start_stack_id, l.start_kind, end.kind))
            .or_default();
        c.blocks += 1;
        c.bytes = c.bytes.saturating_add(l.size.unwrap_or(0));
        if let Some(s) = l.start_ns {
            c.min_start_ns = Some(c.min_start_ns.map_or(s, |m| m.min(s)));
            if let Some(e) = end.ns {
                c.timed += 1;
                c.lifetime_ns += e.saturating_sub(s) as f64;
            }
        }
        self.done.push(BlockRow {
            block_id: id,
            capture_id: self.capture_id,
            pid,
            heap,
            address,
            size: l.size,
            source: l.source,
            start_kind: l.start_kind,
            start_ns: l.start_ns,
            start_event_id: l.start_event_id,
            start_stack_id: l.start_stack_id,
            end_kind: end.kind,
            end_ns: end.ns,
            end_event_id: end.event_id,
            end_stack_id: end.stack_id,
            prev_block_id: l.prev_block_id,
            chain_id: l.chain_id.unwrap_or(id),
            chain_index: l.chain_index,
        });
        id
    }
}
