//! Stopping long jobs on request (Ctrl-C, SIGTERM, a timeout) without the library
//! knowing where the request came from.
//!
//! A [`Cancel`] counts requests. Jobs poll [`Cancel::requested`] at safe points; SQLite
//! statements that may run long register their interrupt handle with the level of
//! request that should cut them short: a query stops at the first request, while an
//! ingest finishes what keeps the database whole (roll back, restore its indexes) and
//! lets only a second request interrupt that.

use rusqlite::InterruptHandle;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

#[derive(Default)]
struct Inner {
    requests: AtomicU32,
    /// Interrupt handles of running statements, with the request count that fires them.
    handles: Mutex<Vec<(u64, u32, InterruptHandle)>>,
    next_id: std::sync::atomic::AtomicU64,
}

/// A shared cancellation token (cheap to clone).
#[derive(Clone, Default)]
pub struct Cancel(Arc<Inner>);

/// Unregisters an interrupt handle when dropped.
pub struct Registration {
    cancel: Cancel,
    id: u64,
}

impl Drop for Registration {
    fn drop(&mut self) {
        if let Ok(mut h) = self.cancel.0.handles.lock() {
            h.retain(|(id, _, _)| *id != self.id);
        }
    }
}

impl Cancel {
    pub fn new() -> Cancel {
        Cancel::default()
    }

    /// Records one more request and interrupts the statements registered for it.
    /// Safe to call from a signal-handling thread.
    pub fn request(&self) {
        let n = self.0.requests.fetch_add(1, Ordering::SeqCst) + 1;
        if let Ok(h) = self.0.handles.lock() {
            for (_, at, handle) in h.iter() {
                if n >= *at {
                    handle.interrupt();
                }
            }
        }
    }

    /// How many requests were made (0: none).
    pub fn requests(&self) -> u32 {
        self.0.requests.load(Ordering::SeqCst)
    }

    pub fn requested(&self) -> bool {
        self.requests() > 0
    }

    /// Interrupts `handle`'s running statements once `at` requests have been made.
    /// SQLite ignores an interrupt while nothing runs, so callers also check
    /// [`Cancel::requests`] before they start a statement.
    pub fn register(&self, handle: InterruptHandle, at: u32) -> Registration {
        let id = self.0.next_id.fetch_add(1, Ordering::SeqCst);
        if let Ok(mut h) = self.0.handles.lock() {
            h.push((id, at, handle));
        }
        Registration {
            cancel: self.clone(),
            id,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_request_interrupts_what_waits_for_it() {
        let c = Cancel::new();
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        let _r = c.register(conn.get_interrupt_handle(), 2);
        let slow = "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 200000) SELECT count(*) FROM n";
        c.request();
        assert!(c.requested());
        // One request: the statement registered for two runs to the end.
        assert_eq!(
            conn.query_row(slow, [], |r| r.get::<_, i64>(0)).unwrap(),
            200000
        );
        let c2 = c.clone();
        let t = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(50));
            c2.request();
        });
        let endless = "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n) SELECT count(*) FROM n";
        let e = conn.query_row(endless, [], |r| r.get::<_, i64>(0));
        t.join().unwrap();
        assert!(e.is_err(), "interrupted by the second request");
    }
}
