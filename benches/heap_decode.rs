//! Heap decoding throughput: synthesizes a ~1 GiB capture (64-bit, plain stacks) and
//! decodes every heap record (typed record, stack matching, moving-realloc links,
//! rundown) through the per-CPU streams, on one thread and on all threads.
//!
//!   cargo bench --bench heap_decode                 # 1 GiB in $TMPDIR
//!   HEAPDB_BENCH_MB=4096 cargo bench --bench heap_decode
//!   HEAPDB_BENCH_FILE=x.etl cargo bench --bench heap_decode

use heapdb::etl::EtlFile;
use heapdb::heap::capture::{decode_buffers, key_definitions};
use heapdb::synth::{generate_file, Options, StackMode};
use std::path::PathBuf;
use std::time::Instant;

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let mb: u64 = std::env::var("HEAPDB_BENCH_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024);
    let (path, temp) = match std::env::var_os("HEAPDB_BENCH_FILE") {
        Some(f) => (PathBuf::from(f), false),
        None => {
            let p = std::env::temp_dir().join("heapdb-bench-heap.etl");
            // ~105 bytes per heap event with its stack record: size the event count.
            let events = mb * 1_000_000 / 105;
            let t = Instant::now();
            let m = generate_file(
                &p,
                &Options {
                    events_per_file: events,
                    stacks: StackMode::Plain,
                    processes: 8,
                    seed: 3,
                    ..Options::default()
                },
                0,
                None,
            )
            .unwrap();
            let secs = t.elapsed().as_secs_f64();
            println!(
                "synthesized {:.0} MB, {} heap events ({} reallocs) in {secs:.2} s: {:.0} MB/s, {:.1} M events/s",
                m.bytes as f64 / 1e6,
                m.heap_events,
                m.reallocs.total,
                m.bytes as f64 / 1e6 / secs,
                m.heap_events as f64 / 1e6 / secs
            );
            (p, true)
        }
    };
    let map = std::fs::read(&path).unwrap();
    let file = EtlFile::parse(&map[..]).unwrap();
    let size_mb = map.len() as f64 / 1e6;
    for threads in [1, rayon::current_num_threads()] {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        let mut best = f64::MAX;
        let mut rows = 0u64;
        for _ in 0..3 {
            let t = Instant::now();
            let mut n = 0u64;
            pool.install(|| {
                let (keys, _) = key_definitions(&file);
                decode_buffers(&file, &keys, 256, |b| n += b.rows.len() as u64);
            });
            best = best.min(t.elapsed().as_secs_f64());
            rows = n;
        }
        println!(
            "decode, {threads} thread(s): {rows} heap events in {best:.3} s: {:.1} M heap events/s, {:.0} MB/s",
            rows as f64 / best / 1e6,
            size_mb / best
        );
    }
    if temp {
        let _ = std::fs::remove_file(&path);
    }
}
