//! Symbolizing a database (`heapdb symbolize`, `heapdb ingest --symbols`): synthesized
//! captures place the real fixture DLL heapdemo.dll (fixtures/symbols) in their
//! processes, and the names the database ends up with are checked against what the
//! independent LLVM tools said about the same files (expected.json, written by
//! fixtures/symbols/build.sh from llvm-symbolizer and llvm-pdbutil). Also: symbol
//! stores in any case and two-tier, a symbol server on 127.0.0.1 (download, cache,
//! offline, truncated body, 404), an age mismatch, a missing and a corrupt PDB, rerun
//! safety, a rebuild matched by function, the schema 3 → 4 upgrade and prune.

mod common;
mod symbols_common;

use common::{s, synth};
use heapdb::symbols::names::short_name;
use rusqlite::Connection;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::atomic::Ordering;
use symbols_common::{copy_to, fixtures, serve, Fixture};

/// Runs heapdb without the symbol-path variables of the environment the tests run in,
/// and with a private default cache.
fn run(args: &[&str], cache: &Path) -> Output {
    std::process::Command::new(common::heapdb_bin())
        .args(args)
        .env_remove("_NT_SYMBOL_PATH")
        .env_remove("_NT_ALT_SYMBOL_PATH")
        .env("HEAPDB_SYMBOL_CACHE", cache)
        .output()
        .unwrap()
}

/// `heapdb symbolize --db DB --symbols PATH`.
fn symbolize(db: &Path, path: &str, cache: &Path) -> Output {
    run(&["symbolize", "--db", s(db), "--symbols", path], cache)
}

fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn fixture_dir(arch: &str) -> String {
    fixtures().join(arch).display().to_string()
}

fn rows(db: &Path, sql: &str) -> Vec<Vec<String>> {
    let c = Connection::open(db).unwrap();
    let mut st = c.prepare(sql).unwrap();
    let n = st.column_count();
    let out = st
        .query_map([], |r| {
            (0..n)
                .map(|i| {
                    Ok(match r.get_ref(i)? {
                        rusqlite::types::ValueRef::Null => "NULL".to_string(),
                        rusqlite::types::ValueRef::Integer(v) => v.to_string(),
                        rusqlite::types::ValueRef::Real(v) => v.to_string(),
                        rusqlite::types::ValueRef::Text(t) => String::from_utf8_lossy(t).into(),
                        rusqlite::types::ValueRef::Blob(_) => "<blob>".into(),
                    })
                })
                .collect()
        })
        .unwrap()
        .collect::<rusqlite::Result<Vec<Vec<String>>>>()
        .unwrap();
    out
}

fn one(db: &Path, sql: &str) -> String {
    rows(db, sql)
        .first()
        .and_then(|r| r.first().cloned())
        .unwrap_or_default()
}

/// A directory of synthesized captures (stacks on) and a database of them ingested
/// without symbols.
struct Setup {
    _t: tempfile::TempDir,
    dir: PathBuf,
    cache: PathBuf,
    db: PathBuf,
}

fn setup(extra: &[&str]) -> Setup {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("caps");
    let mut args = vec!["--stacks", "--events-per-file", "30000"];
    args.extend_from_slice(extra);
    synth(&dir, &args);
    let cache = t.path().join("cache");
    let db = t.path().join("heap.db");
    let o = run(&["ingest", "--quiet", "--db", s(&db), s(&dir)], &cache);
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    Setup {
        dir,
        cache,
        db,
        _t: t,
    }
}

impl Setup {
    /// A copy of the database, to try another symbol path on the same data.
    fn copy(&self, name: &str) -> PathBuf {
        let p = self.db.with_file_name(name);
        std::fs::copy(&self.db, &p).unwrap();
        p
    }
}

/// The expected frames of every call site of a fixture, by return RVA.
fn expected_calls(f: &Fixture) -> BTreeMap<u64, Vec<Value>> {
    f.expected["call_sites"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["return_rva"].as_u64().unwrap(),
                c["frames"].as_array().unwrap().clone(),
            )
        })
        .collect()
}

/// Checks every named heapdemo frame of the database against llvm-symbolizer's answer
/// for the same return address in the fixture of the same PDB GUID. Returns how many
/// frames were checked per fixture.
fn check_frames_against_llvm(db: &Path, arches: &[&'static str]) -> BTreeMap<&'static str, usize> {
    let mut checked = BTreeMap::new();
    for &arch in arches {
        let f = Fixture::load(arch);
        let calls = expected_calls(&f);
        let guid = f.expected["pe"]["pdb_guid"].as_str().unwrap().to_string();
        let frames = rows(
            db,
            &format!(
                "SELECT v.rva, v.frame, coalesce(v.source, ''), coalesce(v.inlined, ''), v.function, v.depth
                 FROM site_frames_v v JOIN site_frames sf ON sf.site_id = v.site_id AND sf.depth = v.depth
                 JOIN pdbs p ON p.pdb_id = sf.pdb_id
                 WHERE v.module = 'heapdemo.dll' AND p.guid = '{guid}'"
            ),
        );
        for r in &frames {
            let rva: u64 = r[0].parse().unwrap();
            let depth: u64 = r[5].parse().unwrap();
            assert!(depth > 0, "heapdemo frames are return addresses: {r:?}");
            let want = calls
                .get(&rva)
                .unwrap_or_else(|| panic!("{arch}: {rva:#x} is not a return address LLVM lists"));
            // LLVM lists inline frames innermost first, the function last.
            let outer = want.last().unwrap();
            let func = outer["function"].as_str().unwrap();
            assert_eq!(
                short_name(&r[4]),
                short_name(func),
                "{arch} {rva:#x}: function"
            );
            assert!(
                r[1].starts_with(&format!("heapdemo.dll!{}+0x", short_name(func))),
                "{arch} {rva:#x}: frame {}",
                r[1]
            );
            let file = outer["file"].as_str().unwrap_or("");
            let line = outer["line"].as_u64().unwrap_or(0);
            assert_eq!(r[2], format!("{file}:{line}"), "{arch} {rva:#x}: source");
            let inlined: Vec<String> = want[..want.len() - 1]
                .iter()
                .map(|i| {
                    format!(
                        "{} ({}:{})",
                        short_name(i["function"].as_str().unwrap()),
                        i["file"].as_str().unwrap(),
                        i["line"].as_u64().unwrap()
                    )
                })
                .collect();
            assert_eq!(r[3], inlined.join(" in "), "{arch} {rva:#x}: inline frames");
        }
        checked.insert(arch, frames.len());
    }
    checked
}

/// The call function the synthesizer's manifest gives each heapdemo site (from the
/// generated demo_module, i.e. llvm-symbolizer), short form, per process identity.
fn manifest_call_functions(dir: &Path) -> BTreeSet<String> {
    let m: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("manifest.json")).unwrap()).unwrap();
    let mut out = BTreeSet::new();
    for f in m["files"].as_array().unwrap() {
        for p in f["processes"].as_array().unwrap() {
            for site in p["sites"].as_array().unwrap() {
                if let Some(cf) = site["demo"]["call_function"].as_str() {
                    out.insert(format!("heapdemo.dll!{}", short_name(cf)));
                }
            }
        }
    }
    out
}

#[test]
fn x64_and_x86_frames_are_named_as_llvm_symbolizer_names_them() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("caps");
    synth(
        &dir,
        &[
            "--stacks",
            "--pointer-size",
            "mixed",
            "--events-per-file",
            "40000",
        ],
    );
    let db = t.path().join("heap.db");
    let path = format!("{};{}", fixture_dir("x64"), fixture_dir("x86"));
    let o = run(
        &["ingest", "--db", s(&db), "--symbols", &path, s(&dir)],
        &t.path().join("cache"),
    );
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    assert!(err(&o).contains("2 PDB(s) loaded"), "{}", err(&o));
    let checked = check_frames_against_llvm(&db, &["x64", "x86"]);
    assert!(checked["x64"] > 20 && checked["x86"] > 20, "{checked:?}");
    // Inline frames: GrowBuffer inlined into the Grow functions, as LLVM says.
    assert!(
        common::q(
            &db,
            "SELECT count(*) FROM site_frames_v WHERE inlined LIKE 'GrowBuffer (%heapdemo.cpp:42)'"
        ) > 0
    );
    // Call sites: past heap_realloc (an allocator's wrapper), the functions the
    // manifest names, and only those.
    let got: BTreeSet<String> = rows(
        &db,
        "SELECT DISTINCT call_function FROM sites WHERE caller_module = 'heapdemo.dll'",
    )
    .into_iter()
    .map(|r| r[0].clone())
    .collect();
    assert_eq!(got, manifest_call_functions(&dir));
    assert!(got.contains("heapdemo.dll!JsonWriter::Grow"), "{got:?}");
    // stack_frames_v names a stack's frames through its site.
    let named = rows(
        &db,
        "SELECT frame FROM stack_frames_v WHERE stack_id = (
             SELECT st.stack_id FROM stacks st JOIN sites si ON si.site_id = st.site_id
             WHERE si.call_function = 'heapdemo.dll!JsonWriter::Grow' LIMIT 1)
         ORDER BY depth",
    );
    let frames: Vec<&str> = named.iter().map(|r| r[0].as_str()).collect();
    let pos = frames
        .iter()
        .position(|f| f.starts_with("heapdemo.dll!heap_realloc+0x"))
        .unwrap_or_else(|| panic!("{frames:?}"));
    assert!(frames[pos + 1].starts_with("heapdemo.dll!JsonWriter::Grow+0x"));
    assert!(frames[pos + 2].starts_with("heapdemo.dll!JsonWriter::WriteString+0x"));
    assert!(frames[0].starts_with("ntdll.dll+0x"), "no PDB: module+RVA");
    // Offsets are from the return address: heap_realloc's call returns to 0x1021 and
    // the function starts at 0x1010 (LLVM's public symbols).
    let x64 = Fixture::load("x64");
    let start = x64.expected["publics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "?heap_realloc@@YAPEAXPEAX_K@Z")
        .unwrap()["rva"]
        .as_u64()
        .unwrap();
    let ret = x64.expected["call_sites"][0]["return_rva"]
        .as_u64()
        .unwrap();
    let want = format!("heapdemo.dll!heap_realloc+0x{:x}", ret - start);
    assert!(
        common::q(
            &db,
            &format!("SELECT count(*) FROM site_frames_v WHERE frame = '{want}' AND rva = {ret}")
        ) > 0,
        "{want}"
    );
}

#[test]
fn symbolize_later_equals_ingest_with_symbols_and_reruns_do_only_what_is_missing() {
    let st = setup(&[]);
    let x64 = fixture_dir("x64");
    // A: symbols at ingest.
    let a = st.db.with_file_name("a.db");
    let o = run(
        &[
            "ingest",
            "--quiet",
            "--db",
            s(&a),
            "--symbols",
            &x64,
            s(&st.dir),
        ],
        &st.cache,
    );
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    // B: no symbols at ingest; a first run finds no PDB, a later one does.
    let b = st.copy("b.db");
    assert_eq!(
        common::q(
            &b,
            "SELECT count(*) FROM sites WHERE call_function IS NOT NULL"
        ),
        0
    );
    let empty = st.db.with_file_name("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let o = symbolize(&b, s(&empty), &st.cache);
    assert_eq!(
        o.status.code(),
        Some(0),
        "not found is not an error: {}",
        err(&o)
    );
    assert!(err(&o).contains("heapdemo.pdb"), "{}", err(&o));
    assert_eq!(
        one(&b, "SELECT status FROM pdbs WHERE name = 'heapdemo.pdb'"),
        "not_found"
    );
    assert_eq!(
        common::q(
            &b,
            "SELECT count(*) FROM sites WHERE call_function IS NOT NULL"
        ),
        0
    );
    assert!(
        common::q(
            &b,
            "SELECT count(*) FROM site_frames_v WHERE module = 'heapdemo.dll' AND frame = 'heapdemo.dll' || printf('+0x%x', rva)"
        ) > 0,
        "frames stay module+0xRVA"
    );
    let o = symbolize(&b, &x64, &st.cache);
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    assert!(err(&o).contains("1 PDB(s) loaded"), "{}", err(&o));
    let names = "SELECT site_id, call_depth, call_site, caller_module, call_function, function_site_id FROM sites ORDER BY site_id";
    let syms = "SELECT p.name, p.guid, s.rva, s.inline_depth, s.name, s.function, s.function_rva, s.file, s.line
                FROM symbols s JOIN pdbs p USING (pdb_id) ORDER BY 1, 2, 3, 4";
    let frames = "SELECT site_id, depth, frame, source, inlined FROM site_frames_v ORDER BY 1, 2";
    for sql in [names, syms, frames] {
        assert_eq!(rows(&a, sql), rows(&b, sql), "{sql}");
    }
    assert!(
        common::q(
            &b,
            "SELECT count(*) FROM sites WHERE call_function IS NOT NULL"
        ) > 0
    );
    // Again: nothing to do, nothing changes.
    let before: Vec<_> = [names, syms, frames].iter().map(|q| rows(&b, q)).collect();
    let o = symbolize(&b, &x64, &st.cache);
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    assert!(
        err(&o).contains("0 PDB(s) loaded, 1 already current")
            && err(&o).contains(" 0 address(es) resolved"),
        "{}",
        err(&o)
    );
    let after: Vec<_> = [names, syms, frames].iter().map(|q| rows(&b, q)).collect();
    assert_eq!(before, after);
    // Another program stored later: its new sites are named by the next run, their
    // heapdemo frames from the names resolved before.
    let night2 = st.db.with_file_name("night2");
    synth(
        &night2,
        &[
            "--stacks",
            "--events-per-file",
            "30000",
            "--program-seed",
            "99",
        ],
    );
    let o = run(&["ingest", "--quiet", "--db", s(&b), s(&night2)], &st.cache);
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    let unnamed = common::q(&b, "SELECT count(*) FROM sites WHERE symbolized IS NULL");
    assert!(unnamed > 0);
    let o = symbolize(&b, &x64, &st.cache);
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    assert_eq!(
        common::q(&b, "SELECT count(*) FROM sites WHERE symbolized IS NULL"),
        0
    );
    check_frames_against_llvm(&b, &["x64"]);
}

#[test]
fn an_age_mismatch_is_reported_once_and_never_gives_a_wrong_name() {
    let st = setup(&[]);
    // The images say age 2: another link of the same PDB. The PDB on the path is age 1.
    Connection::open(&st.db)
        .unwrap()
        .execute(
            "UPDATE images SET pdb_age = 2 WHERE name = 'heapdemo.dll'",
            [],
        )
        .unwrap();
    let o = symbolize(&st.db, &fixture_dir("x64"), &st.cache);
    assert_eq!(o.status.code(), Some(1), "{}", err(&o));
    let e = err(&o);
    // Joined as heapdb joins it (on Windows "x64/heapdemo.pdb" keeps its `/`).
    let pdb = fixtures().join("x64").join("heapdemo.pdb");
    assert_eq!(
        e.matches(&pdb.display().to_string()).count(),
        1,
        "once, naming the file: {e}"
    );
    assert_eq!(
        one(
            &st.db,
            "SELECT status FROM pdbs WHERE name = 'heapdemo.pdb'"
        ),
        "mismatch"
    );
    // data-quality says so in words.
    let o = run(
        &[
            "query",
            "--db",
            s(&st.db),
            "data-quality",
            "--format",
            "json",
        ],
        &st.cache,
    );
    let dq: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(dq[0]["pdbs_unusable"], 1, "{dq}");
    assert_eq!(dq[0]["pdbs_loaded"], 0, "{dq}");
    assert!(
        dq[0]["notes"]
            .as_str()
            .unwrap()
            .contains("1 PDBs found did not match"),
        "{dq}"
    );
    assert_eq!(common::q(&st.db, "SELECT count(*) FROM symbols"), 0);
    assert_eq!(
        common::q(
            &st.db,
            "SELECT count(*) FROM sites WHERE call_function IS NOT NULL"
        ),
        0
    );
    assert_eq!(one(&st.db, "PRAGMA quick_check"), "ok");
}

#[test]
fn stores_are_found_in_any_case_and_two_tier() {
    let st = setup(&[]);
    let f = Fixture::load("x64");
    let id = f.id();
    let root = st.db.with_file_name("stores");
    // A store copied from Windows: other case for every part.
    let upper = root.join("upper");
    copy_to(
        &f.pdb,
        &upper
            .join(id.name.to_uppercase())
            .join(id.store_key().to_lowercase())
            .join("HeapDemo.PDB"),
    );
    // A two-tier store: index2.txt at the root, entries under the name's first two chars.
    let two = root.join("two");
    copy_to(
        &f.pdb,
        &two.join("he")
            .join(&id.name)
            .join(id.store_key())
            .join(&id.name),
    );
    std::fs::write(two.join("index2.txt"), "").unwrap();
    for (name, store) in [("upper.db", &upper), ("two.db", &two)] {
        let db = st.copy(name);
        let o = symbolize(&db, s(store), &st.cache);
        assert_eq!(o.status.code(), Some(0), "{name}: {}", err(&o));
        assert_eq!(
            rows(
                &db,
                "SELECT status, found_by FROM pdbs WHERE name = 'heapdemo.pdb'"
            ),
            vec![vec![
                "loaded".to_string(),
                format!("store {}", store.display())
            ]],
            "{name}"
        );
        check_frames_against_llvm(&db, &["x64"]);
    }
}

#[test]
fn pdbs_come_from_a_symbol_server_into_the_cache() {
    let st = setup(&[]);
    let f = Fixture::load("x64");
    let id = f.id();
    let served = st.db.with_file_name("served");
    copy_to(
        &f.pdb,
        &served.join(&id.name).join(id.store_key()).join(&id.name),
    );
    let (base, count) = serve(served.clone());
    let cache = st.db.with_file_name("symcache");
    // 404 and a truncated body: not found, nothing left in the cache.
    for (name, url) in [
        ("404.db", format!("{base}/nothing/")),
        ("trunc.db", format!("{base}/trunc/")),
    ] {
        let db = st.copy(name);
        let path = format!("srv*{}*{url}", cache.display());
        let o = run(
            &[
                "symbolize",
                "--db",
                s(&db),
                "--symbols",
                &path,
                "--symbol-timeout",
                "5",
            ],
            &st.cache,
        );
        assert_eq!(o.status.code(), Some(0), "{name}: {}", err(&o));
        assert_eq!(
            one(&db, "SELECT status FROM pdbs WHERE name = 'heapdemo.pdb'"),
            "not_found",
            "{name}"
        );
        let left = walk(&cache);
        assert!(
            left.iter().all(|p| !p.ends_with("heapdemo.pdb")),
            "{name}: {left:?}"
        );
    }
    // Downloaded into the cache, then used from it, offline, without asking again.
    let path = format!("srv*{}*{base}", cache.display());
    let db = st.copy("srv.db");
    let o = symbolize(&db, &path, &st.cache);
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    let found_by = one(&db, "SELECT found_by FROM pdbs WHERE name = 'heapdemo.pdb'");
    assert!(
        found_by.starts_with(&format!("downloaded from {base}/")),
        "{found_by}"
    );
    assert!(cache
        .join(&id.name)
        .join(id.store_key())
        .join(&id.name)
        .is_file());
    check_frames_against_llvm(&db, &["x64"]);
    let asked = count.load(Ordering::SeqCst);
    let db2 = st.copy("offline.db");
    let o = run(
        &[
            "symbolize",
            "--db",
            s(&db2),
            "--symbols",
            &path,
            "--offline",
        ],
        &st.cache,
    );
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    assert_eq!(
        one(&db2, "SELECT status FROM pdbs WHERE name = 'heapdemo.pdb'"),
        "loaded"
    );
    assert_eq!(
        count.load(Ordering::SeqCst),
        asked,
        "offline: the server is not asked"
    );
    // Offline with an empty cache: not found, still nobody asked.
    let db3 = st.copy("offline-empty.db");
    let empty_cache = st.db.with_file_name("emptycache");
    let path = format!("srv*{}*{base}", empty_cache.display());
    let o = run(
        &[
            "symbolize",
            "--db",
            s(&db3),
            "--symbols",
            &path,
            "--offline",
        ],
        &st.cache,
    );
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    assert_eq!(
        one(&db3, "SELECT status FROM pdbs WHERE name = 'heapdemo.pdb'"),
        "not_found"
    );
    assert_eq!(count.load(Ordering::SeqCst), asked);
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

#[test]
fn a_corrupt_pdb_is_reported_with_its_file_and_the_database_stays_whole() {
    let st = setup(&[]);
    let f = Fixture::load("x64");
    let id = f.id();
    let store = st.db.with_file_name("store");
    let bad = store.join(&id.name).join(id.store_key()).join(&id.name);
    let bytes = std::fs::read(&f.pdb).unwrap();
    // Truncated at three places, and empty.
    for (i, cut) in [bytes.len() / 2, 4096, 100, 0].into_iter().enumerate() {
        std::fs::create_dir_all(bad.parent().unwrap()).unwrap();
        std::fs::write(&bad, &bytes[..cut]).unwrap();
        let db = st.copy(&format!("bad{i}.db"));
        let o = symbolize(&db, s(&store), &st.cache);
        assert_eq!(o.status.code(), Some(1), "cut at {cut}: {}", err(&o));
        assert!(
            err(&o).contains(&bad.display().to_string()),
            "names the file: {}",
            err(&o)
        );
        assert!(!err(&o).contains("panicked"), "{}", err(&o));
        assert_eq!(
            one(&db, "SELECT status FROM pdbs WHERE name = 'heapdemo.pdb'"),
            "error"
        );
        assert_eq!(
            common::q(
                &db,
                "SELECT count(*) FROM sites WHERE call_function IS NOT NULL"
            ),
            0
        );
        assert_eq!(one(&db, "PRAGMA quick_check"), "ok");
        // The right file arrives: the next run uses it.
        std::fs::write(&bad, &bytes).unwrap();
        let o = symbolize(&db, s(&store), &st.cache);
        assert_eq!(o.status.code(), Some(0), "{}", err(&o));
        assert_eq!(
            one(&db, "SELECT status FROM pdbs WHERE name = 'heapdemo.pdb'"),
            "loaded"
        );
        check_frames_against_llvm(&db, &["x64"]);
    }
}

#[test]
fn symbol_paths_that_cannot_work_are_usage_errors_or_warnings() {
    let st = setup(&[]);
    let o = run(&["symbolize", "--db", s(&st.db)], &st.cache);
    assert_eq!(o.status.code(), Some(2), "{}", err(&o));
    assert!(err(&o).contains("no symbol path"), "{}", err(&o));
    let o = symbolize(&st.db, "https://example.com/symbols", &st.cache);
    assert_eq!(o.status.code(), Some(2), "{}", err(&o));
    assert!(err(&o).contains("srv*"), "{}", err(&o));
    // A bad path is refused before anything is loaded.
    let fresh = st.db.with_file_name("fresh.db");
    let o = run(
        &[
            "ingest",
            "--db",
            s(&fresh),
            "--symbols",
            "bogus*x",
            s(&st.dir),
        ],
        &st.cache,
    );
    assert_eq!(o.status.code(), Some(2), "{}", err(&o));
    assert!(!fresh.exists() || common::q(&fresh, "SELECT count(*) FROM captures") == 0);
    // An entry that does not exist: a warning naming it, the rest of the path works.
    let missing = st.db.with_file_name("no-such-dir");
    let path = format!("{};{}", missing.display(), fixture_dir("x64"));
    let o = symbolize(&st.db, &path, &st.cache);
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    assert!(
        err(&o).contains(&format!(
            "symbol path entry {} does not exist",
            missing.display()
        )),
        "{}",
        err(&o)
    );
    assert_eq!(
        one(
            &st.db,
            "SELECT status FROM pdbs WHERE name = 'heapdemo.pdb'"
        ),
        "loaded"
    );
    // The environment variable stands in for the flag.
    let db = st.copy("env.db");
    let o = std::process::Command::new(common::heapdb_bin())
        .args(["symbolize", "--db", s(&db)])
        .env("_NT_SYMBOL_PATH", fixture_dir("x64"))
        .env_remove("_NT_ALT_SYMBOL_PATH")
        .env("HEAPDB_SYMBOL_CACHE", &st.cache)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    assert_eq!(
        one(&db, "SELECT status FROM pdbs WHERE name = 'heapdemo.pdb'"),
        "loaded"
    );
}

#[test]
fn a_rebuild_is_matched_by_function_not_by_rva() {
    let t = tempfile::tempdir().unwrap();
    let cache = t.path().join("cache");
    let db = t.path().join("heap.db");
    let path = format!("{};{}", fixture_dir("x64"), fixture_dir("x64-build2"));
    for (night, build, seed) in [("n1", "0", "1"), ("n2", "1", "2")] {
        let dir = t.path().join(night);
        synth(
            &dir,
            &[
                "--stacks",
                "--events-per-file",
                "30000",
                "--build",
                build,
                "--seed",
                seed,
            ],
        );
        let o = run(
            &[
                "ingest",
                "--quiet",
                "--db",
                s(&db),
                "--symbols",
                &path,
                s(&dir),
            ],
            &cache,
        );
        assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    }
    assert_eq!(
        common::q(
            &db,
            "SELECT count(*) FROM pdbs WHERE name = 'heapdemo.pdb' AND status = 'loaded'"
        ),
        2
    );
    // Vector growth runs on a worker thread: every frame is named or a system DLL's,
    // so the whole stack matches across the rebuild although every RVA moved.
    let per_night = |c: i64| -> BTreeMap<String, String> {
        rows(
            &db,
            &format!(
                "SELECT DISTINCT s.function_site_id, s.site_id FROM capture_stacks cs JOIN sites s USING (site_id)
                 WHERE cs.capture_id = {c} AND s.call_function = 'heapdemo.dll!Vector<unsigned int>::Grow'"
            ),
        )
        .into_iter()
        .map(|r| (r[0].clone(), r[1].clone()))
        .collect()
    };
    let (n1, n2) = (per_night(1), per_night(2));
    assert!(!n1.is_empty());
    assert_eq!(
        n1.keys().collect::<Vec<_>>(),
        n2.keys().collect::<Vec<_>>(),
        "same functions"
    );
    for (k, site) in &n1 {
        assert_ne!(
            site, &n2[k],
            "the RVAs moved, so the (module, RVA) sites differ"
        );
    }
    // What the cross-night reports compare: site_stats_v.site_key.
    let shared = common::q(
        &db,
        "SELECT count(DISTINCT a.site_key) FROM site_stats_v a JOIN site_stats_v b
             ON b.site_key = a.site_key AND b.capture_id = 2 AND b.process = a.process
         WHERE a.capture_id = 1 AND a.site = 'heapdemo.dll!Vector<unsigned int>::Grow'",
    );
    assert_eq!(shared as usize, n1.len());
    // Prune the first night: its heapdemo PDB (build 1) and its symbols go with it.
    let o = run(&["prune", "--db", s(&db), "--capture", "1"], &cache);
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    let build1 = Fixture::load("x64").expected["pe"]["pdb_guid"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        common::q(
            &db,
            &format!("SELECT count(*) FROM pdbs WHERE guid = '{build1}'")
        ),
        0
    );
    assert_eq!(
        common::q(
            &db,
            "SELECT count(*) FROM symbols WHERE pdb_id NOT IN (SELECT pdb_id FROM pdbs)"
        ),
        0
    );
    assert!(
        common::q(&db, "SELECT count(*) FROM symbols") > 0,
        "build 2's stay"
    );
}

#[test]
fn upgrading_from_schema_3_gives_stacks_their_site() {
    let st = setup(&[]);
    let want = rows(&st.db, "SELECT stack_id, site_id FROM stacks ORDER BY 1");
    assert!(want.iter().all(|r| r[1] != "NULL") && !want.is_empty());
    Connection::open(&st.db)
        .unwrap()
        .execute_batch("UPDATE stacks SET site_id = NULL; PRAGMA user_version = 3;")
        .unwrap();
    let o = run(&["repair", "--db", s(&st.db)], &st.cache);
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    assert_eq!(
        rows(&st.db, "SELECT stack_id, site_id FROM stacks ORDER BY 1"),
        want
    );
}

#[test]
fn two_images_claiming_one_pdb_identity_share_it_and_nothing_breaks() {
    let st = setup(&[]);
    // A GUID collision: ucrtbase.dll's records claim heapdemo's PDB identity (a copied
    // or forged image). Both modules map to one PDB row; ucrtbase's frames are looked
    // up in it, and addresses outside its functions stay unnamed.
    Connection::open(&st.db)
        .unwrap()
        .execute(
            "UPDATE images SET (pdb_guid, pdb_age, pdb_path) =
                 (SELECT pdb_guid, pdb_age, pdb_path FROM images WHERE name = 'heapdemo.dll' LIMIT 1)
             WHERE name = 'ucrtbase.dll'",
            [],
        )
        .unwrap();
    let o = symbolize(&st.db, &fixture_dir("x64"), &st.cache);
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    assert_eq!(
        common::q(
            &st.db,
            "SELECT count(*) FROM pdbs WHERE name = 'heapdemo.pdb'"
        ),
        1
    );
    assert_eq!(
        common::q(
            &st.db,
            "SELECT count(DISTINCT pdb_id) FROM images WHERE name IN ('heapdemo.dll', 'ucrtbase.dll')"
        ),
        1
    );
    // ucrtbase's frames (RVA 0x21f40, far outside heapdemo's 16 KB) found no function.
    assert!(
        common::q(
            &st.db,
            "SELECT count(*) FROM site_frames_v WHERE module = 'ucrtbase.dll' AND function IS NULL AND frame LIKE 'ucrtbase.dll+0x%'"
        ) > 0
    );
    assert!(common::q(&st.db, "SELECT count(*) FROM symbols WHERE name IS NULL") > 0);
    check_frames_against_llvm(&st.db, &["x64"]);
    assert_eq!(one(&st.db, "PRAGMA quick_check"), "ok");
}
