//! Bad input: truncated, empty, foreign and corrupted files give errors that name the
//! byte offset, never a panic; events of the intact buffers are still returned.

mod common;

use heapdb::etl::{Error, ErrorKind, EtlFile};
use std::process::Command;

const BUF: usize = 65536;

fn shutdown() -> Vec<u8> {
    std::fs::read(common::real_dir().join("ShutdownPerfDiagLogger.etl")).unwrap()
}

/// Events and errors of a byte image, in file order.
fn walk(data: &[u8]) -> Result<(Vec<u64>, Vec<Error>), Error> {
    let file = EtlFile::parse(data)?;
    let mut offsets = Vec::new();
    let mut errors = Vec::new();
    file.for_each(|item| match item {
        Ok(e) => offsets.push(e.offset()),
        Err(e) => errors.push(e.clone()),
    });
    Ok((offsets, errors))
}

fn u16_at(d: &[u8], o: usize) -> u16 {
    u16::from_le_bytes([d[o], d[o + 1]])
}

/// File offsets of the records of buffer `index` (uncompressed, session-sized buffers).
fn record_offsets(data: &[u8], index: usize) -> Vec<usize> {
    let (events, _) = walk(data).unwrap();
    events
        .into_iter()
        .map(|o| o as usize)
        .filter(|o| o / BUF == index)
        .collect()
}

#[test]
fn empty_file() {
    let err = EtlFile::parse(&[]).err().unwrap();
    assert_eq!(err.kind, ErrorKind::Empty);
    assert_eq!(err.offset(), 0);
}

#[test]
fn foreign_files_are_not_etl() {
    let text = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml")).unwrap();
    let err = EtlFile::parse(&text).err().unwrap();
    assert!(matches!(err.kind, ErrorKind::NotEtl(_)), "{err}");
    assert_eq!(err.offset(), 0);
    // A zeroed file of a plausible size.
    let err = EtlFile::parse(&vec![0u8; 8192]).err().unwrap();
    assert!(matches!(err.kind, ErrorKind::NotEtl(_)), "{err}");
    // A file with a valid buffer header but no logfile header record.
    let mut d = shutdown()[..BUF].to_vec();
    d[0x48 + 6] = 0x22; // hook 0x0000 -> 0x0022
    d[0x48 + 7] = 0x10;
    let err = EtlFile::parse(&d).err().unwrap();
    assert!(err.to_string().contains("not the logfile header"), "{err}");
    assert_eq!(err.offset(), 0x48);
    // Too short for anything.
    assert!(matches!(
        EtlFile::parse(b"MZ\x90\0").err().unwrap().kind,
        ErrorKind::NotEtl(_)
    ));
}

#[test]
fn truncated_file_keeps_the_complete_buffers() {
    let full = shutdown();
    let (all, errors) = walk(&full).unwrap();
    assert!(errors.is_empty());
    assert_eq!(all.len(), 17078);
    let cut = 10 * BUF + 1000;
    let (events, errors) = walk(&full[..cut]).unwrap();
    let want = all.iter().filter(|&&o| o < (10 * BUF) as u64).count();
    assert_eq!(events.len(), want);
    assert_eq!(errors.len(), 1);
    assert!(
        matches!(errors[0].kind, ErrorKind::Truncated(_)),
        "{}",
        errors[0]
    );
    assert_eq!(errors[0].offset(), (10 * BUF) as u64);
    // A tail shorter than a buffer header.
    let (events, errors) = walk(&full[..10 * BUF + 20]).unwrap();
    assert_eq!(events.len(), want);
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].offset(), (10 * BUF) as u64);
    assert!(
        errors[0].to_string().contains("20 trailing bytes"),
        "{}",
        errors[0]
    );
}

#[test]
fn buffer_sizes_pointing_past_the_end_are_skipped_and_the_walk_resyncs() {
    let full = shutdown();
    let (all, _) = walk(&full).unwrap();
    let in_buffer_5 = all.iter().filter(|&&o| o as usize / BUF == 5).count();
    assert!(in_buffer_5 > 0);

    // BufferSize far past the end of the file.
    let mut d = full.clone();
    d[5 * BUF..5 * BUF + 4].copy_from_slice(&0x00F0_0000u32.to_le_bytes());
    let (events, errors) = walk(&d).unwrap();
    assert_eq!(events.len(), all.len() - in_buffer_5);
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].offset(), (5 * BUF) as u64);
    assert!(
        errors[0]
            .to_string()
            .contains("runs past the end of the file"),
        "{}",
        errors[0]
    );

    // Used length (Offset) past BufferSize.
    let mut d = full.clone();
    d[5 * BUF + 0x30..5 * BUF + 0x34].copy_from_slice(&0x0002_0000u32.to_le_bytes());
    let (events, errors) = walk(&d).unwrap();
    assert_eq!(events.len(), all.len() - in_buffer_5);
    assert_eq!(errors[0].offset(), (5 * BUF) as u64);
    assert!(matches!(errors[0].kind, ErrorKind::BadBuffer(_)));

    // BufferSize 0: no size to step by; resync on the session buffer size.
    let mut d = full.clone();
    d[5 * BUF..5 * BUF + 4].copy_from_slice(&0u32.to_le_bytes());
    let (events, errors) = walk(&d).unwrap();
    assert_eq!(events.len(), all.len() - in_buffer_5);
    assert_eq!(errors.len(), 1);
}

#[test]
fn record_of_size_zero_stops_its_buffer_only() {
    let full = shutdown();
    let (all, _) = walk(&full).unwrap();
    let recs = record_offsets(&full, 3);
    assert!(recs.len() > 5);
    let bad = recs[2];
    let mut d = full.clone();
    // SYSTEM/PERFINFO records keep their size at +4.
    d[bad + 4..bad + 6].copy_from_slice(&0u16.to_le_bytes());
    let (events, errors) = walk(&d).unwrap();
    assert_eq!(events.len(), all.len() - (recs.len() - 2));
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].offset(), bad as u64);
    assert!(
        errors[0].to_string().contains("record size is 0"),
        "{}",
        errors[0]
    );
    assert!(errors[0]
        .to_string()
        .contains(&format!("byte offset {bad}")));
}

#[test]
fn record_overrunning_its_buffer_stops_its_buffer_only() {
    let full = shutdown();
    let (all, _) = walk(&full).unwrap();
    let recs = record_offsets(&full, 7);
    let bad = recs[1];
    let mut d = full.clone();
    d[bad + 4..bad + 6].copy_from_slice(&0xFFF0u16.to_le_bytes());
    let (events, errors) = walk(&d).unwrap();
    assert_eq!(events.len(), all.len() - (recs.len() - 1));
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].offset(), bad as u64);
    assert!(
        errors[0]
            .to_string()
            .contains("runs past the end of its buffer"),
        "{}",
        errors[0]
    );
    // Smaller than its header.
    let mut d = full.clone();
    d[bad + 4..bad + 6].copy_from_slice(&8u16.to_le_bytes());
    let (_, errors) = walk(&d).unwrap();
    assert!(
        errors[0].to_string().contains("smaller than its"),
        "{}",
        errors[0]
    );
}

#[test]
fn unknown_header_kind_is_reported_and_skipped() {
    // AMSITrace holds EVENT_HEADER records (size at +0), so an unknown kind can be
    // skipped by its size and the rest of the buffer is still read.
    let full = std::fs::read(common::real_dir().join("AMSITrace.etl")).unwrap();
    let (all, _) = walk(&full).unwrap();
    let bad = all[5] as usize;
    assert_eq!(full[bad + 2], 0x13, "expected an EVENT_HEADER64 record");
    let mut d = full.clone();
    d[bad + 2] = 0x7F;
    let (events, errors) = walk(&d).unwrap();
    assert_eq!(events.len(), all.len() - 1);
    assert_eq!(errors.len(), 1);
    assert_eq!(
        errors[0].kind,
        ErrorKind::UnknownHeader(u32::from_le_bytes([d[bad], d[bad + 1], 0x7F, 0xC0]))
    );
    assert_eq!(errors[0].offset(), bad as u64);
    // A record whose marker lacks the trace-header bit stops the buffer.
    let mut d = full.clone();
    d[bad + 3] = 0x40;
    let (events, errors) = walk(&d).unwrap();
    assert!(events.len() < all.len());
    assert!(
        errors[0].to_string().contains("not an ETW trace header"),
        "{}",
        errors[0]
    );
}

#[test]
fn corrupt_extended_item_is_a_record_error() {
    let full = std::fs::read(common::real_dir().join("AMSITrace.etl")).unwrap();
    let (all, _) = walk(&full).unwrap();
    let bad = all[3] as usize;
    assert_eq!(u16_at(&full, bad + 4) & 1, 1, "expected extended items");
    let mut d = full.clone();
    d[bad + 0x50..bad + 0x52].copy_from_slice(&0xFF00u16.to_le_bytes());
    let (events, errors) = walk(&d).unwrap();
    assert_eq!(events.len(), all.len() - 1);
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].offset(), bad as u64);
    assert!(
        errors[0].to_string().contains("extended data item"),
        "{}",
        errors[0]
    );
}

#[test]
fn corrupt_compressed_buffer_is_reported_with_its_offset() {
    let full = std::fs::read(common::real_dir().join("net.4.5.2.x64.etl")).unwrap();
    let (all, errors) = walk(&full).unwrap();
    assert!(errors.is_empty());
    let file = EtlFile::parse(&full).unwrap();
    let buffers: Vec<_> = file.buffers().map(|b| b.unwrap()).collect();
    let victim = buffers[10];
    assert!(victim.header.is_compressed());
    let start = victim.offset as usize + 0x48;
    let len = victim.header.buffer_size() as usize - 0x48;
    let in_victim = all.iter().filter(|&&o| o == victim.offset).count();
    // Wrong uncompressed length: decompression cannot end where the header says.
    let mut d = full.clone();
    let at = victim.offset as usize + 0x30;
    let filled = victim.header.filled() + 1000;
    d[at..at + 4].copy_from_slice(&filled.to_le_bytes());
    let (events, errors) = walk(&d).unwrap();
    assert_eq!(events.len(), all.len() - in_victim);
    assert_eq!(errors.len(), 1);
    assert!(
        matches!(errors[0].kind, ErrorKind::Decompress(_)),
        "{}",
        errors[0]
    );
    assert_eq!(errors[0].offset(), victim.offset);
    // Garbage compressed bytes: an error or garbage-free records, never a panic.
    let mut d = full.clone();
    for (i, b) in d[start..start + len].iter_mut().enumerate() {
        *b = (i as u8).wrapping_mul(37) ^ 0x5A;
    }
    let (events, errors) = walk(&d).unwrap();
    assert!(!errors.is_empty());
    assert!(events.len() >= all.len() - in_victim);
    drop(file);
}

#[test]
fn unsupported_compression_format_is_refused() {
    let mut d = std::fs::read(common::real_dir().join("net.4.5.2.x64.etl")).unwrap();
    // The first buffer's State names the compression format; 2 = LZNT1.
    d[0x2C..0x30].copy_from_slice(&2u32.to_le_bytes());
    let err = EtlFile::parse(&d).err().unwrap();
    assert!(matches!(err.kind, ErrorKind::UnsupportedCompression(_)));
    assert!(
        err.to_string()
            .contains("compressed buffers are not supported"),
        "{err}"
    );
}

#[test]
fn dump_reports_bad_files_and_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.etl");
    std::fs::write(&empty, b"").unwrap();
    let full = shutdown();
    let truncated = dir.path().join("truncated.etl");
    std::fs::write(&truncated, &full[..3 * BUF + 100]).unwrap();
    let good = common::real_dir().join("lxcore_kernel.etl");
    let out = Command::new(common::heapdb_bin())
        .args(["dump", "--summary", "--format", "jsonl"])
        .arg(&empty)
        .arg(&truncated)
        .arg(&good)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "exit code 1 = finished with input errors"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("empty.etl: byte offset 0: empty file"),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "truncated.etl: byte offset {}: truncated",
            3 * BUF
        )),
        "{stderr}"
    );
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        lines.len(),
        2,
        "the truncated and the good file are summarised"
    );
    assert_eq!(lines[0]["errors"].as_array().unwrap().len(), 1);
    assert_eq!(lines[0]["errors"][0]["offset"], 3 * BUF);
    assert_eq!(lines[1]["events"], 4);
    assert_eq!(
        lines[1]["counts"]["0cd1c309-0878-4515-83db-749843b3f5c9/0"],
        2
    );
}
