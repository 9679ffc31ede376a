//! The simulated machine: processes with their threads, heaps, loaded images and call
//! sites, and how they pick block sizes and the heap manager's Source.

use super::*;

impl<'t, W: Write + io::Seek> Gen<'t, W> {
    /// The processes of this run: the program's (see `program.rs`), with what the
    /// operating system chooses anew every night: pids, thread ids, heap handles, and
    /// image bases (ASLR: system DLLs once per boot, each executable per process).
    pub(super) fn make_processes(&mut self) {
        let n = self.opts.processes.max(1) as usize;
        let prog = program::program(
            self.opts.program_seed,
            self.opts.build,
            n,
            self.opts.pointer_mode,
        );
        // System DLL bases: one per boot (this run), shared by all 64-bit processes and
        // by all 32-bit ones.
        let boot64 = 0x7ffc_0000_0000 + (self.rng.below(0x3fff) << 16);
        let boot32 = 0x7700_0000 + (self.rng.below(0x3f) << 20);
        // heapdemo.dll's bases, one per run for 64-bit and one for 32-bit processes
        // (a DLL is relocated once per boot), from a generator of their own so that
        // every other choice of the run stays what it was before heapdemo came.
        let mut drng = Rng::new(
            self.opts.seed ^ (self.night as u64).wrapping_mul(0x9E37_79B9) ^ 0x6465_6d6f_6261_7365,
        );
        let demo64 = 0x7ffb_0000_0000 + (drng.below(0x3fff) << 16);
        let demo32 = 0x6a00_0000 + (drng.below(0x3ff) << 16);
        let mut used_pids = std::collections::HashSet::new();
        for (i, pp) in prog.into_iter().enumerate() {
            let mut pid = 1000 + 4 * self.rng.range(10, 12_000) as u32;
            while !used_pids.insert(pid) {
                pid += 4;
            }
            let ptr = pp.ptr;
            let name = pp.exe;
            let nthreads = self.rng.range(2, 6) as usize;
            let threads: Vec<u32> = (0..nthreads)
                .map(|k| pid + 4 + 4 * (k as u32 * 7 + self.rng.range(1, 6) as u32))
                .collect();
            let images: Vec<Image> = pp
                .modules
                .iter()
                .enumerate()
                .map(|(m, pm)| {
                    let base = match (ptr, m) {
                        (8, program::DEMO) => demo64,
                        (_, program::DEMO) => demo32,
                        (8, 0) => 0x7ff6_0000_0000 + (self.rng.below(0xffff) << 16),
                        (8, m) => boot64 + ((m as u64) << 28),
                        (_, 0) => 0x0040_0000 + (self.rng.below(0xff) << 16),
                        (_, m) => boot32 + ((m as u64) << 22),
                    };
                    Image {
                        base,
                        size: pm.size,
                        name: pm.name,
                        path: format!("\\Device\\HarddiskVolume3{}\\{}", pm.dir, pm.name),
                        timedatestamp: pm.timedatestamp,
                        pdb_guid: pm.pdb_guid,
                        pdb_age: pm.pdb_age,
                        pdb_name: pm.pdb_name.clone(),
                    }
                })
                .collect();
            let mut heaps = Vec::new();
            for h in 0..=pp.private_heaps.len() {
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
            let sites: Vec<Site> = pp
                .sites
                .iter()
                .map(|ps| {
                    let frames: Vec<u64> = ps
                        .frames
                        .iter()
                        .map(|&(m, rva)| images[m].base + rva)
                        .collect();
                    Site {
                        stack_id: stack_id(&frames),
                        frames,
                        module_frames: ps
                            .frames
                            .iter()
                            .map(|&(m, rva)| {
                                format!("{}+0x{rva:x}", pp.modules[m].name.to_lowercase())
                            })
                            .collect(),
                        pattern: ps.pattern,
                        call_site: ps.call_site,
                        weight: ps.weight,
                    }
                })
                .collect();
            let site_stats = sites
                .iter()
                .zip(&pp.sites)
                .map(|(s, ps): (&Site, _)| SiteStats {
                    frames: s.module_frames.clone(),
                    call_site: s.call_site().to_string(),
                    stack_id: s.stack_id,
                    demo: ps.demo.map(|d| DemoSiteTruth {
                        module: d.build.image_name.to_string(),
                        build: d.build.label.to_string(),
                        chain: d.chain.to_string(),
                        call_function: d.call_function.to_string(),
                    }),
                    ..SiteStats::default()
                })
                .collect();
            let cmd = format!("\"C:\\Program Files\\App\\{name}\" {}", pp.args);
            self.procs.push(Proc {
                pid,
                ptr,
                name,
                segment_heap: pp.segment_heap,
                threads: threads.clone(),
                heaps,
                images,
                sites,
                private_heap_sites: pp.private_heaps.clone(),
                blocks: Vec::new(),
                stats: ProcessStats {
                    pid,
                    name: name.to_string(),
                    command_line: cmd,
                    pointer_size: ptr,
                    segment_heap: pp.segment_heap,
                    threads,
                    identity: String::new(),
                    sites: site_stats,
                    ..Default::default()
                },
            });
            let _ = i;
        }
        self.name_processes();
        self.apply_regression();
        self.pre_trace_blocks();
    }

    /// Blocks allocated before the trace started (no Alloc logged), in the default
    /// heap (the only heap that predates the trace), by the usual sites and sizes.
    fn pre_trace_blocks(&mut self) {
        let n = self.opts.pre_trace_blocks;
        for pi in 0..self.procs.len() {
            for _ in 0..n {
                let site = self.pick_site(pi);
                let size = self.sample_size();
                let capacity = self.capacity_for(size);
                let address = self.procs[pi].heaps[0].alloc(capacity);
                self.procs[pi].blocks.push(Block {
                    heap: 0,
                    address,
                    size,
                    capacity,
                    site,
                });
            }
            self.m.lifetimes.pre_trace_blocks += n as u64;
        }
    }

    /// Identities as the manifest states them (independently of heapdb's rule, which
    /// the tests compare with): the lowercase name, plus the arguments when the name
    /// repeats; heaps: 'default' or 'private@' + the creating site's call site.
    fn name_processes(&mut self) {
        let names: Vec<String> = self.procs.iter().map(|p| p.name.to_lowercase()).collect();
        for (i, p) in self.procs.iter_mut().enumerate() {
            let dup = names.iter().filter(|n| **n == names[i]).count() > 1;
            let args = p
                .stats
                .command_line
                .rsplit_once('"')
                .map_or("", |x| x.1)
                .trim();
            p.stats.identity = if dup {
                format!("{} {}", names[i], args)
            } else {
                names[i].clone()
            };
            for (h, heap) in p.heaps.iter_mut().enumerate() {
                heap.stats.identity = if h == 0 {
                    "default".to_string()
                } else {
                    let site = p.private_heap_sites[h - 1];
                    format!("private@{}", p.sites[site].call_site())
                };
            }
        }
    }

    /// `--regression P:S=F`: the allocations of process P's site S grow by F per night
    /// (night = the file's index), the others keep their weight.
    fn apply_regression(&mut self) {
        let Some((p, s, f)) = self.opts.regression else {
            return;
        };
        let night = self.night as i32;
        if let Some(site) = self.procs.get_mut(p).and_then(|pr| pr.sites.get_mut(s)) {
            site.weight *= f.powi(night);
        }
    }

    /// A site of process `pi`, by the sites' weights.
    pub(super) fn pick_site(&mut self, pi: usize) -> usize {
        let total: f64 = self.procs[pi].sites.iter().map(|s| s.weight).sum();
        let mut x = self.rng.f64() * total;
        for (i, s) in self.procs[pi].sites.iter().enumerate() {
            if x < s.weight {
                return i;
            }
            x -= s.weight;
        }
        self.procs[pi].sites.len() - 1
    }

    pub(super) fn source_for(&mut self, pi: usize, size: u64) -> Source {
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

    pub(super) fn sample_size(&mut self) -> u64 {
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

    pub(super) fn capacity_for(&mut self, size: u64) -> u64 {
        let granule = 16;
        let base = size.div_ceil(granule) * granule;
        base + granule * self.rng.below(4)
    }
}
