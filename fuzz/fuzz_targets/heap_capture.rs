//! Fuzzes heap decoding of a whole capture the way the ingest runs it: the stack-key
//! pass, then per-CPU streams over small windows (so batches are held across windows
//! and stacks and moving-realloc links cross buffer boundaries), then the rows the
//! loader builds, then the cross-night identities of those rows (the tally the loader
//! keeps and its resolution against the capture's rundown), and the block lifetimes of
//! those rows (the loader's tracker, with a small reorder window so that the merge of
//! the CPUs' streams also releases events early). Seeded with synthesized heap captures
//! of every pointer size, with stacks, stack keys, compression and every header form.
#![no_main]

use heapdb::etl::EtlFile;
use heapdb::heap::capture::{decode_buffers, index_by_key, KeyCollector};
use heapdb::heap::record::HeapRecord;
use heapdb::ingest::identity::Tally;
use heapdb::ingest::lifetimes::Tracker;
use heapdb::ingest::rows::{HeapEventRow, RundownRow};
use heapdb::ingest::rundown::assemble;
use libfuzzer_sys::fuzz_target;
use std::collections::HashSet;
use std::ops::ControlFlow;

fuzz_target!(|data: &[u8]| {
    let Ok(file) = EtlFile::parse(data) else {
        return;
    };
    let clock = *file.clock();
    let mut keys = KeyCollector::new();
    file.for_each_window(1 << 16, 3, |w| {
        keys.add(w);
        ControlFlow::Continue(())
    });
    let (keys, _) = keys.finish();
    let mut rows = Vec::new();
    let mut stacks = 0usize;
    let mut tally = Tally::new();
    let mut rundown = Vec::new();
    decode_buffers(&file, &keys, 2, |b| {
        stacks += b.stacks.len();
        tally.stacks(&b.stacks);
        rundown.extend(b.rundown.into_iter().map(|r| RundownRow::new(r, &clock)));
        rows.extend(b.rows);
    });
    // Every link points at a ReAlloc of the same thread.
    let by_key = index_by_key(&rows);
    let cpus = file.header().cpu_count;
    let mut tracker = Tracker::with_window(1, 1, cpus, 64);
    let mut blocks = Vec::new();
    for (id, r) in rows.iter().enumerate() {
        if let Some(k) = r.realloc_link {
            let target = &rows[by_key[&k]];
            assert!(matches!(target.event.record, HeapRecord::ReAlloc { .. }));
            assert_eq!(target.event.info.tid, r.event.info.tid);
        }
        let row = HeapEventRow::from_heap(r, &clock);
        assert_eq!(row.opcode, r.event.info.opcode);
        tally.row(&row);
        tracker.row(&row, id as i64 + 1);
        if id % 16 == 0 {
            blocks.extend(tracker.take());
        }
    }
    let pids: HashSet<u32> = rows.iter().map(|r| r.event.info.pid).collect();
    let mut tables = assemble(&rundown, &pids);
    let history = tally.resolve(&mut tables);
    let (last, summary) = tracker.finish(|pid| {
        tables
            .processes
            .iter()
            .rfind(|p| p.pid == pid)
            .and_then(|p| p.end_ns)
    });
    blocks.extend(last);
    // Ids are dense and every chain points back inside the capture; the counts add up.
    for (i, b) in blocks.iter().enumerate() {
        assert_eq!(b.block_id, i as i64 + 1);
        assert!(b.chain_id <= b.block_id);
        assert!(b.prev_block_id.is_none_or(|p| p < b.block_id));
    }
    let counted: u64 = summary.counts.values().map(|c| c.blocks).sum();
    assert_eq!(counted as usize, blocks.len());
    assert_eq!(summary.next_block_id, blocks.len() as i64 + 1);
    // Every site a capture stack maps to is described.
    let sites: HashSet<i64> = history.sites.iter().map(|s| s.site_id).collect();
    for (_, _, site) in &history.capture_stacks {
        assert!(sites.contains(site));
    }
    std::hint::black_box((stacks, history));
});
