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

use super::rng::Rng;
use super::Pattern;
use crate::etl::Guid;

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

/// A module of a process: (file name, directory, size of image).
#[derive(Debug, Clone)]
pub(super) struct ProgramModule {
    pub name: &'static str,
    pub dir: &'static str,
    pub size: u64,
    pub timedatestamp: u32,
    pub pdb_guid: Guid,
}

/// The heap implementation's frames every site starts with, then the caller's.
#[derive(Debug, Clone)]
pub(super) struct ProgramSite {
    /// (module index, RVA) per frame, innermost first.
    pub frames: Vec<(usize, u64)>,
    pub pattern: Pattern,
}

#[derive(Debug, Clone)]
pub(super) struct ProgramProcess {
    pub exe: &'static str,
    pub args: &'static str,
    pub ptr: u8,
    pub segment_heap: bool,
    /// [exe, ntdll.dll, kernelbase.dll, ucrtbase.dll]
    pub modules: Vec<ProgramModule>,
    pub sites: Vec<ProgramSite>,
    /// The site that creates each private heap (heap 1, 2, ...).
    pub private_heaps: Vec<usize>,
}

/// Module indexes.
pub(super) const EXE: usize = 0;
pub(super) const NTDLL: usize = 1;
pub(super) const UCRTBASE: usize = 3;
/// Every site's frames: three of the heap and the CRT, then the program's own.
pub(super) const FIRST_CALLER: usize = 3;

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
    let system = |name: &'static str, size: u64, rng: &mut Rng| ProgramModule {
        name,
        dir: "\\Windows\\System32",
        size,
        timedatestamp: 0x6000_0000 + rng.below(0x0fff_ffff) as u32,
        pdb_guid: guid(rng),
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
            let exe_module = ProgramModule {
                name: exe,
                dir: "\\Program Files\\App",
                size: 0x9_8000 + 0x1000 * build as u64,
                timedatestamp: 0x6500_0000 + brng.below(0x0fff_ffff) as u32,
                pdb_guid: guid(&mut brng),
            };
            let nsites = prng.range(8, 24) as usize;
            let sites: Vec<ProgramSite> = (0..nsites)
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
                    ProgramSite { frames, pattern }
                })
                .collect();
            let private_heaps = (0..prng.below(3) as usize)
                .map(|h| (h * 5 + 1) % nsites)
                .collect();
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
                ],
                sites,
                private_heaps,
            }
        })
        .collect()
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
