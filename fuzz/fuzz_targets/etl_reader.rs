//! Fuzzes the whole read path: logfile header, buffer walk (with resync),
//! decompression, record classification and extended items, summary, and the heap
//! decoder (typed records, per-CPU stack matching, stack keys, rundown).
#![no_main]

use heapdb::etl::summary::summarize;
use heapdb::etl::EtlFile;
use heapdb::heap::capture::decode_file;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(file) = EtlFile::parse(data) else {
        return;
    };
    let clock = *file.clock();
    let mut n = 0u64;
    file.for_each(|item| {
        if let Ok(e) = item {
            n += e.payload.len() as u64 + e.extended_items().count() as u64;
            if let Some(t) = e.timestamp {
                let _ = clock.unix_ns(t);
            }
        }
    });
    let s = summarize(&file);
    assert!(s.events <= data.len() as u64);
    let b = decode_file(&file);
    assert!(b.rows.len() as u64 <= s.events);
    std::hint::black_box(n);
});
