//! The synthesizer places the real fixture DLL `heapdemo.dll` (fixtures/symbols) in its
//! processes: checked on captures written by `heapdb synth` and read back through
//! `heapdb ingest`, against what LLVM's tools said about the fixture
//! (fixtures/symbols/<build>/expected.json: llvm-readobj for the identity,
//! llvm-objdump + llvm-symbolizer for the call sites), not against the generated
//! `demo_module` the synthesizer itself uses.

mod common;

use common::{run, s, stderr, synth};
use rusqlite::Connection;
use serde_json::Value as Json;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// What LLVM's tools said about one build of the fixture.
struct Expected {
    dir: &'static str,
    pdb_guid: String,
    pdb_age: i64,
    pdb_name: String,
    size_of_image: i64,
    time_date_stamp: i64,
    /// Every call instruction's return RVA -> the outer function llvm-symbolizer names
    /// for return RVA - 1.
    call_sites: BTreeMap<u64, String>,
}

fn expected(dir: &'static str) -> Expected {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/symbols")
        .join(dir)
        .join("expected.json");
    let e: Json = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    let pe = &e["pe"];
    let call_sites = e["call_sites"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let outer = c["frames"].as_array().unwrap().last().unwrap();
            (
                c["return_rva"].as_u64().unwrap(),
                outer["function"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    Expected {
        dir,
        pdb_guid: pe["pdb_guid"].as_str().unwrap().to_string(),
        pdb_age: pe["pdb_age"].as_i64().unwrap(),
        pdb_name: pe["pdb_name"].as_str().unwrap().to_string(),
        size_of_image: pe["size_of_image"].as_i64().unwrap(),
        time_date_stamp: pe["time_date_stamp"].as_i64().unwrap(),
        call_sites,
    }
}

/// A synthesized capture with stacks, ingested: (tempdir, database, manifest).
fn capture(extra: &[&str]) -> (tempfile::TempDir, PathBuf, Json) {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("c");
    let mut args = vec!["--events-per-file", "20000", "--processes", "6"];
    if !extra.contains(&"--stack-keys") {
        args.push("--stacks");
    }
    args.extend_from_slice(extra);
    let files = synth(&out, &args);
    assert_eq!(files.len(), 1);
    let db = d.path().join("h.db");
    let o = run(&["ingest", "--quiet", "--db", s(&db), s(&files[0])]);
    assert_eq!(o.status.code(), Some(0), "ingest: {}", stderr(&o));
    let m: Json =
        serde_json::from_slice(&std::fs::read(out.join("manifest.json")).unwrap()).unwrap();
    (d, db, m)
}

/// Checks every process of pointer size `ptr` against `want`; returns the number of
/// heapdemo frames seen.
fn check_processes(db: &Path, m: &Json, ptr: u64, want: &Expected) -> usize {
    let c = Connection::open(db).unwrap();
    let procs: Vec<&Json> = m["files"][0]["processes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["pointer_size"].as_u64() == Some(ptr))
        .collect();
    assert!(!procs.is_empty(), "no {ptr}-byte process");
    // The innermost heapdemo frame of every chain is heap_realloc's call through the
    // allocator pointer, the outermost heapdemo_run's call of Report::Save.
    let rva_of = |f: &str| {
        want.call_sites
            .iter()
            .find(|(_, name)| name.starts_with(f))
            .map(|(r, _)| *r)
            .unwrap()
    };
    let heap_realloc = rva_of("heap_realloc(");
    let run_rva = rva_of("heapdemo_run");
    let mut seen = 0;
    for p in procs {
        let pid = p["pid"].as_i64().unwrap();
        let what = format!("{} pid {pid} ({})", want.dir, p["name"]);
        let rows: Vec<(i64, i64, String, i64, String, i64)> = c
            .prepare(
                "SELECT base, size, pdb_guid, pdb_age, pdb_path, timedatestamp FROM images \
                 WHERE pid = ?1 AND name = 'heapdemo.dll'",
            )
            .unwrap()
            .query_map([pid], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                ))
            })
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(rows.len(), 1, "{what}: heapdemo.dll images {rows:?}");
        let (base, size, guid, age, pdb, tds) = rows[0].clone();
        assert_eq!(guid, want.pdb_guid, "{what}");
        assert_eq!(age, want.pdb_age, "{what}");
        assert_eq!(pdb, want.pdb_name, "{what}");
        assert_eq!(size, want.size_of_image, "{what}");
        assert_eq!(tds, want.time_date_stamp, "{what}");
        let (base, end) = (base as u64, (base + size) as u64);
        // Every stack of the process: its frames in heapdemo are return addresses
        // LLVM found after a call instruction.
        let mut stacks = c
            .prepare(
                "SELECT f.stack_id, f.address FROM capture_stacks cs \
                 JOIN stack_frames f ON f.stack_id = cs.stack_id \
                 WHERE cs.pid = ?1 ORDER BY f.stack_id, f.depth",
            )
            .unwrap();
        let mut by_stack: BTreeMap<i64, Vec<u64>> = BTreeMap::new();
        for row in stacks
            .query_map([pid], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)))
            .unwrap()
        {
            let (sid, a) = row.unwrap();
            by_stack.entry(sid).or_default().push(a as u64);
        }
        let mut demo_stacks = 0;
        for (sid, frames) in &by_stack {
            let demo: Vec<(usize, u64)> = frames
                .iter()
                .enumerate()
                .filter(|(_, &a)| a >= base && a < end)
                .map(|(i, &a)| (i, a - base))
                .collect();
            if demo.is_empty() {
                continue;
            }
            demo_stacks += 1;
            for &(i, rva) in &demo {
                assert!(
                    want.call_sites.contains_key(&rva),
                    "{what}: stack {sid} frame {i}: heapdemo+0x{rva:x} is no return address"
                );
            }
            // One chain, contiguous, from heap_realloc out to heapdemo_run.
            let depths: Vec<usize> = demo.iter().map(|d| d.0).collect();
            assert_eq!(
                depths,
                (depths[0]..depths[0] + demo.len()).collect::<Vec<_>>(),
                "{what}: stack {sid}"
            );
            assert_eq!(demo[0].1, heap_realloc, "{what}: stack {sid}");
            assert_eq!(demo.last().unwrap().1, run_rva, "{what}: stack {sid}");
            seen += demo.len();
        }
        assert!(demo_stacks >= 1, "{what}: no stack through heapdemo");
    }
    seen
}

/// The manifest's sites through heapdemo name the build of their process and, as call
/// function, the function LLVM names for their first heapdemo frame that is not
/// heap_realloc; returns (process index, site index) -> (call function, that RVA).
fn manifest_demo_sites(
    m: &Json,
    builds: &BTreeMap<u64, &Expected>,
) -> BTreeMap<(usize, usize), (String, u64)> {
    let mut out = BTreeMap::new();
    for (pi, p) in m["files"][0]["processes"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
    {
        let want = builds[&p["pointer_size"].as_u64().unwrap()];
        let sites = p["sites"].as_array().unwrap();
        let mut n = 0;
        for (si, site) in sites.iter().enumerate() {
            let Some(demo) = site.get("demo") else {
                continue;
            };
            n += 1;
            assert_eq!(demo["module"], "heapdemo.dll");
            assert_eq!(demo["build"], want.dir);
            let rvas: Vec<u64> = site["frames"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|f| f.as_str().unwrap().strip_prefix("heapdemo.dll+0x"))
                .map(|h| u64::from_str_radix(h, 16).unwrap())
                .collect();
            assert!(rvas.len() >= 5, "{site}");
            assert!(want.call_sites[&rvas[0]].starts_with("heap_realloc("));
            let call_fn = &want.call_sites[&rvas[1]];
            assert_eq!(demo["call_function"].as_str().unwrap(), call_fn, "{site}");
            // heapdb's call site is the first frame outside the heap and the CRT.
            assert_eq!(
                site["call_site"].as_str().unwrap(),
                format!("heapdemo.dll+0x{:x}", rvas[0])
            );
            out.insert((pi, si), (call_fn.clone(), rvas[1]));
        }
        assert!(
            n >= 1 && n * 2 <= sites.len(),
            "{n} of {} sites",
            sites.len()
        );
        // Among the busier sites: they do more than their number's share.
        let ops = |s: &Json| s["allocs"].as_u64().unwrap() + s["reallocs"].as_u64().unwrap();
        let demo_ops: u64 = sites
            .iter()
            .filter(|s| s.get("demo").is_some())
            .map(ops)
            .sum();
        let all_ops: u64 = sites.iter().map(ops).sum();
        assert!(
            demo_ops * sites.len() as u64 > all_ops * n as u64,
            "{demo_ops} of {all_ops} by {n} of {} sites",
            sites.len()
        );
    }
    out
}

#[test]
fn heapdemo_x64_and_x86_in_synthesized_processes() {
    let (_d, db, m) = capture(&["--pointer-size", "mixed"]);
    let x64 = expected("x64");
    let x86 = expected("x86");
    assert!(check_processes(&db, &m, 8, &x64) > 0);
    assert!(check_processes(&db, &m, 4, &x86) > 0);
    manifest_demo_sites(&m, &BTreeMap::from([(8, &x64), (4, &x86)]));
}

#[test]
fn heapdemo_x86_in_a_32_bit_capture() {
    let (_d, db, m) = capture(&["--pointer-size", "32", "--stack-keys"]);
    let x86 = expected("x86");
    assert!(check_processes(&db, &m, 4, &x86) > 0);
    manifest_demo_sites(&m, &BTreeMap::from([(4, &x86)]));
}

/// `--build 1` rebuilds the DLL too: build 2's identity and RVAs, the same sites and
/// call functions as build 0, every heapdemo frame moved.
#[test]
fn a_rebuild_loads_heapdemo_build_2_with_the_same_call_functions() {
    let (_d0, _db0, m0) = capture(&[]);
    let (_d1, db1, m1) = capture(&["--build", "1", "--seed", "9"]);
    let x64 = expected("x64");
    let build2 = expected("x64-build2");
    assert_ne!(x64.pdb_guid, build2.pdb_guid);
    assert!(check_processes(&db1, &m1, 8, &build2) > 0);
    let s0 = manifest_demo_sites(&m0, &BTreeMap::from([(8, &x64)]));
    let s1 = manifest_demo_sites(&m1, &BTreeMap::from([(8, &build2)]));
    assert_eq!(
        s0.keys().collect::<Vec<_>>(),
        s1.keys().collect::<Vec<_>>(),
        "a rebuild keeps which sites go through heapdemo"
    );
    let functions: BTreeSet<&str> = s0.values().map(|v| v.0.as_str()).collect();
    assert!(functions.len() >= 2, "{functions:?}");
    for (k, (f0, rva0)) in &s0 {
        let (f1, rva1) = &s1[k];
        assert_eq!(f0, f1, "site {k:?}");
        assert_ne!(rva0, rva1, "site {k:?}: the code moved");
    }
}
