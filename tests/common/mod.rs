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
