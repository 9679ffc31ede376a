//! StackWalk events (group 0x18): plain stacks (opcode 32) and the stack-caching form
//! (key references 37/38, key definitions 35/36), matched to the event they belong to by
//! (raw timestamp, thread id).

use crate::etl::bytes::{ptr_at, u32_at, u64_at};
use crate::etl::kernel::GROUP_STACK_WALK;
use crate::etl::Event;

pub const OP_STACK: u8 = 32;
pub const OP_KEY_CREATE: u8 = 34;
pub const OP_KEY_DELETE: u8 = 35;
pub const OP_KEY_RUNDOWN: u8 = 36;
pub const OP_KEY_KERNEL: u8 = 37;
pub const OP_KEY_USER: u8 = 38;

/// Return addresses of a stack, innermost first, viewed in place in the record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frames<'a> {
    bytes: &'a [u8],
    ptr: u8,
}

impl<'a> Frames<'a> {
    pub fn new(bytes: &'a [u8], ptr: u8) -> Frames<'a> {
        let whole = bytes.len() / ptr as usize * ptr as usize;
        Frames {
            bytes: &bytes[..whole],
            ptr,
        }
    }
    pub fn len(&self) -> usize {
        self.bytes.len() / self.ptr as usize
    }
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }
    pub fn iter(&self) -> impl Iterator<Item = u64> + 'a {
        let ptr = self.ptr;
        self.bytes
            .chunks_exact(ptr as usize)
            .map(move |c| ptr_at(c, 0, ptr).unwrap_or(0))
    }
    pub fn to_vec(&self) -> Vec<u64> {
        self.iter().collect()
    }
    /// The stack's id, as [`stack_id`] computes it for the same addresses.
    pub fn id(&self) -> i64 {
        stack_id_iter(self.len(), self.iter())
    }
}

/// A decoded StackWalk-group event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StackEvent<'a> {
    /// A stack for the event with `event_ts` on `tid`.
    Stack {
        event_ts: u64,
        pid: u32,
        tid: u32,
        frames: Frames<'a>,
    },
    /// The event with `event_ts` on `tid` has the cached stack `key` (kernel or user part).
    KeyRef {
        event_ts: u64,
        pid: u32,
        tid: u32,
        key: u64,
        kernel: bool,
    },
    /// Definition of a cached stack (KeyDelete when evicted, KeyRundown at the end).
    KeyDef { key: u64, ts: u64, frames: Vec<u64> },
}

/// Why a StackWalk record could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("StackWalk opcode {opcode} record is {have} bytes, too short for its {need}-byte header")]
pub struct StackError {
    pub opcode: u8,
    pub have: usize,
    pub need: usize,
}

/// Decodes a StackWalk event; `None` for other events and StackWalk opcodes heapdb does
/// not use.
pub fn decode<'a>(e: &Event<'a>) -> Option<Result<StackEvent<'a>, StackError>> {
    let hook = e.hook?;
    if (hook >> 8) as u8 != GROUP_STACK_WALK {
        return None;
    }
    let opcode = hook as u8;
    let p = e.payload;
    let ptr = if e.pointer_size == 4 { 4 } else { 8 };
    let frames_from = |start: usize| Frames::new(p.get(start..).unwrap_or(&[]), ptr);
    let short = |need: usize| StackError {
        opcode,
        have: p.len(),
        need,
    };
    Some(match opcode {
        OP_STACK => match (u64_at(p, 0), u32_at(p, 8), u32_at(p, 12)) {
            (Some(event_ts), Some(pid), Some(tid)) => Ok(StackEvent::Stack {
                event_ts,
                pid,
                tid,
                frames: frames_from(16),
            }),
            _ => Err(short(16)),
        },
        OP_KEY_KERNEL | OP_KEY_USER => {
            match (
                u64_at(p, 0),
                u32_at(p, 8),
                u32_at(p, 12),
                ptr_at(p, 16, ptr),
            ) {
                (Some(event_ts), Some(pid), Some(tid), Some(key)) => Ok(StackEvent::KeyRef {
                    event_ts,
                    pid,
                    tid,
                    key,
                    kernel: opcode == OP_KEY_KERNEL,
                }),
                _ => Err(short(16 + ptr as usize)),
            }
        }
        OP_KEY_DELETE | OP_KEY_RUNDOWN => match ptr_at(p, 0, ptr) {
            Some(key) => Ok(StackEvent::KeyDef {
                key,
                ts: e.timestamp.unwrap_or(0),
                frames: frames_from(ptr as usize).to_vec(),
            }),
            None => Err(short(ptr as usize)),
        },
        _ => return None,
    })
}

/// The stack an EVENT_HEADER record carries in an extended data item
/// (EVENT_HEADER_EXT_TYPE_STACK_TRACE32/64: a u64 MatchId, then the return addresses,
/// innermost first).
pub fn extended_stack<'a>(e: &Event<'a>) -> Option<Frames<'a>> {
    use crate::etl::headers::event_header as h;
    if e.extended.is_empty() {
        return None;
    }
    e.extended_items().find_map(|(ty, data)| {
        let ptr = match ty {
            h::EXT_STACK_TRACE64 => 8,
            h::EXT_STACK_TRACE32 => 4,
            _ => return None,
        };
        Some(Frames::new(data.get(8..)?, ptr))
    })
}

/// A stable 63-bit id for a list of frames: the database's `stack_id`. Deterministic,
/// so the same stack gets the same id in every capture and every database (which makes
/// cross-capture reports simple), and independent of the record's pointer width.
pub fn stack_id(frames: &[u64]) -> i64 {
    stack_id_iter(frames.len(), frames.iter().copied())
}

#[inline]
fn mix64(mut z: u64) -> u64 {
    // splitmix64's finalizer: a full 64-bit avalanche.
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn stack_id_iter(len: usize, frames: impl Iterator<Item = u64>) -> i64 {
    let mut h = mix64(len as u64 ^ 0x6865_6170_6462_0001);
    for f in frames {
        // Order-dependent chaining; one multiply per frame, full avalanche at the end.
        h = (h.rotate_left(23) ^ f).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        h ^= h >> 32;
    }
    // 63 bits, so the id is a positive SQLite integer.
    (mix64(h) >> 1) as i64
}

/// Resolves stack-key references against key definitions. A cached key can be reused
/// after its entry is evicted, so a reference at time t takes the first definition of
/// its key at or after t (the eviction or the final rundown that flushed it).
#[derive(Default)]
pub struct KeyTable {
    defs: std::collections::HashMap<u64, Vec<(u64, i64)>>,
}

impl KeyTable {
    pub fn add(&mut self, key: u64, ts: u64, stack_id: i64) {
        self.defs.entry(key).or_default().push((ts, stack_id));
    }

    /// Sorts definitions by time; call once after the last `add`.
    pub fn finish(&mut self) {
        for v in self.defs.values_mut() {
            v.sort_unstable();
        }
    }

    pub fn len(&self) -> usize {
        self.defs.values().map(Vec::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.defs.is_empty()
    }

    pub fn resolve(&self, key: u64, ref_ts: u64) -> Option<i64> {
        let v = self.defs.get(&key)?;
        let i = v.partition_point(|&(ts, _)| ts < ref_ts);
        v.get(i).or_else(|| v.last()).map(|&(_, id)| id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stack_ids_are_stable_and_positive() {
        let bytes: Vec<u8> = [0x10u64, 0x20]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        assert_eq!(Frames::new(&bytes, 8).id(), stack_id(&[0x10, 0x20]));
        let bytes32: Vec<u8> = [0x10u32, 0x20]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        assert_eq!(
            Frames::new(&bytes32, 4).id(),
            stack_id(&[0x10, 0x20]),
            "width-independent"
        );
        let a = stack_id(&[0x7ff6_1234_0000, 0x7ff6_1234_0010]);
        assert_eq!(a, stack_id(&[0x7ff6_1234_0000, 0x7ff6_1234_0010]));
        assert_ne!(a, stack_id(&[0x7ff6_1234_0010, 0x7ff6_1234_0000]));
        assert_ne!(stack_id(&[]), stack_id(&[0]));
        assert!(a > 0);
    }

    #[test]
    fn key_references_take_the_next_definition() {
        let mut t = KeyTable::default();
        t.add(0xA, 100, 1);
        t.add(0xA, 300, 2);
        t.finish();
        assert_eq!(t.resolve(0xA, 50), Some(1));
        assert_eq!(t.resolve(0xA, 100), Some(1));
        assert_eq!(t.resolve(0xA, 200), Some(2));
        // Past the last definition (no rundown): the last one known.
        assert_eq!(t.resolve(0xA, 400), Some(2));
        assert_eq!(t.resolve(0xB, 1), None);
    }
}
