//! Fuzzes the heap payload decoder directly: any (group, opcode, version, pointer size,
//! payload) must decode or give an error, never panic; a decoded record encodes back
//! to bytes that decode to the same record (the layout table is one definition).
#![no_main]

use heapdb::etl::HeaderKind;
use heapdb::heap::record::{decode_payload, encode_payload};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let [g, opcode, v, p, payload @ ..] = data else {
        return;
    };
    // Mostly the real groups and opcodes, sometimes anything.
    let group = match g % 4 {
        0 | 1 => 0x10,
        2 => 0x02,
        _ => *g,
    };
    let ptr = match p % 3 {
        0 => 4,
        1 => 8,
        _ => *p,
    };
    let version = (*v % 5) as u16;
    let kind = if ptr == 4 {
        HeaderKind::System32
    } else {
        HeaderKind::System64
    };
    if let Ok(r) = decode_payload(group, *opcode, version, ptr, kind, payload) {
        let mut again = Vec::new();
        encode_payload(&mut again, &r, ptr);
        let back = decode_payload(group, *opcode, r.version(), ptr, kind, &again)
            .expect("an encoded record decodes");
        assert_eq!(back, r);
    }
});
