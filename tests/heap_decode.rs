//! Heap decoding: round trips through the synthesizer (every field of every heap
//! record), hand-built known bytes, bad records, and the rundown and stack-key decoding
//! checked on real captures against TraceEvent.

mod common;

use heapdb::etl::EtlFile;
use heapdb::heap::capture::{decode_file, StackRef};
use heapdb::heap::record::{decode_payload, op, HeapError, HeapRecord, Source};
use heapdb::heap::rundown::{Phase, Rundown};
use heapdb::synth::{generate_file, Options, PointerMode, StackMode, TruthOp};
use std::collections::BTreeMap;

fn round_trip(opts: &Options) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rt.etl");
    let mut truth: Vec<TruthOp> = Vec::new();
    let m = generate_file(&path, opts, 0, Some(&mut truth)).unwrap();
    let ctx = format!(
        "{:?} {:?} compress={}",
        opts.pointer_mode, opts.stacks, opts.compress
    );
    assert_eq!(truth.len() as u64, m.heap_events, "{ctx}");
    let map = std::fs::read(&path).unwrap();
    let file = EtlFile::parse(&map).unwrap();
    let batch = decode_file(&file);
    assert!(
        batch.problems.is_empty(),
        "{ctx}: {:?}",
        &batch.problems[..batch.problems.len().min(3)]
    );
    assert_eq!(batch.rows.len(), truth.len(), "{ctx}: heap events decoded");
    // Decoded rows come in file (buffer) order; the truth in time order. Every event
    // has its own timestamp, so sorting by it lines them up.
    let by_key = heapdb::heap::capture::index_by_key(&batch.rows);
    let mut rows: Vec<_> = batch.rows.iter().enumerate().collect();
    rows.sort_by_key(|(_, r)| r.event.info.ts_raw);
    for ((i, row), want) in rows.iter().zip(&truth) {
        let mut got = row.event.info;
        got.offset = 0;
        assert_eq!(got, want.info, "{ctx}: event header of {:?}", want.record);
        assert_eq!(
            row.event.record, want.record,
            "{ctx}: record at ts {}",
            want.info.ts_raw
        );
        let stack = match row.stack {
            StackRef::Id(id) => Some(id),
            StackRef::None => None,
            StackRef::Keys { .. } => panic!("unresolved keys"),
        };
        assert_eq!(stack, want.stack_id, "{ctx}: stack of {:?}", want.record);
        if matches!(
            want.record,
            HeapRecord::Alloc { .. } | HeapRecord::Free { .. }
        ) {
            assert_eq!(
                row.realloc_link.is_some(),
                want.internal,
                "{ctx}: internal flag of row {i} {:?}",
                want.record
            );
        }
        if let Some(link) = row.realloc_link {
            let target = &batch.rows[by_key[&link]];
            assert!(matches!(target.event.record, HeapRecord::ReAlloc { .. }));
            assert_eq!(
                (target.event.info.tid, target.event.info.pid),
                (want.info.tid, want.info.pid)
            );
        }
    }
    assert_eq!(batch.stats.heap_events, m.heap_events);
    assert_eq!(batch.stats.records_32bit, m.records_32bit, "{ctx}");
    assert_eq!(batch.stats.stacks_matched, m.events_with_stack, "{ctx}");
    assert_eq!(batch.stats.stacks_orphan, 0, "{ctx}");
    assert_eq!(batch.stats.key_refs_unresolved, 0, "{ctx}");
    assert_eq!(
        batch.stats.moving_reallocs_linked, m.reallocs.with_internal_alloc_free,
        "{ctx}"
    );
    assert_eq!(batch.stats.unknown_versions, 0);
    // Rundown: one DCStart per process, one per thread, five images with PDB ids (exe,
    // ntdll, kernelbase, ucrtbase, heapdemo.dll).
    let procs = batch
        .rundown
        .iter()
        .filter(|r| matches!(r, Rundown::Process(p) if p.phase == Phase::RundownStart))
        .count();
    assert_eq!(procs, m.processes.len());
    let threads: usize = m.processes.iter().map(|p| p.threads.len()).sum();
    assert_eq!(
        batch
            .rundown
            .iter()
            .filter(|r| matches!(r, Rundown::Thread(_)))
            .count(),
        threads
    );
    assert_eq!(
        batch
            .rundown
            .iter()
            .filter(|r| matches!(r, Rundown::Image(_)))
            .count(),
        5 * m.processes.len()
    );
    assert_eq!(
        batch
            .rundown
            .iter()
            .filter(|r| matches!(r, Rundown::Pdb(_)))
            .count(),
        5 * m.processes.len()
    );
    for p in &m.processes {
        let found = batch.rundown.iter().any(|r| {
            matches!(r, Rundown::Process(x) if x.pid == p.pid && x.image_name == p.name && x.command_line == p.command_line)
        });
        assert!(found, "{ctx}: process {} {} not decoded", p.pid, p.name);
    }
}

#[test]
fn round_trip_every_pointer_mode_and_stack_form() {
    for pointer_mode in [PointerMode::P64, PointerMode::P32, PointerMode::Mixed] {
        for stacks in [StackMode::None, StackMode::Plain, StackMode::Keyed] {
            round_trip(&Options {
                events_per_file: 20_000,
                pointer_mode,
                stacks,
                processes: 5,
                seed: 11,
                ..Options::default()
            });
        }
    }
}

#[test]
fn round_trip_compressed_and_small_buffers() {
    round_trip(&Options {
        events_per_file: 15_000,
        compress: true,
        stacks: StackMode::Plain,
        pointer_mode: PointerMode::Mixed,
        ..Options::default()
    });
    round_trip(&Options {
        events_per_file: 5_000,
        buffer_size: 4096,
        cpus: 1,
        stacks: StackMode::Keyed,
        ..Options::default()
    });
}

#[test]
fn synthesized_captures_have_every_source_and_opcode() {
    let dir = tempfile::tempdir().unwrap();
    let mut truth = Vec::new();
    let m = generate_file(
        &dir.path().join("a.etl"),
        &Options {
            events_per_file: 60_000,
            processes: 6,
            ..Options::default()
        },
        0,
        Some(&mut truth),
    )
    .unwrap();
    let mut sources = BTreeMap::new();
    let mut opcodes = BTreeMap::new();
    for t in &truth {
        *opcodes.entry(t.info.opcode).or_insert(0) += 1;
        if let HeapRecord::ReAlloc { source, .. } = t.record {
            *sources.entry(source.0).or_insert(0) += 1;
        }
    }
    assert_eq!(
        sources.keys().copied().collect::<Vec<_>>(),
        vec![1, 2, 3, 4, 5, 6],
        "every Source value among reallocs"
    );
    for o in (32..=58).filter(|o| ![39, 40, 41].contains(o)) {
        assert!(opcodes.contains_key(&o), "opcode {o} written");
    }
    // ReAlloc is at least a tenth of the heap events, and moves and in-place both occur.
    assert!(m.reallocs.total * 10 >= m.heap_events);
    assert!(
        m.reallocs.moved > m.reallocs.total / 10 && m.reallocs.in_place > m.reallocs.total / 10
    );
    assert!(m.reallocs.shrunk > 0 && m.reallocs.grown > 0);
}

#[test]
fn synthesizer_is_deterministic_for_a_seed() {
    let dir = tempfile::tempdir().unwrap();
    let opts = Options {
        events_per_file: 5_000,
        stacks: StackMode::Plain,
        seed: 99,
        ..Options::default()
    };
    generate_file(&dir.path().join("a.etl"), &opts, 3, None).unwrap();
    generate_file(&dir.path().join("b.etl"), &opts, 3, None).unwrap();
    let a = std::fs::read(dir.path().join("a.etl")).unwrap();
    assert_eq!(a, std::fs::read(dir.path().join("b.etl")).unwrap());
    generate_file(
        &dir.path().join("c.etl"),
        &Options { seed: 100, ..opts },
        3,
        None,
    )
    .unwrap();
    assert_ne!(a, std::fs::read(dir.path().join("c.etl")).unwrap());
}

/// The worked example of the heap notes §2.2: a 64-bit ReAlloc record starts
/// `02 00 02 C0 4C 00 22 10`, the 32-bit one `02 00 01 C0 38 00 22 10`.
#[test]
fn known_bytes_realloc_64_and_32() {
    let mut rec64: Vec<u8> = vec![0x02, 0x00, 0x02, 0xC0, 0x4C, 0x00, 0x22, 0x10];
    rec64.extend_from_slice(&0x1234u32.to_le_bytes()); // tid
    rec64.extend_from_slice(&0x0abcu32.to_le_bytes()); // pid
    rec64.extend_from_slice(&0x0000_0001_0000_0000u64.to_le_bytes()); // ts
    rec64.extend_from_slice(&[0; 8]);
    for v in [
        0x0000_01d2_3450_0000u64,
        0x0000_01d2_3451_2340,
        0x0000_01d2_3450_1000,
        0x300,
        0x200,
    ] {
        rec64.extend_from_slice(&v.to_le_bytes());
    }
    rec64.extend_from_slice(&2u32.to_le_bytes());
    assert_eq!(rec64.len(), 0x4C);
    rec64.resize(0x50, 0xAA); // alignment padding: garbage, never read
    let loc = heapdb::etl::Location {
        buffer_offset: 0,
        record_pos: None,
        compressed: false,
    };
    let e = heapdb::etl::Events::new(&rec64, loc, 1)
        .next()
        .unwrap()
        .unwrap();
    let h = heapdb::heap::decode(&e).unwrap().unwrap();
    assert_eq!(
        (
            h.info.pid,
            h.info.tid,
            h.info.ts_raw,
            h.info.pointer_size,
            h.info.version
        ),
        (0xabc, 0x1234, 1 << 32, 8, 2)
    );
    assert_eq!(
        h.record,
        HeapRecord::ReAlloc {
            heap: 0x0000_01d2_3450_0000,
            new_address: 0x0000_01d2_3451_2340,
            old_address: 0x0000_01d2_3450_1000,
            new_size: 0x300,
            old_size: 0x200,
            source: Source::LFH
        }
    );

    let mut rec32: Vec<u8> = vec![0x02, 0x00, 0x01, 0xC0, 0x38, 0x00, 0x22, 0x10];
    rec32.extend_from_slice(&7u32.to_le_bytes());
    rec32.extend_from_slice(&9u32.to_le_bytes());
    rec32.extend_from_slice(&5u64.to_le_bytes());
    rec32.extend_from_slice(&[0; 8]);
    for v in [0x0054_0000u32, 0x0054_2000, 0x0054_1000, 4096, 100, 4] {
        rec32.extend_from_slice(&v.to_le_bytes());
    }
    assert_eq!(rec32.len(), 0x38);
    let e = heapdb::etl::Events::new(&rec32, loc, 0)
        .next()
        .unwrap()
        .unwrap();
    let h = heapdb::heap::decode(&e).unwrap().unwrap();
    assert_eq!(h.info.pointer_size, 4);
    assert_eq!(
        h.record,
        HeapRecord::ReAlloc {
            heap: 0x0054_0000,
            new_address: 0x0054_2000,
            old_address: 0x0054_1000,
            new_size: 4096,
            old_size: 100,
            source: Source::SLOW
        }
    );
    assert_eq!(Source(4).to_string(), "slow");
    assert_eq!(
        Source(9).to_string(),
        "9",
        "unknown sources are kept as numbers"
    );
}

#[test]
fn bad_heap_records() {
    use heapdb::etl::HeaderKind::System64;
    // Short payload: a 64-bit ReAlloc needs 44 bytes.
    let err = decode_payload(0x10, op::REALLOC, 2, 8, System64, &[0u8; 40]).unwrap_err();
    assert!(
        matches!(
            err,
            HeapError::Short {
                have: 40,
                need: 44,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("ReAlloc"));
    // 32-bit Alloc needs 16.
    assert!(decode_payload(0x10, op::ALLOC, 2, 4, System64, &[0u8; 15]).is_err());
    assert!(decode_payload(0x10, op::ALLOC, 2, 4, System64, &[0u8; 16]).is_ok());
    // Longer than the layout (padding, newer fields): accepted, prefix decoded.
    let mut p = vec![0u8; 60];
    p[0] = 0x10;
    p[40] = 3;
    let r = decode_payload(0x10, op::REALLOC, 2, 8, System64, &p).unwrap();
    assert!(matches!(
        r,
        HeapRecord::ReAlloc {
            heap: 0x10,
            source: Source::MAIN,
            ..
        }
    ));
    // Unknown opcode of the heap group.
    assert_eq!(
        decode_payload(0x10, 0x60, 2, 8, System64, &p),
        Err(HeapError::UnknownOpcode(0x60))
    );
    // Unknown version: decoded by the known prefix; counted by is_known_version.
    assert!(decode_payload(0x10, op::REALLOC, 9, 8, System64, &p).is_ok());
    assert!(!heapdb::heap::record::is_known_version(op::REALLOC, 9));
    assert!(heapdb::heap::record::is_known_version(op::CREATE, 3));
    // Create v3 short of its sizes is an error; v2 of the same bytes is fine.
    assert!(decode_payload(0x10, op::CREATE, 3, 8, System64, &[0u8; 12]).is_err());
    assert!(decode_payload(0x10, op::CREATE, 2, 8, System64, &[0u8; 12]).is_ok());
    // A range rundown whose count claims more ranges than the payload holds.
    let mut rr = vec![0u8; 24 + 16];
    rr[16..20].copy_from_slice(&1000u32.to_le_bytes());
    assert!(decode_payload(0x02, 100, 2, 8, System64, &rr).is_err());
}

/// A capture with broken heap records and a StackWalk event whose heap event is gone:
/// the decoder reports each, counts the orphan stack, and keeps every other record.
#[test]
fn bad_records_inside_a_capture() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.etl");
    let mut truth = Vec::new();
    generate_file(
        &path,
        &Options {
            events_per_file: 2_000,
            stacks: StackMode::Plain,
            cpus: 1,
            ..Options::default()
        },
        0,
        Some(&mut truth),
    )
    .unwrap();
    let mut data = std::fs::read(&path).unwrap();
    let clean = {
        let file = EtlFile::parse(&data).unwrap();
        decode_file(&file)
    };
    // Find (file offsets of) a ReAlloc followed by its StackWalk, and an Alloc.
    let file = EtlFile::parse(&data).unwrap();
    let mut offsets = Vec::new();
    file.for_each(|e| {
        let e = e.unwrap();
        offsets.push((e.offset() as usize, e.hook));
    });
    let realloc_at = offsets
        .windows(2)
        .position(|w| w[0].1 == Some(0x1022) && w[1].1 == Some(0x1820))
        .expect("a ReAlloc with its StackWalk right after it");
    assert_eq!(
        offsets[realloc_at + 1].1,
        Some(0x1820),
        "stack follows its event"
    );
    let (r_off, _) = offsets[realloc_at];
    let alloc_at = offsets.iter().rposition(|o| o.1 == Some(0x1021)).unwrap();
    let (a_off, _) = offsets[alloc_at];
    // 1. Turn the ReAlloc into an unknown heap opcode 0x60: the record is bad, and its
    //    StackWalk now belongs to no heap event.
    data[r_off + 6] = 0x60;
    // 2. Shrink the Alloc's size field so its payload is short (record size is at +4;
    //    60 -> 57 bytes keeps the 64-byte slot, so the buffer walk goes on).
    let size = u16::from_le_bytes([data[a_off + 4], data[a_off + 5]]);
    assert_eq!(size, 60);
    data[a_off + 4..a_off + 6].copy_from_slice(&(size - 3).to_le_bytes());
    let file = EtlFile::parse(&data).unwrap();
    let b = decode_file(&file);
    assert_eq!(b.rows.len(), clean.rows.len() - 2);
    assert_eq!(b.stats.bad_records, 2);
    assert_eq!(b.problems.len(), 2);
    assert!(
        b.problems
            .iter()
            .any(|p| p.offset == r_off as u64 && p.message.contains("unknown heap opcode 96")),
        "{:?}",
        b.problems
    );
    assert!(
        b.problems
            .iter()
            .any(|p| p.offset == a_off as u64 && p.message.contains("Alloc")),
        "{:?}",
        b.problems
    );
    // The orphaned StackWalk matches the (bad, non-heap) record's timestamp and thread:
    // it is counted as another event's stack, not attached to a heap event.
    assert_eq!(b.stats.stacks_matched, clean.stats.stacks_matched - 2);
    assert_eq!(b.stats.stacks_other + b.stats.stacks_orphan, 2);
}

#[test]
fn stack_without_any_event_is_an_orphan() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("orphan.etl");
    generate_file(
        &path,
        &Options {
            events_per_file: 500,
            stacks: StackMode::Plain,
            cpus: 1,
            ..Options::default()
        },
        0,
        None,
    )
    .unwrap();
    let mut data = std::fs::read(&path).unwrap();
    let file = EtlFile::parse(&data).unwrap();
    let mut stack_at = None;
    file.for_each(|e| {
        let e = e.unwrap();
        if e.hook == Some(0x1820) && stack_at.is_none() {
            stack_at = Some(e.offset() as usize);
        }
    });
    let at = stack_at.unwrap();
    // Point the stack at a thread that logged nothing.
    data[at + 0x10 + 12..at + 0x10 + 16].copy_from_slice(&0xdead_beefu32.to_le_bytes());
    let b = decode_file(&EtlFile::parse(&data).unwrap());
    assert_eq!(b.stats.stacks_orphan, 1);
}

/// Rundown decoding on real kernel captures, checked against TraceEvent's counts and
/// printed fields (net.4.5.2.x64 baseline).
#[test]
fn rundown_matches_traceevent_on_real_captures() {
    let dir = common::real_dir();
    for (name, want) in [
        // (Process DCStart, DCStop, Start, Stop, Defunct, Image DCStart, DCStop, Load, Unload, Thread Start, Stop)
        (
            "net.4.5.2.x64.etl",
            [32, 32, 1, 1, 2, 1763, 1766, 35, 32, 9, 15],
        ),
        (
            "net.4.5.2.x86.etl",
            [35, 35, 1, 1, 2, 1810, 1820, 57, 47, 16, 29],
        ),
    ] {
        let map = std::fs::read(dir.join(name)).unwrap();
        let b = decode_file(&EtlFile::parse(&map).unwrap());
        let mut got = [0usize; 11];
        for r in &b.rundown {
            let i = match r {
                Rundown::Process(p) => match p.phase {
                    Phase::RundownStart => 0,
                    Phase::RundownEnd => 1,
                    Phase::Start => 2,
                    Phase::End => 3,
                    Phase::Defunct => 4,
                },
                Rundown::Image(i) => match i.phase {
                    Phase::RundownStart => 5,
                    Phase::RundownEnd => 6,
                    Phase::Start => 7,
                    Phase::End => 8,
                    Phase::Defunct => continue,
                },
                Rundown::Thread(t) => match t.phase {
                    Phase::Start => 9,
                    Phase::End => 10,
                    _ => continue,
                },
                Rundown::Pdb(_) => continue,
            };
            got[i] += 1;
        }
        assert_eq!(got, want, "{name}");
        // Fields TraceEvent printed for the first DCStart lines.
        let procs: Vec<_> = b
            .rundown
            .iter()
            .filter_map(|r| {
                if let Rundown::Process(p) = r {
                    Some(p)
                } else {
                    None
                }
            })
            .collect();
        let smss = procs
            .iter()
            .find(|p| p.image_name == "smss.exe" && p.phase == Phase::RundownStart)
            .unwrap();
        assert_eq!(
            (
                smss.parent_pid,
                smss.command_line.starts_with("\\SystemRoot\\System32")
            ),
            (4, true)
        );
        if name == "net.4.5.2.x64.etl" {
            assert_eq!(smss.pid, 456);
            let csrss: Vec<_> = procs
                .iter()
                .filter(|p| p.image_name == "csrss.exe" && p.phase == Phase::RundownStart)
                .map(|p| (p.pid, p.parent_pid, p.session_id))
                .collect();
            assert_eq!(csrss, [(576, 564, 0), (624, 616, 1)]);
            let pdb = b
                .rundown
                .iter()
                .find_map(|r| {
                    if let Rundown::Pdb(p) = r {
                        (p.pdb_path == "wntdll.pdb").then_some(p)
                    } else {
                        None
                    }
                })
                .unwrap();
            assert_eq!((pdb.base, pdb.age), (0x77710000, 2));
            assert!(pdb.guid.to_string().starts_with("ec83d8df-5559-46e0-b"));
            let ntdll = b
                .rundown
                .iter()
                .find_map(|r| {
                    if let Rundown::Image(i) = r {
                        (i.base == 0x7f9d02f0000).then_some(i)
                    } else {
                        None
                    }
                })
                .unwrap();
            assert_eq!((ntdll.size, ntdll.checksum), (1_826_816, 1_866_534));
            assert!(
                ntdll.path.ends_with("\\System32\\ntdll.dll"),
                "{}",
                ntdll.path
            );
        }
    }
}

/// Stack caching on real captures: every key a KeyKernel/KeyUser reference names is
/// defined by a KeyDelete or KeyRundown record of the same file.
#[test]
fn real_stack_keys_resolve() {
    use heapdb::heap::stack::{decode, StackEvent};
    for name in ["net.4.5.2.x64.etl", "net.4.5.2.x86.etl"] {
        let map = std::fs::read(common::real_dir().join(name)).unwrap();
        let file = EtlFile::parse(&map).unwrap();
        let (table, stacks) = heapdb::heap::capture::key_definitions(&file);
        assert!(!stacks.is_empty());
        let (mut refs, mut resolved, mut plain) = (0, 0, 0);
        file.for_each(|e| match decode(e.unwrap()) {
            Some(Ok(StackEvent::KeyRef { key, event_ts, .. })) => {
                refs += 1;
                if table.resolve(key, event_ts).is_some() {
                    resolved += 1;
                }
            }
            Some(Ok(StackEvent::Stack { frames, .. })) => {
                assert!(!frames.is_empty());
                plain += 1;
            }
            Some(Err(e)) => panic!("{name}: {e}"),
            _ => {}
        });
        let want = if name.contains("x64") {
            (2061 + 7046, 252)
        } else {
            (3640 + 8532, 229)
        };
        assert_eq!((refs, plain), want, "{name}");
        assert_eq!(
            resolved, refs,
            "{name}: every key reference has a definition"
        );
        assert_eq!(
            table.len(),
            if name.contains("x64") {
                1909 + 1012
            } else {
                3049 + 1024
            }
        );
    }
}
