//! Windows only: reading `.etl` files through Windows' own ETW consumer API
//! (`OpenTraceW`/`ProcessTrace`, via the ferrisetw crate).
//!
//! heapdb ingests with its own reader ([`crate::etl`]) on every platform; this module is
//! the seed of a native backend (real-time heap sessions, cross-checking the reader
//! against Windows). Today it only counts the events Windows delivers for a file, which
//! proves that ferrisetw builds and links for the Windows target. What a real backend
//! needs from ferrisetw, and what it cannot express, is in docs/windows.md.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use ferrisetw::native::EvntraceNativeError;
use ferrisetw::trace::{TraceError, TraceTrait};
use ferrisetw::FileTrace;

/// ERROR_ACCESS_DENIED: what Wine's `OpenTraceW` stub reports.
const ERROR_ACCESS_DENIED: i32 = 5;

/// Why ETW could not read a file.
#[derive(Debug, thiserror::Error)]
pub enum EtwError {
    #[error("{}: OpenTraceW failed: {source}", path.display())]
    Open {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: ProcessTrace failed: {message}", path.display())]
    Process { path: PathBuf, message: String },
}

impl EtwError {
    /// True when Windows (or Wine's stub) refused to open the trace.
    pub fn is_access_denied(&self) -> bool {
        matches!(self, EtwError::Open { source, .. } if source.raw_os_error() == Some(ERROR_ACCESS_DENIED))
    }
}

/// The number of events ETW's `ProcessTrace` delivers for the `.etl` file at `path`
/// (including the logfile header event that ETW synthesizes first).
pub fn count_events(path: &Path) -> Result<u64, EtwError> {
    let count = Arc::new(AtomicU64::new(0));
    let seen = Arc::clone(&count);
    let (trace, handle) = FileTrace::new(path.to_path_buf(), move |_record, _schema| {
        seen.fetch_add(1, Ordering::Relaxed);
    })
    .start()
    .map_err(|e| match e {
        TraceError::EtwNativeError(EvntraceNativeError::IoError(source)) => EtwError::Open {
            path: path.to_path_buf(),
            source,
        },
        other => EtwError::Open {
            path: path.to_path_buf(),
            source: std::io::Error::other(format!("{other:?}")),
        },
    })?;
    // Blocks until the whole file has been delivered to the callback.
    let processed = FileTrace::process_from_handle(handle).map_err(|e| EtwError::Process {
        path: path.to_path_buf(),
        message: format!("{e:?}"),
    });
    // Closing the trace (CloseTrace) also makes ferrisetw ignore any late callback.
    drop(trace);
    processed?;
    Ok(count.load(Ordering::Relaxed))
}
