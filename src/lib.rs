//! heapdb: Windows ETW heap traces (`.etl`) → SQLite.
//!
//! Data flows one way: file → buffers → events ([`etl`]) → heap records → rows.

pub mod cli;
pub mod db;
pub mod etl;
#[cfg(windows)]
pub mod etw;
pub mod heap;
pub mod ingest;
pub mod query;
pub mod synth;
