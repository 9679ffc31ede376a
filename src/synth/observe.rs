//! The observer: what someone following the block lifetime model (heapdb's `blocks`
//! table rules: start/end kinds, ghosts of lost Frees, chains, outstanding bytes) finds
//! in the events the synthesizer WROTE. The generator feeds it each written Alloc,
//! Free, ReAlloc (not the internal Alloc/Free of a moving ReAlloc), Destroy and Process
//! End as it writes them, so the truth comes from the synthesizer itself, not from
//! heapdb's decoder or SQL.

use super::manifest::TruthBlock;
use std::collections::{BTreeMap, HashMap, HashSet};

/// (pid, heap handle, address).
type Key = (u32, u64, u64);

pub(super) struct Life {
    pub id: usize,
    /// The process's index in the generator (for sites and identities).
    pub pi: usize,
    /// The call site of the start event (Alloc / ReAlloc).
    pub site: Option<usize>,
    pub block: TruthBlock,
    /// The id of its chain's first lifetime.
    pub chain: usize,
}

#[derive(Default, Clone)]
pub(super) struct Peak {
    pub bytes: u64,
    pub blocks: u64,
    pub peak_bytes: u64,
    pub peak_blocks: u64,
    pub peak_time_ns: Option<i64>,
}

#[derive(Default)]
pub(super) struct Observer {
    next_id: usize,
    live: HashMap<Key, Life>,
    seen: HashSet<Key>,
    /// Ended lifetimes, when the caller collects them (else only counted).
    collect: bool,
    done: Vec<Life>,
    pub kinds: BTreeMap<String, u64>,
    /// Chain id -> length, for chains of 2 or more.
    chain_len: HashMap<usize, u32>,
    /// Per process index.
    pub peaks: Vec<Peak>,
}

fn counted(kind: &str) -> bool {
    kind == "alloc" || kind == "realloc"
}

impl Observer {
    pub fn new(processes: usize, collect: bool) -> Observer {
        Observer {
            collect,
            peaks: vec![Peak::default(); processes],
            ..Observer::default()
        }
    }

    fn start(&mut self, pi: usize, key: Key, block: TruthBlock, site: Option<usize>) -> Life {
        let id = self.next_id;
        self.next_id += 1;
        if counted(block.start_kind) {
            let p = &mut self.peaks[pi];
            p.bytes += block.size.unwrap_or(0);
            p.blocks += 1;
        }
        self.seen.insert(key);
        Life {
            id,
            pi,
            site,
            block,
            chain: id,
        }
    }

    fn end(&mut self, mut life: Life, kind: &'static str, t: Option<i64>) {
        if counted(life.block.start_kind) {
            let p = &mut self.peaks[life.pi];
            p.bytes -= life.block.size.unwrap_or(0);
            p.blocks -= 1;
        }
        life.block.end_kind = kind;
        life.block.end_ns = t;
        *self
            .kinds
            .entry(format!("{}/{}", life.block.start_kind, kind))
            .or_default() += 1;
        if self.collect {
            self.done.push(life);
        }
    }

    /// A block first seen being freed or reallocated.
    fn unknown_start(&self, key: Key) -> &'static str {
        if self.seen.contains(&key) {
            "lost_alloc"
        } else {
            "before_trace"
        }
    }

    fn after_event(&mut self, pi: usize, t: i64) {
        let p = &mut self.peaks[pi];
        if p.bytes > p.peak_bytes {
            p.peak_bytes = p.bytes;
            p.peak_blocks = p.blocks;
            p.peak_time_ns = Some(t);
        }
    }

    fn new_block(
        key: Key,
        size: Option<u64>,
        source: Option<u32>,
        stack_id: Option<i64>,
        start_kind: &'static str,
        start_ns: Option<i64>,
    ) -> TruthBlock {
        TruthBlock {
            pid: key.0,
            heap: key.1,
            address: key.2,
            size,
            source,
            stack_id,
            start_kind,
            start_ns,
            end_kind: "",
            end_ns: None,
            chain_index: 0,
            chain_len: 1,
        }
    }

    /// A logged Alloc (not the internal one of a moving ReAlloc).
    #[allow(clippy::too_many_arguments)]
    pub fn alloc(
        &mut self,
        pi: usize,
        key: Key,
        size: u64,
        source: u32,
        stack_id: Option<i64>,
        site: Option<usize>,
        t: i64,
    ) {
        if key.2 == 0 {
            return;
        }
        if let Some(ghost) = self.live.remove(&key) {
            self.end(ghost, "lost_free", Some(t));
        }
        let b = Self::new_block(key, Some(size), Some(source), stack_id, "alloc", Some(t));
        let life = self.start(pi, key, b, site);
        self.live.insert(key, life);
        self.after_event(pi, t);
    }

    /// A logged Free (not the internal one of a moving ReAlloc).
    pub fn free(&mut self, pi: usize, key: Key, source: u32, t: i64) {
        if key.2 == 0 {
            return;
        }
        let life = match self.live.remove(&key) {
            Some(l) => l,
            None => {
                let kind = self.unknown_start(key);
                let b = Self::new_block(key, None, Some(source), None, kind, None);
                self.start(pi, key, b, None)
            }
        };
        self.end(life, "free", Some(t));
        self.after_event(pi, t);
    }

    /// A logged ReAlloc; `old` and `new` share pid and heap.
    #[allow(clippy::too_many_arguments)]
    pub fn realloc(
        &mut self,
        pi: usize,
        old: Key,
        new: Key,
        old_size: u64,
        new_size: u64,
        source: u32,
        stack_id: Option<i64>,
        site: Option<usize>,
        t: i64,
    ) {
        if new.2 == 0 {
            return;
        }
        let old_life = match self.live.remove(&old) {
            Some(l) => l,
            None => {
                let kind = self.unknown_start(old);
                let b = Self::new_block(old, Some(old_size), None, None, kind, None);
                self.start(pi, old, b, None)
            }
        };
        let (chain, index) = (old_life.chain, old_life.block.chain_index + 1);
        let moved = new != old;
        self.end(
            old_life,
            if moved {
                "realloc_moved"
            } else {
                "realloc_in_place"
            },
            Some(t),
        );
        if moved {
            if let Some(ghost) = self.live.remove(&new) {
                self.end(ghost, "lost_free", Some(t));
            }
        }
        let mut b = Self::new_block(
            new,
            Some(new_size),
            Some(source),
            stack_id,
            "realloc",
            Some(t),
        );
        b.chain_index = index;
        let mut life = self.start(pi, new, b, site);
        life.chain = chain;
        *self.chain_len.entry(chain).or_insert(1) += 1;
        self.live.insert(new, life);
        self.after_event(pi, t);
    }

    /// Ends every live block matching `pred` with `kind` at `t`; returns how many.
    fn end_where(&mut self, pred: impl Fn(&Key) -> bool, kind: &'static str, t: i64) -> u64 {
        let mut keys: Vec<Key> = self.live.keys().filter(|k| pred(k)).copied().collect();
        keys.sort_unstable();
        for k in &keys {
            if let Some(l) = self.live.remove(k) {
                self.end(l, kind, Some(t));
            }
        }
        keys.len() as u64
    }

    /// A logged Destroy of (pid, heap).
    pub fn destroy(&mut self, pi: usize, pid: u32, heap: u64, t: i64) -> u64 {
        let n = self.end_where(|k| k.0 == pid && k.1 == heap, "heap_destroyed", t);
        self.after_event(pi, t);
        n
    }

    /// A Process End: its live blocks end `process_exited` (outstanding drops to 0).
    pub fn exit(&mut self, pid: u32, t: i64) -> u64 {
        self.end_where(|k| k.0 == pid, "process_exited", t)
    }

    /// End of capture: the rest ends `live_at_end`. Returns the lifetimes (collected
    /// ones in start order, then always the live_at_end ones) and the chain histogram.
    pub fn finish(mut self) -> (Vec<Life>, BTreeMap<String, u64>, Vec<Peak>, Vec<u32>) {
        let mut rest: Vec<Life> = std::mem::take(&mut self.live).into_values().collect();
        rest.sort_unstable_by_key(|l| l.id);
        let collect = self.collect;
        self.collect = true;
        let before = self.done.len();
        for l in rest {
            self.end(l, "live_at_end", None);
        }
        if collect {
            self.done.sort_unstable_by_key(|l| l.id);
        } else {
            self.done.drain(..before);
        }
        let chain_len = &self.chain_len;
        for l in &mut self.done {
            l.block.chain_len = chain_len.get(&l.chain).copied().unwrap_or(1);
        }
        let chains: Vec<u32> = self.chain_len.values().copied().collect();
        (self.done, self.kinds, self.peaks, chains)
    }
}
