//! Heap events in every header form a capture may carry them in: SYSTEM headers (what
//! the kernel writes), a classic EVENT_TRACE_HEADER or an EVENT_HEADER with the heap
//! provider's GUID. Each form ingests to the same tables; heap-provider events that
//! cannot be decoded are said, never silently dropped.

mod common;

use common::{run, s};
use rusqlite::Connection;
use std::path::Path;

fn q(c: &Connection, sql: &str) -> i64 {
    c.query_row(sql, [], |r| r.get::<_, Option<i64>>(0))
        .unwrap()
        .unwrap_or(0)
}

fn synth(dir: &Path, form: &str, extra: &[&str]) -> serde_json::Value {
    let mut args = vec![
        "synth",
        "--quiet",
        "--out",
        s(dir),
        "--files",
        "2",
        "--events-per-file",
        "15000",
        "--heap-header",
        form,
    ];
    args.extend_from_slice(extra);
    common::synth(dir, &args[4..]);
    serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap()
}

fn sum(m: &serde_json::Value, f: impl Fn(&serde_json::Value) -> i64) -> i64 {
    m["files"].as_array().unwrap().iter().map(f).sum()
}

#[test]
fn every_header_form_ingests_to_the_same_rows() {
    let d = tempfile::tempdir().unwrap();
    for (form, extra) in [
        ("system", vec!["--stacks"]),
        ("classic", vec!["--stacks", "--pointer-size", "mixed"]),
        ("event", vec!["--stacks", "--pointer-size", "mixed"]),
        ("event", vec!["--stack-keys"]),
        ("classic", vec!["--compress"]),
    ] {
        let case = format!("{form} {}", extra.join(" "));
        let caps = d.path().join(case.replace([' ', '-'], "_"));
        let m = synth(&caps, form, &extra);
        let db = caps.join("heap.db");
        let out = run(&["ingest", "--db", s(&db), s(&caps)]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{case}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let c = Connection::open(&db).unwrap();
        let reallocs = sum(&m, |f| f["reallocs"]["total"].as_i64().unwrap());
        let heap_events = sum(&m, |f| f["heap_events"].as_i64().unwrap());
        assert!(reallocs > 5000, "{case}");
        assert_eq!(q(&c, "SELECT count(*) FROM reallocs"), reallocs, "{case}");
        assert_eq!(
            q(&c, "SELECT count(*) FROM heap_events"),
            heap_events - reallocs,
            "{case}"
        );
        assert_eq!(
            q(&c, "SELECT sum(new_size) FROM reallocs"),
            sum(&m, |f| f["reallocs"]["sum_new_size"].as_i64().unwrap()),
            "{case}"
        );
        assert_eq!(
            q(&c, "SELECT count(*) FROM reallocs WHERE pointer_size = 4")
                + q(
                    &c,
                    "SELECT count(*) FROM heap_events WHERE pointer_size = 4"
                ),
            sum(&m, |f| f["records_32bit"].as_i64().unwrap()),
            "{case}"
        );
        assert_eq!(
            q(&c, "SELECT sum(stacks_matched) FROM captures"),
            sum(&m, |f| f["events_with_stack"].as_i64().unwrap()),
            "{case}: every stack found"
        );
        assert_eq!(
            q(
                &c,
                "SELECT count(*) FROM reallocs WHERE alloc_id IS NOT NULL"
            ),
            sum(&m, |f| f["reallocs"]["with_internal_alloc_free"]
                .as_i64()
                .unwrap()),
            "{case}: moving reallocs linked to their Alloc/Free"
        );
        assert_eq!(
            q(&c, "SELECT sum(heap_events_undecoded) FROM captures"),
            0,
            "{case}"
        );
        // dump counts every event under its provider, whatever the header.
        let out = run(&["dump", "--summary", "--format", "jsonl", s(&caps)]);
        let lines: Vec<serde_json::Value> = String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        for (i, l) in lines.iter().enumerate() {
            assert_eq!(l["counts"], m["files"][i]["counts"], "{case}");
        }
    }
}

/// A heap-provider event that cannot be decoded (here: an opcode no Windows version
/// logs, in a classic header) is an error for that record, counted in the capture and
/// shown by data-quality; the other events are kept.
#[test]
fn undecodable_heap_provider_events_are_said() {
    let d = tempfile::tempdir().unwrap();
    let caps = d.path().join("caps");
    let m = synth(&caps, "classic", &[]);
    let path = m["files"][0]["path"].as_str().unwrap().to_string();
    let mut bytes = std::fs::read(&path).unwrap();
    // The heap provider's GUID as stored (first three fields little-endian).
    let guid = [
        0xab, 0x62, 0x29, 0x22, 0x80, 0x61, 0x88, 0x4b, 0xa8, 0x25, 0x34, 0x6b, 0x75, 0xf2, 0xa2,
        0x4a,
    ];
    let mut patched = 0;
    let mut at = 0;
    while let Some(i) = bytes[at..].windows(16).position(|w| w == guid) {
        let record = at + i - 0x18; // the GUID sits at +0x18 of an EVENT_TRACE_HEADER
        if patched < 3 && bytes[record + 2] == 0x14 {
            bytes[record + 4] = 0x61; // Class.Type: no heap opcode
            patched += 1;
        }
        at = at + i + 16;
    }
    assert_eq!(patched, 3);
    std::fs::write(&path, &bytes).unwrap();
    let db = d.path().join("heap.db");
    let out = run(&["ingest", "--db", s(&db), &path]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("unknown heap opcode 97"), "{err}");
    assert!(
        err.contains("3 heap-provider event(s) could not be decoded"),
        "{err}"
    );
    let c = Connection::open(&db).unwrap();
    assert_eq!(q(&c, "SELECT heap_events_undecoded FROM captures"), 3);
    assert_eq!(
        q(&c, "SELECT count(*) FROM reallocs") + q(&c, "SELECT count(*) FROM heap_events"),
        m["files"][0]["heap_events"].as_i64().unwrap() - 3
    );
    let out = run(&["query", "--db", s(&db), "data-quality", "--format", "jsonl"]);
    let row: serde_json::Value = serde_json::from_str(
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .next()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(row["heap_events_undecoded"], 3);
}
