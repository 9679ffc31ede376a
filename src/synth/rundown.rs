//! Kernel rundown at the session start (processes, threads, images and their PDB
//! identities, as KernelTraceControl injects them when a trace is merged) and the
//! private heaps created during the trace.

use super::*;

impl<'t, W: Write + io::Seek> Gen<'t, W> {
    /// Kernel rundown at the session start: processes, threads, images, PDB ids. The
    /// kernel writes them with the session's pointer size whatever the process's.
    pub(super) fn rundown(&mut self) -> io::Result<()> {
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
                let (base, size, tds, ipath, iname, guid, age, pdb) = {
                    let im = &self.procs[pi].images[ii];
                    (
                        im.base,
                        im.size,
                        im.timedatestamp,
                        im.path.clone(),
                        im.name,
                        im.pdb_guid,
                        im.pdb_age,
                        im.pdb_name.clone(),
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
                self.put32(age);
                self.payload.extend_from_slice(pdb.as_bytes());
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
                // Heap `hi` is created by the same code (site) every night.
                let site = self.procs[pi].private_heap_sites[hi - 1];
                self.heap_event(pi, tid, hi, rec, Some(site), false)?;
            }
        }
        Ok(())
    }
}
