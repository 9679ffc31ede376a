//! Block lifetimes: the tracker on hand-built event sequences (every start and end kind,
//! the bad inputs the issue lists, time order across CPUs), and `heapdb repair`
//! recomputing a stored capture's lifetimes exactly as its ingest wrote them. The
//! reports on lifetimes are checked against the synthesizer's truth in tests/reports.rs.

mod common;

use common::{run, s, stderr};
use heapdb::ingest::lifetimes::{BlockRow, EndKind, StartKind, Summary, Tracker};
use heapdb::ingest::rows::HeapEventRow;

const ALLOC: u8 = 33;
const REALLOC: u8 = 34;
const DESTROY: u8 = 35;
const FREE: u8 = 36;
const HEAP: u64 = 0x1000;

/// One event: (time, cpu, pid, opcode, address, old address, size, old size).
#[derive(Clone, Copy)]
struct E {
    t: i64,
    cpu: u16,
    pid: u32,
    op: u8,
    a: u64,
    old: u64,
    size: u64,
    old_size: u64,
    internal: bool,
}

fn ev(t: i64, op: u8, a: u64) -> E {
    E {
        t,
        cpu: 0,
        pid: 7,
        op,
        a,
        old: 0,
        size: 0,
        old_size: 0,
        internal: false,
    }
}
fn alloc(t: i64, a: u64, size: u64) -> E {
    E {
        size,
        ..ev(t, ALLOC, a)
    }
}
fn free(t: i64, a: u64) -> E {
    ev(t, FREE, a)
}
fn realloc(t: i64, new: u64, old: u64, size: u64, old_size: u64) -> E {
    E {
        old,
        size,
        old_size,
        ..ev(t, REALLOC, new)
    }
}
fn destroy(t: i64) -> E {
    ev(t, DESTROY, 0)
}

fn row(e: &E) -> HeapEventRow {
    HeapEventRow {
        key: (0, 0),
        time_ns: e.t,
        ts_raw: e.t as u64,
        pid: e.pid,
        tid: 1,
        cpu: e.cpu,
        opcode: e.op,
        pointer_size: 8,
        heap: HEAP,
        address: (e.op != DESTROY).then_some(e.a),
        old_address: (e.op == REALLOC).then_some(e.old),
        size: matches!(e.op, ALLOC | REALLOC).then_some(e.size),
        old_size: (e.op == REALLOC).then_some(e.old_size),
        source: Some(2),
        stack_id: Some(100 + e.t),
        realloc_link: e.internal.then_some((9, 9)),
        extra: None,
        file_offset: 0,
    }
}

/// Runs events (ids in the given order) through a tracker; `exits`: (pid, end time).
fn track(events: &[E], window: usize, exits: &[(u32, i64)]) -> (Vec<BlockRow>, Summary) {
    track_on(2, events, window, exits)
}

/// [`track`] on a machine of `cpus` processors (the capture header's count).
fn track_on(
    cpus: u32,
    events: &[E],
    window: usize,
    exits: &[(u32, i64)],
) -> (Vec<BlockRow>, Summary) {
    let mut t = Tracker::with_window(1, 1, cpus, window);
    let mut out = Vec::new();
    for (i, e) in events.iter().enumerate() {
        t.row(&row(e), i as i64 + 1);
        out.extend(t.take());
    }
    let (last, sum) = t.finish(|pid| exits.iter().find(|x| x.0 == pid).map(|x| x.1));
    out.extend(last);
    out.sort_by_key(|b| b.block_id);
    (out, sum)
}

/// (address, start kind, start, end kind, end, size, chain index).
type Shape = (
    u64,
    StartKind,
    Option<i64>,
    EndKind,
    Option<i64>,
    Option<u64>,
    u32,
);

fn shape(b: &[BlockRow]) -> Vec<Shape> {
    let mut v: Vec<_> = b
        .iter()
        .map(|b| {
            (
                b.address,
                b.start_kind,
                b.start_ns,
                b.end_kind,
                b.end_ns,
                b.size,
                b.chain_index,
            )
        })
        .collect();
    v.sort();
    v
}

#[test]
fn alloc_free_and_a_chain() {
    let (b, sum) = track(
        &[
            alloc(10, 0xa0, 16),
            realloc(20, 0xa0, 0xa0, 24, 16), // in place
            realloc(30, 0xb0, 0xa0, 64, 24), // moved
            free(40, 0xb0),
            alloc(50, 0xc0, 8), // live at the end
        ],
        1000,
        &[],
    );
    use EndKind::*;
    use StartKind::*;
    assert_eq!(
        shape(&b),
        vec![
            (0xa0, Alloc, Some(10), ReallocInPlace, Some(20), Some(16), 0),
            (0xa0, Realloc, Some(20), ReallocMoved, Some(30), Some(24), 1),
            (0xb0, Realloc, Some(30), Free, Some(40), Some(64), 2),
            (0xc0, Alloc, Some(50), LiveAtEnd, None, Some(8), 0),
        ]
    );
    // One chain: the first block's id, each block linked to the one before.
    let chain: Vec<&BlockRow> = b.iter().filter(|x| x.size != Some(8)).collect();
    let first = chain.iter().find(|x| x.chain_index == 0).unwrap();
    for x in &chain {
        assert_eq!(x.chain_id, first.block_id);
    }
    let second = chain.iter().find(|x| x.chain_index == 1).unwrap();
    let third = chain.iter().find(|x| x.chain_index == 2).unwrap();
    assert_eq!(second.prev_block_id, Some(first.block_id));
    assert_eq!(third.prev_block_id, Some(second.block_id));
    assert_eq!(first.prev_block_id, None);
    // Events of the blocks: the Alloc is event 1, the in-place ReAlloc event 2.
    assert_eq!(first.start_event_id, Some(1));
    assert_eq!(first.end_event_id, Some(2));
    assert_eq!(second.start_event_id, Some(2));
    // Outstanding: 16, 24, 64, 0, 8 → peak 64 at t=30 (event 3); 8 left.
    let u = sum.usage[&7];
    assert_eq!(
        (u.peak_bytes, u.peak_blocks, u.peak_ns, u.peak_event_id),
        (64, 1, Some(30), Some(3))
    );
    assert_eq!((u.end_bytes, u.end_blocks), (8, 1));
    assert_eq!(sum.stats.out_of_order, 0);
}

#[test]
fn a_moving_realloc_logged_with_its_alloc_and_free_is_one_transition() {
    let mut internal_alloc = alloc(20, 0xb0, 64);
    internal_alloc.internal = true;
    let mut internal_free = free(21, 0xa0);
    internal_free.internal = true;
    let (b, _) = track(
        &[
            alloc(10, 0xa0, 16),
            internal_alloc,
            internal_free,
            realloc(22, 0xb0, 0xa0, 64, 16),
        ],
        1000,
        &[],
    );
    use EndKind::*;
    use StartKind::*;
    assert_eq!(
        shape(&b),
        vec![
            (0xa0, Alloc, Some(10), ReallocMoved, Some(22), Some(16), 0),
            (0xb0, Realloc, Some(22), LiveAtEnd, None, Some(64), 1),
        ]
    );
}

#[test]
fn bad_input_becomes_documented_kinds() {
    use EndKind::*;
    use StartKind::*;
    let (b, sum) = track(
        &[
            free(10, 0xa0),                  // a Free with no Alloc: from before the trace
            realloc(20, 0xb0, 0xe0, 32, 12), // a ReAlloc of an unknown block
            free(30, 0xa0),                  // a double free (the address was freed)
            alloc(40, 0xc0, 8),
            alloc(50, 0xc0, 9), // the first one's Free was lost
            alloc(60, 0xd0, 5),
            destroy(70), // heap destroyed with 0xb0, 0xc0, 0xd0 live
            alloc(80, 0, 5),
            free(90, 0), // null addresses: nothing
        ],
        1000,
        &[],
    );
    assert_eq!(
        shape(&b),
        vec![
            (0xa0, BeforeTrace, None, Free, Some(10), None, 0),
            (0xa0, LostAlloc, None, Free, Some(30), None, 0),
            (
                0xb0,
                Realloc,
                Some(20),
                HeapDestroyed,
                Some(70),
                Some(32),
                1
            ),
            (0xc0, Alloc, Some(40), LostFree, Some(50), Some(8), 0),
            (0xc0, Alloc, Some(50), HeapDestroyed, Some(70), Some(9), 0),
            (0xd0, Alloc, Some(60), HeapDestroyed, Some(70), Some(5), 0),
            (0xe0, BeforeTrace, None, ReallocMoved, Some(20), Some(12), 0),
        ]
    );
    assert_eq!(sum.stats.null_address, 2);
    // Nothing outstanding after the Destroy; the blocks from before the trace never
    // counted (32 + 8 + 5 = 45 before the lost Free; then 32 + 9 + 5 = 46).
    let u = sum.usage[&7];
    assert_eq!((u.peak_bytes, u.end_bytes), (46, 0));
    // The counts table adds up to the rows.
    let n: u64 = sum.counts.values().map(|c| c.blocks).sum();
    assert_eq!(n as usize, b.len());
    assert_eq!(
        sum.counts
            .iter()
            .filter(|(k, _)| {
                (k.0, k.1, k.3, k.4) == (7, HEAP, StartKind::Alloc, EndKind::HeapDestroyed)
            })
            .map(|(_, c)| c.bytes)
            .sum::<u64>(),
        9 + 5
    );
}

#[test]
fn process_exit_ends_its_blocks_but_not_those_of_a_later_process_with_its_pid() {
    use EndKind::*;
    use StartKind::*;
    let (b, sum) = track(&[alloc(10, 0xa0, 16), alloc(90, 0xb0, 4)], 1000, &[(7, 50)]);
    assert_eq!(
        shape(&b),
        vec![
            (0xa0, Alloc, Some(10), ProcessExited, Some(50), Some(16), 0),
            (0xb0, Alloc, Some(90), LiveAtEnd, None, Some(4), 0),
        ]
    );
    assert_eq!(sum.usage[&7].end_bytes, 0);
}

/// Two CPUs whose buffers reach the loader one after the other: CPU 1's events are
/// earlier than CPU 0's second half. Sorted by time, the block is allocated on CPU 1,
/// freed on CPU 0, and its address reused on CPU 1.
fn two_cpus() -> Vec<E> {
    let on = |cpu: u16, e: E| E { cpu, ..e };
    vec![
        on(0, alloc(10, 0x10, 1)),
        on(0, free(40, 0xa0)),
        on(0, alloc(60, 0x20, 1)),
        on(1, alloc(30, 0xa0, 8)),
        on(1, alloc(50, 0xa0, 9)),
    ]
}

#[test]
fn events_are_followed_in_time_order_across_cpus() {
    use EndKind::*;
    use StartKind::*;
    let (b, sum) = track(&two_cpus(), 1000, &[]);
    assert_eq!(
        shape(&b),
        vec![
            (0x10, Alloc, Some(10), LiveAtEnd, None, Some(1), 0),
            (0x20, Alloc, Some(60), LiveAtEnd, None, Some(1), 0),
            (0xa0, Alloc, Some(30), Free, Some(40), Some(8), 0),
            (0xa0, Alloc, Some(50), LiveAtEnd, None, Some(9), 0),
        ]
    );
    assert_eq!(sum.stats.out_of_order, 0);
}

#[test]
fn events_older_than_the_reorder_window_are_counted_not_lost() {
    use EndKind::*;
    use StartKind::*;
    // A window of one event: CPU 0's first two are released before CPU 1's older ones
    // arrive, so the order followed is 10, 40, 30, 50, 60: one event late (30).
    let (b, sum) = track(&two_cpus(), 1, &[]);
    assert_eq!(sum.stats.out_of_order, 1);
    assert_eq!(sum.stats.events, 5);
    // No event is dropped: the Free, met before its Alloc, is a block from before the
    // trace; the late Alloc starts a block that the next Alloc there ends as a lost Free.
    assert_eq!(
        shape(&b),
        vec![
            (0x10, Alloc, Some(10), LiveAtEnd, None, Some(1), 0),
            (0x20, Alloc, Some(60), LiveAtEnd, None, Some(1), 0),
            (0xa0, Alloc, Some(30), LostFree, Some(50), Some(8), 0),
            (0xa0, Alloc, Some(50), LiveAtEnd, None, Some(9), 0),
            (0xa0, BeforeTrace, None, Free, Some(40), None, 0),
        ]
    );
    // The same when the header claims one CPU and CPU 1 shows up late: its first
    // events cannot be waited for: CPU 0's three go first, CPU 1's two (30, 50) are late.
    let (_, sum) = track_on(1, &two_cpus(), 1000, &[]);
    assert_eq!(sum.stats.out_of_order, 2);
}

/// `heapdb repair` on a copy whose lifetimes were removed (as in a database of an older
/// schema) writes exactly what the ingest wrote.
#[test]
fn repair_computes_the_lifetimes_an_ingest_writes() {
    let dir = tempfile::tempdir().unwrap();
    let caps = dir.path().join("caps");
    common::synth(
        &caps,
        &[
            "--events-per-file",
            "40000",
            "--files",
            "2",
            "--stacks",
            "--seed",
            "5",
        ],
    );
    let db = dir.path().join("heap.db");
    let o = run(&["ingest", "--quiet", "--db", s(&db), s(&caps)]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let before = common::canonical(&db);
    assert!(common::q(&db, "SELECT count(*) FROM blocks") > 20_000);
    let copy = dir.path().join("copy.db");
    std::fs::copy(&db, &copy).unwrap();
    {
        let c = rusqlite::Connection::open(&copy).unwrap();
        c.execute_batch(
            "DELETE FROM blocks; DELETE FROM block_counts; DELETE FROM process_usage;
             DELETE FROM heap_event_counts;
             UPDATE captures SET first_block_id = NULL, last_block_id = NULL, events_out_of_order = NULL;",
        )
        .unwrap();
    }
    // Until repaired, data-quality says so.
    let o = run(&["query", "--db", s(&copy), "data-quality", "--format", "csv"]);
    assert!(common::stdout(&o).contains("no block lifetimes yet"));
    let o = run(&["repair", "--db", s(&copy)]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("block lifetimes") && stderr(&o).contains("of 2 capture(s)"),
        "{}",
        stderr(&o)
    );
    assert_eq!(common::canonical(&copy), before);
}

/// A corrupt timestamp far in the future on one CPU must not hold that CPU's later
/// events back behind it: they are still followed in time order (before, the Free at 20
/// waited behind the wild event and was followed after the Alloc at 30 on CPU 1, which
/// then "lost its Free" and ended before it started).
#[test]
fn a_wild_timestamp_does_not_hold_its_cpu_back() {
    use EndKind::*;
    use StartKind::*;
    let on = |cpu: u16, e: E| E { cpu, ..e };
    let events = [
        on(0, alloc(10, 0xa0, 8)),
        on(0, free(1_000_000_000_000, 0xf0)), // the corrupt one
        on(0, free(20, 0xa0)),
        on(0, alloc(40, 0xb0, 1)),
        on(1, alloc(30, 0xa0, 9)),
        on(1, alloc(50, 0xc0, 1)),
    ];
    let (b, sum) = track(&events, 1000, &[]);
    assert_eq!(
        shape(&b),
        vec![
            (0xa0, Alloc, Some(10), Free, Some(20), Some(8), 0),
            (0xa0, Alloc, Some(30), LiveAtEnd, None, Some(9), 0),
            (0xb0, Alloc, Some(40), LiveAtEnd, None, Some(1), 0),
            (0xc0, Alloc, Some(50), LiveAtEnd, None, Some(1), 0),
            (
                0xf0,
                BeforeTrace,
                None,
                Free,
                Some(1_000_000_000_000),
                None,
                0
            ),
        ]
    );
    assert_eq!(sum.stats.out_of_order, 0);
}
