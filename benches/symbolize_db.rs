//! Database symbolization (`heapdb::db::symbolize`), end to end: a database with
//! 100 000 distinct (image, RVA) frames across 50 images, each image with its own PDB.
//!
//!   scripts/fetch-debugpy-pdb.sh              # once: the real MSVC attach_amd64 pair
//!   cargo bench --bench symbolize_db
//!   HEAPDB_BENCH_DIR=/big/disk cargo bench --bench symbolize_db
//!
//! Setup (not timed): 50 copies of the real attach_amd64.pdb (987 KB, MSVC) whose
//! GUIDs are patched in the PDB information stream (stream 1: version, signature, age,
//! GUID), laid out as a symbol store (`modNN.pdb/<GUID><AGE>/modNN.pdb`); a database
//! made by `heapdb::db::open_rw` with one capture, 50 images (`modNN.dll`, pid 100, the
//! patched GUIDs), and 20 000 call sites of 2 ntdll frames + 12 module frames drawn from
//! 100 000 distinct (module, RVA) frames (2 000 per module, half of them real return
//! addresses after `call` instructions of the PE's .text, half other .text offsets;
//! popular frames shared by many sites). As after an ingest: `sites.symbolized`,
//! `site_frames.pdb_id` and `images.pdb_id` are NULL. Without the debugpy pair the
//! fixture heapdemo.pdb is used instead (and said so).
//!
//! Timed: `symbolize` with `jobs = 1` and the default (one thread per core), each on a
//! fresh copy of the database; then a second run on the same database (nothing to do),
//! then 10 000 more sites (10 000 new distinct frames among their frames) and a third
//! run (incremental). Peak RSS is VmHWM, reset before each run (/proc/self/clear_refs).

use heapdb::cancel::Cancel;
use heapdb::db::symbolize::{symbolize, Options, Outcome, Report};
use heapdb::etl::Guid;
use heapdb::ingest::identity::{site_id, Frame};
use heapdb::symbols::names::AllocatorFunctions;
use heapdb::symbols::pdb::read_identity;
use heapdb::symbols::pe::read_pe_file;
use heapdb::symbols::{LocateOptions, PdbId, PdbSymbols, SymbolPath};
use rusqlite::{params, Connection};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Instant;

const IMAGES: usize = 50;
const FRAMES_PER_IMAGE: usize = 2_000; // 100 000 distinct frames
const NEW_FRAMES_PER_IMAGE: usize = 200; // 10 000 more for the incremental run
const SITES: usize = 20_000;
const NEW_SITES: usize = 10_000;
const MODULE_FRAMES: usize = 12;

fn status_kb(key: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Resets VmHWM to the current RSS (Linux >= 4.0); false when it cannot.
fn reset_peak() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// xorshift64*: deterministic, no dependency.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            v.swap(i, self.below(i + 1));
        }
    }
}

/// File offsets of the blocks of MSF stream `index` (as tests/symbols_common does).
fn msf_stream_blocks(pdb: &[u8], index: usize) -> Vec<usize> {
    let u32_at = |off: usize| u32::from_le_bytes(pdb[off..off + 4].try_into().unwrap()) as usize;
    let block_size = u32_at(32);
    let dir_bytes = u32_at(44);
    let block_map = u32_at(52);
    let mut dir = Vec::new();
    for i in 0..dir_bytes.div_ceil(block_size) {
        let b = u32_at(block_map * block_size + i * 4);
        dir.extend_from_slice(&pdb[b * block_size..(b + 1) * block_size]);
    }
    let d = |off: usize| u32::from_le_bytes(dir[off..off + 4].try_into().unwrap()) as usize;
    let nstreams = d(0);
    let sizes: Vec<usize> = (0..nstreams).map(|i| d(4 + i * 4)).collect();
    let mut pos = 4 + nstreams * 4;
    for (i, &size) in sizes.iter().enumerate() {
        let size = if size == u32::MAX as usize { 0 } else { size };
        let n = size.div_ceil(block_size);
        if i == index {
            return (0..n).map(|k| d(pos + k * 4) * block_size).collect();
        }
        pos += n * 4;
    }
    panic!("no stream {index}");
}

struct Source {
    label: String,
    dll: PathBuf,
    pdb: PathBuf,
}

fn source(repo: &Path) -> Source {
    let real = repo.join("target/test-cache/debugpy");
    if !real.join("attach_amd64.pdb").is_file() {
        let _ = std::process::Command::new(repo.join("scripts/fetch-debugpy-pdb.sh"))
            .arg(&real)
            .status();
    }
    if real.join("attach_amd64.pdb").is_file() && real.join("attach_amd64.dll").is_file() {
        return Source {
            label: "debugpy attach_amd64.pdb (MSVC)".into(),
            dll: real.join("attach_amd64.dll"),
            pdb: real.join("attach_amd64.pdb"),
        };
    }
    let fx = repo.join("fixtures/symbols/x64");
    println!(
        "debugpy attach_amd64.pdb not available (scripts/fetch-debugpy-pdb.sh failed): \
         using the fixture heapdemo.pdb instead (76 KB: far less to read per address)"
    );
    Source {
        label: "fixture heapdemo.pdb (llvm)".into(),
        dll: fx.join("heapdemo.dll"),
        pdb: fx.join("heapdemo.pdb"),
    }
}

/// One image of the benchmark: its module name, base and PDB identity.
struct Image {
    module: String,
    base: u64,
    id: PdbId,
}

/// Writes the 50 patched PDBs as a symbol store under `store`.
fn make_store(src: &Source, store: &Path) -> Vec<Image> {
    let original = std::fs::read(&src.pdb).unwrap();
    let info = msf_stream_blocks(&original, 1)[0];
    let ident = read_identity(&src.pdb).unwrap();
    let age = ident.dbi_age.unwrap_or(ident.info_age);
    let mut images = Vec::new();
    for i in 0..IMAGES {
        let mut bytes = original.clone();
        // GUID at offset 12 of the information stream, stored as Guid's bytes are.
        let mut g = ident.guid.0;
        g[0..4].copy_from_slice(&(0x5eed_0000u32 + i as u32).to_le_bytes());
        bytes[info + 12..info + 28].copy_from_slice(&g);
        let id = PdbId::new(&format!(r"D:\build\out\mod{i:02}.pdb"), Guid(g), age);
        let dir = store.join(&id.name).join(id.store_key());
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(&id.name);
        std::fs::write(&path, &bytes).unwrap();
        let check = read_identity(&path).unwrap();
        assert_eq!(check.guid, id.guid, "GUID patch");
        images.push(Image {
            module: format!("mod{i:02}.dll"),
            base: 0x7ff8_0000_0000 + i as u64 * 0x100_0000,
            id,
        });
    }
    images
}

/// Distinct RVAs per image: real return addresses (after `call rel32` and
/// `call [rip+x]` whose bytes sit in .text) first, then other .text offsets.
fn frame_rvas(src: &Source, rng: &mut Rng, per_image: usize) -> (Vec<u32>, usize, (u32, u32)) {
    let pe = read_pe_file(&src.dll).unwrap();
    let bytes = std::fs::read(&src.dll).unwrap();
    let text = pe.sections.iter().find(|s| s.name == ".text").unwrap();
    let (lo, hi) = (text.rva, text.rva + text.virtual_size.min(text.file_size));
    let off = text.file_offset as usize;
    let code = &bytes[off..off + (hi - lo) as usize];
    let mut rets = Vec::new();
    for p in 0..code.len().saturating_sub(6) {
        let rel = |at: usize| i32::from_le_bytes(code[at..at + 4].try_into().unwrap()) as i64;
        if code[p] == 0xe8 {
            let target = lo as i64 + p as i64 + 5 + rel(p + 1);
            if target >= lo as i64 && target < hi as i64 {
                rets.push(lo + p as u32 + 5);
            }
        } else if code[p] == 0xff && code[p + 1] == 0x15 {
            rets.push(lo + p as u32 + 6);
        }
    }
    rets.sort_unstable();
    rets.dedup();
    rng.shuffle(&mut rets);
    rets.truncate(per_image / 2);
    let n_rets = rets.len();
    let mut seen: HashSet<u32> = rets.iter().copied().collect();
    while rets.len() < per_image {
        let r = lo + 1 + rng.below((hi - lo - 1) as usize) as u32;
        if seen.insert(r) {
            rets.push(r);
        }
    }
    (rets, n_rets, (lo, hi))
}

/// Frames of `n` new sites: 2 ntdll frames, then `MODULE_FRAMES` frames from `pool`
/// (`pool[..must]` each used at least once, in order; the rest skewed to the front).
fn make_sites(
    rng: &mut Rng,
    n: usize,
    pool: &[(usize, u32)],
    must: &[(usize, u32)],
    images: &[Image],
) -> Vec<Vec<Frame>> {
    let mut must = must.iter();
    let mut sites = Vec::with_capacity(n);
    let mut ids = HashSet::new();
    while sites.len() < n {
        let mut frames = vec![
            Frame::Module {
                module: "ntdll.dll".into(),
                rva: 0x1a2b0 + rng.below(64) as u64 * 16,
            },
            Frame::Module {
                module: "ntdll.dll".into(),
                rva: 0x3c100 + rng.below(16) as u64 * 32,
            },
        ];
        for _ in 0..MODULE_FRAMES {
            let (img, rva) = match must.next() {
                Some(&f) => f,
                None => {
                    let u = rng.unit();
                    pool[((u * u) * pool.len() as f64) as usize % pool.len()]
                }
            };
            frames.push(Frame::Module {
                module: images[img].module.clone(),
                rva: rva as u64,
            });
        }
        if ids.insert(site_id(&frames)) {
            sites.push(frames);
        }
    }
    sites
}

fn insert_sites(conn: &mut Connection, sites: &[Vec<Frame>], first_stack: i64) {
    let tx = conn.transaction().unwrap();
    {
        let mut site = tx
            .prepare(
                "INSERT INTO sites (site_id, depth, call_depth, call_site, caller_module)
                 VALUES (?1, ?2, 2, ?3, ?4)",
            )
            .unwrap();
        let mut frame = tx
            .prepare(
                "INSERT INTO site_frames (site_id, depth, module, rva) VALUES (?1, ?2, ?3, ?4)",
            )
            .unwrap();
        let mut stack = tx
            .prepare("INSERT INTO stacks (stack_id, depth, leaf, site_id) VALUES (?1, ?2, ?3, ?4)")
            .unwrap();
        let mut cs = tx
            .prepare(
                "INSERT INTO capture_stacks (capture_id, pid, stack_id, site_id) VALUES (1, 100, ?1, ?2)",
            )
            .unwrap();
        for (k, frames) in sites.iter().enumerate() {
            let id = site_id(frames);
            let Frame::Module { module, .. } = &frames[2] else {
                unreachable!()
            };
            site.execute(params![
                id,
                frames.len() as i64,
                frames[2].to_string(),
                module
            ])
            .unwrap();
            for (d, f) in frames.iter().enumerate() {
                let Frame::Module { module, rva } = f else {
                    unreachable!()
                };
                frame
                    .execute(params![id, d as i64, module, *rva as i64])
                    .unwrap();
            }
            let stack_id = first_stack + k as i64;
            stack
                .execute(params![
                    stack_id,
                    frames.len() as i64,
                    0x7ffe_0000_0000i64,
                    id
                ])
                .unwrap();
            cs.execute(params![stack_id, id]).unwrap();
        }
    }
    tx.commit().unwrap();
}

fn build_db(db: &Path, images: &[Image], sites: &[Vec<Frame>], size: u32) {
    for ext in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{ext}", db.display()));
    }
    let mut conn = heapdb::db::open_rw(db).unwrap();
    conn.execute(
        "INSERT INTO captures (capture_id, path, file_name, size_bytes, fingerprint,
             ingest_started, heapdb_version, status)
         VALUES (1, 'bench.etl', 'bench.etl', 0, 'bench', '2026-01-01T00:00:00Z', 'bench', 'complete')",
        [],
    )
    .unwrap();
    for im in images {
        conn.execute(
            "INSERT INTO images (capture_id, pid, base, size, path, name, pdb_guid, pdb_age, pdb_path)
             VALUES (1, 100, ?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                im.base as i64,
                size,
                format!(r"\Device\HarddiskVolume3\app\{}", im.module),
                im.module,
                im.id.guid.to_string(),
                im.id.age,
                format!(r"D:\build\out\{}", im.id.name)
            ],
        )
        .unwrap();
    }
    // ntdll: in the stacks, with no PDB record (its frames keep module+RVA).
    conn.execute(
        "INSERT INTO images (capture_id, pid, base, size, path, name)
         VALUES (1, 100, 140737488355328, 2097152, '\\Windows\\System32\\ntdll.dll', 'ntdll.dll')",
        [],
    )
    .unwrap();
    insert_sites(&mut conn, sites, 1);
    conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")
        .unwrap();
}

fn options(store: &Path, jobs: Option<usize>) -> Options {
    Options {
        path: SymbolPath::parse(&store.display().to_string()).unwrap(),
        locate: LocateOptions {
            offline: true,
            ..LocateOptions::default()
        },
        allocators: AllocatorFunctions::new(&[]),
        jobs,
    }
}

struct Run {
    label: String,
    threads: usize,
    wall: f64,
    report: Report,
    peak_mb: f64,
    rss_before_mb: f64,
}

fn run(label: &str, db: &Path, store: &Path, jobs: Option<usize>) -> Run {
    let threads = jobs.unwrap_or_else(rayon::current_num_threads);
    let mut conn = heapdb::db::open_rw(db).unwrap();
    if let Some(kib) = std::env::var("HEAPDB_BENCH_CACHE_KIB")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    {
        conn.execute_batch(&format!("PRAGMA cache_size = -{kib}"))
            .unwrap();
    }
    let rss_before = status_kb("VmRSS:");
    let peak_reset = reset_peak();
    let t = Instant::now();
    let report = symbolize(&mut conn, &options(store, jobs), &Cancel::new()).unwrap();
    let wall = t.elapsed().as_secs_f64();
    let peak = if peak_reset { status_kb("VmHWM:") } else { 0 };
    drop(conn);
    if store.is_dir() {
        for (id, o) in &report.pdbs {
            assert!(matches!(o, Outcome::Loaded { .. }), "{id}: {o:?}");
        }
    }
    Run {
        label: label.into(),
        threads,
        wall,
        report,
        peak_mb: peak as f64 / 1024.0,
        rss_before_mb: rss_before as f64 / 1024.0,
    }
}

fn print_table(runs: &[Run]) {
    println!(
        "\n{:<34} {:>3} {:>8} {:>5} {:>8} {:>9} {:>9} {:>9} {:>10} {:>8} {:>10} {:>8} {:>8} {:>7}",
        "run",
        "thr",
        "rvas",
        "pdbs",
        "wall s",
        "load s*",
        "resolve*",
        "write s",
        "other s",
        "M/s thr",
        "M/s wall",
        "peak MB",
        "rss0 MB",
        "sites"
    );
    for r in runs {
        let p = &r.report;
        let loaded = p.count(|o| matches!(o, Outcome::Loaded { .. }));
        // Wall time outside the parallel phase's estimate and the write: assigning
        // PDBs to frames and planning (the parallel phase is at least sum/threads).
        let par = (p.load_seconds + p.resolve_seconds) / r.threads as f64;
        let other = r.wall - p.write_seconds - par;
        println!(
            "{:<34} {:>3} {:>8} {:>5} {:>8.3} {:>9.3} {:>9.3} {:>9.3} {:>10.3} {:>8.2} {:>10.3} {:>8.1} {:>8.1} {:>7}",
            r.label,
            r.threads,
            p.rvas,
            loaded,
            r.wall,
            p.load_seconds,
            p.resolve_seconds,
            p.write_seconds,
            other,
            p.rvas as f64 / p.resolve_seconds.max(1e-9) / 1e6,
            p.rvas as f64 / r.wall / 1e6,
            r.peak_mb,
            r.rss_before_mb,
            p.sites
        );
    }
    println!(
        "  * summed over threads; M/s thr = distinct frames / resolve s (per thread, PDBs open); \
         M/s wall = distinct frames / wall s (end to end); other = wall - write - (load+resolve)/threads \
         (assigning PDBs to frames, planning); peak = VmHWM during the run (reset to the RSS before it, rss0: the benchmark's own data and what the allocator kept)"
    );
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let src = source(&repo);
    if !src.pdb.is_file() {
        println!("symbolize_db: skipped: no PDB available (neither debugpy nor the fixture)");
        return;
    }
    let base = std::env::var_os("HEAPDB_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir)
        .join("heapdb-bench-symbolize-db");
    let _ = std::fs::remove_dir_all(&base);
    std::fs::create_dir_all(&base).unwrap();
    let store = base.join("store");

    let t = Instant::now();
    let images = make_store(&src, &store);
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let (rvas, n_rets, (lo, hi)) =
        frame_rvas(&src, &mut rng, FRAMES_PER_IMAGE + NEW_FRAMES_PER_IMAGE);
    let mut pool = Vec::new();
    let mut fresh = Vec::new();
    for img in 0..IMAGES {
        // Each image its own selection of the RVAs (all distinct within the image).
        let mut mine = rvas.clone();
        rng.shuffle(&mut mine);
        pool.extend(mine[..FRAMES_PER_IMAGE].iter().map(|&r| (img, r)));
        fresh.extend(mine[FRAMES_PER_IMAGE..].iter().map(|&r| (img, r)));
    }
    rng.shuffle(&mut pool);
    rng.shuffle(&mut fresh);
    let sites = make_sites(&mut rng, SITES, &pool, &pool, &images);
    // The new sites: every new frame at least once, the rest from the old frames.
    let mut new_sites = make_sites(&mut rng, NEW_SITES, &pool, &fresh, &images);
    let old: HashSet<i64> = sites.iter().map(|f| site_id(f)).collect();
    new_sites.retain(|f| !old.contains(&site_id(f)));
    let size = read_pe_file(&src.dll).unwrap().size_of_image;
    let template = base.join("template.db");
    build_db(&template, &images, &sites, size);
    let distinct: HashSet<(usize, u32)> = pool.iter().copied().collect();
    println!(
        "source: {} ({:.0} KB), .text {lo:#x}..{hi:#x}; {} images with their own PDB; \
         {} distinct module frames ({} per image: {} return addresses after calls, the rest \
         other .text offsets), {} sites x ({} + 2 ntdll) frames; setup {:.1} s",
        src.label,
        std::fs::metadata(&src.pdb).unwrap().len() as f64 / 1024.0,
        IMAGES,
        distinct.len(),
        FRAMES_PER_IMAGE,
        n_rets.min(FRAMES_PER_IMAGE / 2),
        SITES,
        MODULE_FRAMES,
        t.elapsed().as_secs_f64()
    );

    // PDB open + verify alone (what load_seconds holds, without locating).
    let cores = rayon::current_num_threads();
    for threads in [1, cores] {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        let t = Instant::now();
        pool.install(|| {
            use rayon::prelude::*;
            images.par_iter().for_each(|im| {
                let p = store
                    .join(&im.id.name)
                    .join(im.id.store_key())
                    .join(&im.id.name);
                PdbSymbols::open(&p, &im.id).unwrap();
            })
        });
        println!(
            "open + verify {IMAGES} PDBs alone, {threads} thread(s): {:.3} s wall",
            t.elapsed().as_secs_f64()
        );
    }

    let mut runs = Vec::new();
    let copy = |name: &str| {
        let p = base.join(name);
        std::fs::copy(&template, &p).unwrap();
        p
    };
    let db1 = copy("jobs1.db");
    runs.push(run("first run, --jobs 1", &db1, &store, Some(1)));
    let db = copy("jobsN.db");
    runs.push(run("first run, default jobs", &db, &store, None));
    runs.push(run("second run (nothing to do)", &db, &store, None));
    {
        let mut conn = heapdb::db::open_rw(&db).unwrap();
        insert_sites(&mut conn, &new_sites, 1_000_000);
    }
    runs.push(run(
        &format!("+{} sites (incremental)", new_sites.len()),
        &db,
        &store,
        None,
    ));
    runs.push(run("second run, --jobs 1", &db1, &store, Some(1)));
    // PDBs that arrive after a first run found none: every site is named again.
    let late = copy("late.db");
    runs.push(run(
        "no PDBs yet (all not found)",
        &late,
        &base.join("empty"),
        None,
    ));
    let r = run("PDBs arrive (sites re-named)", &late, &store, None);
    assert_eq!(r.report.sites, SITES as u64, "every site re-named");
    runs.push(r);
    print_table(&runs);

    let conn = Connection::open(&db).unwrap();
    let q = |sql: &str| -> i64 { conn.query_row(sql, [], |r| r.get(0)).unwrap() };
    println!(
        "\ndatabase after the runs: {} symbols rows ({} distinct (pdb, rva), {} outside any function), \
         {} sites symbolized, {} with a call function; file {:.1} MB",
        q("SELECT count(*) FROM symbols"),
        q("SELECT count(*) FROM symbols WHERE inline_depth = 0"),
        q("SELECT count(*) FROM symbols WHERE inline_depth = 0 AND name IS NULL"),
        q("SELECT count(*) FROM sites WHERE symbolized = 1"),
        q("SELECT count(*) FROM sites WHERE call_function IS NOT NULL"),
        std::fs::metadata(&db).unwrap().len() as f64 / 1e6
    );
    println!(
        "peak RSS of the whole process (VmHWM since the last reset): {:.1} MB; peak reset {}",
        status_kb("VmHWM:") as f64 / 1024.0,
        if reset_peak() {
            "works"
        } else {
            "unavailable: peaks are whole-process"
        }
    );
}
