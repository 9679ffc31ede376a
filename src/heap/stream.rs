//! One CPU's buffer stream: matching StackWalk records to the heap events they belong
//! to, and holding each batch back until the CPU's next buffer has been seen.
//!
//! A StackWalk record follows its event in the same CPU's buffer stream, and so do the
//! Alloc/Free a moving ReAlloc logs with itself, but either can spill into that CPU's
//! next buffer (about 1% of stacks do, in synthesized captures). [`CpuStream`] decodes
//! one CPU's buffers in order; CPU streams are independent, so they decode in parallel.

use super::capture::{Batch, HeapRow, Problem, StackRef};
use super::link::link_moving_realloc;
use super::record;
use super::rundown;
use super::stack::{self, KeyTable, StackEvent};
use crate::etl::{Buffer, Error, Event};
use std::collections::HashSet;

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
/// Which batch a recent row lives in.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Bank {
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
        match b.events(scratch) {
            Ok(events) => self.feed_inner(b.index, events, None, keys),
            // A buffer whose records cannot be reached: a problem, not a bad record.
            Err(e) => self.feed_inner(b.index, std::iter::empty(), Some(Problem::from(&e)), keys),
        }
    }

    /// [`CpuStream::feed`] for events from any source ([`crate::decode`]): `events` are
    /// the next events of this CPU, `index` numbers them as a buffer would (row keys
    /// are `(index, position)`), increasing from call to call.
    pub fn feed_events<'e, I>(&mut self, index: u32, events: I, keys: &KeyTable) -> Option<Batch>
    where
        I: IntoIterator<Item = Result<Event<'e>, Error>>,
    {
        self.feed_inner(index, events, None, keys)
    }

    fn feed_inner<'e, I>(
        &mut self,
        index: u32,
        events: I,
        problem: Option<Problem>,
        keys: &KeyTable,
    ) -> Option<Batch>
    where
        I: IntoIterator<Item = Result<Event<'e>, Error>>,
    {
        for r in &mut self.recent {
            r.row = match r.row {
                Some((Bank::Current, i)) => Some((Bank::Held, i)),
                _ => None,
            };
        }
        let mut cur = Batch {
            buffer_index: index,
            rows: Vec::with_capacity(self.last_rows + self.last_rows / 4),
            problems: problem.into_iter().collect(),
            ..Batch::default()
        };
        let mut held = self.held.take();
        self.decode(index, events, &mut cur, held.as_mut());
        self.last_rows = cur.rows.len();
        self.held = Some(cur);
        held.map(|mut h| {
            resolve_stack_keys(&mut h, keys);
            h
        })
    }

    /// Ends the stream: returns the last batch.
    pub fn finish(&mut self, keys: &KeyTable) -> Option<Batch> {
        self.recent.clear();
        self.held.take().map(|mut h| {
            resolve_stack_keys(&mut h, keys);
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

    fn decode<'e, I>(
        &mut self,
        index: u32,
        events: I,
        cur: &mut Batch,
        mut held: Option<&mut Batch>,
    ) where
        I: IntoIterator<Item = Result<Event<'e>, Error>>,
    {
        for (seq, item) in events.into_iter().enumerate() {
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
                        // An EVENT_HEADER record can carry its own stack.
                        let stack = match stack::extended_stack(&e) {
                            Some(frames) => {
                                let id = frames.id();
                                cur.stats.stacks_matched += 1;
                                if self.seen_stacks.insert(id) {
                                    cur.stacks.push((id, frames.to_vec()));
                                }
                                StackRef::Id(id)
                            }
                            None => StackRef::None,
                        };
                        cur.rows.push(HeapRow {
                            event: ev,
                            stack,
                            realloc_link: None,
                            key: (index, seq as u32),
                        });
                        if link_moving_realloc(held.as_deref_mut(), cur) {
                            cur.stats.moving_reallocs_linked += 1;
                        }
                        row_ref = Some((Bank::Current, idx));
                    }
                    Err(err) => {
                        cur.stats.bad_records += 1;
                        cur.stats.heap_undecoded += 1;
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
fn resolve_stack_keys(batch: &mut Batch, keys: &KeyTable) {
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
