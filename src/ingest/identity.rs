//! Identities that survive a reboot: what makes the rows of two nights comparable.
//!
//! Between two captures of the same program everything the operating system chooses
//! changes (image bases under ASLR, pids, thread ids, heap handles, times) and nothing
//! the code decides does. So at the end of each capture the loader names, from the
//! capture's own image map:
//! - **frames** by (module, RVA) — the module loaded at that address in that process
//!   at that time (kernel images for kernel frames); a frame outside every image stays
//!   an address, explicitly;
//! - **sites** (one per distinct stack of a process) by a hash of those frames
//!   ([`site_id`]), with the *call site*: the first frame outside the heap manager,
//!   the C runtimes and the kernel ([`is_heap_module`]), i.e. the code that asked for
//!   memory;
//! - **processes** by image name, disambiguated by a documented rule
//!   ([`process_identities`]);
//! - **heaps** by what they are, not their handle ([`heap identities`](resolve)):
//!   `default`, `private@<call site that created it>`, ...
//!
//! and counts what each site did in each heap (`site_stats`). The loader feeds every
//! row to a [`Tally`] (two hash lookups per row) and [`Tally::resolve`] is a pure
//! function of the tally and the rundown tables. schema/001_tables.sql documents the
//! tables; docs/history.md the rules.
//!
//! Over 600 lines because the four identities (frames, sites, processes, heaps) come
//! out of one tally in one pass and their rules read best together; unit tests follow.

use super::rows::HeapEventRow;
use super::rundown::{ImageRow, ProcessRow, RundownTables};
use crate::heap::record::op;
use std::collections::{BTreeMap, HashMap};

/// Modules whose frames are the heap's and the runtime's, not the caller's: a site's
/// call site is the first frame in none of them. Matched on the lowercase file name;
/// the versioned CRTs (msvcr120.dll, msvcp140.dll, vcruntime140.dll, ...) by prefix.
pub const HEAP_MODULES: &[&str] = &[
    "ntdll.dll",
    "kernelbase.dll",
    "kernel32.dll",
    "ucrtbase.dll",
    "ucrtbased.dll",
    "msvcrt.dll",
    "combase.dll",  // CoTaskMemAlloc
    "oleaut32.dll", // SysAllocString
    "ntoskrnl.exe",
    "wow64.dll",
    "wow64cpu.dll",
    "wow64win.dll",
];
const HEAP_MODULE_PREFIXES: &[&str] = &["msvcr", "msvcp", "vcruntime"];

/// True for a module of the heap manager, the C/C++ runtimes or the kernel.
pub fn is_heap_module(name: &str) -> bool {
    HEAP_MODULES.contains(&name)
        || HEAP_MODULE_PREFIXES
            .iter()
            .any(|p| name.starts_with(p) && name.ends_with(".dll"))
}

/// Kernel-space addresses of a 64-bit machine.
const KERNEL_SPACE: u64 = 0xffff_8000_0000_0000;

use super::fx::FxMap;

/// What the allocations and reallocations of one stack did in one heap.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Allocs (not the internal Alloc of a moving ReAlloc) and their bytes.
    pub allocs: u64,
    pub alloc_bytes: u64,
    pub reallocs: u64,
    /// ReAllocs that moved the block (its data was copied), and the bytes copied.
    pub moves: u64,
    pub bytes_copied: u64,
    /// Bytes added by growing ReAllocs.
    pub bytes_grown: u64,
    /// First time this (process, heap, stack) was seen, for the image map.
    first_ns: i64,
}

impl Counts {
    fn add(&mut self, o: &Counts) {
        self.allocs += o.allocs;
        self.alloc_bytes += o.alloc_bytes;
        self.reallocs += o.reallocs;
        self.moves += o.moves;
        self.bytes_copied += o.bytes_copied;
        self.bytes_grown += o.bytes_grown;
        self.first_ns = self.first_ns.min(o.first_ns);
    }
}

#[derive(Debug, Clone, Copy)]
struct HeapSeen {
    events: u64,
    first_ns: i64,
    /// The Create event: (time, stack).
    created: Option<(i64, Option<i64>)>,
    destroyed_ns: Option<i64>,
}

/// Accumulates, row by row, what the identities of a capture need.
#[derive(Default)]
pub struct Tally {
    stacks: FxMap<i64, Vec<u64>>,
    counts: FxMap<(u32, u64, Option<i64>), Counts>,
    heaps: FxMap<(u32, u64), HeapSeen>,
}

/// One frame of a site: (module, RVA), or an address outside every image.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Frame {
    Module { module: String, rva: u64 },
    Address(u64),
}

impl std::fmt::Display for Frame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Frame::Module { module, rva } => write!(f, "{module}+0x{rva:x}"),
            Frame::Address(a) => write!(f, "0x{a:x}"),
        }
    }
}

/// A site: the frames of a stack as (module, RVA).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SiteRow {
    pub site_id: i64,
    pub frames: Vec<Frame>,
    /// Depth of the call-site frame.
    pub call_depth: usize,
    /// The call-site frame as text (`module+0xRVA`).
    pub call_site: String,
    /// The module of the call-site frame (None: an address outside every image).
    pub caller_module: Option<String>,
}

/// A heap of a capture with its identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeapIdentity {
    pub pid: u32,
    pub heap: u64,
    /// The process's identity.
    pub process: String,
    /// 'default', 'private@<call site>', 'private#n', 'preexisting#n'.
    pub identity: String,
    /// 'default', 'private' or 'preexisting'.
    pub kind: &'static str,
    pub created_ns: Option<i64>,
    pub destroyed_ns: Option<i64>,
    pub create_site_id: Option<i64>,
    pub events: u64,
}

/// What the stacks of one site did in one heap of one capture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SiteStat {
    pub pid: u32,
    pub heap: u64,
    pub process: String,
    pub heap_identity: String,
    /// None: events without a stack.
    pub site_id: Option<i64>,
    pub counts: Counts,
}

/// The identities of a capture (processes get theirs in the rundown tables).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct History {
    pub heaps: Vec<HeapIdentity>,
    /// Sites used by this capture, by id.
    pub sites: Vec<SiteRow>,
    /// (pid, stack_id, site_id)
    pub capture_stacks: Vec<(u32, i64, i64)>,
    pub site_stats: Vec<SiteStat>,
}

/// The stable id of a site: the first 63 bits of the BLAKE3 hash of its frames, each
/// `'m' module '\0' rva(u64 LE)` or `'a' address(u64 LE)`. The same frames give the
/// same id in every database and every heapdb version.
pub fn site_id(frames: &[Frame]) -> i64 {
    let mut h = blake3::Hasher::new();
    for f in frames {
        match f {
            Frame::Module { module, rva } => {
                h.update(b"m");
                h.update(module.as_bytes());
                h.update(b"\0");
                h.update(&rva.to_le_bytes());
            }
            Frame::Address(a) => {
                h.update(b"a");
                h.update(&a.to_le_bytes());
            }
        }
    }
    let b = h.finalize();
    let mut v = [0u8; 8];
    v.copy_from_slice(&b.as_bytes()[..8]);
    (u64::from_le_bytes(v) & (i64::MAX as u64)) as i64
}

impl Tally {
    pub fn new() -> Tally {
        Tally::default()
    }

    /// Stacks defined in the capture (ids may repeat).
    pub fn stacks(&mut self, stacks: &[(i64, Vec<u64>)]) {
        for (id, frames) in stacks {
            self.stacks.entry(*id).or_insert_with(|| frames.clone());
        }
    }

    pub fn row(&mut self, r: &HeapEventRow) {
        if r.heap == 0 {
            return; // events about no heap (AffinitySlotAssigned)
        }
        let h = self.heaps.entry((r.pid, r.heap)).or_insert(HeapSeen {
            events: 0,
            first_ns: r.time_ns,
            created: None,
            destroyed_ns: None,
        });
        h.events += 1;
        match r.opcode {
            op::CREATE if h.created.is_none() => h.created = Some((r.time_ns, r.stack_id)),
            op::DESTROY => h.destroyed_ns = Some(r.time_ns),
            op::ALLOC if r.realloc_link.is_none() => {
                let c = self.count(r);
                c.allocs += 1;
                c.alloc_bytes += r.size.unwrap_or(0);
            }
            op::REALLOC => {
                let (new, old) = (r.size.unwrap_or(0), r.old_size.unwrap_or(0));
                let moved = r.address != r.old_address;
                let c = self.count(r);
                c.reallocs += 1;
                if moved {
                    c.moves += 1;
                    c.bytes_copied += new.min(old);
                }
                c.bytes_grown += new.saturating_sub(old);
            }
            _ => {}
        }
    }

    fn count(&mut self, r: &HeapEventRow) -> &mut Counts {
        self.counts
            .entry((r.pid, r.heap, r.stack_id))
            .or_insert(Counts {
                first_ns: r.time_ns,
                ..Counts::default()
            })
    }

    /// Names everything: sets `identity` of every process of `rundown`, and returns
    /// the heaps, sites, stack → site map and per-site counts.
    pub fn resolve(self, rundown: &mut RundownTables) -> History {
        process_identities(&mut rundown.processes);
        let procs = ProcessIndex::new(&rundown.processes);
        let images = ImageIndex::new(&rundown.images);

        // Sites of the stacks used, per process.
        let mut uses: BTreeMap<(u32, i64), i64> = BTreeMap::new();
        for (&(pid, _, stack), c) in &self.counts {
            if let Some(s) = stack {
                let t = uses.entry((pid, s)).or_insert(c.first_ns);
                *t = (*t).min(c.first_ns);
            }
        }
        for (&(pid, _), h) in &self.heaps {
            if let Some((t, Some(s))) = h.created {
                let e = uses.entry((pid, s)).or_insert(t);
                *e = (*e).min(t);
            }
        }
        let mut sites: BTreeMap<i64, SiteRow> = BTreeMap::new();
        let mut site_of: HashMap<(u32, i64), i64> = HashMap::new();
        let mut capture_stacks = Vec::with_capacity(uses.len());
        for (&(pid, stack), &t) in &uses {
            let Some(addrs) = self.stacks.get(&stack) else {
                continue; // a stack id without frames (an orphan key): no site
            };
            let site = images.site(pid, addrs, t);
            site_of.insert((pid, stack), site.site_id);
            capture_stacks.push((pid, stack, site.site_id));
            sites.entry(site.site_id).or_insert(site);
        }

        // Heaps.
        let heaps = heap_identities(&self.heaps, &procs, &sites, &site_of);
        let heap_name: HashMap<(u32, u64), (&str, &str)> = heaps
            .iter()
            .map(|h| ((h.pid, h.heap), (h.process.as_str(), h.identity.as_str())))
            .collect();

        // Counts per site (stacks of one site add up).
        let mut per: BTreeMap<(u32, u64, Option<i64>), Counts> = BTreeMap::new();
        for (&(pid, heap, stack), c) in &self.counts {
            let site = stack.and_then(|s| site_of.get(&(pid, s)).copied());
            per.entry((pid, heap, site))
                .or_insert(Counts {
                    first_ns: c.first_ns,
                    ..Counts::default()
                })
                .add(c);
        }
        let site_stats = per
            .into_iter()
            .map(|((pid, heap, site_id), counts)| {
                let (process, heap_identity) = heap_name
                    .get(&(pid, heap))
                    .map(|(p, h)| (p.to_string(), h.to_string()))
                    .unwrap_or_else(|| (procs.identity(pid, counts.first_ns), String::new()));
                SiteStat {
                    pid,
                    heap,
                    process,
                    heap_identity,
                    site_id,
                    counts,
                }
            })
            .collect();
        History {
            heaps,
            sites: sites.into_values().collect(),
            capture_stacks,
            site_stats,
        }
    }
}

/// The identity of each process of a capture, the same every night:
/// 1. its image name, lowercase (`pid N` when no rundown named it);
/// 2. when several processes of the capture have that name: the name, a space and the
///    arguments of its command line (the executable's path removed, runs of digits
///    written `#`, spaces collapsed), e.g. `chrome.exe --type=renderer`;
/// 3. when that still repeats: ` #1`, ` #2`, ... appended, in order of start (those
///    running when the trace began first), then pid.
pub fn process_identities(procs: &mut [ProcessRow]) {
    let base: Vec<String> = procs
        .iter()
        .map(|p| match p.name.as_deref().map(str::trim) {
            Some(n) if !n.is_empty() => n.to_lowercase(),
            _ => format!("pid {}", p.pid),
        })
        .collect();
    let mut by_name: HashMap<&str, usize> = HashMap::new();
    for b in &base {
        *by_name.entry(b.as_str()).or_default() += 1;
    }
    let mut ids: Vec<String> = procs
        .iter()
        .zip(&base)
        .map(|(p, b)| {
            if by_name[b.as_str()] == 1 {
                return b.clone();
            }
            let args = normalized_args(p.command_line.as_deref().unwrap_or(""));
            if args.is_empty() {
                b.clone()
            } else {
                format!("{b} {args}")
            }
        })
        .collect();
    let mut groups: HashMap<String, Vec<usize>> = HashMap::new();
    for (i, id) in ids.iter().enumerate() {
        groups.entry(id.clone()).or_default().push(i);
    }
    for (_, mut members) in groups.into_iter().filter(|(_, m)| m.len() > 1) {
        members.sort_by_key(|&i| (procs[i].start_ns.is_some(), procs[i].start_ns, procs[i].pid));
        for (n, i) in members.into_iter().enumerate() {
            ids[i] = format!("{} #{}", ids[i], n + 1);
        }
    }
    for (p, id) in procs.iter_mut().zip(ids) {
        p.identity = id;
    }
}

/// The arguments of a command line: without the executable, digit runs as `#`.
fn normalized_args(cmd: &str) -> String {
    let cmd = cmd.trim();
    let rest = if let Some(r) = cmd.strip_prefix('"') {
        r.split_once('"').map_or("", |x| x.1)
    } else {
        cmd.split_once(char::is_whitespace).map_or("", |x| x.1)
    };
    let mut out = String::with_capacity(rest.len());
    let mut digits = false;
    let mut space = false;
    for c in rest.trim().chars() {
        if c.is_ascii_digit() {
            if !digits {
                out.push('#');
            }
            digits = true;
            space = false;
            continue;
        }
        digits = false;
        if c.is_whitespace() {
            if !space {
                out.push(' ');
            }
            space = true;
            continue;
        }
        space = false;
        out.push(c);
    }
    out.trim().to_string()
}

/// Process identities by pid and time (a pid can be reused within a capture).
struct ProcessIndex<'a> {
    by_pid: HashMap<u32, Vec<&'a ProcessRow>>,
}

impl<'a> ProcessIndex<'a> {
    fn new(procs: &'a [ProcessRow]) -> Self {
        let mut by_pid: HashMap<u32, Vec<&ProcessRow>> = HashMap::new();
        for p in procs {
            by_pid.entry(p.pid).or_default().push(p);
        }
        ProcessIndex { by_pid }
    }

    fn row(&self, pid: u32, t: i64) -> Option<&'a ProcessRow> {
        let rows = self.by_pid.get(&pid)?;
        rows.iter()
            .find(|p| p.start_ns.is_none_or(|s| s <= t) && p.end_ns.is_none_or(|e| t <= e))
            .or(rows.last())
            .copied()
    }

    fn identity(&self, pid: u32, t: i64) -> String {
        self.row(pid, t)
            .map_or_else(|| format!("pid {pid}"), |p| p.identity.clone())
    }
}

/// Images by process, sorted by base.
struct ImageIndex<'a> {
    by_pid: HashMap<u32, Vec<&'a ImageRow>>,
}

impl<'a> ImageIndex<'a> {
    fn new(images: &'a [ImageRow]) -> Self {
        let mut by_pid: HashMap<u32, Vec<&ImageRow>> = HashMap::new();
        for i in images {
            by_pid.entry(i.pid).or_default().push(i);
        }
        for v in by_pid.values_mut() {
            v.sort_by_key(|i| i.base);
        }
        ImageIndex { by_pid }
    }

    /// The image holding `a` in process `pid` at time `t`: loaded then if the map
    /// says so, else any that covers the address.
    fn find(&self, pid: u32, a: u64, t: i64) -> Option<&'a ImageRow> {
        let list = self.by_pid.get(&pid)?;
        let end = list.partition_point(|i| i.base <= a);
        let mut fallback = None;
        // Overlapping images (a DLL unloaded and another loaded in its place) are few:
        // look at the nearest bases only.
        for i in list[..end].iter().rev().take(16) {
            if a - i.base < i.size {
                let alive = i.load_ns.is_none_or(|l| l <= t) && i.unload_ns.is_none_or(|u| t < u);
                if alive {
                    return Some(i);
                }
                fallback.get_or_insert(*i);
            }
        }
        fallback
    }

    /// The site of a stack of process `pid` first used at time `t`.
    fn site(&self, pid: u32, addrs: &[u64], t: i64) -> SiteRow {
        let mut frames = Vec::with_capacity(addrs.len());
        let mut kernel = Vec::with_capacity(addrs.len());
        for &a in addrs {
            let (img, is_kernel) = match self.find(pid, a, t) {
                Some(i) => (Some(i), false),
                None => match self.find(0, a, t) {
                    Some(i) => (Some(i), true),
                    None => (None, a >= KERNEL_SPACE),
                },
            };
            frames.push(match img {
                Some(i) => Frame::Module {
                    module: i.name.clone(),
                    rva: a - i.base,
                },
                None => Frame::Address(a),
            });
            kernel.push(is_kernel);
        }
        let call_depth = frames
            .iter()
            .zip(&kernel)
            .position(|(f, &k)| {
                !k && match f {
                    Frame::Module { module, .. } => !is_heap_module(module),
                    Frame::Address(_) => true,
                }
            })
            .unwrap_or(0);
        let (call_site, caller_module) = match frames.get(call_depth) {
            Some(f @ Frame::Module { module, .. }) => (f.to_string(), Some(module.clone())),
            Some(f) => (f.to_string(), None),
            None => (String::new(), None),
        };
        SiteRow {
            site_id: site_id(&frames),
            frames,
            call_depth,
            call_site,
            caller_module,
        }
    }
}

/// Names the heaps of a capture:
/// - a heap created during the trace: `default` when it is the first heap created by
///   a process that started during the trace (ntdll creates the process heap before
///   any code runs); else `private@<call site of its HeapCreate>` when the Create has
///   a stack (a heap created by a C runtime reads `private@msvcr120.dll+0x...`: the
///   CRT heap), else `private#n` in order of creation;
/// - a heap that existed when the trace began: `default` for the busiest one of a
///   process that has no default heap yet (the process heap serves malloc and new),
///   the others `preexisting#n` by events, most first;
/// - a name that repeats within a process gets ` #2`, ` #3`, ... in order of creation.
fn heap_identities(
    heaps: &FxMap<(u32, u64), HeapSeen>,
    procs: &ProcessIndex<'_>,
    sites: &BTreeMap<i64, SiteRow>,
    site_of: &HashMap<(u32, i64), i64>,
) -> Vec<HeapIdentity> {
    let mut by_pid: BTreeMap<u32, Vec<(u64, HeapSeen)>> = BTreeMap::new();
    for (&(pid, heap), h) in heaps {
        by_pid.entry(pid).or_default().push((heap, *h));
    }
    let mut out = Vec::new();
    for (pid, mut list) in by_pid {
        // Created ones in order of creation, then pre-existing ones by activity.
        list.sort_by_key(|(heap, h)| match h.created {
            Some((t, _)) => (0, t, 0, *heap),
            None => (1, 0, u64::MAX - h.events, *heap),
        });
        let mut has_default = false;
        let mut private_n = 0;
        let mut pre_n = 0;
        let mut seen: HashMap<String, usize> = HashMap::new();
        for (heap, h) in list {
            let t = h.created.map_or(h.first_ns, |c| c.0);
            let proc_row = procs.row(pid, t);
            let process = procs.identity(pid, t);
            let started_in_trace = proc_row.is_some_and(|p| p.start_ns.is_some());
            let create_site_id = h
                .created
                .and_then(|(_, s)| s)
                .and_then(|s| site_of.get(&(pid, s)).copied());
            let (kind, mut identity) = match h.created {
                Some(_) if started_in_trace && !has_default => {
                    has_default = true;
                    ("default", "default".to_string())
                }
                Some(_) => match create_site_id.and_then(|s| sites.get(&s)) {
                    Some(site) => ("private", format!("private@{}", site.call_site)),
                    None => {
                        private_n += 1;
                        ("private", format!("private#{private_n}"))
                    }
                },
                None if !has_default => {
                    has_default = true;
                    ("default", "default".to_string())
                }
                None => {
                    pre_n += 1;
                    ("preexisting", format!("preexisting#{pre_n}"))
                }
            };
            let n = seen.entry(identity.clone()).or_default();
            *n += 1;
            if *n > 1 {
                identity = format!("{identity} #{n}");
            }
            out.push(HeapIdentity {
                pid,
                heap,
                process,
                identity,
                kind,
                created_ns: h.created.map(|c| c.0),
                destroyed_ns: h.destroyed_ns,
                create_site_id,
                events: h.events,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proc(pid: u32, name: &str, cmd: &str, start: Option<i64>) -> ProcessRow {
        ProcessRow {
            pid,
            name: Some(name.into()),
            command_line: Some(cmd.into()),
            start_ns: start,
            seen_as: "rundown",
            ..ProcessRow::default()
        }
    }

    #[test]
    fn processes_are_named_by_the_documented_rule() {
        let mut p = vec![
            proc(8, "Game.exe", "\"C:\\g\\Game.exe\" --level 3", None),
            proc(
                12,
                "chrome.exe",
                "\"C:\\c\\chrome.exe\" --type=renderer --id=17",
                None,
            ),
            proc(4, "chrome.exe", "chrome.exe   --type=gpu-process", None),
            proc(
                20,
                "chrome.exe",
                "\"C:\\c\\chrome.exe\" --type=renderer --id=4",
                Some(5),
            ),
            proc(
                16,
                "chrome.exe",
                "\"C:\\c\\chrome.exe\" --type=renderer --id=9",
                None,
            ),
            ProcessRow {
                pid: 30,
                seen_as: "heap_events_only",
                ..ProcessRow::default()
            },
        ];
        process_identities(&mut p);
        let ids: Vec<&str> = p.iter().map(|p| p.identity.as_str()).collect();
        assert_eq!(
            ids,
            [
                "game.exe",
                "chrome.exe --type=renderer --id=# #1",
                "chrome.exe --type=gpu-process",
                "chrome.exe --type=renderer --id=# #3",
                "chrome.exe --type=renderer --id=# #2",
                "pid 30",
            ]
        );
    }

    #[test]
    fn site_ids_are_stable_and_distinguish_modules_and_addresses() {
        let a = vec![
            Frame::Module {
                module: "ntdll.dll".into(),
                rva: 0x1a2b0,
            },
            Frame::Address(0x1234),
        ];
        // Pinned: changing the hash breaks every database's cross-version history.
        assert_eq!(site_id(&a), site_id(&a.clone()));
        assert_ne!(
            site_id(&a),
            site_id(&[
                Frame::Module {
                    module: "ntdll.dl".into(),
                    rva: 0x1a2b0
                },
                Frame::Address(0x1234)
            ])
        );
        assert!(site_id(&a) >= 0);
    }

    #[test]
    fn frames_resolve_against_the_image_loaded_at_the_time() {
        let img = |pid, base, size, name: &str, load, unload| ImageRow {
            pid,
            base,
            size,
            path: String::new(),
            name: name.into(),
            checksum: 0,
            timedatestamp: 0,
            pdb: None,
            load_ns: load,
            unload_ns: unload,
        };
        let images = vec![
            img(7, 0x1000, 0x1000, "old.dll", None, Some(100)),
            img(7, 0x1000, 0x2000, "new.dll", Some(100), None),
            img(7, 0x10000, 0x1000, "ntdll.dll", None, None),
            img(
                0,
                0xffff_f800_0000_0000,
                0x10000,
                "ntoskrnl.exe",
                None,
                None,
            ),
        ];
        let idx = ImageIndex::new(&images);
        let stack = [0xffff_f800_0000_0100, 0x10010, 0x1010, 0x9999];
        let early = idx.site(7, &stack, 50);
        let late = idx.site(7, &stack, 150);
        assert_eq!(early.call_site, "old.dll+0x10");
        assert_eq!(late.call_site, "new.dll+0x10");
        assert_eq!(early.call_depth, 2);
        assert_eq!(early.frames[0].to_string(), "ntoskrnl.exe+0x100");
        assert_eq!(early.frames[3], Frame::Address(0x9999));
        assert_ne!(early.site_id, late.site_id);
        // Another process with the same stack and no images: addresses, explicitly.
        let other = idx.site(9, &stack[1..], 50);
        assert!(other.frames.iter().all(|f| matches!(f, Frame::Address(_))));
        assert_eq!(other.call_site, "0x10010");
        assert_eq!(other.caller_module, None);
    }
}
