//! Shared helpers of the integration tests.
#![allow(dead_code)]

use std::path::PathBuf;

/// The shared test data: $HEAPDB_TESTDATA, else `../shared/testdata` next to the
/// repository, else the workplace's `/work/shared/testdata`. The real captures are not
/// copied into the repository; a missing directory is a test failure with a clear
/// message, never a silent skip.
pub fn testdata() -> PathBuf {
    let candidates: Vec<PathBuf> = match std::env::var_os("HEAPDB_TESTDATA") {
        Some(d) => vec![PathBuf::from(d)],
        None => vec![
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/testdata"),
            PathBuf::from("/work/shared/testdata"),
        ],
    };
    candidates.iter().find(|d| d.join("etl/real").is_dir()).cloned().unwrap_or_else(|| {
        panic!(
            "real captures not found in {candidates:?} (set HEAPDB_TESTDATA to the shared testdata directory)"
        )
    })
}

pub fn real_dir() -> PathBuf {
    testdata().join("etl/real")
}

/// Every real capture with its expected/ reference file, sorted by name.
pub fn real_captures() -> Vec<(String, PathBuf, serde_json::Value)> {
    let dir = real_dir();
    let mut out = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("etl") {
            continue;
        }
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let reference = dir.join("expected").join(format!("{name}.reference.json"));
        let json: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&reference).unwrap()).unwrap();
        out.push((name, path, json));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

pub fn heapdb_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_heapdb"))
}

/// Every table's content in id order, leaving out the ingest's own timestamps.
pub fn canonical(db: &std::path::Path) -> Vec<String> {
    let c = rusqlite::Connection::open(db).unwrap();
    let mut out = Vec::new();
    let tables: Vec<String> = {
        let mut st = c.prepare("SELECT name FROM sqlite_master WHERE type IN ('table', 'index', 'view') ORDER BY name").unwrap();
        st.query_map([], |r| r.get(0))
            .unwrap()
            .map(|r| r.unwrap())
            .collect()
    };
    out.push(format!("schema: {tables:?}"));
    for t in [
        "captures",
        "reallocs",
        "heap_events",
        "stacks",
        "stack_frames",
        "processes",
        "threads",
        "images",
        "ingest_errors",
        "sites",
        "site_frames",
        "capture_stacks",
        "heaps",
        "site_stats",
        "capture_labels",
    ] {
        let ncols: usize = c
            .query_row(
                &format!("SELECT count(*) FROM pragma_table_info('{t}')"),
                [],
                |r| r.get(0),
            )
            .unwrap();
        let order: Vec<String> = (1..=ncols).map(|i| i.to_string()).collect();
        let mut st = c
            .prepare(&format!("SELECT * FROM {t} ORDER BY {}", order.join(", ")))
            .unwrap();
        let names: Vec<String> = st.column_names().iter().map(|s| s.to_string()).collect();
        let n = names.len();
        let rows = st
            .query_map([], |r| {
                let mut s = String::new();
                for (i, name) in names.iter().enumerate().take(n) {
                    if name == "ingest_started" || name == "ingest_finished" {
                        continue;
                    }
                    let v: rusqlite::types::Value = r.get(i)?;
                    s.push_str(&format!("{v:?}|"));
                }
                Ok(s)
            })
            .unwrap();
        for r in rows {
            out.push(format!("{t}: {}", r.unwrap()));
        }
    }
    out
}
