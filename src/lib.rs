//! heapdb: Windows ETW heap traces (`.etl`) → SQLite.
//!
//! Data flows one way: file → buffers → events ([`etl`]) → heap records ([`heap`]) →
//! rows ([`ingest`]) → a sink (the SQLite database of [`db`]) → reports ([`query`]),
//! printed by [`output`]. The library never prints: long jobs report through an
//! observer ([`ingest::Observer`]) and stop through a [`cancel::Cancel`] token.

pub mod cancel;
pub mod db;
pub mod decode;
pub mod etl;
#[cfg(windows)]
pub mod etw;
pub mod heap;
pub mod ingest;
pub mod lake;
pub mod output;
pub mod query;
pub mod report;
pub mod symbols;
pub mod synth;
