//! Symbolization throughput: opens a PDB as if for 50 images (50 `PdbSymbols` alive at
//! once) and resolves every byte offset of the code section in each, so every lookup
//! is a distinct (image, RVA) pair; then a second pass over the same addresses with the
//! per-function caches warm. Reports PDB open time, lookups/s, frames/s and peak RSS.
//!
//!   cargo bench --bench symbolize            # the x64 heapdemo fixture, and the real
//!                                            # MSVC attach_amd64.pdb when
//!                                            # scripts/fetch-debugpy-pdb.sh has run
//!   HEAPDB_BENCH_IMAGES=200 cargo bench --bench symbolize

use heapdb::symbols::pe::read_pe_file;
use heapdb::symbols::PdbSymbols;
use std::path::{Path, PathBuf};
use std::time::Instant;

fn status_kb(key: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn bench(label: &str, dll: &Path, pdb: &Path, images: usize) {
    let pe = read_pe_file(dll).unwrap();
    let id = pe.pdb_id().unwrap();
    let text = pe.sections.iter().find(|s| s.name == ".text").unwrap();
    let rvas: Vec<u32> = (text.rva..text.rva + text.virtual_size).collect();

    let t = Instant::now();
    let mut opened: Vec<PdbSymbols> = (0..images)
        .map(|_| PdbSymbols::open_for_machine(pdb, &id, Some(pe.machine)).unwrap())
        .collect();
    let open_s = t.elapsed().as_secs_f64();

    for pass in ["cold", "warm"] {
        let t = Instant::now();
        let (mut lookups, mut found, mut frames) = (0u64, 0u64, 0u64);
        for syms in &mut opened {
            for &rva in &rvas {
                lookups += 1;
                if let Some(r) = syms.resolve(rva).unwrap() {
                    found += 1;
                    frames += r.frames.len() as u64;
                }
            }
        }
        let s = t.elapsed().as_secs_f64();
        println!(
            "{label} {pass}: {lookups} distinct lookups ({found} in functions, {frames} frames) in {s:.3} s: {:.2} M lookups/s, {:.2} M frames/s",
            lookups as f64 / s / 1e6,
            frames as f64 / s / 1e6
        );
    }
    println!(
        "{label}: PDB {:.0} KB, code {} bytes, {images} opens in {open_s:.3} s ({:.2} ms each); VmHWM so far {} MB",
        std::fs::metadata(pdb).map(|m| m.len()).unwrap_or(0) as f64 / 1024.0,
        rvas.len(),
        open_s * 1e3 / images as f64,
        status_kb("VmHWM:") / 1024
    );
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let images: usize = std::env::var("HEAPDB_BENCH_IMAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50);
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let fx = repo.join("fixtures/symbols/x64");
    bench(
        "heapdemo x64",
        &fx.join("heapdemo.dll"),
        &fx.join("heapdemo.pdb"),
        images,
    );
    let real = repo.join("target/test-cache/debugpy");
    if real.join("attach_amd64.pdb").is_file() {
        bench(
            "debugpy attach_amd64",
            &real.join("attach_amd64.dll"),
            &real.join("attach_amd64.pdb"),
            images,
        );
    } else {
        println!("debugpy attach_amd64: skipped (run scripts/fetch-debugpy-pdb.sh first)");
    }
    println!("peak RSS (VmHWM): {} MB", status_kb("VmHWM:") / 1024);
}
