//! Every canned report on a synthesized database, against expected rows computed here,
//! in Rust, from the synthesizer's record of every heap event it wrote (not from the
//! database or the SQL). Plus ad hoc SQL: formats, read-only, errors, interruption.

#![allow(clippy::type_complexity)]

mod common;

use heapdb::heap::record::{HeapRecord, Source};
use heapdb::synth::{generate_file, FileManifest, Options, PointerMode, StackMode, TruthOp};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

struct Fixture {
    db: PathBuf,
    truth: Vec<Vec<TruthOp>>, // per capture, in time order
    manifests: Vec<FileManifest>,
    _dir: tempfile::TempDir,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let caps = dir.path().join("caps");
        std::fs::create_dir_all(&caps).unwrap();
        let opts = Options {
            events_per_file: 25_000,
            pointer_mode: PointerMode::Mixed,
            stacks: StackMode::Plain,
            processes: 5,
            seed: 1234,
            ..Options::default()
        };
        let mut truth = Vec::new();
        let mut manifests = Vec::new();
        for i in 0..2 {
            let mut t = Vec::new();
            let m =
                generate_file(&caps.join(format!("night{i}.etl")), &opts, i, Some(&mut t)).unwrap();
            truth.push(t);
            manifests.push(m);
        }
        let db = dir.path().join("heap.db");
        let out = Command::new(common::heapdb_bin())
            .args(["ingest", "--quiet", "--db"])
            .arg(&db)
            .arg(&caps)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        Fixture {
            db,
            truth,
            manifests,
            _dir: dir,
        }
    })
}

fn query(args: &[&str]) -> Vec<Value> {
    let f = fixture();
    let out = Command::new(common::heapdb_bin())
        .args(["query", "--db"])
        .arg(&f.db)
        .args(args)
        .args(["--format", "json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice::<Value>(&out.stdout)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

fn i(v: &Value) -> i64 {
    match v {
        Value::Number(n) => n.as_i64().unwrap_or_else(|| n.as_f64().unwrap() as i64),
        Value::String(s) if s.starts_with("0x") => u64::from_str_radix(&s[2..], 16).unwrap() as i64,
        Value::Null => 0,
        other => panic!("not an integer: {other}"),
    }
}

/// (pid, tid, ReAlloc fields) of a capture's reallocs.
struct R {
    pid: u32,
    tid: u32,
    ts: u64,
    heap: u64,
    new: u64,
    old: u64,
    new_size: u64,
    old_size: u64,
    source: Source,
    stack: Option<i64>,
}

fn reallocs(c: usize) -> Vec<R> {
    fixture().truth[c]
        .iter()
        .filter_map(|t| match t.record {
            HeapRecord::ReAlloc {
                heap,
                new_address,
                old_address,
                new_size,
                old_size,
                source,
            } => Some(R {
                pid: t.info.pid,
                tid: t.info.tid,
                ts: t.info.ts_raw,
                heap,
                new: new_address,
                old: old_address,
                new_size,
                old_size,
                source,
                stack: t.stack_id,
            }),
            _ => None,
        })
        .collect()
}

fn moved(r: &R) -> u64 {
    (r.new != r.old) as u64
}

#[test]
fn top_realloc_sites() {
    for (c, capture) in [(1usize, "latest"), (0, "1")] {
        let mut sites: BTreeMap<(u32, i64), [u64; 5]> = BTreeMap::new();
        for r in reallocs(c) {
            let s = sites
                .entry((r.pid, r.stack.expect("every realloc has a stack here")))
                .or_default();
            s[0] += 1;
            s[1] += moved(&r);
            s[2] += r.new_size.saturating_sub(r.old_size);
            s[3] += if r.new != r.old {
                r.new_size.min(r.old_size)
            } else {
                0
            };
            s[4] = s[4].max(r.new_size);
        }
        let mut want: Vec<((u32, i64), [u64; 5])> = sites.into_iter().collect();
        want.sort_by(|a, b| {
            b.1[0]
                .cmp(&a.1[0])
                .then(b.1[2].cmp(&a.1[2]))
                .then(a.0.cmp(&b.0))
        });
        want.truncate(20);
        let got = query(&[
            "top-realloc-sites",
            "--param",
            &format!("capture={capture}"),
        ]);
        assert_eq!(got.len(), 20);
        for (g, ((pid, stack), s)) in got.iter().zip(&want) {
            assert_eq!((i(&g["pid"]) as u32, i(&g["stack_id"])), (*pid, *stack));
            assert_eq!(
                [
                    i(&g["reallocs"]),
                    i(&g["moved"]),
                    i(&g["bytes_grown"]),
                    i(&g["bytes_copied"]),
                    i(&g["max_size"])
                ],
                s.map(|v| v as i64)
            );
            // The leaf is the first frame outside the heap code: in the process's exe.
            let name = fixture().manifests[c]
                .processes
                .iter()
                .find(|p| p.pid == *pid)
                .unwrap()
                .name
                .to_lowercase();
            assert!(
                g["leaf"]
                    .as_str()
                    .unwrap()
                    .starts_with(&format!("{name}+0x")),
                "{}",
                g["leaf"]
            );
        }
    }
    // pid filter.
    let pid = fixture().manifests[1].processes[0].pid;
    let got = query(&[
        "top-realloc-sites",
        "-p",
        &format!("pid={pid}"),
        "-p",
        "limit=1000",
    ]);
    let n: i64 = got.iter().map(|g| i(&g["reallocs"])).sum();
    assert_eq!(n as u64, fixture().manifests[1].processes[0].reallocs);
}

#[test]
fn move_ratio() {
    let mut want: BTreeMap<(u32, u64, u32), [u64; 3]> = BTreeMap::new();
    for r in reallocs(1) {
        let e = want.entry((r.pid, r.heap, r.source.0)).or_default();
        e[0] += 1;
        e[1] += moved(&r);
        e[2] += if r.new != r.old {
            r.new_size.min(r.old_size)
        } else {
            0
        };
    }
    let got = query(&["move-ratio", "-p", "limit=1000"]);
    let got: BTreeMap<(u32, u64, u32), [u64; 3]> = got
        .iter()
        .map(|g| {
            let src = Source(
                [
                    "?",
                    "lookaside",
                    "lfh",
                    "main",
                    "slow",
                    "invalid",
                    "segment",
                ]
                .iter()
                .position(|s| *s == g["source"].as_str().unwrap())
                .unwrap() as u32,
            );
            assert!(
                (g["moved_pct"].as_f64().unwrap()
                    - 100.0 * i(&g["moved"]) as f64 / i(&g["reallocs"]) as f64)
                    .abs()
                    < 0.06
            );
            (
                (i(&g["pid"]) as u32, i(&g["heap"]) as u64, src.0),
                [
                    i(&g["reallocs"]) as u64,
                    i(&g["moved"]) as u64,
                    i(&g["est_bytes_copied"]) as u64,
                ],
            )
        })
        .collect();
    assert_eq!(got, want);
}

/// Blocks followed in time order: the oracle of growth-chains, outstanding-at-end and
/// data-quality.
#[derive(Clone, Debug)]
struct Chain {
    pid: u32,
    heap: u64,
    length: u64,
    first_size: u64,
    final_size: u64,
    moves: u64,
    live: bool,
    started_before: bool,
}

#[derive(Clone)]
enum Block {
    Alloc {
        size: u64,
        stack: Option<i64>,
    },
    Realloc {
        chain: usize,
        size: u64,
        stack: Option<i64>,
    },
}

struct Sim {
    chains: Vec<Chain>,
    live: HashMap<(u32, u64, u64), Block>,
    unseen_old_blocks: u64,
}

fn simulate(ops: &[TruthOp]) -> Sim {
    let mut s = Sim {
        chains: Vec::new(),
        live: HashMap::new(),
        unseen_old_blocks: 0,
    };
    for t in ops {
        let pid = t.info.pid;
        match t.record {
            HeapRecord::Alloc {
                heap,
                address,
                size,
                ..
            } if !t.internal => {
                s.live.insert(
                    (pid, heap, address),
                    Block::Alloc {
                        size,
                        stack: t.stack_id,
                    },
                );
            }
            HeapRecord::Free { heap, address, .. } if !t.internal => {
                if let Some(Block::Realloc { chain, .. }) = s.live.remove(&(pid, heap, address)) {
                    s.chains[chain].live = false;
                }
            }
            HeapRecord::ReAlloc {
                heap,
                new_address,
                old_address,
                new_size,
                old_size,
                ..
            } => {
                let mv = (new_address != old_address) as u64;
                let chain = match s.live.remove(&(pid, heap, old_address)) {
                    Some(Block::Realloc { chain, .. }) => {
                        let c = &mut s.chains[chain];
                        c.length += 1;
                        c.final_size = new_size;
                        c.moves += mv;
                        chain
                    }
                    prior => {
                        if prior.is_none() {
                            s.unseen_old_blocks += 1;
                        }
                        s.chains.push(Chain {
                            pid,
                            heap,
                            length: 1,
                            first_size: old_size,
                            final_size: new_size,
                            moves: mv,
                            live: true,
                            started_before: prior.is_none(),
                        });
                        s.chains.len() - 1
                    }
                };
                s.live.insert(
                    (pid, heap, new_address),
                    Block::Realloc {
                        chain,
                        size: new_size,
                        stack: t.stack_id,
                    },
                );
            }
            HeapRecord::HeapOnly { opcode: 35, heap } => {
                let gone: Vec<_> = s
                    .live
                    .keys()
                    .filter(|k| k.0 == pid && k.1 == heap)
                    .copied()
                    .collect();
                for k in gone {
                    if let Some(Block::Realloc { chain, .. }) = s.live.remove(&k) {
                        s.chains[chain].live = false;
                    }
                }
            }
            _ => {}
        }
    }
    s
}

#[test]
fn growth_chains() {
    let sim = simulate(&fixture().truth[1]);
    let key = |c: &Chain| {
        (
            c.pid,
            c.heap,
            c.length,
            c.first_size,
            c.final_size,
            c.moves,
            c.live,
            c.started_before,
        )
    };
    let mut want: Vec<_> = sim
        .chains
        .iter()
        .filter(|c| c.length >= 2)
        .map(key)
        .collect();
    want.sort();
    let got = query(&["growth-chains", "-p", "limit=100000"]);
    let mut got: Vec<_> = got
        .iter()
        .map(|g| {
            (
                i(&g["pid"]) as u32,
                i(&g["heap"]) as u64,
                i(&g["reallocs"]) as u64,
                i(&g["first_size"]) as u64,
                i(&g["final_size"]) as u64,
                i(&g["moves"]) as u64,
                i(&g["still_live"]) == 1,
                i(&g["started_before_trace"]) == 1,
            )
        })
        .collect();
    got.sort();
    assert!(want.len() > 100, "the fixture has chains ({})", want.len());
    assert_eq!(got, want);
    // The default view: the 20 longest, longest first.
    let top = query(&["growth-chains"]);
    assert_eq!(top.len(), 20);
    assert_eq!(
        i(&top[0]["reallocs"]) as u64,
        want.iter().map(|w| w.2).max().unwrap()
    );
}

#[test]
fn small_increments() {
    let mut sites: BTreeMap<(u32, i64), (u64, u64, u64, u64, BTreeMap<u64, u64>)> = BTreeMap::new();
    for r in reallocs(1).iter().filter(|r| r.new_size > r.old_size) {
        let s = sites.entry((r.pid, r.stack.unwrap())).or_default();
        let step = r.new_size - r.old_size;
        s.0 += 1;
        if step <= 256 && step * 4 < r.old_size {
            s.1 += 1;
        }
        if r.new != r.old {
            s.2 += r.old_size;
        }
        s.3 = s.3.max(r.new_size);
        *s.4.entry(step).or_default() += 1;
    }
    let mut want: Vec<_> = sites
        .into_iter()
        .filter(|(_, s)| s.0 >= 10 && s.1 > 0)
        .map(|((pid, stack), s)| {
            let common =
                s.4.iter()
                    .max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0)))
                    .map(|(k, _)| *k)
                    .unwrap();
            (pid, stack, s.0, s.1, common, s.2, s.3)
        })
        .collect();
    want.sort();
    let mut got: Vec<_> = query(&["small-increments", "-p", "limit=10000"])
        .iter()
        .map(|g| {
            (
                i(&g["pid"]) as u32,
                i(&g["stack_id"]),
                i(&g["grows"]) as u64,
                i(&g["small_steps"]) as u64,
                i(&g["common_step"]) as u64,
                i(&g["bytes_copied"]) as u64,
                i(&g["max_size"]) as u64,
            )
        })
        .collect();
    got.sort();
    assert!(!want.is_empty());
    assert_eq!(got, want);
}

#[test]
fn shrinks() {
    let mut want: BTreeMap<(u32, i64), [u64; 3]> = BTreeMap::new();
    for r in reallocs(1).iter().filter(|r| r.new_size < r.old_size) {
        let e = want.entry((r.pid, r.stack.unwrap())).or_default();
        e[0] += 1;
        e[1] += r.old_size - r.new_size;
        e[2] += moved(r);
    }
    let got: BTreeMap<(u32, i64), [u64; 3]> = query(&["shrinks", "-p", "limit=10000"])
        .iter()
        .map(|g| {
            (
                (i(&g["pid"]) as u32, i(&g["stack_id"])),
                [
                    i(&g["shrinks"]) as u64,
                    i(&g["bytes_returned"]) as u64,
                    i(&g["moved"]) as u64,
                ],
            )
        })
        .collect();
    assert!(!want.is_empty());
    assert_eq!(got, want);
}

fn source_name(s: u32) -> String {
    Source(s).to_string()
}

#[test]
fn size_histogram() {
    let mut want: BTreeMap<(u64, String), [u64; 3]> = BTreeMap::new();
    for r in reallocs(1) {
        let class = if r.new_size == 0 {
            0
        } else {
            1u64 << (63 - r.new_size.leading_zeros())
        };
        let e = want.entry((class, source_name(r.source.0))).or_default();
        e[0] += 1;
        e[1] += moved(&r);
        e[2] += r.new_size;
    }
    let got: BTreeMap<(u64, String), [u64; 3]> = query(&["size-histogram"])
        .iter()
        .map(|g| {
            (
                (
                    i(&g["size_class"]) as u64,
                    g["source"].as_str().unwrap().to_string(),
                ),
                [
                    i(&g["reallocs"]) as u64,
                    i(&g["moved"]) as u64,
                    i(&g["bytes"]) as u64,
                ],
            )
        })
        .collect();
    assert_eq!(got, want);
}

#[test]
fn source_breakdown() {
    let mut want: BTreeMap<u32, [u64; 7]> = BTreeMap::new();
    for r in reallocs(1) {
        let e = want.entry(r.source.0).or_default();
        e[0] += 1;
        e[1] += moved(&r);
        e[2] += r.new_size;
        e[3] += r.new_size.saturating_sub(r.old_size);
    }
    for t in fixture().truth[1].iter().filter(|t| !t.internal) {
        match t.record {
            HeapRecord::Alloc { size, source, .. } => {
                let e = want.entry(source.0).or_default();
                e[4] += 1;
                e[5] += size;
            }
            HeapRecord::Free { source, .. } => want.entry(source.0).or_default()[6] += 1,
            _ => {}
        }
    }
    let got: BTreeMap<u32, [u64; 7]> = query(&["source-breakdown"])
        .iter()
        .map(|g| {
            assert_eq!(
                g["source"].as_str().unwrap(),
                source_name(i(&g["source_id"]) as u32)
            );
            (
                i(&g["source_id"]) as u32,
                [
                    "reallocs",
                    "moved",
                    "realloc_bytes",
                    "bytes_grown",
                    "allocs",
                    "alloc_bytes",
                    "frees",
                ]
                .map(|k| i(&g[k]) as u64),
            )
        })
        .collect();
    assert_eq!(got.len(), 6, "all six sources occur");
    assert_eq!(got, want);
}

#[test]
fn timeline() {
    let m = &fixture().manifests[1];
    let mut want: BTreeMap<(i64, u32), [i64; 3]> = BTreeMap::new();
    for r in reallocs(1) {
        // 10 MHz QPC: 100 ns per tick; 100 ms buckets.
        let ms = ((r.ts - m.start_raw) as i64 * 100) / 1_000_000;
        let e = want.entry((ms / 100 * 100, r.pid)).or_default();
        e[0] += 1;
        e[1] += moved(&r) as i64;
        e[2] += r.new_size as i64 - r.old_size as i64;
    }
    let got: BTreeMap<(i64, u32), [i64; 3]> = query(&["timeline", "-p", "bucket_ms=100"])
        .iter()
        .map(|g| {
            (
                (i(&g["bucket_start_ms"]), i(&g["pid"]) as u32),
                [i(&g["reallocs"]), i(&g["moves"]), i(&g["net_bytes"])],
            )
        })
        .collect();
    assert!(want.len() > 5);
    assert_eq!(got, want);
}

#[test]
fn outstanding_at_end() {
    let f = fixture();
    let sim = simulate(&f.truth[1]);
    let mut want: BTreeMap<(u32, i64), [u64; 3]> = BTreeMap::new();
    for ((pid, _, _), b) in &sim.live {
        let (size, stack, via) = match b {
            Block::Alloc { size, stack } => (*size, *stack, 0),
            Block::Realloc { size, stack, .. } => (*size, *stack, 1),
        };
        let e = want.entry((*pid, stack.unwrap())).or_default();
        e[0] += 1;
        e[1] += size;
        e[2] += via;
    }
    let got: BTreeMap<(u32, i64), [u64; 3]> = query(&["outstanding-at-end", "-p", "limit=100000"])
        .iter()
        .map(|g| {
            (
                (i(&g["pid"]) as u32, i(&g["stack_id"])),
                [
                    i(&g["blocks"]) as u64,
                    i(&g["bytes"]) as u64,
                    i(&g["via_realloc"]) as u64,
                ],
            )
        })
        .collect();
    assert_eq!(got, want);
    // And the synthesizer's own count of live blocks agrees.
    assert_eq!(
        got.values().map(|v| v[0]).sum::<u64>(),
        f.manifests[1].live_blocks_at_end
    );
    assert_eq!(
        got.values().map(|v| v[1]).sum::<u64>(),
        f.manifests[1].live_bytes_at_end
    );
}

#[test]
fn thread_activity() {
    let mut want: BTreeMap<(u32, u32), (u64, u64, u64, u64, u64)> = BTreeMap::new();
    for r in reallocs(1) {
        let e = want.entry((r.pid, r.tid)).or_insert((0, 0, 0, u64::MAX, 0));
        e.0 += 1;
        e.1 += moved(&r);
        e.2 += r.new_size.saturating_sub(r.old_size);
        e.3 = e.3.min(r.ts);
        e.4 = e.4.max(r.ts);
    }
    let got = query(&["thread-activity", "-p", "limit=1000"]);
    assert_eq!(got.len(), want.len());
    for g in &got {
        let w = want[&(i(&g["pid"]) as u32, i(&g["tid"]) as u32)];
        assert_eq!(
            [
                i(&g["reallocs"]) as u64,
                i(&g["moves"]) as u64,
                i(&g["bytes_grown"]) as u64
            ],
            [w.0, w.1, w.2]
        );
        let span = ((w.4 - w.3) as f64 / 1e7).max(0.001);
        assert!((g["reallocs_per_s"].as_f64().unwrap() - w.0 as f64 / span).abs() < 0.06);
    }
}

#[test]
fn heap_inventory() {
    let mut want: BTreeMap<(u32, u64), [u64; 7]> = BTreeMap::new();
    let mut sources: BTreeMap<(u32, u64), std::collections::BTreeSet<u32>> = BTreeMap::new();
    for t in &fixture().truth[1] {
        let heap = heapdb::ingest::rows::columns(&t.record).heap;
        if t.info.opcode == 55 {
            continue; // AffinitySlotAssigned carries no heap
        }
        let e = want.entry((t.info.pid, heap)).or_default();
        match (&t.record, t.internal) {
            (HeapRecord::Create { .. }, _) => e[0] = 1,
            (HeapRecord::HeapOnly { opcode: 35, .. }, _) => e[1] = 1,
            (HeapRecord::Alloc { .. }, false) => e[2] += 1,
            (HeapRecord::ReAlloc { source, .. }, _) => {
                e[3] += 1;
                sources
                    .entry((t.info.pid, heap))
                    .or_default()
                    .insert(source.0);
            }
            (HeapRecord::Free { .. }, false) => e[4] += 1,
            (HeapRecord::Alloc { .. } | HeapRecord::Free { .. }, true) => {}
            _ => e[5] += 1,
        }
    }
    let got = query(&["heap-inventory"]);
    assert_eq!(got.len(), want.len());
    for g in &got {
        let k = (i(&g["pid"]) as u32, i(&g["heap"]) as u64);
        let w = want[&k];
        assert_eq!(
            [
                "created",
                "destroyed",
                "allocs",
                "reallocs",
                "frees",
                "other"
            ]
            .map(|c| i(&g[c]) as u64),
            [w[0], w[1], w[2], w[3], w[4], w[5]],
            "{k:?}"
        );
        let names: Vec<String> = sources
            .get(&k)
            .map(|s| s.iter().map(|&x| source_name(x)).collect())
            .unwrap_or_default();
        assert_eq!(g["realloc_sources"].as_str().unwrap_or(""), names.join(","));
    }
}

#[test]
fn capture_diff() {
    // The two nights are runs of one program (same modules and call-site RVAs, other
    // bases, pids and handles): rows are matched by (process identity, call site), and
    // the numbers are the manifests' per-site counts.
    let f = fixture();
    let mut want: BTreeMap<(String, String), [i64; 7]> = BTreeMap::new();
    for (col, m) in f.manifests.iter().enumerate() {
        for p in &m.processes {
            for site in &p.sites {
                if site.allocs + site.reallocs == 0 {
                    continue;
                }
                let e = want
                    .entry((p.identity.clone(), site.call_site.clone()))
                    .or_default();
                e[col] += site.reallocs as i64;
                e[2] += if col == 1 { 1 } else { -1 } * site.reallocs as i64;
                e[3 + col] += site.moves as i64;
                e[5 + col] += site.bytes_copied as i64;
            }
        }
    }
    let got: BTreeMap<(String, String), [i64; 7]> = query(&[
        "capture-diff",
        "-p",
        "group=call_site",
        "-p",
        "limit=100000",
    ])
    .iter()
    .map(|g| {
        (
            (
                g["process"].as_str().unwrap().to_string(),
                g["site"].as_str().unwrap().to_string(),
            ),
            [
                "reallocs_a",
                "reallocs_b",
                "reallocs_change",
                "moves_a",
                "moves_b",
                "bytes_copied_a",
                "bytes_copied_b",
            ]
            .map(|k| i(&g[k])),
        )
    })
    .collect();
    assert_eq!(got, want);
    // Every ReAlloc of each night is in some row (independent of the manifests' sites).
    for (col, key) in [(0usize, "reallocs_a"), (1, "reallocs_b")] {
        let total: i64 = query(&["capture-diff", "-p", "limit=100000"])
            .iter()
            .map(|g| i(&g[key]))
            .sum();
        assert_eq!(total, reallocs(col).len() as i64, "{key}");
    }
    // Explicit a/b give the same rows as the defaults (a = previous, b = latest).
    assert_eq!(
        query(&["capture-diff", "-p", "a=1", "-p", "b=2", "-p", "limit=5"]),
        query(&["capture-diff", "-p", "limit=5"])
    );
}

#[test]
fn address_history() {
    // The address with the most events in the second capture.
    let ops = &fixture().truth[1];
    let mut touches: HashMap<u64, Vec<(u64, String, String)>> = HashMap::new();
    for t in ops {
        let c = heapdb::ingest::rows::columns(&t.record);
        match t.record {
            HeapRecord::ReAlloc {
                new_address,
                old_address,
                ..
            } => {
                let role = if new_address == old_address {
                    "new+old"
                } else {
                    "new"
                };
                touches.entry(new_address).or_default().push((
                    t.info.ts_raw,
                    "ReAlloc".into(),
                    role.into(),
                ));
                if new_address != old_address {
                    touches.entry(old_address).or_default().push((
                        t.info.ts_raw,
                        "ReAlloc".into(),
                        "old".into(),
                    ));
                }
            }
            _ => {
                if let Some(a) = c.address {
                    let name = heapdb::heap::record::opcode_name(t.info.opcode)
                        .unwrap()
                        .to_string();
                    touches
                        .entry(a)
                        .or_default()
                        .push((t.info.ts_raw, name, "block".into()));
                }
            }
        }
    }
    let (addr, want) = touches.iter().max_by_key(|(a, v)| (v.len(), **a)).unwrap();
    let got = query(&[
        "address-history",
        "-p",
        &format!("address=0x{addr:x}"),
        "-p",
        "capture=2",
    ]);
    let got: Vec<(String, String)> = got
        .iter()
        .map(|g| {
            (
                g["kind"].as_str().unwrap().to_string(),
                g["role"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let want: Vec<(String, String)> = want.iter().map(|w| (w.1.clone(), w.2.clone())).collect();
    assert!(want.len() >= 3);
    assert_eq!(got, want);
    // Without the required address the report refuses to run.
    let f = fixture();
    let out = Command::new(common::heapdb_bin())
        .args(["query", "--db"])
        .arg(&f.db)
        .arg("address-history")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("needs --param address"));
}

#[test]
fn data_quality() {
    let f = fixture();
    let got = query(&["data-quality"]);
    assert_eq!(got.len(), 2);
    for (c, g) in got.iter().enumerate() {
        let m = &f.manifests[c];
        assert_eq!(i(&g["events_decoded"]) as u64, m.heap_events);
        assert_eq!(i(&g["events_seen"]) as u64, m.events);
        assert_eq!(i(&g["reallocs"]) as u64, m.reallocs.total);
        assert_eq!(i(&g["records_32bit"]) as u64, m.records_32bit);
        assert_eq!(
            i(&g["moving_reallocs_linked"]) as u64,
            m.reallocs.with_internal_alloc_free
        );
        assert_eq!(
            [
                i(&g["events_lost"]),
                i(&g["events_bad"]),
                i(&g["ingest_errors"]),
                i(&g["stacks_orphan"])
            ],
            [0, 0, 0, 0]
        );
        assert_eq!(
            i(&g["reallocs_old_block_unseen"]) as u64,
            simulate(&f.truth[c]).unseen_old_blocks
        );
    }
    // A copy of the database where the Allocs of some blocks are gone (as if they were
    // allocated before the trace): those blocks' first reallocs become "unseen".
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("copy.db");
    std::fs::copy(&f.db, &db).unwrap();
    let conn = rusqlite::Connection::open(&db).unwrap();
    let gone: i64 = conn
        .query_row(
            "SELECT count(*) FROM (SELECT DISTINCT a.id FROM heap_events a JOIN reallocs r ON r.capture_id = a.capture_id AND r.pid = a.pid AND r.heap = a.heap AND r.old_address = a.address AND r.time_ns > a.time_ns
              WHERE a.capture_id = 2 AND a.opcode = 33 AND a.realloc_internal = 0 AND a.id % 7 = 0
                AND NOT EXISTS (SELECT 1 FROM heap_events x WHERE x.capture_id = 2 AND x.address = a.address AND x.pid = a.pid AND x.opcode IN (33, 36) AND x.time_ns > a.time_ns AND x.time_ns < r.time_ns))",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(gone > 0);
    conn.execute(
        "DELETE FROM heap_events WHERE id IN (SELECT DISTINCT a.id FROM heap_events a JOIN reallocs r ON r.capture_id = a.capture_id AND r.pid = a.pid AND r.heap = a.heap AND r.old_address = a.address AND r.time_ns > a.time_ns
           WHERE a.capture_id = 2 AND a.opcode = 33 AND a.realloc_internal = 0 AND a.id % 7 = 0
             AND NOT EXISTS (SELECT 1 FROM heap_events x WHERE x.capture_id = 2 AND x.address = a.address AND x.pid = a.pid AND x.opcode IN (33, 36) AND x.time_ns > a.time_ns AND x.time_ns < r.time_ns))",
        [],
    )
    .unwrap();
    drop(conn);
    let out = Command::new(common::heapdb_bin())
        .args(["query", "--db"])
        .arg(&db)
        .args(["data-quality", "-p", "capture=2", "--format", "json"])
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(i(&v[0]["reallocs_old_block_unseen"]), gone);
}

fn heapdb_query(args: &[&str]) -> std::process::Output {
    let f = fixture();
    Command::new(common::heapdb_bin())
        .args(["query", "--db"])
        .arg(&f.db)
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn ad_hoc_sql_formats() {
    let sql = "SELECT source, count(*) AS n, min(new_address) AS new_address FROM reallocs_v WHERE capture_id = 1 GROUP BY source ORDER BY source";
    let csv = String::from_utf8(heapdb_query(&["--sql", sql, "--format", "csv"]).stdout).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], "source,n,new_address");
    assert_eq!(lines.len(), 7);
    let total: u64 = lines[1..]
        .iter()
        .map(|l| l.split(',').nth(1).unwrap().parse::<u64>().unwrap())
        .sum();
    assert_eq!(total, fixture().manifests[0].reallocs.total);
    assert!(
        lines[1].split(',').nth(2).unwrap().starts_with("0x"),
        "addresses in hex"
    );
    let tsv = String::from_utf8(heapdb_query(&["--sql", sql, "--format", "tsv"]).stdout).unwrap();
    assert_eq!(tsv.replace('\t', ","), csv);
    let jsonl =
        String::from_utf8(heapdb_query(&["--sql", sql, "--format", "jsonl"]).stdout).unwrap();
    assert_eq!(jsonl.lines().count(), 6);
    let md =
        String::from_utf8(heapdb_query(&["--sql", sql, "--format", "markdown"]).stdout).unwrap();
    assert!(
        md.starts_with("| source | n | new_address |\n| --- | ---: | --- |\n"),
        "{md}"
    );
    let table =
        String::from_utf8(heapdb_query(&["--sql", sql, "--format", "table"]).stdout).unwrap();
    assert!(table.contains("(6 rows)"));
    let raw =
        String::from_utf8(heapdb_query(&["--sql", sql, "--format", "csv", "--no-hex"]).stdout)
            .unwrap();
    assert!(!raw.contains("0x"));
    // Parameters bind to :names; stdin works.
    let out = heapdb_query(&[
        "--sql",
        "SELECT count(*) AS n FROM reallocs WHERE capture_id = :c",
        "-p",
        "c=2",
        "--format",
        "csv",
    ]);
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        format!("n\n{}\n", fixture().manifests[1].reallocs.total)
    );
    let mut child = Command::new(common::heapdb_bin())
        .args(["query", "--db"])
        .arg(&fixture().db)
        .args(["-", "--format", "csv"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"SELECT count(*) AS captures FROM captures;")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(String::from_utf8(out.stdout).unwrap(), "captures\n2\n");
}

#[test]
fn ad_hoc_sql_is_read_only() {
    let before = std::fs::read(&fixture().db).unwrap();
    for sql in [
        "INSERT INTO captures (path) VALUES ('x')",
        "DELETE FROM reallocs",
        "DROP TABLE reallocs",
        "CREATE TABLE t (x)",
        "PRAGMA user_version = 7",
    ] {
        let out = heapdb_query(&["--sql", sql]);
        assert_eq!(out.status.code(), Some(3), "{sql} must be refused");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("SQL error"),
            "{sql}"
        );
    }
    let out = heapdb_query(&["--sql", "SELECT count(*) FROM reallocs", "--format", "csv"]);
    assert!(out.status.success());
    assert_eq!(
        std::fs::read(&fixture().db).unwrap(),
        before,
        "database unchanged"
    );
}

#[test]
fn sql_errors_say_where() {
    let out = heapdb_query(&[
        "--sql",
        "SELECT count(*)\nFROM reallocs\nWHER capture_id = 1",
    ]);
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("SQL error: near \"capture_id\": syntax error"),
        "{err}"
    );
    assert!(
        err.contains("at line 3, column 6:\n  WHER capture_id = 1\n       ^"),
        "{err}"
    );
    let out = heapdb_query(&["--sql", "SELECT nope FROM reallocs"]);
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no such column: nope"));
    // Usage errors: exit 2.
    assert_eq!(heapdb_query(&["no-such-report"]).status.code(), Some(2));
    assert_eq!(
        heapdb_query(&["move-ratio", "-p", "bogus=1"]).status.code(),
        Some(2)
    );
    assert_eq!(heapdb_query(&["--sql", "SELECT :x"]).status.code(), Some(2));
}

#[test]
fn long_query_times_out() {
    let t = std::time::Instant::now();
    let out = heapdb_query(&[
        "--sql",
        "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n) SELECT count(*) FROM n",
        "--timeout",
        "0.5",
    ]);
    assert_eq!(
        out.status.code(),
        Some(4),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("timed out"));
    assert!(t.elapsed().as_secs() < 10);
}

// Unix only: the test sends SIGINT with kill(1). On Windows Ctrl-C is a console control
// event (GenerateConsoleCtrlEvent), which has no kill(1) equivalent to send from here.
#[cfg(unix)]
#[test]
fn ctrl_c_interrupts_a_query() {
    let child = Command::new(common::heapdb_bin())
        .args(["query", "--db"])
        .arg(&fixture().db)
        .args(["--sql", "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n) SELECT count(*) FROM n"])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(500));
    // SIGINT, as Ctrl-C sends.
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(4));
    assert!(String::from_utf8_lossy(&out.stderr).contains("interrupted"));
}

#[test]
fn reports_and_schema_listings() {
    let out = Command::new(common::heapdb_bin())
        .args(["reports", "--format", "json"])
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let names: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 15);
    for want in [
        "top-realloc-sites",
        "move-ratio",
        "growth-chains",
        "small-increments",
        "shrinks",
        "size-histogram",
        "source-breakdown",
        "timeline",
        "outstanding-at-end",
        "thread-activity",
        "heap-inventory",
        "capture-diff",
        "address-history",
        "data-quality",
        "trend",
    ] {
        assert!(names.contains(&want), "{want}");
    }
    assert!(v[0]["description"].as_str().unwrap().len() > 10);
    assert_eq!(v[0]["params"][0]["name"], "capture");
    let out = Command::new(common::heapdb_bin())
        .args(["schema"])
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("table reallocs: One row per heap ReAlloc"));
    assert!(text.contains("new_address") && text.contains("NewAddress: the block after the call"));
    assert!(text.contains("view reallocs_v"));
}

#[test]
fn since_and_until_bound_the_time_window() {
    let m = &fixture().manifests[1];
    // Reallocs between 0.1 s and 0.3 s after the session start (10 MHz raw clock).
    let lo = m.start_raw + 1_000_000;
    let hi = m.start_raw + 3_000_000;
    let mut want: BTreeMap<u32, u64> = BTreeMap::new();
    for r in reallocs(1).iter().filter(|r| r.ts >= lo && r.ts < hi) {
        *want.entry(r.pid).or_default() += 1;
    }
    assert!(!want.is_empty());
    let mut got: BTreeMap<u32, u64> = BTreeMap::new();
    for g in query(&[
        "move-ratio",
        "-p",
        "since=0.1",
        "-p",
        "until=0.3",
        "-p",
        "limit=1000",
    ]) {
        *got.entry(i(&g["pid"]) as u32).or_default() += i(&g["reallocs"]) as u64;
    }
    assert_eq!(got, want);
    let total: i64 = query(&[
        "thread-activity",
        "-p",
        "since=0.1",
        "-p",
        "until=0.3",
        "-p",
        "limit=1000",
    ])
    .iter()
    .map(|g| i(&g["reallocs"]))
    .sum();
    assert_eq!(total as u64, want.values().sum::<u64>());
}
