//! The program: what stays the same from night to night.
//!
//! Real nightly captures of one product differ in everything the operating system
//! chooses (image bases under ASLR, pids, thread ids, heap handles, timestamps) and in
//! nothing the code decides: the same executables load the same modules, and the same
//! call sites (the same return addresses relative to their module) allocate and
//! reallocate. So the synthesizer draws the program (processes by name and command line,
//! their modules, call sites as module + RVA frames, private heaps and where they are
//! created) from `--program-seed` and `--build` only, and everything a run chooses from
//! `--seed` and the night (the file's index). `--build N` is a rebuild: the executable's
//! code moves (its call sites' RVAs shift) and it gets a new PDB identity, while what
//! the code does (the functions, and so the site patterns) stays.
//!
//! Every process also loads `heapdemo.dll`, the real DLL of fixtures/symbols (its PE
//! and PDB identity and its return addresses come from `symbols::demo_module`, generated
//! from the fixture by LLVM's tools): 64-bit processes the x64 build, or its rebuild
//! x64-build2 from `--build 1` on (a rebuild of the program rebuilds its DLL too), 32-bit
//! ones the x86 build. About a third of each process's call sites allocate through it:
//! the heap's ntdll frames, then one of the demo's call chains (line reader, JSON
//! writer, vector), then a few of the executable's frames (the code calling
//! heapdemo_run). Which sites, and which chain, depend on `--program-seed` only, so a
//! rebuild keeps them and only their RVAs move.

use super::rng::Rng;
use super::Pattern;
use crate::etl::Guid;
use crate::symbols::demo_module::{self, DemoBuild};

/// Executables of the simulated machine; the names repeat on purpose (two processes of
/// one program, told apart by their command lines).
const EXES: [(&str, &str); 12] = [
    ("devenv.exe", ""),
    ("chrome.exe", "--type=browser"),
    ("game.exe", "--level 3"),
    ("chrome.exe", "--type=renderer"),
    ("SearchIndexer.exe", "/Embedding"),
    ("msbuild.exe", "/m /nr:false"),
    ("excel.exe", ""),
    ("node.exe", "server.js"),
    ("sqlservr.exe", "-sMSSQLSERVER"),
    ("explorer.exe", ""),
    ("MsMpEng.exe", ""),
    ("chrome.exe", "--type=gpu-process"),
];

/// A module of a process: file name, directory, size of image, and the identity of
/// its PDB as its CodeView (RSDS) record names it.
#[derive(Debug, Clone)]
pub(super) struct ProgramModule {
    pub name: &'static str,
    pub dir: &'static str,
    pub size: u64,
    pub timedatestamp: u32,
    pub pdb_guid: Guid,
    pub pdb_age: u32,
    pub pdb_name: String,
}

impl ProgramModule {
    /// A module the synthesizer makes up: `<stem>.pdb`, age 1.
    fn made_up(
        name: &'static str,
        dir: &'static str,
        size: u64,
        timedatestamp: u32,
        pdb_guid: Guid,
    ) -> ProgramModule {
        let stem = name.rsplit_once('.').map(|x| x.0).unwrap_or(name);
        ProgramModule {
            name,
            dir,
            size,
            timedatestamp,
            pdb_guid,
            pdb_age: 1,
            pdb_name: format!("{stem}.pdb"),
        }
    }

    /// A build of the real fixture DLL.
    fn demo(b: &DemoBuild) -> ProgramModule {
        ProgramModule {
            name: b.image_name,
            dir: "\\Program Files\\App",
            size: b.size_of_image as u64,
            timedatestamp: b.time_date_stamp,
            pdb_guid: b.pdb_guid,
            pdb_age: b.pdb_age,
            pdb_name: b.pdb_name.to_string(),
        }
    }
}

/// A call site that allocates through heapdemo.dll.
#[derive(Debug, Clone, Copy)]
pub(super) struct DemoSite {
    pub build: &'static DemoBuild,
    /// The demo call chain its frames hold (`line_reader`, `json_writer`, `vector`).
    pub chain: &'static str,
    /// The outer function of its first heapdemo frame that is not heap_realloc, as
    /// llvm-symbolizer names it: what symbolization must give as its call function.
    pub call_function: &'static str,
}

/// The heap implementation's frames every site starts with, then the caller's.
#[derive(Debug, Clone)]
pub(super) struct ProgramSite {
    /// (module index, RVA) per frame, innermost first.
    pub frames: Vec<(usize, u64)>,
    pub pattern: Pattern,
    /// The first frame outside the heap manager and the C runtime (heapdb's call site).
    pub call_site: usize,
    /// Relative share of its process's allocations, before any `--regression`.
    pub weight: f64,
    pub demo: Option<DemoSite>,
}

#[derive(Debug, Clone)]
pub(super) struct ProgramProcess {
    pub exe: &'static str,
    pub args: &'static str,
    pub ptr: u8,
    pub segment_heap: bool,
    /// [exe, ntdll.dll, kernelbase.dll, ucrtbase.dll, heapdemo.dll]
    pub modules: Vec<ProgramModule>,
    pub sites: Vec<ProgramSite>,
    /// The site that creates each private heap (heap 1, 2, ...).
    pub private_heaps: Vec<usize>,
}

/// Module indexes.
pub(super) const EXE: usize = 0;
pub(super) const NTDLL: usize = 1;
pub(super) const UCRTBASE: usize = 3;
pub(super) const DEMO: usize = 4;
/// The frames of a site that does not go through heapdemo: three of the heap and the
/// CRT, then the program's own.
pub(super) const FIRST_CALLER: usize = 3;
/// A heapdemo site's frames: two of the heap (ntdll), then heapdemo's, from
/// heap_realloc's call through its allocator pointer on.
const DEMO_FIRST_CALLER: usize = 2;
/// Weight of a heapdemo site (the others have 1): they are among the busier sites.
const DEMO_WEIGHT: f64 = 2.0;

/// The heapdemo build a process of pointer size `ptr` loads in build `build` of the
/// program.
pub(super) fn demo_build(ptr: u8, build: u32) -> &'static DemoBuild {
    match (ptr, build) {
        (4, _) => &demo_module::X86,
        (_, 0) => &demo_module::X64,
        _ => &demo_module::X64_BUILD2,
    }
}

fn guid(rng: &mut Rng) -> Guid {
    let mut g = [0u8; 16];
    for b in g.iter_mut() {
        *b = rng.below(256) as u8;
    }
    Guid(g)
}

/// The first `n` processes of the program of `seed`, built as of `build`, with the
/// pointer sizes of `mode` (a WOW64 process every third one in a mixed machine).
pub(super) fn program(
    seed: u64,
    build: u32,
    n: usize,
    pointer: super::PointerMode,
) -> Vec<ProgramProcess> {
    let mut rng = Rng::new(seed ^ 0x7072_6f67_7261_6d00);
    // System modules are the same in every process and every build of the program.
    let system = |name: &'static str, size: u64, rng: &mut Rng| {
        let tds = 0x6000_0000 + rng.below(0x0fff_ffff) as u32;
        ProgramModule::made_up(name, "\\Windows\\System32", size, tds, guid(rng))
    };
    let ntdll = system("ntdll.dll", 0x1f_8000, &mut rng);
    let kernelbase = system("kernelbase.dll", 0x39_7000, &mut rng);
    let ucrtbase = system("ucrtbase.dll", 0x12_5000, &mut rng);
    (0..n)
        .map(|i| {
            let (exe, args) = EXES[i % EXES.len()];
            let ptr = match pointer {
                super::PointerMode::P32 => 4,
                super::PointerMode::P64 => 8,
                super::PointerMode::Mixed => {
                    if i % 3 == 1 {
                        4
                    } else {
                        8
                    }
                }
            };
            let mut prng = Rng::new(rng.next_u64() ^ i as u64);
            // A rebuild gets a new PDB identity and moves the code.
            let mut brng = Rng::new(prng.next_u64() ^ (build as u64).wrapping_mul(0x9E37_79B9));
            let tds = 0x6500_0000 + brng.below(0x0fff_ffff) as u32;
            let exe_module = ProgramModule::made_up(
                exe,
                "\\Program Files\\App",
                0x9_8000 + 0x1000 * build as u64,
                tds,
                guid(&mut brng),
            );
            let nsites = prng.range(8, 24) as usize;
            let mut sites: Vec<ProgramSite> = (0..nsites)
                .map(|s| {
                    let pattern = match s % 5 {
                        0 => Pattern::Geometric(if s % 2 == 0 { 2.0 } else { 1.5 }),
                        1 => Pattern::Step(*prng.pick(&[8u64, 16, 32, 64])),
                        2 => Pattern::Shrink,
                        3 => Pattern::Geometric(2.0),
                        _ => Pattern::Random,
                    };
                    let depth = prng.range(4, 14) as usize;
                    let mut frames = vec![
                        (NTDLL, 0x1_a2b0 + 0x10 * s as u64), // ntdll!RtlpAllocateHeapInternal
                        (NTDLL, 0x3_c5e0),                   // ntdll!RtlReAllocateHeap
                        (UCRTBASE, 0x2_1f40),                // ucrtbase!_realloc_base
                    ];
                    for d in 3..depth {
                        // Functions of the program; a rebuild moves each of them by a
                        // multiple of 16 bytes, as a code change and a relink do.
                        let rva = 0x1000 + prng.below(0x8_0000) + d as u64;
                        frames.push((EXE, rva + 0x30 * build as u64 * (1 + (rva >> 12) % 3)));
                    }
                    ProgramSite {
                        frames,
                        pattern,
                        call_site: FIRST_CALLER,
                        weight: 1.0,
                        demo: None,
                    }
                })
                .collect();
            let private_heaps: Vec<usize> = (0..prng.below(3) as usize)
                .map(|h| (h * 5 + 1) % nsites)
                .collect();
            // Sites through heapdemo: drawn from a generator of their own (a function of
            // the program seed and the process only), so the rest of the program is
            // what it was before heapdemo came, and a rebuild keeps the choice.
            let dbuild = demo_build(ptr, build);
            let mut drng = Rng::new(seed ^ 0x6865_6170_6465_6d6f ^ ((i as u64) << 32));
            // Not the sites that create private heaps: heapdb names a private heap by
            // its creator's call site, and every heapdemo stack has the same one
            // (heap_realloc's call), so two such heaps would share a name.
            let mut candidates: Vec<usize> =
                (0..nsites).filter(|s| !private_heaps.contains(s)).collect();
            let want = (nsites + 1) / 3;
            for _ in 0..want.max(1).min(candidates.len()) {
                let s = candidates.swap_remove(drng.below(candidates.len() as u64) as usize);
                make_demo_site(&mut sites[s], dbuild, &mut drng);
            }
            ProgramProcess {
                exe,
                args,
                ptr,
                segment_heap: ptr == 8 && i % 4 == 3,
                modules: vec![
                    exe_module,
                    ntdll.clone(),
                    kernelbase.clone(),
                    ucrtbase.clone(),
                    ProgramModule::demo(dbuild),
                ],
                sites,
                private_heaps,
            }
        })
        .collect()
}

/// ntdll!RtlUserThreadStart's return address: where a thread's stack ends.
const RTL_USER_THREAD_START: u64 = 0x5_aa68;

/// Turns `site` into one that allocates through heapdemo: its ntdll frames, a demo call
/// chain (by its growth pattern: vector-like growth goes through `Vector<T>::Grow`,
/// constant steps through the string builders), then up to four of its own frames in
/// the executable (what calls heapdemo_run), or, for vectors, the thread start.
fn make_demo_site(site: &mut ProgramSite, b: &'static DemoBuild, rng: &mut Rng) {
    let chain = match site.pattern {
        Pattern::Geometric(2.0) => "vector",
        Pattern::Step(_) => *rng.pick(&["line_reader", "json_writer"]),
        _ => *rng.pick(&["vector", "line_reader", "json_writer"]),
    };
    site.pattern = match chain {
        "vector" => Pattern::Geometric(2.0),
        _ => match site.pattern {
            Pattern::Step(s) => Pattern::Step(s),
            _ => Pattern::Step(*rng.pick(&[8u64, 16, 32, 64])),
        },
    };
    let c = b.chain(chain).expect("demo_module has every chain");
    let exe: Vec<(usize, u64)> = site.frames[FIRST_CALLER..]
        .iter()
        .copied()
        .take(4)
        .collect();
    let mut frames = site.frames[..DEMO_FIRST_CALLER].to_vec();
    frames.extend(c.frames.iter().map(|f| (DEMO, f.return_rva as u64)));
    if chain == "vector" {
        // Vectors grow on a worker thread whose entry point is heapdemo_run: the stack
        // ends in ntdll's thread start, with no frame of the executable. Every frame
        // is then named (heapdemo) or unchanged by a rebuild (ntdll), so such a site
        // keeps its function identity across `--build`s.
        frames.push((NTDLL, RTL_USER_THREAD_START));
    } else {
        frames.extend(exe);
    }
    site.frames = frames;
    site.call_site = DEMO_FIRST_CALLER;
    site.weight = DEMO_WEIGHT;
    let call_function = c
        .frames
        .iter()
        .map(|f| f.function)
        .find(|f| !f.starts_with("heap_realloc("))
        .expect("a demo chain goes beyond heap_realloc");
    site.demo = Some(DemoSite {
        build: b,
        chain: c.name,
        call_function,
    });
}

/// The number of call sites of each process of `opts`' program (what `--regression`
/// may name).
pub fn sites_per_process(opts: &super::Options) -> Vec<usize> {
    program(
        opts.program_seed,
        opts.build,
        opts.processes.max(1) as usize,
        opts.pointer_mode,
    )
    .iter()
    .map(|p| p.sites.len())
    .collect()
}
