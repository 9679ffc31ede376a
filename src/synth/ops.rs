//! The heap operations of the simulated processes (alloc, free, realloc by call-site
//! pattern, the rarer heap events) and the run of a capture from start to end.

use super::*;

impl<'t, W: Write + io::Seek> Gen<'t, W> {
    pub(super) fn pick_heap(&mut self, pi: usize) -> usize {
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

    /// Whether this Alloc/Free is lost (happens, but is not written).
    fn lose(&mut self) -> bool {
        self.opts.lost_events > 0.0 && self.rng.chance(self.opts.lost_events)
    }

    pub(super) fn do_alloc(&mut self, pi: usize, tid: u32) -> io::Result<()> {
        let heap = self.pick_heap(pi);
        let site = self.pick_site(pi);
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
        if self.lose() {
            self.m.lifetimes.lost_allocs += 1;
            return Ok(());
        }
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

    pub(super) fn do_free(&mut self, pi: usize, tid: u32) -> io::Result<()> {
        if self.procs[pi].blocks.is_empty() {
            return self.do_alloc(pi, tid);
        }
        let i = self.rng.below(self.procs[pi].blocks.len() as u64) as usize;
        let b = self.procs[pi].blocks.swap_remove(i);
        let source = self.source_for(pi, b.size);
        let h = &mut self.procs[pi].heaps[b.heap];
        h.release(b.address, b.capacity);
        let handle = h.handle;
        if self.lose() {
            self.m.lifetimes.lost_frees += 1;
            return Ok(());
        }
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

    pub(super) fn do_realloc(&mut self, pi: usize, tid: u32) -> io::Result<()> {
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
    pub(super) fn do_other(&mut self, pi: usize, tid: u32) -> io::Result<()> {
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

    pub(super) fn run(&mut self) -> io::Result<()> {
        self.rundown()?;
        let target = self.opts.events_per_file;
        let share = self.opts.realloc_share.clamp(0.0, 1.0);
        // Mid-trace: the last process exits at 60-80% of the trace, one private heap
        // is destroyed (with live blocks) at 30-55%.
        let n = self.procs.len();
        let mut exit_at =
            (self.opts.exit_mid_trace && n >= 2).then(|| target * self.rng.range(60, 80) / 100);
        let mut destroy_at = self
            .opts
            .destroy_mid_trace
            .then(|| target * self.rng.range(30, 55) / 100);
        while self.heap_events < target {
            if destroy_at.is_some_and(|at| self.heap_events >= at) {
                destroy_at = None;
                self.destroy_mid_trace()?;
            }
            if exit_at.is_some_and(|at| self.heap_events >= at) {
                exit_at = None;
                self.process_end(n - 1)?;
            }
            let mut pi = self.rng.below(n as u64) as usize;
            while self.procs[pi].stats.exited {
                pi = self.rng.below(n as u64) as usize;
            }
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
            if self.procs[pi].stats.exited {
                continue;
            }
            for hi in 1..self.procs[pi].heaps.len() {
                if !self.procs[pi].heaps[hi].destroyed && self.rng.chance(0.5) {
                    self.destroy_heap(pi, hi)?;
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
        if self.procs.len() > 1 && !self.procs[self.procs.len() - 1].stats.exited {
            self.process_end(self.procs.len() - 1)?;
        }
        Ok(())
    }

    /// Destroys private heap `hi` of process `pi`: its blocks go with it.
    fn destroy_heap(&mut self, pi: usize, hi: usize) -> io::Result<()> {
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
        Ok(())
    }

    /// Mid-trace: a process (still running) with private heaps destroys the one holding
    /// the most live blocks.
    fn destroy_mid_trace(&mut self) -> io::Result<()> {
        let candidates: Vec<usize> = (0..self.procs.len())
            .filter(|&pi| {
                let p = &self.procs[pi];
                !p.stats.exited && p.heaps.iter().skip(1).any(|h| !h.destroyed)
            })
            .collect();
        if candidates.is_empty() {
            return Ok(());
        }
        let pi = *self.rng.pick(&candidates);
        let p = &self.procs[pi];
        let hi = (1..p.heaps.len())
            .filter(|&hi| !p.heaps[hi].destroyed)
            .max_by_key(|&hi| {
                (
                    p.blocks.iter().filter(|b| b.heap == hi).count(),
                    usize::MAX - hi,
                )
            })
            .unwrap_or(1);
        self.destroy_heap(pi, hi)
    }

    /// Process `pi` exits: its Process End event (kernel, hook 0x0302); its blocks die
    /// with it and it logs nothing afterwards.
    pub(super) fn process_end(&mut self, pi: usize) -> io::Result<()> {
        let ts = self.tick();
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
        self.procs[pi].blocks.clear();
        let t = self.w.session().unix_ns(ts);
        let live_blocks = self.obs.exit(pid, t);
        self.m.lifetimes.process_exits.push(ProcessExitTruth {
            pid,
            time_ns: t,
            live_blocks,
        });
        Ok(())
    }
}
