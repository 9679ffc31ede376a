//! Fuzzes what the command line hands to SQL: `--param NAME=VALUE` parsing, binding to
//! every canned report (unknown names, missing required values, defaults), splitting SQL
//! text into statements and pointing at an error offset. Nothing may panic.
#![no_main]

use heapdb::query::{parse_param, read_sql, reports, split_statements};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        let _ = read_sql(data);
        return;
    };
    let given: Vec<_> = text
        .lines()
        .take(8)
        .filter_map(|l| parse_param(l).ok())
        .collect();
    for r in reports::all() {
        if let Ok(bound) = r.bind(&given) {
            assert!(bound.len() >= r.params.len());
        }
    }
    let parts = split_statements(text);
    for (offset, stmt) in &parts {
        assert!(text[*offset..].starts_with(stmt));
    }
    let _ = read_sql(data);
});
