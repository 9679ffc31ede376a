//! The simulated machine: processes with their threads, heaps, loaded images and call
//! sites, and how they pick block sizes and the heap manager's Source.

use super::*;

impl<'t, W: Write + io::Seek> Gen<'t, W> {
    pub(super) fn make_processes(&mut self) {
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

    pub(super) fn make_images(&mut self, ptr: u8, exe: &'static str) -> Vec<Image> {
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
