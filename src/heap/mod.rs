//! Heap events: typed records for every heap opcode, the stacks that belong to them and
//! the process/thread/image rundown that names them. Data flows events → heap records.

pub mod capture;
pub mod codec;
pub mod layout;
mod link;
pub mod record;
pub mod rundown;
pub mod stack;
pub mod stream;

pub use record::{decode, EventInfo, HeapError, HeapEvent, HeapRecord, Source};
