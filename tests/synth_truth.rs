//! The synthesizer's block lifetime truth (TruthBlock list, manifest `lifetimes`) is
//! self-consistent: replaying the written events (TruthOp) through a small independent
//! implementation of the lifetime model (docs: the observer rules) must give the same
//! lifetimes, counts, chains, peaks; the irregularities of real traces occur by default
//! and not with `ideal`; the header's EventsLost is the number of lost events.

mod common;

use heapdb::heap::record::HeapRecord;
use heapdb::synth::{
    generate_file_with_truth, FileManifest, HeapHeader, Options, PointerMode, StackMode,
    TruthBlock, TruthOp,
};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

struct Run {
    m: FileManifest,
    ops: Vec<TruthOp>,
    blocks: Vec<TruthBlock>,
}

fn run(dir: &Path, name: &str, opts: &Options) -> Run {
    let mut ops = Vec::new();
    let mut blocks = Vec::new();
    let m = generate_file_with_truth(&dir.join(name), opts, 0, Some(&mut ops), Some(&mut blocks))
        .unwrap();
    Run { m, ops, blocks }
}

/// UTC ns of a raw timestamp (10 MHz clock), as heapdb stores times.
fn ns(m: &FileManifest, raw: u64) -> i64 {
    m.start_time_utc_ns + (raw as i64 - m.start_raw as i64) * 100
}

type Key = (u32, u64, u64);
/// Per pid: peak bytes, blocks at the peak, when.
type Peaks = BTreeMap<u32, (u64, u64, Option<i64>)>;

/// The model, written independently of the generator: (lifetimes in start order,
/// peaks per pid (bytes, blocks, time)).
fn replay(m: &FileManifest, ops: &[TruthOp]) -> (Vec<TruthBlock>, Peaks) {
    let mut all: Vec<TruthBlock> = Vec::new();
    let mut chain_of: Vec<usize> = Vec::new();
    let mut live: HashMap<Key, usize> = HashMap::new();
    let mut seen: HashSet<Key> = HashSet::new();
    let mut out: HashMap<u32, (u64, u64)> = HashMap::new();
    let mut peaks: Peaks = BTreeMap::new();
    let counted = |b: &TruthBlock| b.start_kind == "alloc" || b.start_kind == "realloc";
    fn blank(k: Key) -> TruthBlock {
        TruthBlock {
            pid: k.0,
            heap: k.1,
            address: k.2,
            size: None,
            source: None,
            stack_id: None,
            start_kind: "",
            start_ns: None,
            end_kind: "",
            end_ns: None,
            chain_index: 0,
            chain_len: 0,
        }
    }
    let end = |all: &mut Vec<TruthBlock>,
               out: &mut HashMap<u32, (u64, u64)>,
               i: usize,
               kind: &'static str,
               t: Option<i64>| {
        let b = &mut all[i];
        b.end_kind = kind;
        b.end_ns = t;
        if b.start_kind == "alloc" || b.start_kind == "realloc" {
            let o = out.get_mut(&b.pid).unwrap();
            o.0 -= b.size.unwrap();
            o.1 -= 1;
        }
    };
    for op in ops.iter().filter(|o| !o.internal) {
        let pid = op.info.pid;
        let t = ns(m, op.info.ts_raw);
        let start = |seen: &mut HashSet<Key>,
                     all: &mut Vec<TruthBlock>,
                     chain_of: &mut Vec<usize>,
                     out: &mut HashMap<u32, (u64, u64)>,
                     b: TruthBlock,
                     chain: Option<usize>| {
            let i = all.len();
            seen.insert((b.pid, b.heap, b.address));
            if counted(&b) {
                let o = out.entry(b.pid).or_default();
                o.0 += b.size.unwrap();
                o.1 += 1;
            }
            all.push(b);
            chain_of.push(chain.unwrap_or(i));
            i
        };
        let unknown = |seen: &HashSet<Key>, k: &Key| {
            if seen.contains(k) {
                "lost_alloc"
            } else {
                "before_trace"
            }
        };
        match op.record {
            HeapRecord::Alloc {
                heap,
                size,
                address,
                source,
            } if address != 0 => {
                let k = (pid, heap, address);
                if let Some(i) = live.remove(&k) {
                    end(&mut all, &mut out, i, "lost_free", Some(t));
                }
                let mut b = blank(k);
                b.size = Some(size);
                b.source = Some(source.0);
                b.stack_id = op.stack_id;
                b.start_kind = "alloc";
                b.start_ns = Some(t);
                let i = start(&mut seen, &mut all, &mut chain_of, &mut out, b, None);
                live.insert(k, i);
            }
            HeapRecord::Free {
                heap,
                address,
                source,
            } if address != 0 => {
                let k = (pid, heap, address);
                let i = match live.remove(&k) {
                    Some(i) => i,
                    None => {
                        let mut b = blank(k);
                        b.source = Some(source.0);
                        b.start_kind = unknown(&seen, &k);
                        start(&mut seen, &mut all, &mut chain_of, &mut out, b, None)
                    }
                };
                end(&mut all, &mut out, i, "free", Some(t));
            }
            HeapRecord::ReAlloc {
                heap,
                new_address,
                old_address,
                new_size,
                old_size,
                source,
            } if new_address != 0 => {
                let ko = (pid, heap, old_address);
                let kn = (pid, heap, new_address);
                let i = match live.remove(&ko) {
                    Some(i) => i,
                    None => {
                        let mut b = blank(ko);
                        b.size = Some(old_size);
                        b.start_kind = unknown(&seen, &ko);
                        start(&mut seen, &mut all, &mut chain_of, &mut out, b, None)
                    }
                };
                let moved = kn != ko;
                end(
                    &mut all,
                    &mut out,
                    i,
                    if moved {
                        "realloc_moved"
                    } else {
                        "realloc_in_place"
                    },
                    Some(t),
                );
                if moved {
                    if let Some(g) = live.remove(&kn) {
                        end(&mut all, &mut out, g, "lost_free", Some(t));
                    }
                }
                let mut b = blank(kn);
                b.size = Some(new_size);
                b.source = Some(source.0);
                b.stack_id = op.stack_id;
                b.start_kind = "realloc";
                b.start_ns = Some(t);
                b.chain_index = all[i].chain_index + 1;
                let chain = chain_of[i];
                let j = start(&mut seen, &mut all, &mut chain_of, &mut out, b, Some(chain));
                live.insert(kn, j);
            }
            HeapRecord::HeapOnly { opcode: 35, heap } => {
                let mut ks: Vec<Key> = live
                    .keys()
                    .filter(|k| k.0 == pid && k.1 == heap)
                    .copied()
                    .collect();
                ks.sort();
                for k in ks {
                    let i = live.remove(&k).unwrap();
                    end(&mut all, &mut out, i, "heap_destroyed", Some(t));
                }
            }
            _ => continue,
        }
        let o = out.get(&pid).copied().unwrap_or_default();
        let p = peaks.entry(pid).or_insert((0, 0, None));
        if o.0 > p.0 {
            *p = (o.0, o.1, Some(t));
        }
    }
    // End of capture: blocks of exited processes end at their exit, the rest live.
    let exits: HashMap<u32, i64> = m
        .lifetimes
        .process_exits
        .iter()
        .map(|e| (e.pid, e.time_ns))
        .collect();
    let mut rest: Vec<usize> = live.into_values().collect();
    rest.sort();
    for i in rest {
        match exits.get(&all[i].pid) {
            Some(&t) => end(&mut all, &mut out, i, "process_exited", Some(t)),
            None => end(&mut all, &mut out, i, "live_at_end", None),
        }
    }
    let mut len: HashMap<usize, u32> = HashMap::new();
    for &c in &chain_of {
        *len.entry(c).or_default() += 1;
    }
    for (b, c) in all.iter_mut().zip(&chain_of) {
        b.chain_len = len[c];
    }
    (all, peaks)
}

fn kinds(blocks: &[TruthBlock]) -> BTreeMap<String, u64> {
    let mut k = BTreeMap::new();
    for b in blocks {
        *k.entry(format!("{}/{}", b.start_kind, b.end_kind))
            .or_default() += 1;
    }
    k
}

/// Everything the generator recorded agrees with the independent replay.
fn check_consistent(r: &Run) {
    let m = &r.m;
    let lt = &m.lifetimes;
    let (model, peaks) = replay(m, &r.ops);
    assert_eq!(model.len(), r.blocks.len(), "number of lifetimes");
    for (i, (a, b)) in model.iter().zip(&r.blocks).enumerate() {
        assert_eq!(a, b, "lifetime {i}");
    }
    // The generator ends blocks at exit time itself; the replay only knows the time.
    let ks = kinds(&r.blocks);
    assert_eq!(ks, lt.blocks, "kind counts");
    // Chains.
    let mut chains: BTreeMap<u32, u64> = BTreeMap::new();
    for b in r.blocks.iter().filter(|b| b.chain_index == 0) {
        if b.chain_len >= 2 {
            *chains.entry(b.chain_len).or_default() += 1;
        }
    }
    assert_eq!(chains, lt.chains);
    assert_eq!(
        r.blocks.iter().map(|b| b.chain_len).max().unwrap_or(0),
        lt.longest_chain
    );
    // Peaks.
    for p in &lt.peaks {
        let (bytes, blocks, t) = peaks.get(&p.pid).copied().unwrap_or((0, 0, None));
        assert_eq!(
            (p.peak_bytes, p.peak_blocks, p.peak_time_ns),
            (bytes, blocks, t),
            "peak of {}",
            p.pid
        );
    }
    // Live at end (start alloc/realloc), in total and per site.
    let live: Vec<&TruthBlock> = r
        .blocks
        .iter()
        .filter(|b| b.end_kind == "live_at_end" && matches!(b.start_kind, "alloc" | "realloc"))
        .collect();
    assert_eq!(m.live_blocks_at_end, live.len() as u64);
    assert_eq!(
        m.live_bytes_at_end,
        live.iter().map(|b| b.size.unwrap()).sum::<u64>()
    );
    assert_eq!(
        lt.live_at_end_by_site.iter().map(|s| s.blocks).sum::<u64>(),
        m.live_blocks_at_end
    );
    assert_eq!(
        lt.live_at_end_by_site.iter().map(|s| s.bytes).sum::<u64>(),
        m.live_bytes_at_end
    );
    if live.iter().all(|b| b.stack_id.is_some()) {
        let mut by_stack: BTreeMap<(u32, i64), (u64, u64)> = BTreeMap::new();
        for b in &live {
            let e = by_stack.entry((b.pid, b.stack_id.unwrap())).or_default();
            e.0 += 1;
            e.1 += b.size.unwrap();
        }
        let mut from_manifest: BTreeMap<(u32, i64), (u64, u64)> = BTreeMap::new();
        for s in &lt.live_at_end_by_site {
            let e = from_manifest
                .entry((s.pid, s.stack_id.unwrap()))
                .or_default();
            e.0 += s.blocks;
            e.1 += s.bytes;
        }
        assert_eq!(by_stack, from_manifest);
    }
    // Destroys and exits: the blocks they ended.
    for d in &lt.heaps_destroyed {
        let n = r
            .blocks
            .iter()
            .filter(|b| {
                b.end_kind == "heap_destroyed"
                    && b.pid == d.pid
                    && b.heap == d.heap
                    && b.end_ns == Some(d.time_ns)
            })
            .count() as u64;
        assert_eq!(n, d.live_blocks);
    }
    for e in &lt.process_exits {
        let n = r
            .blocks
            .iter()
            .filter(|b| b.end_kind == "process_exited" && b.pid == e.pid)
            .count() as u64;
        assert_eq!(n, e.live_blocks);
        assert!(r.blocks.iter().all(|b| b.pid != e.pid
            || b.end_kind != "process_exited"
            || b.end_ns == Some(e.time_ns)));
        // Nothing is logged by the process after its end.
        assert!(r
            .ops
            .iter()
            .all(|o| o.info.pid != e.pid || ns(m, o.info.ts_raw) < e.time_ns));
    }
    // The written-event counters agree with the op list (lost events are not in it).
    let allocs = r
        .ops
        .iter()
        .filter(|o| matches!(o.record, HeapRecord::Alloc { .. }))
        .count() as u64;
    let frees = r
        .ops
        .iter()
        .filter(|o| matches!(o.record, HeapRecord::Free { .. }))
        .count() as u64;
    assert_eq!(allocs, m.alloc_count);
    assert_eq!(frees, m.free_count);
    assert_eq!(r.ops.len() as u64, m.heap_events);
    assert_eq!(
        m.processes.iter().map(|p| p.heap_events).sum::<u64>(),
        m.heap_events
    );
}

fn events_lost(path: &Path) -> u64 {
    let out = common::run(&["dump", "--summary", "--format", "json", common::s(path)]);
    assert!(out.status.success(), "{}", common::stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v[0]["events_lost"].as_u64().unwrap()
}

const UNUSUAL: [&str; 3] = ["before_trace", "lost_alloc", "lost_free"];

#[test]
fn defaults_have_every_kind_and_agree_with_the_model() {
    let dir = tempfile::tempdir().unwrap();
    let opts = Options {
        seed: 7,
        ..Options::default()
    };
    let r = run(dir.path(), "a.etl", &opts);
    check_consistent(&r);
    let lt = &r.m.lifetimes;
    let starts: HashSet<&str> = r.blocks.iter().map(|b| b.start_kind).collect();
    let ends: HashSet<&str> = r.blocks.iter().map(|b| b.end_kind).collect();
    for k in ["alloc", "realloc", "before_trace", "lost_alloc"] {
        assert!(starts.contains(k), "no block starts {k}: {:?}", lt.blocks);
    }
    for k in [
        "free",
        "realloc_moved",
        "realloc_in_place",
        "heap_destroyed",
        "process_exited",
        "lost_free",
        "live_at_end",
    ] {
        assert!(ends.contains(k), "no block ends {k}: {:?}", lt.blocks);
    }
    assert_eq!(lt.pre_trace_blocks, 300 * opts.processes as u64);
    let before = r
        .blocks
        .iter()
        .filter(|b| b.start_kind == "before_trace")
        .count() as u64;
    // (A lost Alloc at an address never used before also looks like a block from
    // before the trace.)
    assert!(before > 0 && before <= lt.pre_trace_blocks + lt.lost_allocs);
    assert!(lt.lost_allocs > 0 && lt.lost_frees > 0);
    // About 0.05% of Allocs and Frees.
    let af = r.m.alloc_count + r.m.free_count;
    let lost = lt.lost_allocs + lt.lost_frees;
    assert!(
        lost * 10_000 > af && lost * 10_000 < af * 20,
        "{lost} of {af}"
    );
    assert_eq!(events_lost(&dir.path().join("a.etl")), lost);
    // Many early Frees/ReAllocs touch blocks from before the trace.
    let first = &r.ops[..r.ops.len() / 10];
    let first_ns = ns(&r.m, first.last().unwrap().info.ts_raw);
    let early = r
        .blocks
        .iter()
        .filter(|b| b.start_kind == "before_trace" && b.end_ns.is_some_and(|t| t <= first_ns))
        .count();
    assert!(early > 20, "{early}");
    // One heap destroyed mid-trace with live blocks, one process exited mid-trace.
    let last_ns = ns(&r.m, r.ops.last().unwrap().info.ts_raw);
    let mid = r.m.start_time_utc_ns + (last_ns - r.m.start_time_utc_ns) * 3 / 4;
    assert!(lt
        .heaps_destroyed
        .iter()
        .any(|d| d.live_blocks > 0 && d.time_ns < mid));
    for d in &lt.heaps_destroyed {
        // No event uses a destroyed heap afterwards.
        assert!(r.ops.iter().all(|o| {
            let h = match o.record {
                HeapRecord::Alloc { heap, .. }
                | HeapRecord::Free { heap, .. }
                | HeapRecord::ReAlloc { heap, .. } => heap,
                _ => return true,
            };
            o.info.pid != d.pid || h != d.heap || ns(&r.m, o.info.ts_raw) < d.time_ns
        }));
    }
    assert_eq!(lt.process_exits.len(), 1);
    let e = &lt.process_exits[0];
    assert!(e.live_blocks > 0);
    let span = (last_ns - r.m.start_time_utc_ns) as f64;
    let at = (e.time_ns - r.m.start_time_utc_ns) as f64 / span;
    assert!((0.5..0.9).contains(&at), "exit at {at}");
    assert!(r.m.processes.iter().filter(|p| p.exited).count() == 1);
}

#[test]
fn other_layouts_and_heavy_loss_agree_with_the_model() {
    let dir = tempfile::tempdir().unwrap();
    let variants = [
        Options {
            events_per_file: 30_000,
            pointer_mode: PointerMode::Mixed,
            stacks: StackMode::Plain,
            lost_events: 0.02,
            processes: 5,
            seed: 3,
            ..Options::default()
        },
        Options {
            events_per_file: 20_000,
            pointer_mode: PointerMode::P32,
            stacks: StackMode::Keyed,
            heap_header: HeapHeader::Event,
            pre_trace_blocks: 2000,
            lost_events: 0.01,
            seed: 4,
            ..Options::default()
        },
        Options {
            events_per_file: 20_000,
            processes: 1,
            realloc_share: 0.6,
            stacks: StackMode::Plain,
            heap_header: HeapHeader::Event,
            seed: 5,
            ..Options::default()
        },
    ];
    for (i, o) in variants.iter().enumerate() {
        let name = format!("v{i}.etl");
        let r = run(dir.path(), &name, o);
        check_consistent(&r);
        let lt = &r.m.lifetimes;
        assert_eq!(
            events_lost(&dir.path().join(&name)),
            lt.lost_allocs + lt.lost_frees
        );
        if o.lost_events >= 0.01 {
            // Ghosts of lost Frees are hit by a later block at their address.
            assert!(lt.blocks.keys().any(|k| k.ends_with("/lost_free")), "{i}");
            assert!(
                lt.blocks.keys().any(|k| k.starts_with("lost_alloc/")),
                "{i}"
            );
        }
        if o.processes == 1 {
            assert!(lt.process_exits.is_empty());
        }
    }
}

#[test]
fn ideal_has_none_of_the_irregularities() {
    let dir = tempfile::tempdir().unwrap();
    let opts = Options {
        seed: 7,
        stacks: StackMode::Plain,
        ..Options::default()
    }
    .ideal();
    let r = run(dir.path(), "i.etl", &opts);
    check_consistent(&r);
    let lt = &r.m.lifetimes;
    assert_eq!(
        (lt.pre_trace_blocks, lt.lost_allocs, lt.lost_frees),
        (0, 0, 0)
    );
    assert_eq!(events_lost(&dir.path().join("i.etl")), 0);
    for b in &r.blocks {
        assert!(!UNUSUAL.contains(&b.start_kind), "{b:?}");
        assert!(!UNUSUAL.contains(&b.end_kind), "{b:?}");
    }
    // Destroys and the process exit only at the end of the trace (after the last
    // Alloc/Free/ReAlloc).
    let last = r
        .ops
        .iter()
        .filter(|o| {
            matches!(
                o.record,
                HeapRecord::Alloc { .. } | HeapRecord::Free { .. } | HeapRecord::ReAlloc { .. }
            )
        })
        .map(|o| ns(&r.m, o.info.ts_raw))
        .max()
        .unwrap();
    for b in &r.blocks {
        if matches!(b.end_kind, "heap_destroyed" | "process_exited") {
            assert!(b.end_ns.unwrap() > last, "{b:?}");
        }
    }
    assert_eq!(lt.process_exits.len(), 1);
    assert!(lt.process_exits[0].time_ns > last);
    // Every block ends free/realloc/destroyed/exited/live, and what is live at the end
    // is what the process still holds.
    let live = r
        .blocks
        .iter()
        .filter(|b| b.end_kind == "live_at_end")
        .count() as u64;
    assert_eq!(live, r.m.live_blocks_at_end);
}

#[test]
fn same_options_same_bytes_and_truth() {
    let dir = tempfile::tempdir().unwrap();
    let opts = Options {
        events_per_file: 20_000,
        stacks: StackMode::Keyed,
        lost_events: 0.005,
        seed: 11,
        ..Options::default()
    };
    let a = run(dir.path(), "a.etl", &opts);
    let b = run(dir.path(), "b.etl", &opts);
    assert_eq!(
        std::fs::read(dir.path().join("a.etl")).unwrap(),
        std::fs::read(dir.path().join("b.etl")).unwrap()
    );
    assert_eq!(a.blocks, b.blocks);
    assert_eq!(a.ops, b.ops);
    assert_eq!(
        serde_json::to_value(&a.m.lifetimes).unwrap(),
        serde_json::to_value(&b.m.lifetimes).unwrap()
    );
    let c = run(
        dir.path(),
        "c.etl",
        &Options {
            seed: 12,
            ..opts.clone()
        },
    );
    assert_ne!(a.blocks, c.blocks);
}

#[test]
fn cli_flags_reach_the_manifest() {
    let dir = tempfile::tempdir().unwrap();
    let out = common::run(&[
        "synth",
        "--out",
        common::s(dir.path()),
        "--events-per-file",
        "5000",
        "--pre-trace-blocks",
        "17",
        "--lost-events",
        "0.01",
        "--no-mid-trace-exit",
    ]);
    assert!(out.status.success(), "{}", common::stderr(&out));
    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("manifest.json")).unwrap()).unwrap();
    let lt = &m["files"][0]["lifetimes"];
    assert_eq!(lt["pre_trace_blocks"], 17 * 4);
    assert!(lt["lost_allocs"].as_u64().unwrap() > 0);
    // The last process exits at the end (after the mid-trace heap destroy).
    assert_eq!(lt["process_exits"].as_array().unwrap().len(), 1);
    assert_eq!(m["options"]["exit_mid_trace"], false);
    let ideal = tempfile::tempdir().unwrap();
    let out = common::run(&[
        "synth",
        "--out",
        common::s(ideal.path()),
        "--events-per-file",
        "5000",
        "--ideal",
    ]);
    assert!(out.status.success(), "{}", common::stderr(&out));
    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(ideal.path().join("manifest.json")).unwrap())
            .unwrap();
    let lt = &m["files"][0]["lifetimes"];
    assert_eq!(lt["pre_trace_blocks"], 0);
    assert_eq!(lt["lost_allocs"], 0);
    assert_eq!(lt["lost_frees"], 0);
    assert!(lt["blocks"]
        .as_object()
        .unwrap()
        .keys()
        .all(|k| UNUSUAL.iter().all(|u| !k.contains(u))));
    let bad = common::run(&[
        "synth",
        "--out",
        common::s(ideal.path()),
        "--lost-events",
        "0.9",
    ]);
    assert!(!bad.status.success());
}
