//! Writing one heap event in the chosen header form, its stack (plain, cached by key,
//! or in the event's extended data), and its truth and manifest counts.

use super::*;

impl<'t, W: Write + io::Seek> Gen<'t, W> {
    /// Writes one heap event (and its stack) and records it in the truth and manifest.
    pub(super) fn heap_event(
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
        if let Some(site) = site {
            let ss = &mut self.procs[pi].stats.sites[site];
            match record {
                HeapRecord::Alloc { .. } if !internal => ss.allocs += 1,
                HeapRecord::ReAlloc {
                    new_address,
                    old_address,
                    new_size,
                    old_size,
                    ..
                } => {
                    ss.reallocs += 1;
                    if new_address != old_address {
                        ss.moves += 1;
                        ss.bytes_copied += new_size.min(old_size);
                    }
                }
                _ => {}
            }
        }
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
        if !internal {
            self.observe(pi, pid, &record, site, sid, ts);
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

    /// Feeds a written event to the observer (the block lifetime model's view).
    fn observe(
        &mut self,
        pi: usize,
        pid: u32,
        record: &HeapRecord,
        site: Option<usize>,
        sid: Option<i64>,
        ts: u64,
    ) {
        let t = self.w.session().unix_ns(ts);
        match *record {
            HeapRecord::Alloc {
                heap,
                size,
                address,
                source,
            } => self
                .obs
                .alloc(pi, (pid, heap, address), size, source.0, sid, site, t),
            HeapRecord::Free {
                heap,
                address,
                source,
            } => self.obs.free(pi, (pid, heap, address), source.0, t),
            HeapRecord::ReAlloc {
                heap,
                new_address,
                old_address,
                new_size,
                old_size,
                source,
            } => self.obs.realloc(
                pi,
                (pid, heap, old_address),
                (pid, heap, new_address),
                old_size,
                new_size,
                source.0,
                sid,
                site,
                t,
            ),
            HeapRecord::HeapOnly {
                opcode: op::DESTROY,
                heap,
            } => {
                let live_blocks = self.obs.destroy(pi, pid, heap, t);
                self.m.lifetimes.heaps_destroyed.push(HeapDestroyTruth {
                    pid,
                    heap,
                    time_ns: t,
                    live_blocks,
                });
            }
            _ => {}
        }
    }

    /// The cache key of a site's stack; now and then a key is evicted (KeyDelete with
    /// its frames) and its value reused for another stack, as the kernel's cache does.
    pub(super) fn key_for(&mut self, pi: usize, site: usize, cpu: u16) -> io::Result<u64> {
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

    pub(super) fn write_key_def(
        &mut self,
        hook: u16,
        key: u64,
        frames: &[u64],
        cpu: u16,
    ) -> io::Result<()> {
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
}
