//! Captures inside `.zip` archives and Visual Studio `.diagsession` packages: each inner
//! `.etl` is a capture of its own, named `archive!inner.etl`, fingerprinted by its own
//! bytes, read from the archive; bad archives are refused with a clear message.

mod common;

use rusqlite::Connection;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn run(args: &[&str]) -> Output {
    Command::new(common::heapdb_bin())
        .args(args)
        .output()
        .unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn q(db: &Path, sql: &str) -> i64 {
    let c = Connection::open(db).unwrap();
    c.query_row(sql, [], |r| r.get::<_, Option<i64>>(0))
        .unwrap()
        .unwrap_or(0)
}

/// One synthesized capture: its path, reallocs and events (from manifest.json).
struct Synth {
    reallocs: i64,
    events: serde_json::Value,
}

fn synth(dir: &Path, seed: &str) -> (PathBuf, Synth) {
    let o = run(&[
        "synth",
        "--quiet",
        "--out",
        s(dir),
        "--events-per-file",
        "20000",
        "--stacks",
        "--seed",
        seed,
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap();
    let f = &m["files"][0];
    (
        PathBuf::from(f["path"].as_str().unwrap()),
        Synth {
            reallocs: f["reallocs"]["total"].as_i64().unwrap(),
            events: f["events"].clone(),
        },
    )
}

/// Writes a ZIP archive: (name, bytes, deflated?) members.
fn zip(path: &Path, members: &[(&str, &[u8], bool)]) {
    let mut w = zip::ZipWriter::new(std::fs::File::create(path).unwrap());
    for (name, bytes, deflate) in members {
        let opts = zip::write::SimpleFileOptions::default().compression_method(if *deflate {
            zip::CompressionMethod::Deflated
        } else {
            zip::CompressionMethod::Stored
        });
        w.start_file(*name, opts).unwrap();
        w.write_all(bytes).unwrap();
    }
    w.finish().unwrap();
}

fn blake3_hex(b: &[u8]) -> String {
    blake3::hash(b).to_hex().to_string()
}

#[test]
fn every_etl_inside_an_archive_is_a_capture_of_its_own() {
    let d = tempfile::tempdir().unwrap();
    let (a_path, a) = synth(&d.path().join("a"), "41");
    let (b_path, b) = synth(&d.path().join("b"), "42");
    let a_bytes = std::fs::read(&a_path).unwrap();
    let b_bytes = std::fs::read(&b_path).unwrap();
    let real = std::fs::read(common::real_dir().join("hw3d-trace.etl")).unwrap();
    // A Visual Studio session: its ETLs in subfolders, deflated or stored, and other files.
    let session = d.path().join("night.diagsession");
    zip(
        &session,
        &[
            ("metadata.xml", b"<session/>", true),
            ("sc.user/heap.etl", &a_bytes, true),
            ("sc.user/kernel.ETL", &real, false),
            ("sc.user/other.etl", &b_bytes, false),
        ],
    );
    let db = d.path().join("heap.db");
    let out = run(&["ingest", "--db", s(&db), s(&session)]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let c = Connection::open(&db).unwrap();
    let mut st = c
        .prepare("SELECT path, file_name, fingerprint, size_bytes, (SELECT count(*) FROM reallocs r WHERE r.capture_id = c.capture_id) FROM captures c ORDER BY capture_id")
        .unwrap();
    let rows: Vec<(String, String, String, i64, i64)> = st
        .query_map([], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })
        .unwrap()
        .map(|r| r.unwrap())
        .collect();
    let name = |inner: &str| format!("{}!{inner}", session.display());
    assert_eq!(
        rows,
        [
            (
                name("sc.user/heap.etl"),
                "heap.etl".to_string(),
                blake3_hex(&a_bytes),
                a_bytes.len() as i64,
                a.reallocs
            ),
            (
                name("sc.user/kernel.ETL"),
                "kernel.ETL".to_string(),
                blake3_hex(&real),
                real.len() as i64,
                0
            ),
            (
                name("sc.user/other.etl"),
                "other.etl".to_string(),
                blake3_hex(&b_bytes),
                b_bytes.len() as i64,
                b.reallocs
            ),
        ]
    );
    // The same capture as a plain file is recognised as already there.
    let out = run(&["ingest", "--db", s(&db), s(&a_path)]);
    assert_eq!(out.status.code(), Some(0));
    assert!(
        stderr(&out).contains(&format!(
            "already ingested as capture 1 ({})",
            name("sc.user/heap.etl")
        )),
        "{}",
        stderr(&out)
    );
    // dump reads the members the same way: the events of the inner file.
    let summary = |args: &[&str]| -> Vec<serde_json::Value> {
        let o = run(args);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        String::from_utf8(o.stdout)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    let inside = summary(&["dump", "--summary", "--format", "jsonl", s(&session)]);
    let plain = summary(&["dump", "--summary", "--format", "jsonl", s(&a_path)]);
    assert_eq!(inside.len(), 3);
    assert_eq!(inside[0]["file"], name("sc.user/heap.etl"));
    assert_eq!(inside[0]["events"], plain[0]["events"]);
    assert_eq!(inside[0]["counts"], plain[0]["counts"]);
    assert_eq!(inside[0]["events"], a.events);
}

#[test]
fn bad_archives_are_refused_and_the_batch_goes_on() {
    let d = tempfile::tempdir().unwrap();
    let (a_path, a) = synth(&d.path().join("a"), "43");
    let a_bytes = std::fs::read(&a_path).unwrap();
    let good = d.path().join("good.zip");
    zip(&good, &[("capture.etl", &a_bytes, true)]);
    // Not a ZIP at all, and a ZIP cut in half (no central directory).
    let junk = d.path().join("junk.zip");
    std::fs::write(&junk, b"PK\x03\x04 this is not really an archive").unwrap();
    let cut = d.path().join("cut.zip");
    let whole = std::fs::read(&good).unwrap();
    std::fs::write(&cut, &whole[..whole.len() / 2]).unwrap();
    // An archive without a capture.
    let empty = d.path().join("notes.zip");
    zip(&empty, &[("readme.txt", b"no captures here", true)]);
    // A member whose declared size is absurd (4 GiB from 32 bytes).
    let bomb = d.path().join("bomb.zip");
    std::fs::write(&bomb, bomb_archive()).unwrap();
    // A member whose bytes do not match its checksum: read, then refused.
    let mut damaged_bytes = whole.clone();
    let mid = 30 + "capture.etl".len() + 100; // inside the deflated data
    damaged_bytes[mid] ^= 0x55;
    let damaged = d.path().join("damaged.zip");
    std::fs::write(&damaged, &damaged_bytes).unwrap();

    let db = d.path().join("heap.db");
    let out = run(&[
        "ingest",
        "--db",
        s(&db),
        s(&bomb),
        s(&cut),
        s(&damaged),
        s(&empty),
        s(&good),
        s(&junk),
    ]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!("{}: not a readable ZIP archive", junk.display())),
        "{err}"
    );
    assert!(
        err.contains(&format!("{}: not a readable ZIP archive", cut.display())),
        "{err}"
    );
    assert!(
        err.contains(&format!("{}: archive holds no .etl file", empty.display())),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "{}!huge.etl: declared size of 4294967280 bytes",
            bomb.display()
        )) && err.contains("zip bomb guard"),
        "{err}"
    );
    assert!(
        err.contains(&format!("{}!capture.etl", damaged.display())),
        "{err}"
    );
    // The good archive went in whole.
    assert_eq!(q(&db, "SELECT count(*) FROM captures"), 1, "{err}");
    assert_eq!(q(&db, "SELECT count(*) FROM reallocs"), a.reallocs);
    // Each refusal is recorded once, also when the batch is run again.
    let errors = q(&db, "SELECT count(*) FROM ingest_errors");
    assert_eq!(errors, 4, "junk, cut, bomb, damaged");
    let out = run(&[
        "ingest",
        "--db",
        s(&db),
        s(&bomb),
        s(&cut),
        s(&damaged),
        s(&junk),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(q(&db, "SELECT count(*) FROM ingest_errors"), errors);
    // Inside a directory, an archive without a capture is skipped and said so.
    let dir = d.path().join("dir");
    std::fs::create_dir(&dir).unwrap();
    std::fs::copy(&empty, dir.join("notes.zip")).unwrap();
    std::fs::copy(&good, dir.join("good.zip")).unwrap();
    let out = run(&["ingest", "--db", s(&d.path().join("dir.db")), s(&dir)]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("1 skipped (archive without .etl)"),
        "{}",
        stderr(&out)
    );
}

/// A ZIP whose one member, `huge.etl`, says it inflates 32 bytes to 4 GiB.
fn bomb_archive() -> Vec<u8> {
    let name = b"huge.etl";
    let data = [0u8; 32];
    let (csize, usize_) = (data.len() as u32, 0xFFFF_FFF0u32);
    let mut z = Vec::new();
    let le16 = |z: &mut Vec<u8>, v: u16| z.extend_from_slice(&v.to_le_bytes());
    let le32 = |z: &mut Vec<u8>, v: u32| z.extend_from_slice(&v.to_le_bytes());
    // Local file header.
    le32(&mut z, 0x0403_4b50);
    le16(&mut z, 20);
    le16(&mut z, 0);
    le16(&mut z, 8); // deflate
    le16(&mut z, 0);
    le16(&mut z, 0);
    le32(&mut z, 0);
    le32(&mut z, csize);
    le32(&mut z, usize_);
    le16(&mut z, name.len() as u16);
    le16(&mut z, 0);
    z.extend_from_slice(name);
    z.extend_from_slice(&data);
    // Central directory.
    let cd = z.len() as u32;
    le32(&mut z, 0x0201_4b50);
    le16(&mut z, 20);
    le16(&mut z, 20);
    le16(&mut z, 0);
    le16(&mut z, 8);
    le16(&mut z, 0);
    le16(&mut z, 0);
    le32(&mut z, 0);
    le32(&mut z, csize);
    le32(&mut z, usize_);
    le16(&mut z, name.len() as u16);
    le16(&mut z, 0);
    le16(&mut z, 0);
    le16(&mut z, 0);
    le16(&mut z, 0);
    le32(&mut z, 0);
    le32(&mut z, 0);
    z.extend_from_slice(name);
    let cd_len = z.len() as u32 - cd;
    // End of central directory.
    le32(&mut z, 0x0605_4b50);
    le16(&mut z, 0);
    le16(&mut z, 0);
    le16(&mut z, 1);
    le16(&mut z, 1);
    le32(&mut z, cd_len);
    le32(&mut z, cd);
    le16(&mut z, 0);
    z
}
