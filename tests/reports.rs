//! Every canned report on a synthesized database, against expected rows computed here,
//! in Rust, from the synthesizer's record of every heap event it wrote (not from the
//! database or the SQL). Plus ad hoc SQL: formats, read-only, errors, interruption.

#![allow(clippy::type_complexity)]

mod common;

use heapdb::heap::record::{HeapRecord, Source};
use heapdb::synth::{
    generate_file_with_truth, FileManifest, Options, PointerMode, StackMode, TruthBlock, TruthOp,
};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

struct Fixture {
    db: PathBuf,
    truth: Vec<Vec<TruthOp>>, // per capture, in time order
    /// Per capture: every block lifetime, as the synthesizer recorded it.
    blocks: Vec<Vec<TruthBlock>>,
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
        let mut blocks = Vec::new();
        let mut manifests = Vec::new();
        for i in 0..2 {
            let mut t = Vec::new();
            let mut b = Vec::new();
            let m = generate_file_with_truth(
                &caps.join(format!("night{i}.etl")),
                &opts,
                i,
                Some(&mut t),
                Some(&mut b),
            )
            .unwrap();
            truth.push(t);
            blocks.push(b);
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
            blocks,
            manifests,
            _dir: dir,
        }
    })
}

fn query(args: &[&str]) -> Vec<Value> {
    query_on(&fixture().db, args)
}

fn query_on(db: &std::path::Path, args: &[&str]) -> Vec<Value> {
    let out = Command::new(common::heapdb_bin())
        .args(["query", "--db"])
        .arg(db)
        .args(args)
        .args(["--format", "json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {} ({})",
        String::from_utf8_lossy(&out.stderr),
        out.status
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

/// The values of the site reports' `group` parameter.
const GROUPS: [&str; 3] = ["function", "stack", "module"];

/// (pid, stack id) -> call site as module+0xRVA, from the synthesizer's record of each
/// process's sites in capture `c`.
fn call_sites(c: usize) -> HashMap<(u32, i64), String> {
    fixture().manifests[c]
        .processes
        .iter()
        .flat_map(|p| {
            p.sites
                .iter()
                .map(|s| ((p.pid, s.stack_id), s.call_site.clone()))
        })
        .collect()
}

/// What a row of a site report is under `group`, from the truth: the call site (no
/// symbols here: module+0xRVA), the whole stack, or the calling module; by heap without
/// a stack.
fn group_key(c: usize, group: &str, pid: u32, stack: Option<i64>, heap: u64) -> String {
    static NAMES: OnceLock<Vec<HashMap<(u32, i64), String>>> = OnceLock::new();
    let names = NAMES.get_or_init(|| (0..2).map(call_sites).collect());
    let Some(stack) = stack else {
        return format!("heap 0x{heap:x}");
    };
    let site = &names[c][&(pid, stack)];
    match group {
        "stack" => format!("stack:{stack}"),
        "module" => site.split('+').next().unwrap().to_string(),
        _ => site.clone(),
    }
}

/// The same key read from a report's row: its stack with group=stack (where `site`
/// must be that stack's call site), else its `site`.
fn row_key(c: usize, group: &str, g: &Value) -> String {
    if group == "stack" && !g["stack_id"].is_null() {
        let stack = i(&g["stack_id"]);
        let pid = i(&g["pid"]) as u32;
        assert_eq!(
            g["site"].as_str().unwrap(),
            group_key(c, "function", pid, Some(stack), 0)
        );
        assert!(
            g["stack"].as_str().unwrap().contains(" <- "),
            "group=stack shows the stack: {g}"
        );
        format!("stack:{stack}")
    } else {
        g["site"].as_str().unwrap().to_string()
    }
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
        let all: Vec<((u32, i64), [u64; 5])> = sites.into_iter().collect();
        // --param order=bytes_copied / bytes_grown: that column first, then reallocs,
        // bytes grown, pid and stack, as for the default order.
        for (order, col) in [("bytes_copied", 3), ("bytes_grown", 2)] {
            let mut want = all.clone();
            want.sort_by(|a, b| {
                b.1[col]
                    .cmp(&a.1[col])
                    .then(b.1[0].cmp(&a.1[0]))
                    .then(b.1[2].cmp(&a.1[2]))
                    .then(a.0.cmp(&b.0))
            });
            want.truncate(10);
            let got: Vec<((u32, i64), [i64; 3])> = query(&[
                "top-realloc-sites",
                "-p",
                &format!("capture={capture}"),
                "-p",
                "group=stack",
                "-p",
                &format!("order={order}"),
                "-p",
                "limit=10",
            ])
            .iter()
            .map(|g| {
                (
                    (i(&g["pid"]) as u32, i(&g["stack_id"])),
                    [
                        i(&g["reallocs"]),
                        i(&g["bytes_grown"]),
                        i(&g["bytes_copied"]),
                    ],
                )
            })
            .collect();
            let want: Vec<((u32, i64), [i64; 3])> = want
                .iter()
                .map(|(k, s)| (*k, [s[0] as i64, s[2] as i64, s[3] as i64]))
                .collect();
            assert_eq!(got, want, "order={order}");
        }
        let mut want = all;
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
            "--param",
            "group=stack",
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
            // The leaf is the first frame outside the heap code: in the process's exe, or
            // in heapdemo.dll (its heap_realloc) for a site that allocates through it.
            let p = fixture().manifests[c]
                .processes
                .iter()
                .find(|p| p.pid == *pid)
                .unwrap();
            let name = p.name.to_lowercase();
            let leaf = g["leaf"].as_str().unwrap();
            assert!(
                leaf.starts_with(&format!("{name}+0x")) || leaf.starts_with("heapdemo.dll+0x"),
                "{leaf}"
            );
            assert!(p.sites.iter().any(|s| s.call_site == leaf), "{leaf}");
        }
    }
    // Every group: the rows are the truth's sums per (process, call site / stack /
    // module).
    for group in GROUPS {
        let mut want: BTreeMap<(u32, String), [u64; 6]> = BTreeMap::new();
        for r in reallocs(1) {
            let e = want
                .entry((r.pid, group_key(1, group, r.pid, r.stack, r.heap)))
                .or_default();
            e[0] += 1;
            e[1] += moved(&r);
            e[2] += r.new_size.saturating_sub(r.old_size);
            e[3] += if r.new != r.old {
                r.new_size.min(r.old_size)
            } else {
                0
            };
            e[4] = e[4].max(r.new_size);
        }
        let mut stacks: BTreeMap<(u32, String), std::collections::BTreeSet<i64>> = BTreeMap::new();
        for r in reallocs(1) {
            stacks
                .entry((r.pid, group_key(1, group, r.pid, r.stack, r.heap)))
                .or_default()
                .insert(r.stack.unwrap());
        }
        for (k, v) in want.iter_mut() {
            v[5] = stacks[k].len() as u64;
        }
        let got: BTreeMap<(u32, String), [u64; 6]> = query(&[
            "top-realloc-sites",
            "-p",
            &format!("group={group}"),
            "-p",
            "limit=100000",
        ])
        .iter()
        .map(|g| {
            (
                (i(&g["pid"]) as u32, row_key(1, group, g)),
                [
                    "reallocs",
                    "moved",
                    "bytes_grown",
                    "bytes_copied",
                    "max_size",
                    "stacks",
                ]
                .map(|c| i(&g[c]) as u64),
            )
        })
        .collect();
        assert_eq!(got, want, "group={group}");
        if group == "module" {
            assert!(want.len() >= fixture().manifests[1].processes.len());
        }
    }
    // The default is group=function.
    assert_eq!(
        query(&["top-realloc-sites"]),
        query(&["top-realloc-sites", "-p", "group=function"])
    );
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

/// A realloc chain, rebuilt from the synthesizer's lifetimes: a block with
/// chain_index > 0 continues the block of its process that a ReAlloc ended at the
/// instant it started (the synthesizer's timestamps are strictly increasing, so that
/// block is unique).
#[derive(Clone, Debug)]
struct Chain {
    pid: u32,
    heap: u64,
    /// Lifetimes, first to last.
    blocks: Vec<TruthBlock>,
}

fn chains(blocks: &[TruthBlock]) -> Vec<Chain> {
    let realloc_end =
        |b: &TruthBlock| b.end_kind == "realloc_moved" || b.end_kind == "realloc_in_place";
    let ended_at: HashMap<(u32, i64), usize> = blocks
        .iter()
        .enumerate()
        .filter(|(_, b)| realloc_end(b))
        .map(|(i, b)| ((b.pid, b.end_ns.unwrap()), i))
        .collect();
    let mut next: HashMap<usize, usize> = HashMap::new();
    for (i, b) in blocks.iter().enumerate() {
        if b.chain_index > 0 {
            let prev = ended_at[&(b.pid, b.start_ns.unwrap())];
            assert_eq!(blocks[prev].chain_index + 1, b.chain_index);
            next.insert(prev, i);
        }
    }
    let mut out = Vec::new();
    for (i, b) in blocks
        .iter()
        .enumerate()
        .filter(|(_, b)| b.chain_index == 0)
    {
        let mut c = vec![b.clone()];
        let mut at = i;
        while let Some(&n) = next.get(&at) {
            c.push(blocks[n].clone());
            at = n;
        }
        assert_eq!(c.len() as u32, b.chain_len);
        out.push(Chain {
            pid: b.pid,
            heap: b.heap,
            blocks: c,
        });
    }
    out
}

#[test]
fn growth_chains() {
    let f = fixture();
    let all = chains(&f.blocks[1]);
    let key = |c: &Chain| {
        let first = &c.blocks[0];
        let last = c.blocks.last().unwrap();
        (
            c.pid,
            c.heap,
            c.blocks.len() as u64 - 1,
            first.size.unwrap_or(0),
            last.size.unwrap_or(0),
            c.blocks
                .iter()
                .filter(|b| b.end_kind == "realloc_moved")
                .count() as u64,
            last.end_kind == "live_at_end",
            first.start_kind == "before_trace" || first.start_kind == "lost_alloc",
            copied(c),
        )
    };
    let mut want: Vec<_> = all
        .iter()
        .filter(|c| c.blocks.len() >= 3)
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
                i(&g["bytes_copied"]) as u64,
            )
        })
        .collect();
    got.sort();
    assert!(want.len() > 100, "the fixture has chains ({})", want.len());
    assert!(
        want.iter().any(|w| w.7),
        "some chains start before the trace"
    );
    assert_eq!(got, want);
    // The manifest's histogram of chain lengths agrees.
    let m = &f.manifests[1].lifetimes;
    assert_eq!(
        all.iter().filter(|c| c.blocks.len() >= 2).count() as u64,
        m.chains.values().sum::<u64>()
    );
    // The default view: the 20 longest, longest first.
    let top = query(&["growth-chains"]);
    assert_eq!(top.len(), 20);
    assert_eq!(i(&top[0]["reallocs"]) as u32 + 1, m.longest_chain);
    // order=copied: the chains (of 2 reallocs or more) whose moves copied the most.
    let mut want: Vec<(u64, u64)> = all
        .iter()
        .filter(|c| c.blocks.len() >= 3 && copied(c) > 0)
        .map(|c| (copied(c), c.blocks.len() as u64 - 1))
        .collect();
    want.sort_by(|a, b| b.cmp(a));
    want.truncate(20);
    let got: Vec<(u64, u64)> = query(&["growth-chains", "-p", "order=copied"])
        .iter()
        .map(|g| (i(&g["bytes_copied"]) as u64, i(&g["reallocs"]) as u64))
        .collect();
    assert_eq!(got, want);
}

/// What a chain's moves copied: min(size before, size after) of each move.
fn copied(c: &Chain) -> u64 {
    c.blocks
        .windows(2)
        .filter(|w| w[0].end_kind == "realloc_moved")
        .map(|w| w[0].size.unwrap_or(0).min(w[1].size.unwrap_or(0)))
        .sum()
}

#[test]
fn small_increments() {
    for group in GROUPS {
        let mut sites: BTreeMap<(u32, String), (u64, u64, u64, u64, BTreeMap<u64, u64>)> =
            BTreeMap::new();
        for r in reallocs(1).iter().filter(|r| r.new_size > r.old_size) {
            let s = sites
                .entry((r.pid, group_key(1, group, r.pid, r.stack, r.heap)))
                .or_default();
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
            .map(|((pid, key), s)| {
                let common =
                    s.4.iter()
                        .max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0)))
                        .map(|(k, _)| *k)
                        .unwrap();
                (pid, key, s.0, s.1, common, s.2, s.3)
            })
            .collect();
        want.sort();
        let mut got: Vec<_> = query(&[
            "small-increments",
            "-p",
            "limit=10000",
            "-p",
            &format!("group={group}"),
        ])
        .iter()
        .map(|g| {
            (
                i(&g["pid"]) as u32,
                row_key(1, group, g),
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
        assert_eq!(got, want, "group={group}");
    }
}

#[test]
fn shrinks() {
    for group in GROUPS {
        let mut want: BTreeMap<(u32, String), [u64; 3]> = BTreeMap::new();
        for r in reallocs(1).iter().filter(|r| r.new_size < r.old_size) {
            let e = want
                .entry((r.pid, group_key(1, group, r.pid, r.stack, r.heap)))
                .or_default();
            e[0] += 1;
            e[1] += r.old_size - r.new_size;
            e[2] += moved(r);
        }
        let got: BTreeMap<(u32, String), [u64; 3]> = query(&[
            "shrinks",
            "-p",
            "limit=10000",
            "-p",
            &format!("group={group}"),
        ])
        .iter()
        .map(|g| {
            (
                (i(&g["pid"]) as u32, row_key(1, group, g)),
                [
                    i(&g["shrinks"]) as u64,
                    i(&g["bytes_returned"]) as u64,
                    i(&g["moved"]) as u64,
                ],
            )
        })
        .collect();
        assert!(!want.is_empty());
        assert_eq!(got, want, "group={group}");
    }
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
    let mut want: BTreeMap<(i64, u32), [i64; 4]> = BTreeMap::new();
    for r in reallocs(1) {
        // 10 MHz QPC: 100 ns per tick; 100 ms buckets.
        let ms = ((r.ts - m.start_raw) as i64 * 100) / 1_000_000;
        let e = want.entry((ms / 100 * 100, r.pid)).or_default();
        e[0] += 1;
        e[1] += moved(&r) as i64;
        e[2] += r.new_size as i64 - r.old_size as i64;
        // What a moving realloc copies: min(old size, new size).
        e[3] += if r.new != r.old {
            r.new_size.min(r.old_size) as i64
        } else {
            0
        };
    }
    let got: BTreeMap<(i64, u32), [i64; 4]> = query(&["timeline", "-p", "bucket_ms=100"])
        .iter()
        .map(|g| {
            (
                (i(&g["bucket_start_ms"]), i(&g["pid"]) as u32),
                [
                    i(&g["reallocs"]),
                    i(&g["moves"]),
                    i(&g["net_bytes"]),
                    i(&g["bytes_copied"]),
                ],
            )
        })
        .collect();
    assert!(want.len() > 5);
    assert_eq!(got, want);
}

#[test]
fn outstanding_at_end() {
    let f = fixture();
    // (pid, stack) -> [blocks, bytes, via realloc], from the synthesizer's lifetimes.
    let mut want: BTreeMap<(u32, i64), [u64; 3]> = BTreeMap::new();
    for b in f.blocks[1].iter().filter(|b| {
        b.end_kind == "live_at_end" && (b.start_kind == "alloc" || b.start_kind == "realloc")
    }) {
        let e = want.entry((b.pid, b.stack_id.unwrap())).or_default();
        e[0] += 1;
        e[1] += b.size.unwrap();
        e[2] += (b.start_kind == "realloc") as u64;
    }
    let got: BTreeMap<(u32, i64), [u64; 3]> = query(&[
        "outstanding-at-end",
        "-p",
        "limit=100000",
        "-p",
        "group=stack",
    ])
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
    // The manifest's own per-site record and totals agree.
    let m = &f.manifests[1];
    for site in &m.lifetimes.live_at_end_by_site {
        let g = got[&(site.pid, site.stack_id.unwrap())];
        assert_eq!(
            [g[0], g[1]],
            [site.blocks, site.bytes],
            "{}",
            site.call_site
        );
    }
    assert_eq!(
        got.values().map(|v| v[0]).sum::<u64>(),
        m.live_blocks_at_end
    );
    assert_eq!(got.values().map(|v| v[1]).sum::<u64>(), m.live_bytes_at_end);
    // Every group: the truth's sums per (process, call site / stack / module).
    for group in GROUPS {
        let mut want: BTreeMap<(u32, String), [u64; 3]> = BTreeMap::new();
        for b in f.blocks[1].iter().filter(|b| {
            b.end_kind == "live_at_end" && (b.start_kind == "alloc" || b.start_kind == "realloc")
        }) {
            let e = want
                .entry((b.pid, group_key(1, group, b.pid, b.stack_id, b.heap)))
                .or_default();
            e[0] += 1;
            e[1] += b.size.unwrap();
            e[2] += (b.start_kind == "realloc") as u64;
        }
        let got: BTreeMap<(u32, String), [u64; 3]> = query(&[
            "outstanding-at-end",
            "-p",
            "limit=100000",
            "-p",
            &format!("group={group}"),
        ])
        .iter()
        .map(|g| {
            (
                (i(&g["pid"]) as u32, row_key(1, group, g)),
                ["blocks", "bytes", "via_realloc"].map(|c| i(&g[c]) as u64),
            )
        })
        .collect();
        assert_eq!(got, want, "group={group}");
    }
    // Rows name the call site, as the manifest does.
    let top = query(&["outstanding-at-end", "-p", "limit=1"]);
    let site = m
        .lifetimes
        .live_at_end_by_site
        .iter()
        .find(|x| x.stack_id == Some(i(&top[0]["stack_id"])))
        .unwrap();
    assert_eq!(top[0]["site"].as_str().unwrap(), site.call_site);
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
    // bases, pids and handles): rows are matched by (process identity, call site, whole
    // stack or module), and the numbers are the manifests' per-site counts.
    let f = fixture();
    for group in GROUPS {
        let mut want: BTreeMap<(String, String), [i64; 7]> = BTreeMap::new();
        for (col, m) in f.manifests.iter().enumerate() {
            for p in &m.processes {
                for site in &p.sites {
                    if site.allocs + site.reallocs == 0 {
                        continue;
                    }
                    let key = match group {
                        "stack" => site.frames.join(" <- "),
                        "module" => site.call_site.split('+').next().unwrap().to_string(),
                        _ => site.call_site.clone(),
                    };
                    let e = want.entry((p.identity.clone(), key)).or_default();
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
            &format!("group={group}"),
            "-p",
            "limit=100000",
        ])
        .iter()
        .map(|g| {
            let key = if group == "stack" { "stack" } else { "site" };
            (
                (
                    g["process"].as_str().unwrap().to_string(),
                    g[key].as_str().unwrap().to_string(),
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
        assert_eq!(got, want, "group={group}");
    }
    // The old names of the groups still work: site is stack, call_site is function.
    for (old, new) in [("site", "stack"), ("call_site", "function")] {
        assert_eq!(
            query(&[
                "capture-diff",
                "-p",
                &format!("group={old}"),
                "-p",
                "limit=50"
            ]),
            query(&[
                "capture-diff",
                "-p",
                &format!("group={new}"),
                "-p",
                "limit=50"
            ])
        );
    }
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
    // Each event with a stack names its call site and its whole stack.
    let rows = query(&[
        "address-history",
        "-p",
        &format!("address=0x{addr:x}"),
        "-p",
        "capture=2",
    ]);
    let with_stack: Vec<&Value> = rows.iter().filter(|g| !g["stack_id"].is_null()).collect();
    assert!(!with_stack.is_empty());
    for g in with_stack {
        let site = group_key(
            1,
            "function",
            i(&g["pid"]) as u32,
            Some(i(&g["stack_id"])),
            0,
        );
        assert_eq!(g["site"].as_str().unwrap(), site);
        assert!(g["stack"]
            .as_str()
            .unwrap()
            .contains(&format!(" <- {site}")));
    }
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
        let lt = &m.lifetimes;
        assert_eq!(i(&g["events_decoded"]) as u64, m.heap_events);
        assert_eq!(i(&g["events_seen"]) as u64, m.events);
        assert_eq!(i(&g["reallocs"]) as u64, m.reallocs.total);
        assert_eq!(i(&g["records_32bit"]) as u64, m.records_32bit);
        assert_eq!(
            i(&g["moving_reallocs_linked"]) as u64,
            m.reallocs.with_internal_alloc_free
        );
        // The session lost what the synthesizer did not write.
        assert_eq!(i(&g["events_lost"]) as u64, lt.lost_allocs + lt.lost_frees);
        assert!(lt.lost_allocs + lt.lost_frees > 0);
        assert_eq!(
            [
                i(&g["events_bad"]),
                i(&g["ingest_errors"]),
                i(&g["stacks_orphan"]),
                i(&g["events_out_of_order"])
            ],
            [0, 0, 0, 0]
        );
        let kinds = |pred: &dyn Fn(&str, &str) -> bool| -> u64 {
            lt.blocks
                .iter()
                .filter(|(k, _)| {
                    let (a, b) = k.split_once('/').unwrap();
                    pred(a, b)
                })
                .map(|(_, n)| n)
                .sum()
        };
        let realloc_end = |e: &str| e == "realloc_moved" || e == "realloc_in_place";
        let want = [
            kinds(&|s, _| s == "before_trace"),
            kinds(&|s, e| (s == "before_trace" || s == "lost_alloc") && realloc_end(e)),
            kinds(&|s, _| s == "lost_alloc"),
            kinds(&|_, e| e == "lost_free"),
            kinds(&|_, e| e == "heap_destroyed"),
            kinds(&|_, e| e == "process_exited"),
        ];
        let cols = [
            "blocks_before_trace",
            "reallocs_old_block_unseen",
            "lost_allocs",
            "lost_frees",
            "blocks_heap_destroyed",
            "blocks_process_exited",
        ];
        assert_eq!(cols.map(|k| i(&g[k]) as u64), want, "capture {}", c + 1);
        // The realistic capture has each of them.
        assert!(want.iter().all(|&n| n > 0), "{want:?}");
        assert_eq!(
            want[4],
            lt.heaps_destroyed
                .iter()
                .map(|h| h.live_blocks)
                .sum::<u64>()
        );
        assert_eq!(
            want[5],
            lt.process_exits.iter().map(|x| x.live_blocks).sum::<u64>()
        );
        // And it says so in words.
        let notes = g["notes"].as_str().unwrap();
        assert!(
            notes.contains(&format!(
                "the session lost {} events",
                lt.lost_allocs + lt.lost_frees
            )),
            "{notes}"
        );
        assert!(
            notes.contains(&format!("{} blocks lost their Free", want[3])),
            "{notes}"
        );
    }
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
    assert_eq!(names.len(), 20);
    for want in [
        "symbol-status",
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
        "lifetimes",
        "outstanding-size",
        "peak-usage",
        "leak-suspects",
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
    assert!(text.contains("table blocks: One row per block lifetime"));
    assert!(text.contains("view blocks_v"));
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

/// (session start, first heap event, last heap event) of the latest capture, in UTC ns:
/// the time base the reports' since/until/buckets count from.
fn times() -> (i64, i64, i64) {
    let c = rusqlite::Connection::open_with_flags(
        &fixture().db,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();
    c.query_row(
        "SELECT start_time_ns, first_event_ns, last_event_ns FROM captures WHERE capture_id = 2",
        [],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )
    .unwrap()
}

fn in_trace(b: &TruthBlock) -> bool {
    b.start_kind == "alloc" || b.start_kind == "realloc"
}

#[test]
fn lifetimes_by_wpa_class() {
    let f = fixture();
    let (start, first, last) = times();
    // A window in the middle of the capture, and the whole capture.
    let mid = ((first - start) as f64 / 1e9, (last - start) as f64 / 1e9);
    let since = ((mid.0 + (mid.1 - mid.0) * 0.3) * 1e6).round() / 1e6;
    let until = ((mid.0 + (mid.1 - mid.0) * 0.7) * 1e6).round() / 1e6;
    for window in [None, Some((since, until))] {
        let (t_from, t_to) = match window {
            None => (i64::MIN, i64::MAX),
            Some((a, b)) => (
                start + (a * 1e9).round() as i64,
                start + (b * 1e9).round() as i64,
            ),
        };
        // (pid, stack, heap when no stack, unseen) -> [AIFI n, bytes, AIFO.., AOFI.., AOFO..]
        let mut want: BTreeMap<(u32, i64, u64, bool), [u64; 8]> = BTreeMap::new();
        for b in &f.blocks[1] {
            let alive = b.start_ns.is_none_or(|s| s < t_to) && b.end_ns.is_none_or(|e| e >= t_from);
            if !alive {
                continue;
            }
            let ai = b.start_ns.is_some_and(|s| s >= t_from);
            let fi = b.end_ns.is_some_and(|e| e < t_to);
            let class = match (ai, fi) {
                (true, true) => 0,
                (true, false) => 1,
                (false, true) => 2,
                (false, false) => 3,
            };
            let unseen = !in_trace(b);
            let key = (
                b.pid,
                b.stack_id.unwrap_or(0),
                if b.stack_id.is_none() { b.heap } else { 0 },
                unseen,
            );
            let e = want.entry(key).or_default();
            e[2 * class] += 1;
            e[2 * class + 1] += b.size.unwrap_or(0);
        }
        let mut args = vec![
            "lifetimes".to_string(),
            "-p".into(),
            "limit=100000".into(),
            "-p".into(),
            "group=stack".into(),
        ];
        if let Some((a, b)) = window {
            args.extend([
                "-p".into(),
                format!("since={a}"),
                "-p".into(),
                format!("until={b}"),
            ]);
        }
        let args: Vec<&str> = args.iter().map(|s| s.as_str()).collect();
        let got_rows = query(&args);
        let mut got: BTreeMap<(u32, i64, u64, bool), [u64; 8]> = BTreeMap::new();
        for g in &got_rows {
            let key = (
                i(&g["pid"]) as u32,
                i(&g["stack_id"]),
                i(&g["heap"]) as u64,
                g["site"].as_str() == Some("(before the trace)"),
            );
            let v = [
                "aifi_blocks",
                "aifi_bytes",
                "aifo_blocks",
                "aifo_bytes",
                "aofi_blocks",
                "aofi_bytes",
                "aofo_blocks",
                "aofo_bytes",
            ]
            .map(|c| i(&g[c]) as u64);
            assert_eq!(
                i(&g["net_bytes"]),
                v[3] as i64 - v[5] as i64,
                "net = AIFO - AOFI bytes"
            );
            got.insert(key, v);
        }
        assert_eq!(got, want, "window {window:?}");
        // In the middle window every class occurs. Over the whole capture the only
        // blocks allocated "before" are those from before the trace, and each of them
        // is seen only when it ends: AOFI, never AOFO.
        let totals = want.values().fold([0u64; 8], |mut t, v| {
            for k in 0..8 {
                t[k] += v[k];
            }
            t
        });
        match window {
            Some(_) => assert!((0..4).all(|c| totals[2 * c] > 0), "{totals:?}"),
            None => assert!(totals[4] > 0 && totals[6] == 0, "{totals:?}"),
        }
        // Sorted by the window's net contribution.
        let nets: Vec<i64> = got_rows.iter().map(|g| i(&g["net_bytes"])).collect();
        assert!(nets.windows(2).all(|w| w[0] >= w[1]));
        // Every group: the same blocks summed per (process, call site / stack / module);
        // blocks from before the trace stay apart, per heap (or stack).
        for group in GROUPS {
            let mut want: BTreeMap<(u32, String), [u64; 8]> = BTreeMap::new();
            for b in &f.blocks[1] {
                let alive =
                    b.start_ns.is_none_or(|s| s < t_to) && b.end_ns.is_none_or(|e| e >= t_from);
                if !alive {
                    continue;
                }
                let class = match (
                    b.start_ns.is_some_and(|s| s >= t_from),
                    b.end_ns.is_some_and(|e| e < t_to),
                ) {
                    (true, true) => 0,
                    (true, false) => 1,
                    (false, true) => 2,
                    (false, false) => 3,
                };
                let key = if in_trace(b) {
                    group_key(1, group, b.pid, b.stack_id, b.heap)
                } else {
                    match b.stack_id {
                        Some(s) => format!("(before the trace) stack {s}"),
                        None => format!("(before the trace) heap 0x{:x}", b.heap),
                    }
                };
                let e = want.entry((b.pid, key)).or_default();
                e[2 * class] += 1;
                e[2 * class + 1] += b.size.unwrap_or(0);
            }
            let gparam = format!("group={group}");
            let mut gargs = args.clone();
            *gargs.iter_mut().find(|a| **a == "group=stack").unwrap() = &gparam;
            let got: BTreeMap<(u32, String), [u64; 8]> = query(&gargs)
                .iter()
                .map(|g| {
                    let key = if g["site"].as_str() == Some("(before the trace)") {
                        g["site_key"].as_str().unwrap().to_string()
                    } else {
                        row_key(1, group, g)
                    };
                    (
                        (i(&g["pid"]) as u32, key),
                        [
                            "aifi_blocks",
                            "aifi_bytes",
                            "aifo_blocks",
                            "aifo_bytes",
                            "aofi_blocks",
                            "aofi_bytes",
                            "aofo_blocks",
                            "aofo_bytes",
                        ]
                        .map(|c| i(&g[c]) as u64),
                    )
                })
                .collect();
            assert_eq!(got, want, "group={group} window {window:?}");
        }
    }
}

#[test]
fn peak_usage_matches_the_synthesizer() {
    let f = fixture();
    let (start, _, _) = times();
    let m = &f.manifests[1].lifetimes;
    let got = query(&["peak-usage", "-p", "sites=3", "-p", "group=stack"]);
    for p in &m.peaks {
        let rows: Vec<&Value> = got
            .iter()
            .filter(|g| i(&g["pid"]) as u32 == p.pid)
            .collect();
        let Some(t) = p.peak_time_ns else {
            assert!(rows.is_empty());
            continue;
        };
        assert!(!rows.is_empty(), "pid {}", p.pid);
        assert_eq!(i(&rows[0]["peak_bytes"]) as u64, p.peak_bytes);
        assert_eq!(i(&rows[0]["peak_blocks"]) as u64, p.peak_blocks);
        let secs = rows[0]["peak_time_s"].as_f64().unwrap();
        assert!(
            (secs - (t - start) as f64 / 1e9).abs() < 1e-6,
            "pid {}",
            p.pid
        );
        // Who held it: blocks live just after the peak's event, by stack.
        let mut held: BTreeMap<i64, (u64, u64)> = BTreeMap::new();
        for b in f.blocks[1].iter().filter(|b| {
            b.pid == p.pid
                && in_trace(b)
                && b.start_ns.unwrap() <= t
                && b.end_ns.is_none_or(|e| e > t)
        }) {
            let e = held.entry(b.stack_id.unwrap()).or_default();
            e.0 += 1;
            e.1 += b.size.unwrap();
        }
        assert_eq!(held.values().map(|h| h.1).sum::<u64>(), p.peak_bytes);
        let mut top: Vec<(u64, i64)> = held.iter().map(|(s, h)| (h.1, *s)).collect();
        top.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        let got_sites: Vec<(u64, i64)> = rows
            .iter()
            .map(|r| (i(&r["site_bytes"]) as u64, i(&r["stack_id"])))
            .collect();
        assert_eq!(got_sites, top[..top.len().min(3)].to_vec(), "pid {}", p.pid);
    }
    // Every group: who held the peak, summed per (call site / stack / module).
    for group in GROUPS {
        let got = query(&[
            "peak-usage",
            "-p",
            "sites=100000",
            "-p",
            &format!("group={group}"),
        ]);
        for p in &m.peaks {
            let Some(t) = p.peak_time_ns else {
                continue;
            };
            let mut want: BTreeMap<String, (u64, u64)> = BTreeMap::new();
            for b in f.blocks[1].iter().filter(|b| {
                b.pid == p.pid
                    && in_trace(b)
                    && b.start_ns.unwrap() <= t
                    && b.end_ns.is_none_or(|e| e > t)
            }) {
                let e = want
                    .entry(group_key(1, group, b.pid, b.stack_id, b.heap))
                    .or_default();
                e.0 += 1;
                e.1 += b.size.unwrap();
            }
            let have: BTreeMap<String, (u64, u64)> = got
                .iter()
                .filter(|g| i(&g["pid"]) as u32 == p.pid)
                .map(|g| {
                    (
                        row_key(1, group, g),
                        (i(&g["site_blocks"]) as u64, i(&g["site_bytes"]) as u64),
                    )
                })
                .collect();
            assert_eq!(have, want, "group={group} pid {}", p.pid);
        }
    }
    // A process that exited mid-trace has nothing outstanding at the end.
    for x in &m.process_exits {
        if let Some(r) = got.iter().find(|g| i(&g["pid"]) as u32 == x.pid) {
            assert_eq!(i(&r["end_bytes"]), 0);
        }
    }
}

#[test]
fn outstanding_size_over_time() {
    let f = fixture();
    let (start, first, last) = times();
    let n = 10i64;
    let width = ((last - first + 1) / n).max(1);
    let bucket = |t: i64| ((t - first) / width).min(n - 1);
    let got = query(&["outstanding-size", "-p", "buckets=10"]);
    let pids: std::collections::BTreeSet<u32> = f.blocks[1]
        .iter()
        .filter(|b| in_trace(b))
        .map(|b| b.pid)
        .collect();
    assert_eq!(got.len(), pids.len() * n as usize);
    for g in &got {
        let pid = i(&g["pid"]) as u32;
        let b = i(&g["bucket"]);
        let (mut bytes, mut blocks, mut allocated, mut ended) = (0u64, 0u64, 0u64, 0u64);
        for x in f.blocks[1].iter().filter(|x| x.pid == pid && in_trace(x)) {
            let sb = bucket(x.start_ns.unwrap());
            let eb = x.end_ns.map(bucket);
            if sb <= b && eb.is_none_or(|e| e > b) {
                bytes += x.size.unwrap();
                blocks += 1;
            }
            if sb == b {
                allocated += x.size.unwrap();
            }
            if eb == Some(b) {
                ended += x.size.unwrap();
            }
        }
        assert_eq!(
            [
                "outstanding_bytes",
                "outstanding_blocks",
                "allocated_bytes",
                "ended_bytes"
            ]
            .map(|c| i(&g[c]) as u64),
            [bytes, blocks, allocated, ended],
            "pid {pid} bucket {b}"
        );
        let t = g["time_s"].as_f64().unwrap();
        assert!((t - (first + (b + 1) * width - start) as f64 / 1e9).abs() < 1e-6);
    }
    // By call site: the top 3 series by peak, named by their call site.
    let by_site = query(&[
        "outstanding-size",
        "-p",
        "buckets=10",
        "-p",
        "by=site",
        "-p",
        "top=3",
    ]);
    assert_eq!(by_site.len(), 3 * n as usize);
    assert!(by_site
        .iter()
        .all(|g| g["series"].as_str().unwrap().contains("+0x")));
    // Every group, every series: the truth's outstanding bytes per bucket, summed per
    // (process, call site / stack / module).
    for group in GROUPS {
        let mut want: BTreeMap<(u32, String, i64), [u64; 2]> = BTreeMap::new();
        for x in f.blocks[1].iter().filter(|x| in_trace(x)) {
            let key = group_key(1, group, x.pid, x.stack_id, x.heap);
            let sb = bucket(x.start_ns.unwrap());
            let eb = x.end_ns.map(bucket);
            for b in sb..eb.unwrap_or(n) {
                let e = want.entry((x.pid, key.clone(), b)).or_default();
                e[0] += x.size.unwrap();
                e[1] += 1;
            }
        }
        let got: BTreeMap<(u32, String, i64), [u64; 2]> = query(&[
            "outstanding-size",
            "-p",
            "buckets=10",
            "-p",
            "by=site",
            "-p",
            "top=100000",
            "-p",
            &format!("group={group}"),
        ])
        .iter()
        .filter(|g| i(&g["outstanding_blocks"]) > 0)
        .map(|g| {
            let key = if group == "stack" {
                format!("stack:{}", i(&g["stack_id"]))
            } else {
                g["series"].as_str().unwrap().to_string()
            };
            (
                (i(&g["pid"]) as u32, key, i(&g["bucket"])),
                [
                    i(&g["outstanding_bytes"]) as u64,
                    i(&g["outstanding_blocks"]) as u64,
                ],
            )
        })
        .collect();
        assert_eq!(got, want, "group={group}");
    }
}

#[test]
fn leak_suspects_rank_steady_growth() {
    let f = fixture();
    let (_, first, last) = times();
    let slices = 10i64;
    let (t_from, t_to) = (first, last + 1);
    let aifo: Vec<&TruthBlock> = f.blocks[1]
        .iter()
        .filter(|b| {
            in_trace(b) && b.end_ns.is_none_or(|e| e >= t_to) && b.end_kind != "process_exited"
        })
        .collect();
    // Chains whose every realloc grew the block, by their last block.
    let mut grew: std::collections::HashSet<(u32, u64, i64)> = Default::default();
    for c in chains(&f.blocks[1]) {
        let ok = c
            .blocks
            .windows(2)
            .all(|w| w[1].size.unwrap() > w[0].size.unwrap_or(0));
        let l = c.blocks.last().unwrap();
        if c.blocks.len() > 1 && ok && l.end_kind == "live_at_end" {
            grew.insert((l.pid, l.address, l.start_ns.unwrap()));
        }
    }
    let mut want: BTreeMap<(u32, i64), (u64, u64, std::collections::BTreeSet<i64>, u64)> =
        BTreeMap::new();
    for b in &aifo {
        let e = want.entry((b.pid, b.stack_id.unwrap())).or_default();
        e.0 += 1;
        e.1 += b.size.unwrap();
        e.2.insert((b.start_ns.unwrap() - t_from) * slices / (t_to - t_from));
        e.3 += grew.contains(&(b.pid, b.address, b.start_ns.unwrap())) as u64;
    }
    let got = query(&["leak-suspects", "-p", "limit=100000", "-p", "group=stack"]);
    assert_eq!(got.len(), want.len());
    for g in &got {
        let w = &want[&(i(&g["pid"]) as u32, i(&g["stack_id"]))];
        assert_eq!(
            [
                "aifo_blocks",
                "aifo_bytes",
                "slices_growing",
                "growing_chains"
            ]
            .map(|c| i(&g[c]) as u64),
            [w.0, w.1, w.2.len() as u64, w.3]
        );
        assert_eq!(
            i(&g["score"]) as u64,
            w.1 * w.2.len() as u64 / slices as u64
        );
    }
    assert!(want.values().any(|w| w.3 > 0), "some chains only grew");
    // Every group: blocks, bytes and chains add up; slices are those of any stack.
    for group in GROUPS {
        let mut want: BTreeMap<(u32, String), (u64, u64, std::collections::BTreeSet<i64>, u64)> =
            BTreeMap::new();
        for b in &aifo {
            let e = want
                .entry((b.pid, group_key(1, group, b.pid, b.stack_id, b.heap)))
                .or_default();
            e.0 += 1;
            e.1 += b.size.unwrap();
            e.2.insert((b.start_ns.unwrap() - t_from) * slices / (t_to - t_from));
            e.3 += grew.contains(&(b.pid, b.address, b.start_ns.unwrap())) as u64;
        }
        let want: BTreeMap<(u32, String), [u64; 4]> = want
            .into_iter()
            .map(|(k, w)| (k, [w.0, w.1, w.2.len() as u64, w.3]))
            .collect();
        let got: BTreeMap<(u32, String), [u64; 4]> = query(&[
            "leak-suspects",
            "-p",
            "limit=100000",
            "-p",
            &format!("group={group}"),
        ])
        .iter()
        .map(|g| {
            (
                (i(&g["pid"]) as u32, row_key(1, group, g)),
                [
                    "aifo_blocks",
                    "aifo_bytes",
                    "slices_growing",
                    "growing_chains",
                ]
                .map(|c| i(&g[c]) as u64),
            )
        })
        .collect();
        assert_eq!(got, want, "group={group}");
    }
    let scores: Vec<i64> = got.iter().map(|g| i(&g["score"])).collect();
    assert!(scores.windows(2).all(|w| w[0] >= w[1]));
}

/// Outstanding bytes per call site follow a site across nights: capture-diff's (and
/// trend's) live bytes are the synthesizer's live-at-end record of each night.
#[test]
fn live_bytes_per_call_site_across_nights() {
    let f = fixture();
    let got = query(&["capture-diff", "-p", "group=function", "-p", "limit=100000"]);
    for (night, col) in [(0usize, "live_bytes_a"), (1, "live_bytes_b")] {
        let mut want: BTreeMap<(String, String), u64> = BTreeMap::new();
        for s in &f.manifests[night].lifetimes.live_at_end_by_site {
            *want
                .entry((s.process.clone(), s.call_site.clone()))
                .or_default() += s.bytes;
        }
        let have: BTreeMap<(String, String), u64> = got
            .iter()
            .filter(|g| i(&g[col]) > 0)
            .map(|g| {
                (
                    (
                        g["process"].as_str().unwrap().to_string(),
                        g["site"].as_str().unwrap().to_string(),
                    ),
                    i(&g[col]) as u64,
                )
            })
            .collect();
        assert!(want.len() > 10);
        assert_eq!(have, want, "night {night}");
    }
    // trend follows the same numbers.
    let t = query(&[
        "trend",
        "-p",
        "metric=live_bytes",
        "-p",
        "group=function",
        "-p",
        "limit=1",
    ]);
    let series: Vec<f64> = t[0]["series"]
        .as_str()
        .unwrap()
        .split(' ')
        .map(|x| x.parse().unwrap())
        .collect();
    let row = got
        .iter()
        .find(|g| g["process"] == t[0]["process"] && g["site"] == t[0]["site"])
        .unwrap();
    assert_eq!(
        series,
        vec![
            i(&row["live_bytes_a"]) as f64,
            i(&row["live_bytes_b"]) as f64
        ]
    );
}

/// trend's series, per group, are capture-diff's numbers of each night.
#[test]
fn trend_groups_follow_capture_diff() {
    for group in GROUPS {
        let key = if group == "stack" { "stack" } else { "site" };
        let diff: BTreeMap<(String, String), Vec<f64>> = query(&[
            "capture-diff",
            "-p",
            &format!("group={group}"),
            "-p",
            "limit=100000",
        ])
        .iter()
        .map(|g| {
            (
                (
                    g["process"].as_str().unwrap().to_string(),
                    g[key].as_str().unwrap().to_string(),
                ),
                vec![i(&g["reallocs_a"]) as f64, i(&g["reallocs_b"]) as f64],
            )
        })
        .collect();
        let trend: BTreeMap<(String, String), Vec<f64>> = query(&[
            "trend",
            "-p",
            &format!("group={group}"),
            "-p",
            "limit=100000",
        ])
        .iter()
        .map(|g| {
            (
                (
                    g["process"].as_str().unwrap().to_string(),
                    g[key].as_str().unwrap().to_string(),
                ),
                g["series"]
                    .as_str()
                    .unwrap()
                    .split(' ')
                    .map(|x| x.parse().unwrap())
                    .collect(),
            )
        })
        .collect();
        assert!(diff.len() >= 5, "group={group}");
        assert_eq!(trend, diff, "group={group}");
    }
}

/// Symbolization names call sites (tests/symbols.rs tests how); here two stacks of one
/// process are given the same call-site function by hand, standing in for it: under
/// group=function they are one row, under group=stack two, and group=module sums by
/// the caller module given to them.
#[test]
fn named_call_sites_group_by_function() {
    let f = fixture();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("named.db");
    let src =
        rusqlite::Connection::open_with_flags(&f.db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap();
    src.execute("VACUUM INTO ?1", [db.to_str().unwrap()])
        .unwrap();
    drop(src);
    // The process with the most reallocs in the latest capture, and its two busiest stacks.
    let mut per: BTreeMap<(u32, i64), u64> = BTreeMap::new();
    for r in reallocs(1) {
        *per.entry((r.pid, r.stack.unwrap())).or_default() += 1;
    }
    let mut by_pid: BTreeMap<u32, u64> = BTreeMap::new();
    for ((pid, _), n) in &per {
        *by_pid.entry(*pid).or_default() += n;
    }
    let pid = *by_pid.iter().max_by_key(|(p, n)| (**n, **p)).unwrap().0;
    let mut stacks: Vec<(u64, i64)> = per
        .iter()
        .filter(|((p, _), _)| *p == pid)
        .map(|((_, s), n)| (*n, *s))
        .collect();
    stacks.sort_by(|a, b| b.cmp(a));
    let (a, b) = (stacks[0].1, stacks[1].1);
    let name = "app.exe!JsonWriter::Grow";
    let c = rusqlite::Connection::open(&db).unwrap();
    let n = c
        .execute(
            "UPDATE sites SET call_function = ?1, function_site_id = -site_id, caller_module = 'json.dll'
             WHERE site_id IN (SELECT site_id FROM capture_stacks
                               WHERE capture_id = 2 AND pid = ?2 AND stack_id IN (?3, ?4))",
            rusqlite::params![name, pid, a, b],
        )
        .unwrap();
    assert_eq!(n, 2);
    drop(c);
    let process = f.manifests[1]
        .processes
        .iter()
        .find(|p| p.pid == pid)
        .unwrap()
        .identity
        .clone();
    // (report, extra parameters, the column that adds up, rows of the process by pid or
    // by identity)
    let reports: [(&str, &[&str], &str, bool); 8] = [
        ("top-realloc-sites", &[], "reallocs", true),
        ("shrinks", &[], "bytes_returned", true),
        ("outstanding-at-end", &[], "bytes", true),
        ("leak-suspects", &[], "aifo_bytes", true),
        ("lifetimes", &[], "aifi_blocks", true),
        ("peak-usage", &["-p", "sites=100000"], "site_bytes", true),
        ("capture-diff", &[], "reallocs_b", false),
        ("trend", &[], "last_value", false),
    ];
    for (report, extra, col, by_pid) in reports {
        let rows = |group: &str| -> Vec<Value> {
            let mut args = vec![report];
            if report != "peak-usage" {
                args.extend(["-p", "limit=100000"]);
            }
            args.extend_from_slice(extra);
            let g = format!("group={group}");
            args.extend(["-p", g.as_str()]);
            query_on(&db, &args)
                .into_iter()
                .filter(|r| {
                    if by_pid {
                        i(&r["pid"]) as u32 == pid
                    } else {
                        r["process"].as_str() == Some(&process)
                    }
                })
                .collect()
        };
        let v = |r: &Value| r[col].as_f64().unwrap_or(0.0);
        let stack_rows: Vec<Value> = rows("stack")
            .into_iter()
            .filter(|r| r["site"].as_str() == Some(name))
            .collect();
        let sum: f64 = stack_rows.iter().map(v).sum();
        if report == "top-realloc-sites" || report == "capture-diff" || report == "trend" {
            assert_eq!(stack_rows.len(), 2, "{report}: two stacks, two rows");
            assert!(sum > 0.0);
        }
        let function_rows: Vec<Value> = rows("function")
            .into_iter()
            .filter(|r| r["site"].as_str() == Some(name))
            .collect();
        let module_rows: Vec<Value> = rows("module")
            .into_iter()
            .filter(|r| r["site"].as_str() == Some("json.dll"))
            .collect();
        if stack_rows.is_empty() {
            assert!(
                function_rows.is_empty() && module_rows.is_empty(),
                "{report}"
            );
            continue;
        }
        assert_eq!(function_rows.len(), 1, "{report}: one row for the function");
        assert_eq!(
            v(&function_rows[0]),
            sum,
            "{report}: group=function adds up"
        );
        if by_pid {
            assert_eq!(
                i(&function_rows[0]["stacks"]),
                stack_rows.len() as i64,
                "{report}"
            );
        }
        assert_eq!(module_rows.len(), 1, "{report}: one row for the module");
        assert_eq!(v(&module_rows[0]), sum, "{report}: group=module adds up");
        // Under group=stack the two rows are told apart by their stack's identity.
        if stack_rows.len() == 2 {
            assert_ne!(
                stack_rows[0]["site_key"], stack_rows[1]["site_key"],
                "{report}"
            );
        }
    }
}

#[test]
fn symbol_status_lists_the_pdbs_to_fetch() {
    let f = fixture();
    let rows = query(&["symbol-status"]);
    // Before symbolization every PDB is pending, and the PDBs of the call sites'
    // modules (the executables, heapdemo.dll) would name every call site.
    assert!(!rows.is_empty());
    assert!(rows.iter().all(|r| r["status"] == "pending"), "{rows:#?}");
    let mut want: BTreeMap<String, std::collections::BTreeSet<String>> = BTreeMap::new();
    for m in &f.manifests {
        for p in &m.processes {
            for s in p.sites.iter().filter(|s| s.allocs + s.reallocs > 0) {
                want.entry(s.call_site.split('+').next().unwrap().to_string())
                    .or_default()
                    .insert(s.frames.join(" "));
            }
        }
    }
    let mut got: BTreeMap<String, u64> = BTreeMap::new();
    for r in &rows {
        *got.entry(r["modules"].as_str().unwrap().to_string())
            .or_default() += i(&r["unnamed"]) as u64;
        assert_eq!(i(&r["named"]), 0);
        assert_eq!(i(&r["call_sites"]), i(&r["unnamed"]));
    }
    for (exe, sites) in &want {
        assert!(got[exe] >= sites.len() as u64, "{exe}");
    }
    for sys in ["ntdll.dll", "ucrtbase.dll"] {
        assert_eq!(
            got.get(sys).copied().unwrap_or(0),
            0,
            "{sys}: no call site there"
        );
    }
    // The busiest PDB to fetch comes first.
    let ev: Vec<i64> = rows.iter().map(|r| i(&r["unnamed_events"])).collect();
    assert!(ev.windows(2).all(|w| w[0] >= w[1]));
    assert!(ev[0] > 0);
}

/// Without stacks, every group keeps one row per (process, heap), named by the heap.
#[test]
fn without_stacks_sites_are_heaps_in_every_group() {
    let dir = tempfile::tempdir().unwrap();
    let caps = dir.path().join("caps");
    std::fs::create_dir_all(&caps).unwrap();
    let opts = Options {
        events_per_file: 10_000,
        stacks: StackMode::None,
        processes: 3,
        seed: 77,
        ..Options::default()
    };
    let mut truth = Vec::new();
    generate_file_with_truth(&caps.join("n.etl"), &opts, 0, Some(&mut truth), None).unwrap();
    let db = dir.path().join("n.db");
    let out = Command::new(common::heapdb_bin())
        .args(["ingest", "--quiet", "--db"])
        .arg(&db)
        .arg(&caps)
        .output()
        .unwrap();
    assert!(out.status.success());
    let mut want: BTreeMap<(u32, String), [u64; 2]> = BTreeMap::new();
    for t in &truth {
        if let HeapRecord::ReAlloc {
            heap,
            new_size,
            old_size,
            ..
        } = t.record
        {
            let e = want
                .entry((t.info.pid, format!("heap 0x{heap:x}")))
                .or_default();
            e[0] += 1;
            e[1] += new_size.saturating_sub(old_size);
        }
    }
    assert!(!want.is_empty());
    for group in GROUPS {
        let got: BTreeMap<(u32, String), [u64; 2]> = query_on(
            &db,
            &[
                "top-realloc-sites",
                "-p",
                "limit=100000",
                "-p",
                &format!("group={group}"),
            ],
        )
        .iter()
        .map(|g| {
            assert!(g["stack_id"].is_null() && i(&g["stacks"]) == 0);
            (
                (i(&g["pid"]) as u32, g["site"].as_str().unwrap().to_string()),
                [i(&g["reallocs"]) as u64, i(&g["bytes_grown"]) as u64],
            )
        })
        .collect();
        assert_eq!(got, want, "group={group}");
    }
}
