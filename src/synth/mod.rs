//! `heapdb synth`: writes `.etl` captures that look like a merged xperf/WPR heap trace,
//! plus a manifest of exactly what was written. No public capture with heap events
//! exists, so tests, benchmarks and newcomers use these.
//!
//! A capture holds: the logfile header; kernel rundown (Process/Thread/Image DCStart,
//! KernelTraceControl ImageID + DbgID_RSDS); heap Create/Alloc/ReAlloc/Free/Destroy and
//! the rarer heap opcodes from several processes and threads, with call sites whose
//! buffers grow geometrically, by small constant steps, or shrink; moving and in-place
//! reallocs (a share of the moving ones logged with their internal Alloc + Free, as the
//! heap notes §4.3 describe); every Source value; optional StackWalk events (plain or
//! stack-key cached); optional WOW64 (32-bit) records; optional LZ77-compressed buffers.
//! By default also what real traces have (each can be turned off, `Options::ideal` turns
//! off all): blocks allocated before the trace, lost Alloc/Free events (the header's
//! EventsLost), a private heap destroyed and a process exiting mid-trace. The generator
//! follows what an observer of the written events finds under the block lifetime model
//! (`observe.rs`): the manifest's `lifetimes` and `generate_file_with_truth`'s blocks.

mod events;
pub mod manifest;
mod observe;
mod ops;
mod program;
pub use program::sites_per_process;
pub mod rng;
mod rundown;
mod sim;
pub mod writer;

pub use manifest::{
    DemoSiteTruth, FileManifest, HeapDestroyTruth, HeapStats, LifetimeTruth, LiveAtEndSite,
    Manifest, PeakTruth, ProcessExitTruth, ProcessStats, ReallocStats, RegressionTruth, SiteStats,
    TruthBlock, TruthOp,
};

use crate::etl::headers::event_header;
use crate::etl::kernel::HEAP_GUID;
use crate::etl::kernel::STACK_WALK_GUID;
use crate::etl::Guid;
use crate::heap::record::HEAP_RANGE_GUID;
use crate::heap::record::{
    encode_payload, op, opcode_name, EventInfo, HeapRecord, Snapshot, Source, SpaceInfo,
};
use crate::heap::rundown::IMAGE_ID_GUID;
use crate::heap::stack::stack_id;
use rng::Rng;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;
use writer::{
    classic_record, event_record, perfinfo_record, system_record, EtlWriter, SessionInfo,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PointerMode {
    /// A 32-bit Windows: x86 logfile header, every record 32-bit.
    P32,
    /// A 64-bit Windows with 64-bit processes only.
    P64,
    /// A 64-bit Windows where some processes are 32-bit (WOW64): their heap records
    /// are SYSTEM32 records inside the 64-bit file.
    Mixed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StackMode {
    None,
    /// A StackWalk event (hook 0x1820) after each Create/Alloc/ReAlloc.
    Plain,
    /// Stack caching: a KeyUser reference after each event, definitions as KeyDelete
    /// (on eviction, keys are then reused) and KeyRundown at the end.
    Keyed,
}

/// The record header heap events are written in. Every capture seen so far uses
/// SYSTEM headers; the others are what a decoder must also accept (see
/// `heap::record::heap_identity`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum HeapHeader {
    /// SYSTEM_TRACE_HEADER with hook 0x10xx (HeapRange: 0x02xx), as the kernel writes.
    System,
    /// Classic EVENT_TRACE_HEADER with the heap provider's GUID.
    Classic,
    /// EVENT_HEADER with the heap provider's GUID; plain stacks travel in the record's
    /// extended data (STACK_TRACE32/64) instead of StackWalk events.
    Event,
}

#[derive(Debug, Clone, Serialize)]
pub struct Options {
    pub files: u32,
    pub events_per_file: u64,
    pub pointer_mode: PointerMode,
    pub processes: u32,
    pub stacks: StackMode,
    pub seed: u64,
    pub compress: bool,
    /// Share of heap operations that are reallocs (the internal Alloc/Free of moving
    /// reallocs come on top).
    pub realloc_share: f64,
    /// Share of moving reallocs logged together with their internal Alloc + Free.
    pub internal_share: f64,
    pub cpus: u16,
    pub buffer_size: u32,
    pub heap_header: HeapHeader,
    /// The program traced (processes, modules, call sites): the same in every capture
    /// of one `program_seed`, whatever `seed` and night (see `program.rs`).
    pub program_seed: u64,
    /// A rebuild of the program: its call sites' RVAs shift, its PDB identity changes;
    /// from 1 on, 64-bit processes load heapdemo.dll's build 2 (fixtures/symbols).
    pub build: u32,
    /// A planted regression: (process index, site index, factor): that site's share
    /// of its process's allocations (and so its reallocs) grows by `factor` per night
    /// (night = the file's index).
    pub regression: Option<(usize, usize, f64)>,
    /// Live blocks each process already holds when the trace starts (allocated before
    /// it, no Alloc logged), in its default heap; frees and reallocs pick among them
    /// like any other block. 0: every block is allocated during the trace.
    pub pre_trace_blocks: u32,
    /// Share of Alloc and Free events (not ReAllocs, not the internal Alloc/Free of a
    /// moving ReAlloc) that happen but are not written, as when the session's buffers
    /// overflow. Their number is the logfile header's EventsLost. 0: nothing is lost.
    pub lost_events: f64,
    /// One private heap (of a process that has one) is destroyed in the middle of the
    /// trace with live blocks in it; no event uses it afterwards.
    pub destroy_mid_trace: bool,
    /// With 2 or more processes, the last one exits at 60-80% of the trace (its
    /// Process End event) and logs nothing afterwards. Otherwise it exits at the end.
    pub exit_mid_trace: bool,
}

impl Options {
    /// The same options without the real-trace irregularities: no blocks from before
    /// the trace, no lost events, no heap destroyed and no process ending mid-trace
    /// (the end-of-trace destroys and process exit stay).
    pub fn ideal(self) -> Options {
        Options {
            pre_trace_blocks: 0,
            lost_events: 0.0,
            destroy_mid_trace: false,
            exit_mid_trace: false,
            ..self
        }
    }
}

impl Default for Options {
    fn default() -> Options {
        Options {
            files: 1,
            events_per_file: 100_000,
            pointer_mode: PointerMode::P64,
            processes: 4,
            stacks: StackMode::None,
            seed: 1,
            compress: false,
            realloc_share: 0.25,
            internal_share: 0.5,
            cpus: 4,
            buffer_size: 65536,
            heap_header: HeapHeader::System,
            program_seed: 1,
            build: 0,
            regression: None,
            pre_trace_blocks: 300,
            lost_events: 0.0005,
            destroy_mid_trace: true,
            exit_mid_trace: true,
        }
    }
}

/// Writes `opts.files` captures into `dir` (in parallel) and `manifest.json` beside them.
pub fn generate(dir: &Path, opts: &Options) -> io::Result<Manifest> {
    use rayon::prelude::*;
    std::fs::create_dir_all(dir)?;
    let files: Vec<io::Result<FileManifest>> = (0..opts.files)
        .into_par_iter()
        .map(|i| {
            let path = dir.join(format!("synth-{:04}-seed{}.etl", i, opts.seed));
            generate_file(&path, opts, i, None)
        })
        .collect();
    let files = files.into_iter().collect::<io::Result<Vec<_>>>()?;
    let manifest = Manifest {
        heapdb_version: env!("CARGO_PKG_VERSION"),
        options: opts.clone(),
        files,
    };
    let f = BufWriter::new(File::create(dir.join("manifest.json"))?);
    serde_json::to_writer_pretty(f, &manifest).map_err(io::Error::other)?;
    Ok(manifest)
}

struct Image {
    base: u64,
    size: u64,
    name: &'static str,
    path: String,
    timedatestamp: u32,
    pdb_guid: Guid,
    pdb_age: u32,
    /// The PDB name of its CodeView (RSDS) record.
    pdb_name: String,
}

#[derive(Debug, Clone, Copy)]
enum Pattern {
    /// Vector-like growth by a factor.
    Geometric(f64),
    /// String-append-like growth by a small constant step (quadratic copying).
    Step(u64),
    /// Trimming: each realloc halves the block.
    Shrink,
    /// Anything.
    Random,
}

struct Site {
    frames: Vec<u64>,
    /// The frames as `module+0xRVA`, innermost first (the identity that survives ASLR).
    module_frames: Vec<String>,
    stack_id: i64,
    pattern: Pattern,
    /// Index of the call site in the frames (the first outside the heap and the CRT).
    call_site: usize,
    /// Relative share of the process's allocations (1, 2 for a site through heapdemo;
    /// grows with `--regression`).
    weight: f64,
}

impl Site {
    /// The call site as `module+0xRVA`.
    fn call_site(&self) -> &str {
        &self.module_frames[self.call_site]
    }
}

struct HeapSim {
    handle: u64,
    next: u64,
    destroyed: bool,
    /// Freed blocks by capacity, reused LIFO (address reuse is real).
    free: HashMap<u64, Vec<u64>>,
    stats: HeapStats,
}

impl HeapSim {
    fn alloc(&mut self, capacity: u64) -> u64 {
        if let Some(a) = self.free.get_mut(&capacity).and_then(Vec::pop) {
            return a;
        }
        let a = self.next;
        self.next += capacity + 16; // block header
        a
    }
    fn release(&mut self, address: u64, capacity: u64) {
        self.free.entry(capacity).or_default().push(address);
    }
}

struct Block {
    heap: usize,
    address: u64,
    size: u64,
    capacity: u64,
    site: usize,
}

struct Proc {
    pid: u32,
    ptr: u8,
    name: &'static str,
    segment_heap: bool,
    threads: Vec<u32>,
    heaps: Vec<HeapSim>,
    images: Vec<Image>,
    sites: Vec<Site>,
    /// The site that creates each private heap (heap 1, 2, ...).
    private_heap_sites: Vec<usize>,
    blocks: Vec<Block>,
    stats: ProcessStats,
}

/// Generates one capture. `truth`, when given, receives every heap event as written.
pub fn generate_file(
    path: &Path,
    opts: &Options,
    file_index: u32,
    truth: Option<&mut Vec<TruthOp>>,
) -> io::Result<FileManifest> {
    generate_file_with_truth(path, opts, file_index, truth, None)
}

/// Generates one capture. `ops`, when given, receives every heap event as written (lost
/// events are not written, so not there); `blocks` every block lifetime the block
/// lifetime model finds in the written events, in start order (see `TruthBlock`).
pub fn generate_file_with_truth(
    path: &Path,
    opts: &Options,
    file_index: u32,
    ops: Option<&mut Vec<TruthOp>>,
    blocks: Option<&mut Vec<TruthBlock>>,
) -> io::Result<FileManifest> {
    let out = BufWriter::with_capacity(1 << 20, File::create(path)?);
    let mut g = Gen::new(opts, file_index, out, ops, blocks)?;
    g.run()?;
    let mut m = g.finish()?;
    m.path = path.display().to_string();
    Ok(m)
}

/// Writes capture number `file_index` of `opts` to any seekable stream (a file, or
/// memory for tests).
pub fn write_capture<W: Write + io::Seek>(
    out: W,
    opts: &Options,
    file_index: u32,
) -> io::Result<FileManifest> {
    let mut g = Gen::new(opts, file_index, out, None, None)?;
    g.run()?;
    g.finish()
}

struct Gen<'t, W: Write + io::Seek> {
    opts: Options,
    rng: Rng,
    w: EtlWriter<W>,
    ptr_file: u8,
    procs: Vec<Proc>,
    ts: u64,
    rec: Vec<u8>,
    payload: Vec<u8>,
    truth: Option<&'t mut Vec<TruthOp>>,
    blocks_out: Option<&'t mut Vec<TruthBlock>>,
    /// The block lifetime model's view of what is written.
    obs: observe::Observer,
    m: FileManifest,
    counts: HashMap<(Guid, i16), u64>,
    heap_events: u64,
    stacks_seen: std::collections::HashSet<i64>,
    /// Stack caching: site (process, index) → key, free keys, next key.
    keys: BTreeMap<(usize, usize), u64>,
    key_frames: BTreeMap<u64, Vec<u64>>,
    free_keys: Vec<u64>,
    next_key: u64,
    key_ptr: u8,
    /// The night: the file's index in the batch.
    night: u32,
}

impl<'t, W: Write + io::Seek> Gen<'t, W> {
    pub(super) fn new(
        opts: &Options,
        file_index: u32,
        out: W,
        truth: Option<&'t mut Vec<TruthOp>>,
        blocks_out: Option<&'t mut Vec<TruthBlock>>,
    ) -> io::Result<Self> {
        let mut rng = Rng::new(opts.seed ^ (file_index as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let ptr_file = if opts.pointer_mode == PointerMode::P32 {
            4
        } else {
            8
        };
        // Nights of captures: each file starts a day after the previous one.
        let start_filetime = 133_800_000_000_000_000u64
            + file_index as u64 * 864_000_000_000
            + rng.below(10_000_000_000);
        let start_raw = 1_000_000_000 + rng.below(1 << 40);
        let session = SessionInfo {
            buffer_size: opts.buffer_size,
            cpus: opts.cpus.max(1),
            pointer_size: ptr_file,
            perf_freq: 10_000_000,
            start_filetime,
            start_raw,
            os_build: if ptr_file == 4 { 19045 } else { 22631 },
            logger_name: if opts.compress {
                "Relogger".into()
            } else {
                "NT Kernel Logger".into()
            },
            log_file_name: format!("C:\\traces\\heap-{file_index:04}.etl"),
            compress: opts.compress,
            pid: 4242,
            tid: 4246,
        };
        let w = EtlWriter::new(out, session)?;
        let m = FileManifest {
            start_time_utc_ns: w.session().unix_ns(start_raw),
            start_raw,
            ..FileManifest::default()
        };
        let mut g = Gen {
            opts: opts.clone(),
            rng,
            w,
            ptr_file,
            procs: Vec::new(),
            ts: start_raw,
            rec: Vec::with_capacity(512),
            payload: Vec::with_capacity(512),
            truth,
            obs: observe::Observer::new(0, blocks_out.is_some()),
            blocks_out,
            m,
            counts: HashMap::new(),
            heap_events: 0,
            stacks_seen: Default::default(),
            keys: BTreeMap::new(),
            key_frames: BTreeMap::new(),
            free_keys: Vec::new(),
            next_key: 0xffff_fa80_0310_0000,
            key_ptr: ptr_file,
            night: file_index,
        };
        *g.counts
            .entry((crate::etl::kernel::EVENT_TRACE_GUID, 0))
            .or_default() += 1;
        g.make_processes();
        g.obs = observe::Observer::new(g.procs.len(), g.blocks_out.is_some());
        Ok(g)
    }

    pub(super) fn tick(&mut self) -> u64 {
        self.ts += 1 + self.rng.below(120);
        self.ts
    }

    pub(super) fn count(&mut self, provider: Guid, opcode: u8) {
        *self.counts.entry((provider, opcode as i16)).or_default() += 1;
    }

    pub(super) fn push_system(
        &mut self,
        cpu: u16,
        ptr: u8,
        version: u8,
        hook: u16,
        tid: u32,
        pid: u32,
    ) -> io::Result<()> {
        system_record(
            &mut self.rec,
            ptr,
            version,
            hook,
            tid,
            pid,
            self.ts,
            &self.payload,
        );
        let (g, o) = crate::etl::kernel::provider_of_hook(hook);
        self.count(g, o);
        self.w.push(cpu, self.ts, &self.rec)
    }

    pub(super) fn put_ptr(&mut self, ptr: u8, v: u64) {
        if ptr == 8 {
            self.payload.extend_from_slice(&v.to_le_bytes());
        } else {
            self.payload.extend_from_slice(&(v as u32).to_le_bytes());
        }
    }
    pub(super) fn put32(&mut self, v: u32) {
        self.payload.extend_from_slice(&v.to_le_bytes());
    }
    pub(super) fn put_utf16z(&mut self, s: &str) {
        for u in s.encode_utf16() {
            self.payload.extend_from_slice(&u.to_le_bytes());
        }
        self.payload.extend_from_slice(&[0, 0]);
    }

    pub(super) fn cpu_of(&self, tid: u32) -> u16 {
        ((tid / 4) % self.opts.cpus.max(1) as u32) as u16
    }

    pub(super) fn finish(self) -> io::Result<FileManifest> {
        let end = self.ts + 1000;
        let Gen {
            mut w,
            opts,
            mut m,
            procs,
            counts,
            heap_events,
            stacks_seen,
            obs,
            blocks_out,
            ..
        } = self;
        let lost = m.lifetimes.lost_allocs + m.lifetimes.lost_frees;
        w.set_events_lost(lost.min(u32::MAX as u64) as u32);
        let (_, written) = w.finish(end)?;
        m.bytes = written.bytes;
        m.buffers = written.buffers;
        m.events = written.records;
        m.heap_events = heap_events;
        m.distinct_stacks = stacks_seen.len() as u64;
        m.counts = counts
            .into_iter()
            .map(|((g, o), n)| (format!("{g}/{o}"), n))
            .collect();
        if let Some((p, s, factor)) = opts.regression {
            if let Some(site) = procs.get(p).and_then(|pr| pr.sites.get(s)) {
                m.regression = Some(RegressionTruth {
                    process: procs[p].stats.identity.clone(),
                    call_site: site.call_site().to_string(),
                    frames: site.module_frames.clone(),
                    factor,
                    weight: site.weight,
                });
            }
        }
        let (lives, kinds, peaks, chains) = obs.finish();
        let lt = &mut m.lifetimes;
        lt.blocks = kinds;
        for len in chains {
            *lt.chains.entry(len).or_default() += 1;
            lt.longest_chain = lt.longest_chain.max(len);
        }
        if lt.longest_chain == 0 && lt.blocks.values().any(|&n| n > 0) {
            lt.longest_chain = 1;
        }
        for (pi, pk) in peaks.iter().enumerate() {
            lt.peaks.push(PeakTruth {
                pid: procs[pi].pid,
                identity: procs[pi].stats.identity.clone(),
                peak_bytes: pk.peak_bytes,
                peak_blocks: pk.peak_blocks,
                peak_time_ns: pk.peak_time_ns,
            });
        }
        let mut by_site: BTreeMap<(usize, usize, Option<i64>), (u64, u64)> = BTreeMap::new();
        for l in &lives {
            let b = &l.block;
            if b.end_kind == "live_at_end" && matches!(b.start_kind, "alloc" | "realloc") {
                m.live_blocks_at_end += 1;
                m.live_bytes_at_end += b.size.unwrap_or(0);
                if let Some(site) = l.site {
                    let e = by_site.entry((l.pi, site, b.stack_id)).or_default();
                    e.0 += 1;
                    e.1 += b.size.unwrap_or(0);
                }
            }
        }
        m.lifetimes.live_at_end_by_site = by_site
            .into_iter()
            .map(|((pi, site, stack_id), (blocks, bytes))| LiveAtEndSite {
                pid: procs[pi].pid,
                process: procs[pi].stats.identity.clone(),
                call_site: procs[pi].sites[site].call_site().to_string(),
                stack_id,
                blocks,
                bytes,
            })
            .collect();
        if let Some(out) = blocks_out {
            out.extend(lives.into_iter().map(|l| l.block));
        }
        for mut p in procs {
            for (st, site) in p.stats.sites.iter_mut().zip(&p.sites) {
                st.weight = site.weight;
            }
            for h in p.heaps {
                m.heaps.push(h.stats);
            }
            m.processes.push(p.stats);
        }
        Ok(m)
    }
}
