//! ETL reader throughput: builds a large capture out of the real samples' buffers (the
//! header buffer once, then the data buffers repeated) and scans every event header.
//!
//!   cargo bench --bench etl_scan                  # ~1 GiB images, in $TMPDIR
//!   HEAPDB_BENCH_MB=4096 cargo bench --bench etl_scan
//!   HEAPDB_BENCH_FILE=big.etl cargo bench --bench etl_scan   # a file of your own
//!
//! Prints MB/s and events/s for a single-threaded scan and for the parallel summary,
//! plus peak RSS and anonymous memory (file pages of the map are excluded from the
//! latter: they belong to the page cache, not to heapdb).

use heapdb::etl::summary::summarize;
use heapdb::etl::EtlFile;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

fn testdata() -> PathBuf {
    let local = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/testdata");
    std::env::var_os("HEAPDB_TESTDATA")
        .map(PathBuf::from)
        .unwrap_or(if local.is_dir() {
            local
        } else {
            PathBuf::from("/work/shared/testdata")
        })
        .join("etl/real")
}

/// Writes `target_mb` MiB: the sample's first buffer, then its other buffers repeated.
fn build_image(sample: &Path, out: &Path, target_mb: u64) -> u64 {
    let data = std::fs::read(sample).expect("sample capture");
    let file = EtlFile::parse(&data).expect("sample parses");
    let bufs: Vec<_> = file.buffers().map(|b| b.unwrap()).collect();
    let first_end = bufs[1].offset as usize;
    let body = &data[first_end..];
    let mut w = std::io::BufWriter::new(std::fs::File::create(out).unwrap());
    w.write_all(&data[..first_end]).unwrap();
    let mut written = first_end as u64;
    while written < target_mb << 20 {
        w.write_all(body).unwrap();
        written += body.len() as u64;
    }
    w.flush().unwrap();
    written
}

fn status_kb(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

/// Single-threaded scan touching every event header; returns (events, checksum,
/// record bytes after decompression).
fn scan(file: &EtlFile<'_>) -> (u64, u64, u64) {
    let mut n = 0u64;
    let mut sum = 0u64;
    let mut record_bytes = 0u64;
    let mut scratch = Vec::new();
    for b in file.buffers() {
        let Ok(b) = b else { continue };
        record_bytes += b.header.filled() as u64 - 0x48;
        let Ok(events) = b.events(&mut scratch) else {
            continue;
        };
        for e in events.flatten() {
            n += 1;
            sum = sum
                .wrapping_add(e.opcode.unwrap_or(0) as u64)
                .wrapping_add(e.pid.unwrap_or(0) as u64)
                .wrapping_add(e.timestamp.unwrap_or(0))
                .wrapping_add(e.payload.len() as u64)
                .wrapping_add(e.provider.0[0] as u64);
        }
    }
    (n, sum, record_bytes)
}

fn bench(label: &str, path: &Path) {
    let map = std::fs::read(path).unwrap();
    let bytes = &map[..];
    let mb = bytes.len() as f64 / 1e6;
    let file = EtlFile::parse(bytes).unwrap();
    // Warm the page cache so the numbers measure decoding, not the disk.
    let _ = scan(&file);
    let mut best = f64::MAX;
    let mut events = 0;
    let mut record_mb = 0.0;
    for _ in 0..3 {
        let t = Instant::now();
        let (n, sum, rb) = scan(&file);
        std::hint::black_box(sum);
        best = best.min(t.elapsed().as_secs_f64());
        events = n;
        record_mb = rb as f64 / 1e6;
    }
    println!(
        "{label}: {mb:.0} MB file ({record_mb:.0} MB of records), {events} events; 1 thread: {:.0} MB/s of file, {:.0} MB/s of records, {:.1} M events/s ({best:.3} s)",
        mb / best,
        record_mb / best,
        events as f64 / best / 1e6
    );
    let t = Instant::now();
    let s = summarize(&file);
    let secs = t.elapsed().as_secs_f64();
    assert_eq!(s.events, events);
    println!(
        "{label}: summary on {} threads: {:.0} MB/s, {:.1} M events/s ({secs:.3} s)",
        rayon::current_num_threads(),
        mb / secs,
        events as f64 / secs / 1e6
    );
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` passes nothing useful.
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let target_mb: u64 = std::env::var("HEAPDB_BENCH_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024);
    if let Some(f) = std::env::var_os("HEAPDB_BENCH_FILE") {
        bench("file", Path::new(&f));
    } else {
        let dir = std::env::temp_dir();
        let samples = [
            (
                "kernel (ShutdownPerfDiagLogger, SYSTEM/PERFINFO)",
                "ShutdownPerfDiagLogger.etl",
            ),
            (
                "manifest (diaghub user_paged, EVENT_HEADER)",
                "diaghub-dotnetcore3.1-diaghub.user_paged.1.etl",
            ),
            ("compressed (net.4.5.2.x64, LZ77)", "net.4.5.2.x64.etl"),
        ];
        for (label, name) in samples {
            let out = dir.join(format!("heapdb-bench-{name}"));
            build_image(&testdata().join(name), &out, target_mb);
            bench(label, &out);
            let _ = std::fs::remove_file(&out);
        }
    }
    println!(
        "peak RSS {} MB (includes mapped file pages), anonymous memory now {} MB",
        status_kb("VmHWM:") / 1024,
        status_kb("RssAnon:") / 1024
    );
}
