//! Fuzzes heap decoding of a whole capture the way the ingest runs it: the stack-key
//! pass, then per-CPU streams over small windows (so batches are held across windows
//! and stacks and moving-realloc links cross buffer boundaries), then the rows the
//! loader builds, then the cross-night identities of those rows (the tally the loader
//! keeps and its resolution against the capture's rundown). Seeded with synthesized heap captures of every pointer size, with
//! stacks, stack keys, compression and every header form.
#![no_main]

use heapdb::etl::EtlFile;
use heapdb::heap::capture::{decode_buffers, index_by_key, KeyCollector};
use heapdb::heap::record::HeapRecord;
use heapdb::ingest::identity::Tally;
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
    for r in &rows {
        if let Some(k) = r.realloc_link {
            let target = &rows[by_key[&k]];
            assert!(matches!(target.event.record, HeapRecord::ReAlloc { .. }));
            assert_eq!(target.event.info.tid, r.event.info.tid);
        }
        let row = HeapEventRow::from_heap(r, &clock);
        assert_eq!(row.opcode, r.event.info.opcode);
        tally.row(&row);
    }
    let pids: HashSet<u32> = rows.iter().map(|r| r.event.info.pid).collect();
    let mut tables = assemble(&rundown, &pids);
    let history = tally.resolve(&mut tables);
    // Every site a capture stack maps to is described.
    let sites: HashSet<i64> = history.sites.iter().map(|s| s.site_id).collect();
    for (_, _, site) in &history.capture_stacks {
        assert!(sites.contains(site));
    }
    std::hint::black_box((stacks, history));
});
