//! Fuzzes heapdb's own PE reader (`symbols::pe`): headers, sections, the debug
//! directory and its CodeView (RSDS) record, and RVA → file offset arithmetic at the
//! edges of every section. Whatever the bytes, an error or a PeInfo; nothing panics
//! (no overflow either: the fuzz build checks arithmetic).
#![no_main]

use heapdb::symbols::read_pe_info;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(info) = read_pe_info(data) {
        let _ = info.pdb_id().map(|id| id.store_key());
        for s in &info.sections {
            for rva in [
                s.rva,
                s.rva.saturating_add(s.virtual_size / 2),
                s.rva.saturating_add(s.file_size),
                u32::MAX,
            ] {
                let _ = info.rva_to_offset(rva);
            }
        }
    }
});
