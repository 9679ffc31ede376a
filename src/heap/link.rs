//! The moving ReAlloc and the internal Alloc and Free that ntdll logs with it.

use super::capture::{Batch, HeapRow};
use super::record::HeapRecord;
use super::stream::Bank;

/// How far back (in heap events) a moving ReAlloc's internal Alloc/Free are looked for.
const LINK_WINDOW: usize = 8;

/// Links the newest row of `cur` when it is a moving ReAlloc with the Alloc of its
/// new block and the Free of its old one. ntdll logs both inside RtlReAllocateHeap, back
/// to back, just before the ReAlloc (heap notes §4.3): so both must be the thread's two
/// events right before it (in either order), on the same heap, the Alloc of exactly
/// the new size. Requiring the pair, not one of them, keeps a plain Free followed by a
/// realloc of a block another thread re-allocated at that address from being linked.
/// The thread's previous events are searched among the CPU's last [`LINK_WINDOW`] heap
/// rows, the held batch included (the pair can straddle a buffer boundary).
/// Returns true when the ReAlloc was linked.
pub(super) fn link_moving_realloc(mut held: Option<&mut Batch>, cur: &mut Batch) -> bool {
    let new = cur.rows.len() - 1;
    let me = &cur.rows[new];
    let info = me.event.info;
    let key = me.key;
    let HeapRecord::ReAlloc {
        heap,
        new_address,
        old_address,
        new_size,
        ..
    } = me.event.record
    else {
        return false;
    };
    if new_address == old_address {
        return false;
    }
    // The thread's two previous heap events, newest first: (bank, index).
    let mut prev: Vec<(Bank, usize)> = Vec::with_capacity(2);
    let same_thread = |r: &HeapRow| r.event.info.tid == info.tid && r.event.info.pid == info.pid;
    for i in (new.saturating_sub(LINK_WINDOW)..new).rev() {
        if prev.len() == 2 {
            break;
        }
        if same_thread(&cur.rows[i]) {
            prev.push((Bank::Current, i));
        }
    }
    let scanned = new.min(LINK_WINDOW);
    if prev.len() < 2 && scanned < LINK_WINDOW {
        if let Some(h) = held.as_deref() {
            let n = h.rows.len();
            for i in (n.saturating_sub(LINK_WINDOW - scanned)..n).rev() {
                if prev.len() == 2 {
                    break;
                }
                if same_thread(&h.rows[i]) {
                    prev.push((Bank::Held, i));
                }
            }
        }
    }
    if prev.len() < 2 {
        return false;
    }
    let row =
        |held: &Option<&mut Batch>, cur: &Batch, (bank, i): (Bank, usize)| -> (HeapRecord, bool) {
            let r = match bank {
                Bank::Current => &cur.rows[i],
                Bank::Held => &held.as_deref().expect("held batch").rows[i],
            };
            (r.event.record.clone(), r.realloc_link.is_none())
        };
    let is_alloc = |r: &HeapRecord| matches!(*r, HeapRecord::Alloc { heap: h, address, size, .. } if h == heap && address == new_address && size == new_size);
    let is_free = |r: &HeapRecord| matches!(*r, HeapRecord::Free { heap: h, address, .. } if h == heap && address == old_address);
    let (a, a_free) = row(&held, cur, prev[0]);
    let (b, b_free) = row(&held, cur, prev[1]);
    let pair = (is_alloc(&a) && is_free(&b)) || (is_free(&a) && is_alloc(&b));
    if !(pair && a_free && b_free) {
        return false;
    }
    for (bank, i) in prev {
        match bank {
            Bank::Current => cur.rows[i].realloc_link = Some(key),
            Bank::Held => held.as_deref_mut().expect("held batch").rows[i].realloc_link = Some(key),
        }
    }
    true
}
