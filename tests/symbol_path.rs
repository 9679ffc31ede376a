//! Finding PDBs along a symbol path: plain directories, stores in any case, two-tier
//! stores, file.ptr, missing entries, and downloads from a symbol server (a tiny HTTP
//! server on 127.0.0.1 inside the test: good files, 404, truncated bodies, HTML instead
//! of a PDB, and a server that never answers).

mod symbols_common;

use heapdb::symbols::path::{DownloadError, How};
use heapdb::symbols::{LocateError, LocateOptions, PdbId, PdbSymbols, SymbolPath, Warning};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use symbols_common::{copy_to, serve, Fixture};

/// The same file: on Linux the exact path (lookups match names case-insensitively, so
/// finding the on-disk case is the point); on Windows, whose file system ignores case,
/// any case of it.
fn assert_same_path(found: &std::path::Path, want: &std::path::Path, ctx: &str) {
    if cfg!(windows) {
        let norm = |p: &std::path::Path| p.display().to_string().replace('/', "\\").to_lowercase();
        assert_eq!(norm(found), norm(want), "{ctx}");
    } else {
        assert_eq!(found, want, "{ctx}");
    }
}

fn opts(cache: &Path) -> LocateOptions {
    LocateOptions {
        offline: false,
        timeout: Duration::from_secs(2),
        default_cache: Some(cache.to_path_buf()),
    }
}

fn not_found(r: Result<heapdb::symbols::Located, LocateError>) -> LocateError {
    match r {
        Ok(l) => panic!("unexpectedly found {l:?}"),
        Err(e) => e,
    }
}

#[test]
fn plain_directories_in_the_debuggers_layouts() {
    let f = Fixture::load("x64");
    let id = f.id();
    let t = tempfile::tempdir().unwrap();
    for (i, rel) in [
        "heapdemo.pdb",
        "symbols/pdb/heapdemo.pdb",
        "PDB/HeapDemo.PDB",
    ]
    .iter()
    .enumerate()
    {
        let dir = t.path().join(format!("d{i}"));
        copy_to(&f.pdb, &dir.join(rel));
        let path = SymbolPath::parse(dir.to_str().unwrap()).unwrap();
        let found = path.locate(&id, &opts(t.path())).unwrap();
        assert_same_path(&found.path, &dir.join(rel), rel);
        assert_eq!(found.how, How::Directory(dir.clone()));
        assert!(PdbSymbols::open(&found.path, &id).is_ok());
    }
}

#[test]
fn a_plain_directory_with_another_build_is_skipped() {
    let x64 = Fixture::load("x64");
    let x86 = Fixture::load("x86");
    let t = tempfile::tempdir().unwrap();
    // Same name, other GUID first; the right one later in the path.
    copy_to(&x86.pdb, &t.path().join("a/heapdemo.pdb"));
    copy_to(&x64.pdb, &t.path().join("b/heapdemo.pdb"));
    let sp = format!(
        "{};{}",
        t.path().join("a").display(),
        t.path().join("b").display()
    );
    let path = SymbolPath::parse(&sp).unwrap();
    let found = path.locate(&x64.id(), &opts(t.path())).unwrap();
    assert_eq!(found.path, t.path().join("b/heapdemo.pdb"));
    // Only the other build: not found, and the candidate is reported as mismatched.
    let only_a = SymbolPath::parse(t.path().join("a").to_str().unwrap()).unwrap();
    match not_found(only_a.locate(&x64.id(), &opts(t.path()))) {
        LocateError::NotFound {
            mismatched, tried, ..
        } => {
            assert_eq!(mismatched, vec![t.path().join("a/heapdemo.pdb")]);
            assert!(
                tried.iter().any(|l| l.contains("another build")),
                "{tried:?}"
            );
        }
    }
}

#[test]
fn stores_match_names_and_keys_in_any_case() {
    let f = Fixture::load("x64");
    let id = f.id();
    let key = id.store_key();
    let t = tempfile::tempdir().unwrap();
    let layouts = [
        format!("heapdemo.pdb/{key}/heapdemo.pdb"),
        format!("HEAPDEMO.PDB/{}/HeapDemo.Pdb", key.to_lowercase()),
        format!("HeapDemo.pdb/{key}/HEAPDEMO.PDB"),
    ];
    for (i, rel) in layouts.iter().enumerate() {
        let store = t.path().join(format!("s{i}"));
        copy_to(&f.pdb, &store.join(rel));
        for spec in [
            format!("srv*{}", store.display()),
            format!("{}", store.display()),
        ] {
            let path = SymbolPath::parse(&spec).unwrap();
            let found = path.locate(&id, &opts(t.path())).unwrap();
            assert_same_path(&found.path, &store.join(rel), &spec);
            assert_eq!(found.how, How::Store(store.clone()));
        }
    }
    // The key ends with the age in hex: another age is another entry.
    let older = PdbId {
        age: 2,
        ..id.clone()
    };
    let path = SymbolPath::parse(&format!("srv*{}", t.path().join("s0").display())).unwrap();
    assert!(path.locate(&older, &opts(t.path())).is_err());
}

#[test]
fn two_tier_store_with_index2() {
    let f = Fixture::load("x86");
    let id = f.id();
    let t = tempfile::tempdir().unwrap();
    let store = t.path().join("store");
    let rel = format!("he/heapdemo.pdb/{}/heapdemo.pdb", id.store_key());
    copy_to(&f.pdb, &store.join(&rel));
    let path = SymbolPath::parse(&format!("srv*{}", store.display())).unwrap();
    // Without index2.txt the store is one-tier and the file is not where it looks.
    assert!(path.locate(&id, &opts(t.path())).is_err());
    std::fs::write(store.join("Index2.txt"), "").unwrap();
    assert_eq!(
        path.locate(&id, &opts(t.path())).unwrap().path,
        store.join(rel)
    );
}

#[test]
fn file_ptr_points_to_the_real_file_or_says_why_not() {
    let f = Fixture::load("x64");
    let id = f.id();
    let t = tempfile::tempdir().unwrap();
    let store = t.path().join("store");
    let entry = store.join("heapdemo.pdb").join(id.store_key());
    std::fs::create_dir_all(&entry).unwrap();
    let real = t.path().join("elsewhere/heapdemo.pdb");
    copy_to(&f.pdb, &real);
    let path = SymbolPath::parse(&format!("srv*{}", store.display())).unwrap();

    std::fs::write(
        entry.join("file.ptr"),
        format!("PATH:{}\r\n", real.display()),
    )
    .unwrap();
    let found = path.locate(&id, &opts(t.path())).unwrap();
    assert_eq!(found.path, real);
    assert!(PdbSymbols::open(&found.path, &id).is_ok());

    std::fs::write(entry.join("file.ptr"), "MSG: this file was removed").unwrap();
    match not_found(path.locate(&id, &opts(t.path()))) {
        LocateError::NotFound { tried, .. } => {
            assert!(
                tried.iter().any(|l| l.contains("this file was removed")),
                "{tried:?}"
            )
        }
    }
}

#[test]
fn missing_pdb_and_missing_entries() {
    let f = Fixture::load("x64");
    let t = tempfile::tempdir().unwrap();
    let gone = t.path().join("no-such-dir");
    let also_gone = t.path().join("no-such-store");
    let empty = t.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let sp = format!(
        "{};srv*{}*{};{}",
        gone.display(),
        empty.display(),
        also_gone.display(),
        empty.display()
    );
    let path = SymbolPath::parse(&sp).unwrap();
    for _ in 0..3 {
        match not_found(path.locate(&f.id(), &opts(t.path()))) {
            LocateError::NotFound {
                tried,
                mismatched,
                failures,
                ..
            } => {
                assert!(mismatched.is_empty() && failures.is_empty());
                assert!(tried.iter().any(|l| l.contains("no-such-dir")), "{tried:?}");
            }
        }
    }
    // Each missing entry is warned about once, however many lookups passed it.
    let warnings = path.take_warnings();
    assert_eq!(
        warnings,
        vec![
            Warning::MissingEntry(gone),
            Warning::MissingEntry(also_gone)
        ]
    );
    assert!(path.take_warnings().is_empty());
}

// ---- symbol server ----

/// A server store holding both fixtures' PDBs, and its URL.
fn server_with_fixtures() -> (tempfile::TempDir, String, Arc<AtomicUsize>) {
    let t = tempfile::tempdir().unwrap();
    for arch in ["x64", "x86"] {
        let f = Fixture::load(arch);
        let id = f.id();
        copy_to(
            &f.pdb,
            &t.path().join(&id.name).join(id.store_key()).join(&id.name),
        );
    }
    let (base, count) = serve(t.path().to_path_buf());
    (t, base, count)
}

/// Files left in `dir`, recursively.
fn files_in(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(files_in(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

#[test]
fn downloads_into_the_cache_then_uses_it_offline() {
    let (_server_root, base, count) = server_with_fixtures();
    let t = tempfile::tempdir().unwrap();
    let cache = t.path().join("cache");
    for (arch, spec) in [
        ("x64", format!("SRV*{}*{base}/sym", cache.display())),
        (
            "x86",
            format!("symsrv*symsrv.dll*{}*{base}/sym/", cache.display()),
        ),
    ] {
        let f = Fixture::load(arch);
        let id = f.id();
        let path = SymbolPath::parse(&spec).unwrap();
        let found = path.locate(&id, &opts(t.path())).unwrap();
        let stored = cache.join(&id.name).join(id.store_key()).join(&id.name);
        assert_eq!(found.path, stored);
        assert_eq!(
            found.how,
            How::Downloaded {
                url: format!("{base}/sym/heapdemo.pdb/{}/heapdemo.pdb", id.store_key())
            }
        );
        assert_eq!(
            std::fs::read(&stored).unwrap(),
            std::fs::read(&f.pdb).unwrap()
        );
        assert!(PdbSymbols::open(&stored, &id).is_ok());

        // Second time: the cache answers, the server is not asked, even offline.
        let before = count.load(Ordering::SeqCst);
        let offline = LocateOptions {
            offline: true,
            ..opts(t.path())
        };
        let again = path.locate(&id, &offline).unwrap();
        assert_eq!(again.how, How::Store(cache.clone()));
        assert_eq!(count.load(Ordering::SeqCst), before);
    }
    assert_eq!(
        files_in(&cache).len(),
        2,
        "only the two PDBs, no temporary files"
    );
}

#[test]
fn srv_without_store_uses_the_default_cache_and_cache_entries() {
    let (_server_root, base, _count) = server_with_fixtures();
    let f = Fixture::load("x64");
    let id = f.id();
    let t = tempfile::tempdir().unwrap();
    let default_cache = t.path().join("default");
    let path = SymbolPath::parse(&format!("srv*{base}")).unwrap();
    let found = path.locate(&id, &opts(&default_cache)).unwrap();
    assert!(found.path.starts_with(&default_cache), "{found:?}");

    let cache = t.path().join("explicit");
    let path = SymbolPath::parse(&format!("cache*{};srv*{base}", cache.display())).unwrap();
    let found = path.locate(&id, &opts(&default_cache)).unwrap();
    assert!(found.path.starts_with(&cache), "{found:?}");
    // cache* is searched as a store too.
    assert_eq!(
        path.locate(&id, &opts(&default_cache)).unwrap().how,
        How::Store(cache)
    );
}

#[test]
fn offline_never_asks_the_server() {
    let (_server_root, base, count) = server_with_fixtures();
    let f = Fixture::load("x64");
    let t = tempfile::tempdir().unwrap();
    let path = SymbolPath::parse(&format!("srv*{}*{base}", t.path().display())).unwrap();
    let offline = LocateOptions {
        offline: true,
        ..opts(t.path())
    };
    match not_found(path.locate(&f.id(), &offline)) {
        LocateError::NotFound { tried, .. } => {
            assert!(tried.iter().any(|l| l.contains("offline")), "{tried:?}")
        }
    }
    assert_eq!(count.load(Ordering::SeqCst), 0);
    assert!(files_in(t.path()).is_empty());
}

fn download_failure(spec_url: &str, id: &PdbId, cache: &Path) -> DownloadError {
    let path = SymbolPath::parse(&format!("srv*{}*{spec_url}", cache.display())).unwrap();
    match not_found(path.locate(id, &opts(cache))) {
        LocateError::NotFound { mut failures, .. } => {
            assert_eq!(failures.len(), 1, "{failures:?}");
            failures.remove(0)
        }
    }
}

#[test]
fn server_errors_are_clear_and_leave_no_partial_files() {
    let (_server_root, base, _count) = server_with_fixtures();
    let f = Fixture::load("x64");
    let id = f.id();
    let t = tempfile::tempdir().unwrap();

    // 404 is not a failure, just "not there".
    let path = SymbolPath::parse(&format!("srv*{}*{base}/sym", t.path().display())).unwrap();
    let unknown = PdbId::new("other.pdb", id.guid, id.age);
    match not_found(path.locate(&unknown, &opts(t.path()))) {
        LocateError::NotFound {
            tried, failures, ..
        } => {
            assert!(failures.is_empty());
            assert!(tried.iter().any(|l| l.contains("404")), "{tried:?}");
        }
    }

    let e = download_failure(&format!("{base}/trunc"), &id, t.path());
    assert!(
        matches!(e, DownloadError::Truncated { got, .. } if got < 77824),
        "{e}"
    );
    let e = download_failure(&format!("{base}/html"), &id, t.path());
    assert!(matches!(e, DownloadError::NotPdb { .. }), "{e}");
    assert!(e.to_string().contains("/html/heapdemo.pdb/"), "{e}");
    assert!(files_in(t.path()).is_empty(), "{:?}", files_in(t.path()));
}

#[test]
fn a_server_that_never_answers_times_out_once() {
    // Accepts connections and holds them open without a word.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in listener.incoming().flatten() {
            held.push(s);
            if held.len() > 16 {
                break;
            }
        }
        std::thread::sleep(Duration::from_secs(30));
    });
    let f = Fixture::load("x64");
    let t = tempfile::tempdir().unwrap();
    let path = SymbolPath::parse(&format!("srv*{}*{base}", t.path().display())).unwrap();

    let start = Instant::now();
    let err = not_found(path.locate(&f.id(), &opts(t.path())));
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(1900) && took < Duration::from_secs(10),
        "{took:?}"
    );
    match err {
        LocateError::NotFound { failures, .. } => {
            assert!(
                matches!(failures[..], [DownloadError::Timeout { .. }]),
                "{failures:?}"
            )
        }
    }
    // The server is disabled for the rest of the run: the next lookup does not wait.
    let start = Instant::now();
    let _ = path.locate(&f.id(), &opts(t.path()));
    assert!(start.elapsed() < Duration::from_millis(500));
    let warnings = path.take_warnings();
    assert!(
        matches!(&warnings[..], [Warning::ServerDisabled { url, .. }] if *url == base),
        "{warnings:?}"
    );
    assert!(files_in(t.path()).is_empty());
}

#[test]
fn names_that_are_not_plain_file_names_are_never_looked_up() {
    let (_server_root, base, count) = server_with_fixtures();
    let f = Fixture::load("x64");
    let t = tempfile::tempdir().unwrap();
    let path = SymbolPath::parse(&format!("srv*{}*{base}", t.path().display())).unwrap();
    // A capture can hold any bytes as the PDB name; `..` would climb out of the cache.
    for name in ["..", ""] {
        let id = PdbId {
            name: name.to_string(),
            ..f.id()
        };
        assert!(path.locate(&id, &opts(t.path())).is_err());
    }
    assert_eq!(count.load(Ordering::SeqCst), 0);
    assert!(files_in(t.path()).is_empty());
}
