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

pub mod rng;
pub mod writer;

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
        }
    }
}

/// One heap event as written: what a decoder must read back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TruthOp {
    #[serde(flatten)]
    pub info: EventInfo,
    pub record: HeapRecord,
    pub stack_id: Option<i64>,
    /// This Alloc/Free was logged as part of a moving ReAlloc.
    pub internal: bool,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct ReallocStats {
    pub total: u64,
    pub moved: u64,
    pub in_place: u64,
    pub grown: u64,
    pub shrunk: u64,
    pub same_size: u64,
    /// Moving reallocs logged with their internal Alloc + Free.
    pub with_internal_alloc_free: u64,
    pub sum_new_size: u64,
    pub sum_old_size: u64,
    pub by_source: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct HeapStats {
    pub pid: u32,
    pub handle: u64,
    pub private: bool,
    pub created: bool,
    pub destroyed: bool,
    pub allocs: u64,
    pub reallocs: u64,
    pub frees: u64,
    pub alloc_bytes: u64,
    pub realloc_new_bytes: u64,
    pub realloc_old_bytes: u64,
    pub other_events: u64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct ProcessStats {
    pub pid: u32,
    pub name: String,
    pub command_line: String,
    pub pointer_size: u8,
    pub segment_heap: bool,
    pub threads: Vec<u32>,
    pub heap_events: u64,
    pub reallocs: u64,
    pub exited: bool,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct FileManifest {
    pub path: String,
    pub bytes: u64,
    pub buffers: u32,
    /// Every record, the logfile header included.
    pub events: u64,
    pub heap_events: u64,
    /// Events per `"<provider>/<opcode>"`, as `heapdb dump --summary` counts them.
    pub counts: BTreeMap<String, u64>,
    /// Heap events per opcode name.
    pub heap_opcodes: BTreeMap<String, u64>,
    pub reallocs: ReallocStats,
    pub alloc_count: u64,
    pub alloc_bytes: u64,
    pub free_count: u64,
    /// Alloc/Free events that belong to a moving ReAlloc.
    pub internal_allocs: u64,
    pub internal_frees: u64,
    pub records_32bit: u64,
    pub events_with_stack: u64,
    pub distinct_stacks: u64,
    pub live_blocks_at_end: u64,
    pub live_bytes_at_end: u64,
    pub start_time_utc_ns: i64,
    /// Raw (QPC, 10 MHz) timestamp of the session start.
    pub start_raw: u64,
    pub processes: Vec<ProcessStats>,
    pub heaps: Vec<HeapStats>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Manifest {
    pub heapdb_version: &'static str,
    pub options: Options,
    pub files: Vec<FileManifest>,
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
}

#[derive(Clone, Copy)]
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
    stack_id: i64,
    pattern: Pattern,
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
    blocks: Vec<Block>,
    stats: ProcessStats,
}

const EXE_NAMES: [&str; 10] = [
    "devenv.exe",
    "chrome.exe",
    "game.exe",
    "SearchIndexer.exe",
    "MsMpEng.exe",
    "excel.exe",
    "msbuild.exe",
    "node.exe",
    "sqlservr.exe",
    "explorer.exe",
];

/// Generates one capture. `truth`, when given, receives every heap event as written.
pub fn generate_file(
    path: &Path,
    opts: &Options,
    file_index: u32,
    truth: Option<&mut Vec<TruthOp>>,
) -> io::Result<FileManifest> {
    let out = BufWriter::with_capacity(1 << 20, File::create(path)?);
    let mut g = Gen::new(opts, file_index, out, truth)?;
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
    let mut g = Gen::new(opts, file_index, out, None)?;
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
}

impl<'t, W: Write + io::Seek> Gen<'t, W> {
    fn new(
        opts: &Options,
        file_index: u32,
        out: W,
        truth: Option<&'t mut Vec<TruthOp>>,
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
            m,
            counts: HashMap::new(),
            heap_events: 0,
            stacks_seen: Default::default(),
            keys: BTreeMap::new(),
            key_frames: BTreeMap::new(),
            free_keys: Vec::new(),
            next_key: 0xffff_fa80_0310_0000,
            key_ptr: ptr_file,
        };
        *g.counts
            .entry((crate::etl::kernel::EVENT_TRACE_GUID, 0))
            .or_default() += 1;
        g.make_processes();
        Ok(g)
    }

    fn tick(&mut self) -> u64 {
        self.ts += 1 + self.rng.below(120);
        self.ts
    }

    fn count(&mut self, provider: Guid, opcode: u8) {
        *self.counts.entry((provider, opcode as i16)).or_default() += 1;
    }

    fn make_processes(&mut self) {
        let n = self.opts.processes.max(1) as usize;
        for i in 0..n {
            let pid = 1000 + 4 * self.rng.range(10, 12_000) as u32;
            let ptr = match self.opts.pointer_mode {
                PointerMode::P32 => 4,
                PointerMode::P64 => 8,
                // One process in three is a WOW64 process.
                PointerMode::Mixed => {
                    if i % 3 == 1 {
                        4
                    } else {
                        8
                    }
                }
            };
            let name = EXE_NAMES[(i + self.rng.below(3) as usize) % EXE_NAMES.len()];
            let segment_heap = ptr == 8 && i % 4 == 3;
            let nthreads = self.rng.range(2, 6) as usize;
            let threads: Vec<u32> = (0..nthreads)
                .map(|k| pid + 4 + 4 * (k as u32 * 7 + self.rng.range(1, 6) as u32))
                .collect();
            let images = self.make_images(ptr, name);
            let mut heaps = Vec::new();
            let nheaps = 1 + self.rng.below(3) as usize;
            for h in 0..nheaps {
                let handle = if ptr == 8 {
                    0x0000_0200_0000_0000
                        + (self.rng.range(0x100, 0xfff) << 24)
                        + ((h as u64) << 20)
                } else {
                    0x0040_0000 + (self.rng.range(0x10, 0x3f) << 24) + ((h as u64) << 20)
                };
                heaps.push(HeapSim {
                    handle,
                    next: handle + 0x800,
                    destroyed: false,
                    free: HashMap::new(),
                    stats: HeapStats {
                        pid,
                        handle,
                        private: h > 0,
                        ..Default::default()
                    },
                });
            }
            let nsites = self.rng.range(8, 24) as usize;
            let sites = (0..nsites)
                .map(|s| {
                    let pattern = match s % 5 {
                        0 => Pattern::Geometric(if s % 2 == 0 { 2.0 } else { 1.5 }),
                        1 => Pattern::Step(*self.rng.pick(&[8u64, 16, 32, 64])),
                        2 => Pattern::Shrink,
                        3 => Pattern::Geometric(2.0),
                        _ => Pattern::Random,
                    };
                    let depth = self.rng.range(4, 14) as usize;
                    let mut frames = vec![
                        images[1].base + 0x1_a2b0 + 0x10 * s as u64, // ntdll!RtlpAllocateHeapInternal
                        images[1].base + 0x3_c5e0,                   // ntdll!RtlReAllocateHeap
                        images[3].base + 0x2_1f40,                   // ucrtbase!_realloc_base
                    ];
                    for d in 3..depth {
                        frames.push(images[0].base + 0x1000 + self.rng.below(0x8_0000) + d as u64);
                    }
                    let stack_id = stack_id(&frames);
                    Site {
                        frames,
                        stack_id,
                        pattern,
                    }
                })
                .collect();
            let cmd = format!(
                "\"C:\\Program Files\\App{i}\\{name}\" --job {}",
                self.rng.below(1000)
            );
            self.procs.push(Proc {
                pid,
                ptr,
                name,
                segment_heap,
                threads: threads.clone(),
                heaps,
                images,
                sites,
                blocks: Vec::new(),
                stats: ProcessStats {
                    pid,
                    name: name.to_string(),
                    command_line: cmd,
                    pointer_size: ptr,
                    segment_heap,
                    threads,
                    ..Default::default()
                },
            });
        }
    }

    fn make_images(&mut self, ptr: u8, exe: &'static str) -> Vec<Image> {
        let names: [(&'static str, &str, u64); 4] = [
            (exe, "\\Program Files\\App", 0x9_8000),
            ("ntdll.dll", "\\Windows\\System32", 0x1f_8000),
            ("kernelbase.dll", "\\Windows\\System32", 0x39_7000),
            ("ucrtbase.dll", "\\Windows\\System32", 0x12_5000),
        ];
        let mut out = Vec::new();
        for (i, (name, dir, size)) in names.into_iter().enumerate() {
            let base = if ptr == 8 {
                if i == 0 {
                    0x7ff6_0000_0000 + (self.rng.below(0xffff) << 16)
                } else {
                    0x7ffc_0000_0000 + ((i as u64) << 28)
                }
            } else if i == 0 {
                0x0040_0000
            } else {
                0x7700_0000 + ((i as u64) << 22)
            };
            let mut g = [0u8; 16];
            for b in g.iter_mut() {
                *b = self.rng.below(256) as u8;
            }
            out.push(Image {
                base,
                size,
                name,
                path: format!("\\Device\\HarddiskVolume3{dir}\\{name}"),
                timedatestamp: 0x6000_0000 + self.rng.below(0x0fff_ffff) as u32,
                pdb_guid: Guid(g),
            });
        }
        out
    }

    fn push_system(
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

    fn put_ptr(&mut self, ptr: u8, v: u64) {
        if ptr == 8 {
            self.payload.extend_from_slice(&v.to_le_bytes());
        } else {
            self.payload.extend_from_slice(&(v as u32).to_le_bytes());
        }
    }
    fn put32(&mut self, v: u32) {
        self.payload.extend_from_slice(&v.to_le_bytes());
    }
    fn put_utf16z(&mut self, s: &str) {
        for u in s.encode_utf16() {
            self.payload.extend_from_slice(&u.to_le_bytes());
        }
        self.payload.extend_from_slice(&[0, 0]);
    }

    fn cpu_of(&self, tid: u32) -> u16 {
        ((tid / 4) % self.opts.cpus.max(1) as u32) as u16
    }

    /// Kernel rundown at the session start: processes, threads, images, PDB ids. The
    /// kernel writes them with the session's pointer size whatever the process's.
    fn rundown(&mut self) -> io::Result<()> {
        let kp = self.ptr_file;
        for pi in 0..self.procs.len() {
            self.tick();
            let (pid, name, cmd) = {
                let p = &self.procs[pi];
                (p.pid, p.name, p.stats.command_line.clone())
            };
            // Process DCStart v4.
            self.payload.clear();
            self.put_ptr(kp, 0xffff_c000_0000_0000 | ((pid as u64) << 8));
            self.put32(pid);
            self.put32(4 + 4 * (pi as u32 % 3));
            self.put32(1);
            self.put32(259);
            self.put_ptr(kp, 0x1_2345_6000 + ((pid as u64) << 12));
            self.put32(0);
            self.put_ptr(kp, 0xffff_b000_0000_0010);
            self.put_ptr(kp, 0);
            self.payload.extend_from_slice(&[1, 5, 0, 0, 0, 0, 0, 5]);
            for sub in [21u32, 1_111_111_111, 222_222_222, 333_333_333, 1001] {
                self.put32(sub);
            }
            self.payload.extend_from_slice(name.as_bytes());
            self.payload.push(0);
            self.put_utf16z(&cmd);
            self.put_utf16z("");
            self.put_utf16z("");
            self.push_system(0, kp, 4, 0x0303, 0, pid)?;
            let threads = self.procs[pi].threads.clone();
            for tid in threads {
                self.payload.clear();
                self.put32(pid);
                self.put32(tid);
                for k in 0..7u64 {
                    self.put_ptr(kp, 0x7f00_0000 + k * 0x1000 + tid as u64);
                }
                self.put32(0);
                self.payload.extend_from_slice(&[8, 5, 2, 0]);
                let cpu = self.cpu_of(tid);
                self.push_system(cpu, kp, 3, 0x0503, tid, pid)?;
            }
            for ii in 0..self.procs[pi].images.len() {
                let (base, size, tds, ipath, iname, guid) = {
                    let im = &self.procs[pi].images[ii];
                    (
                        im.base,
                        im.size,
                        im.timedatestamp,
                        im.path.clone(),
                        im.name,
                        im.pdb_guid,
                    )
                };
                // KernelTraceControl ImageID + DbgID_RSDS, then Image DCStart.
                self.payload.clear();
                self.put_ptr(kp, base);
                self.put_ptr(kp, size);
                self.put32(pid);
                self.put32(tds);
                self.put_utf16z(iname);
                classic_record(
                    &mut self.rec,
                    kp,
                    &IMAGE_ID_GUID,
                    0,
                    2,
                    u32::MAX,
                    pid,
                    self.ts,
                    &self.payload,
                );
                self.count(IMAGE_ID_GUID, 0);
                self.w.push(0, self.ts, &self.rec)?;
                self.payload.clear();
                self.put_ptr(kp, base);
                self.put32(pid);
                self.payload.extend_from_slice(&guid.0);
                self.put32(1);
                let pdb = iname.rsplit_once('.').map(|x| x.0).unwrap_or(iname);
                self.payload
                    .extend_from_slice(format!("{pdb}.pdb").as_bytes());
                self.payload.push(0);
                classic_record(
                    &mut self.rec,
                    kp,
                    &IMAGE_ID_GUID,
                    36,
                    2,
                    u32::MAX,
                    pid,
                    self.ts,
                    &self.payload,
                );
                self.count(IMAGE_ID_GUID, 36);
                self.w.push(0, self.ts, &self.rec)?;
                self.payload.clear();
                self.put_ptr(kp, base);
                self.put_ptr(kp, size);
                self.put32(pid);
                self.put32(0x1234_5678);
                self.put32(tds);
                self.put32(0);
                self.put_ptr(kp, base);
                self.payload.extend_from_slice(&[0; 16]);
                self.put_utf16z(&ipath);
                self.push_system(0, kp, 2, 0x1403, 0, pid)?;
            }
        }
        // Private heaps are created during the trace (the default heap predates it:
        // the heap provider has no rundown).
        for pi in 0..self.procs.len() {
            for hi in 1..self.procs[pi].heaps.len() {
                let tid = self.procs[pi].threads[0];
                let handle = self.procs[pi].heaps[hi].handle;
                let ptr = self.procs[pi].ptr;
                let rec = if ptr == 8 {
                    HeapRecord::Create {
                        heap: handle,
                        flags: 0x0000_1002,
                        reserve_size: Some(0x10_0000),
                        commit_size: Some(0x1000),
                        allocated_size: Some(0x800),
                    }
                } else {
                    HeapRecord::Create {
                        heap: handle,
                        flags: 0x0000_1002,
                        reserve_size: None,
                        commit_size: None,
                        allocated_size: None,
                    }
                };
                self.procs[pi].heaps[hi].stats.created = true;
                let site = self.rng.below(self.procs[pi].sites.len() as u64) as usize;
                self.heap_event(pi, tid, hi, rec, Some(site), false)?;
            }
        }
        Ok(())
    }

    fn source_for(&mut self, pi: usize, size: u64) -> Source {
        if self.procs[pi].segment_heap {
            return Source::SEGMENT;
        }
        if self.rng.chance(0.002) {
            return Source::INVALID;
        }
        if size <= 16 * 1024 {
            if self.rng.chance(0.1) {
                Source::LOOKASIDE
            } else {
                Source::LFH
            }
        } else if size <= 512 * 1024 {
            Source::MAIN
        } else {
            Source::SLOW
        }
    }

    fn sample_size(&mut self) -> u64 {
        let r = self.rng.f64();
        let log2 = if r < 0.7 {
            3.0 + self.rng.f64() * 7.0 // 8 B .. 1 KiB
        } else if r < 0.97 {
            10.0 + self.rng.f64() * 6.0 // 1 .. 64 KiB
        } else {
            16.0 + self.rng.f64() * 5.0 // 64 KiB .. 2 MiB
        };
        (2f64.powf(log2) as u64).max(1)
    }

    fn capacity_for(&mut self, size: u64) -> u64 {
        let granule = 16;
        let base = size.div_ceil(granule) * granule;
        base + granule * self.rng.below(4)
    }

    /// Writes one heap event (and its stack) and records it in the truth and manifest.
    fn heap_event(
        &mut self,
        pi: usize,
        tid: u32,
        heap: usize,
        record: HeapRecord,
        site: Option<usize>,
        internal: bool,
    ) -> io::Result<()> {
        let opcode = record.opcode();
        let cpu = self.cpu_of(tid);
        let stacked = matches!(opcode, op::CREATE | op::ALLOC | op::REALLOC);
        // A cache key is looked up (and another evicted) before the event is logged.
        let cache_key = match (site, self.opts.stacks) {
            (Some(site), StackMode::Keyed) if stacked => Some(self.key_for(pi, site, cpu)?),
            _ => None,
        };
        let ts = self.tick();
        let ptr = self.procs[pi].ptr;
        let pid = self.procs[pi].pid;
        let version = record.version() as u8;
        self.payload.clear();
        encode_payload(&mut self.payload, &record, ptr);
        let range = (op::RANGE_RUNDOWN..=op::RANGE_DESTROY).contains(&opcode);
        let plain_stack = self.opts.stacks == StackMode::Plain && stacked && site.is_some();
        match self.opts.heap_header {
            HeapHeader::System => {
                let hook = if range {
                    0x0200 | opcode as u16
                } else {
                    0x1000 | opcode as u16
                };
                self.push_system(cpu, ptr, version, hook, tid, pid)?;
            }
            form => {
                let guid = if range { HEAP_RANGE_GUID } else { HEAP_GUID };
                if form == HeapHeader::Classic {
                    classic_record(
                        &mut self.rec,
                        ptr,
                        &guid,
                        opcode,
                        version as u16,
                        tid,
                        pid,
                        ts,
                        &self.payload,
                    );
                } else {
                    // The stack as an extended item: MatchId, then the frames.
                    let mut ext = Vec::new();
                    if let (true, Some(site)) = (plain_stack, site) {
                        ext.extend_from_slice(&0u64.to_le_bytes());
                        for &f in &self.procs[pi].sites[site].frames {
                            if ptr == 8 {
                                ext.extend_from_slice(&f.to_le_bytes());
                            } else {
                                ext.extend_from_slice(&(f as u32).to_le_bytes());
                            }
                        }
                    }
                    let kind = if ptr == 8 {
                        event_header::EXT_STACK_TRACE64
                    } else {
                        event_header::EXT_STACK_TRACE32
                    };
                    let items: Vec<(u16, &[u8])> = if ext.is_empty() {
                        Vec::new()
                    } else {
                        vec![(kind, &ext[..])]
                    };
                    event_record(
                        &mut self.rec,
                        ptr,
                        &guid,
                        opcode,
                        version,
                        tid,
                        pid,
                        ts,
                        &items,
                        &self.payload,
                    );
                }
                self.count(guid, opcode);
                self.w.push(cpu, ts, &self.rec)?;
            }
        }
        self.heap_events += 1;
        if ptr == 4 {
            self.m.records_32bit += 1;
        }
        *self
            .m
            .heap_opcodes
            .entry(opcode_name(opcode).unwrap_or("?").to_string())
            .or_default() += 1;
        self.procs[pi].stats.heap_events += 1;
        let hs = &mut self.procs[pi].heaps[heap].stats;
        match &record {
            HeapRecord::Alloc { size, .. } => {
                hs.allocs += 1;
                hs.alloc_bytes += size;
                self.m.alloc_count += 1;
                self.m.alloc_bytes += size;
                if internal {
                    self.m.internal_allocs += 1;
                }
            }
            HeapRecord::Free { .. } => {
                hs.frees += 1;
                self.m.free_count += 1;
                if internal {
                    self.m.internal_frees += 1;
                }
            }
            HeapRecord::ReAlloc {
                new_size, old_size, ..
            } => {
                hs.reallocs += 1;
                hs.realloc_new_bytes += new_size;
                hs.realloc_old_bytes += old_size;
            }
            _ => hs.other_events += 1,
        }
        // Stacks are collected for Create, Alloc and ReAlloc (PerfView's and WPR's
        // defaults), not for Free.
        let mut sid = None;
        if let (Some(site), true) = (site, stacked) {
            match self.opts.stacks {
                StackMode::None => {}
                StackMode::Plain if self.opts.heap_header == HeapHeader::Event => {
                    // Carried by the event's own extended data (above).
                    sid = Some(self.procs[pi].sites[site].stack_id);
                }
                StackMode::Plain => {
                    let frames = &self.procs[pi].sites[site].frames;
                    self.payload.clear();
                    self.payload.extend_from_slice(&ts.to_le_bytes());
                    self.payload.extend_from_slice(&pid.to_le_bytes());
                    self.payload.extend_from_slice(&tid.to_le_bytes());
                    let kp = self.ptr_file;
                    for &f in frames.clone().iter() {
                        self.put_ptr(kp, f);
                    }
                    perfinfo_record(&mut self.rec, kp, 2, 0x1820, ts, &self.payload);
                    self.count(STACK_WALK_GUID, 32);
                    self.w.push(cpu, ts, &self.rec)?;
                    sid = Some(self.procs[pi].sites[site].stack_id);
                }
                StackMode::Keyed => {
                    let key = cache_key.unwrap_or_default();
                    self.payload.clear();
                    self.payload.extend_from_slice(&ts.to_le_bytes());
                    self.payload.extend_from_slice(&pid.to_le_bytes());
                    self.payload.extend_from_slice(&tid.to_le_bytes());
                    let kp = self.key_ptr;
                    self.put_ptr(kp, key);
                    perfinfo_record(&mut self.rec, kp, 2, 0x1826, ts, &self.payload);
                    self.count(STACK_WALK_GUID, 38);
                    self.w.push(cpu, ts, &self.rec)?;
                    sid = Some(self.procs[pi].sites[site].stack_id);
                }
            }
        }
        if let Some(id) = sid {
            self.m.events_with_stack += 1;
            self.stacks_seen.insert(id);
        }
        if let Some(t) = self.truth.as_deref_mut() {
            t.push(TruthOp {
                info: EventInfo {
                    opcode,
                    version: version as u16,
                    pid,
                    tid,
                    cpu,
                    ts_raw: ts,
                    pointer_size: ptr,
                    offset: 0,
                },
                record,
                stack_id: sid,
                internal,
            });
        }
        Ok(())
    }

    /// The cache key of a site's stack; now and then a key is evicted (KeyDelete with
    /// its frames) and its value reused for another stack, as the kernel's cache does.
    fn key_for(&mut self, pi: usize, site: usize, cpu: u16) -> io::Result<u64> {
        if let Some(&k) = self.keys.get(&(pi, site)) {
            return Ok(k);
        }
        if self.keys.len() >= 24 && self.rng.chance(0.5) {
            // Evict a random key: its definition is written now.
            let victim = *self
                .keys
                .keys()
                .nth(self.rng.below(self.keys.len() as u64) as usize)
                .unwrap_or(&(pi, site));
            if let Some(k) = self.keys.remove(&victim) {
                let frames = self.key_frames.remove(&k).unwrap_or_default();
                self.write_key_def(0x1823, k, &frames, cpu)?;
                self.free_keys.push(k);
            }
        }
        let k = self.free_keys.pop().unwrap_or_else(|| {
            self.next_key += 0x40;
            self.next_key
        });
        self.keys.insert((pi, site), k);
        self.key_frames
            .insert(k, self.procs[pi].sites[site].frames.clone());
        Ok(k)
    }

    fn write_key_def(&mut self, hook: u16, key: u64, frames: &[u64], cpu: u16) -> io::Result<()> {
        self.payload.clear();
        let kp = self.key_ptr;
        self.put_ptr(kp, key);
        for &f in frames {
            self.put_ptr(kp, f);
        }
        let ts = self.tick();
        perfinfo_record(&mut self.rec, kp, 2, hook, ts, &self.payload);
        self.count(STACK_WALK_GUID, hook as u8);
        self.w.push(cpu, ts, &self.rec)
    }

    fn pick_heap(&mut self, pi: usize) -> usize {
        let n = self.procs[pi].heaps.len();
        loop {
            let h = if n == 1 || self.rng.chance(0.6) {
                0
            } else {
                self.rng.range(1, n as u64 - 1) as usize
            };
            if !self.procs[pi].heaps[h].destroyed {
                return h;
            }
        }
    }

    fn do_alloc(&mut self, pi: usize, tid: u32) -> io::Result<()> {
        let heap = self.pick_heap(pi);
        let site = self.rng.below(self.procs[pi].sites.len() as u64) as usize;
        let size = self.sample_size();
        let capacity = self.capacity_for(size);
        let address = self.procs[pi].heaps[heap].alloc(capacity);
        let source = self.source_for(pi, size);
        let handle = self.procs[pi].heaps[heap].handle;
        self.procs[pi].blocks.push(Block {
            heap,
            address,
            size,
            capacity,
            site,
        });
        self.heap_event(
            pi,
            tid,
            heap,
            HeapRecord::Alloc {
                heap: handle,
                size,
                address,
                source,
            },
            Some(site),
            false,
        )
    }

    fn do_free(&mut self, pi: usize, tid: u32) -> io::Result<()> {
        if self.procs[pi].blocks.is_empty() {
            return self.do_alloc(pi, tid);
        }
        let i = self.rng.below(self.procs[pi].blocks.len() as u64) as usize;
        let b = self.procs[pi].blocks.swap_remove(i);
        let source = self.source_for(pi, b.size);
        let h = &mut self.procs[pi].heaps[b.heap];
        h.release(b.address, b.capacity);
        let handle = h.handle;
        self.heap_event(
            pi,
            tid,
            b.heap,
            HeapRecord::Free {
                heap: handle,
                address: b.address,
                source,
            },
            None,
            false,
        )
    }

    fn do_realloc(&mut self, pi: usize, tid: u32) -> io::Result<()> {
        if self.procs[pi].blocks.is_empty() {
            return self.do_alloc(pi, tid);
        }
        // Growing buffers are realloc'ed again and again: prefer recent blocks.
        let n = self.procs[pi].blocks.len();
        let i = if self.rng.chance(0.7) {
            n - 1 - self.rng.below(n.min(8) as u64) as usize
        } else {
            self.rng.below(n as u64) as usize
        };
        let (heap, address, old_size, capacity, site) = {
            let b = &self.procs[pi].blocks[i];
            (b.heap, b.address, b.size, b.capacity, b.site)
        };
        let new_size = match self.procs[pi].sites[site].pattern {
            Pattern::Geometric(f) => ((old_size as f64 * f) as u64).max(old_size + 1),
            Pattern::Step(s) => old_size + s,
            Pattern::Shrink => (old_size / 2).max(8),
            Pattern::Random => {
                if self.rng.chance(0.1) {
                    old_size
                } else {
                    self.sample_size()
                }
            }
        }
        .min(64 << 20);
        let source = self.source_for(pi, new_size);
        let handle = self.procs[pi].heaps[heap].handle;
        let in_place = new_size <= capacity && (new_size >= old_size || self.rng.chance(0.8));
        let (new_address, new_capacity) = if in_place {
            (address, capacity)
        } else {
            let cap = self.capacity_for(new_size);
            let a = self.procs[pi].heaps[heap].alloc(cap);
            (a, cap)
        };
        let moved = new_address != address;
        let internal = moved && self.rng.chance(self.opts.internal_share);
        if internal {
            let old_source = self.source_for(pi, old_size);
            self.heap_event(
                pi,
                tid,
                heap,
                HeapRecord::Alloc {
                    heap: handle,
                    size: new_size,
                    address: new_address,
                    source,
                },
                Some(site),
                true,
            )?;
            self.heap_event(
                pi,
                tid,
                heap,
                HeapRecord::Free {
                    heap: handle,
                    address,
                    source: old_source,
                },
                None,
                true,
            )?;
        }
        if moved {
            self.procs[pi].heaps[heap].release(address, capacity);
        }
        let b = &mut self.procs[pi].blocks[i];
        b.address = new_address;
        b.size = new_size;
        b.capacity = new_capacity;
        let r = &mut self.m.reallocs;
        r.total += 1;
        if moved {
            r.moved += 1;
        } else {
            r.in_place += 1;
        }
        match new_size.cmp(&old_size) {
            std::cmp::Ordering::Greater => r.grown += 1,
            std::cmp::Ordering::Less => r.shrunk += 1,
            std::cmp::Ordering::Equal => r.same_size += 1,
        }
        if internal {
            r.with_internal_alloc_free += 1;
        }
        r.sum_new_size += new_size;
        r.sum_old_size += old_size;
        *r.by_source.entry(source.to_string()).or_default() += 1;
        self.procs[pi].stats.reallocs += 1;
        let rec = HeapRecord::ReAlloc {
            heap: handle,
            new_address,
            old_address: address,
            new_size,
            old_size,
            source,
        };
        self.heap_event(pi, tid, heap, rec, Some(site), false)
    }

    /// A rare heap event of the other opcodes, so every layout is exercised.
    fn do_other(&mut self, pi: usize, tid: u32) -> io::Result<()> {
        let heap = self.pick_heap(pi);
        let h = self.procs[pi].heaps[heap].handle;
        let sub = h + 0x1_0000 + 0x400 * self.rng.below(64);
        let r = &mut self.rng;
        let space = |r: &mut Rng, v3: bool| SpaceInfo {
            free_space: r.range(0x1000, 0x10_0000),
            committed_space: r.range(0x10_0000, 0x100_0000),
            reserved_space: 0x100_0000,
            allocated_space: v3.then(|| r.range(0x1000, 0x10_0000)),
        };
        let opcode = [
            37u8, 38, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51, 52, 53, 54, 55, 56, 57, 58, 102, 103,
        ][r.below(21) as usize];
        let rec = match opcode {
            op::EXPAND => HeapRecord::Expand {
                heap: h,
                size: 0x1_0000,
                address: sub,
                ucr_count: 3,
                space: Box::new(space(r, true)),
            },
            op::CONTRACT => HeapRecord::Contract {
                heap: h,
                size: 0x1_0000,
                address: sub,
                ucr_count: 2,
                space: Box::new(space(r, true)),
            },
            op::SNAPSHOT => {
                let v3 = r.chance(0.5);
                HeapRecord::Snapshot(Box::new(Snapshot {
                    opcode,
                    heap: h,
                    space: space(r, v3),
                    heap_flags: 0x1002,
                    process_id: self.procs[pi].pid,
                    large_ucr_space: 0x2000,
                    free_list_length: r.range(1, 100) as u32,
                    ucr_length: 4,
                }))
            }
            op::LOCK | op::UNLOCK | op::VALIDATE | op::WALK => {
                HeapRecord::HeapOnly { opcode, heap: h }
            }
            47..=50 => HeapRecord::Subsegment {
                opcode,
                heap: h,
                subsegment: sub,
                subsegment_size: 0x4000,
                block_size: 16 * r.range(1, 64),
            },
            op::COMMIT | op::DECOMMIT => HeapRecord::CommitDecommit {
                opcode,
                heap: h,
                block: sub,
                size: 0x1000 * r.range(1, 16),
                caller: r.range(1, 13) as u32,
            },
            op::SUBSEGMENT_INIT => HeapRecord::SubsegmentInit {
                heap: h,
                subsegment: sub,
                block_size: 32,
                block_count: 128,
                affinity_index: r.below(4) as u32,
            },
            op::AFFINITY_MANAGER_ENABLE => HeapRecord::AffinityManagerEnable {
                heap: h,
                bucket_index: r.below(128) as u32,
            },
            op::AFFINITY_SLOT_ASSIGNED => HeapRecord::AffinitySlotAssigned {
                slot_index: r.below(16) as u32,
            },
            op::SUBSEGMENT_ACTIVATED => HeapRecord::SubsegmentActivated {
                heap: h,
                subsegment: sub,
            },
            op::AFFINITY_SLOT_CHANGED => HeapRecord::AffinitySlotChanged {
                heap: h,
                subsegment: sub,
                slot_index: r.below(16) as u32,
            },
            op::SUBSEGMENT_REUSE_THRESHOLD => HeapRecord::SubsegmentReuseThreshold {
                heap: h,
                subsegment: sub,
                bucket_index: r.below(128) as u32,
            },
            _ => HeapRecord::Range {
                opcode,
                heap: h,
                address: sub,
                size: 0x10_0000,
            },
        };
        self.heap_event(pi, tid, heap, rec, None, false)
    }

    fn run(&mut self) -> io::Result<()> {
        self.rundown()?;
        let target = self.opts.events_per_file;
        let share = self.opts.realloc_share.clamp(0.0, 1.0);
        while self.heap_events < target {
            let pi = self.rng.below(self.procs.len() as u64) as usize;
            let tid = *self.rng.pick(&self.procs[pi].threads);
            let r = self.rng.f64();
            if r < 0.004 {
                self.do_other(pi, tid)?;
            } else if r < 0.004 + share {
                self.do_realloc(pi, tid)?;
            } else {
                // Slightly more allocs than frees: memory grows over the capture.
                let rest = (r - 0.004 - share) / (1.0 - 0.004 - share).max(1e-9);
                if rest < 0.56 || self.procs[pi].blocks.len() < 4 {
                    self.do_alloc(pi, tid)?;
                } else {
                    self.do_free(pi, tid)?;
                }
            }
        }
        // End of capture: some private heaps are destroyed (their blocks go with them),
        // one process exits, and the cached stack keys are run down.
        for pi in 0..self.procs.len() {
            for hi in 1..self.procs[pi].heaps.len() {
                if self.rng.chance(0.5) {
                    let tid = self.procs[pi].threads[0];
                    let handle = self.procs[pi].heaps[hi].handle;
                    self.heap_event(
                        pi,
                        tid,
                        hi,
                        HeapRecord::HeapOnly {
                            opcode: op::DESTROY,
                            heap: handle,
                        },
                        None,
                        false,
                    )?;
                    self.procs[pi].heaps[hi].destroyed = true;
                    self.procs[pi].heaps[hi].stats.destroyed = true;
                    self.procs[pi].blocks.retain(|b| b.heap != hi);
                }
            }
        }
        if self.opts.stacks == StackMode::Keyed {
            let live: Vec<(u64, Vec<u64>)> =
                std::mem::take(&mut self.key_frames).into_iter().collect();
            for (k, frames) in live {
                self.write_key_def(0x1824, k, &frames, 0)?;
            }
        }
        if self.procs.len() > 1 {
            let pi = self.procs.len() - 1;
            self.tick();
            let (pid, name) = (self.procs[pi].pid, self.procs[pi].name);
            let kp = self.ptr_file;
            self.payload.clear();
            self.put_ptr(kp, 0xffff_c000_0000_0000 | ((pid as u64) << 8));
            self.put32(pid);
            self.put32(4);
            self.put32(1);
            self.put32(0);
            self.put_ptr(kp, 0x1_2345_6000);
            self.put32(0);
            self.put32(0); // no SID
            self.payload.extend_from_slice(name.as_bytes());
            self.payload.push(0);
            self.put_utf16z("");
            self.put_utf16z("");
            self.put_utf16z("");
            self.push_system(0, kp, 4, 0x0302, 0, pid)?;
            self.procs[pi].stats.exited = true;
        }
        Ok(())
    }

    fn finish(self) -> io::Result<FileManifest> {
        let end = self.ts + 1000;
        let Gen {
            w,
            mut m,
            procs,
            counts,
            heap_events,
            stacks_seen,
            ..
        } = self;
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
        for p in procs {
            for b in &p.blocks {
                m.live_blocks_at_end += 1;
                m.live_bytes_at_end += b.size;
            }
            for h in p.heaps {
                m.heaps.push(h.stats);
            }
            m.processes.push(p.stats);
        }
        Ok(m)
    }
}
