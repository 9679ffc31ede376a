//! Windows only: reading `.etl` files through Windows' own ETW consumer API
//! (`OpenTraceW`/`ProcessTrace`, via the ferrisetw crate): `--decoder etw`.
//!
//! [`EtwSource`] is the ETW side of the decoder seam ([`crate::decode`]): ferrisetw calls
//! back once per `EVENT_RECORD` on a thread of its own; each record is turned into
//! heapdb's event by the pure functions of [`crate::decode::record`] and handed to the
//! consumer through a bounded channel. What ferrisetw can and cannot express, and what
//! has (not) been run on real Windows, is in docs/windows.md.

pub mod live;

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::sync_channel;
use std::sync::Arc;

use ferrisetw::native::EvntraceNativeError;
use ferrisetw::trace::{TraceError, TraceTrait};
use ferrisetw::{EventRecord, FileTrace};

use crate::decode::record::{fields_of, map_record, OwnedEvent, RawEventRecord, Timestamps};
use crate::decode::{Decoder, EventSource, HeapdbSource, SourceError};
use crate::etl::{Clock, Error, Event, LogfileHeader};
use crate::ingest::discover::Input;

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

fn open_error(path: &Path, e: TraceError) -> EtwError {
    match e {
        TraceError::EtwNativeError(EvntraceNativeError::IoError(source)) => EtwError::Open {
            path: path.to_path_buf(),
            source,
        },
        other => EtwError::Open {
            path: path.to_path_buf(),
            source: std::io::Error::other(format!("{other:?}")),
        },
    }
}

/// True when this process runs under Wine (whose ntdll exports `wine_get_version`;
/// Windows' does not): Wine's `OpenTraceW` is a stub that fails with access denied.
pub fn running_under_wine() -> bool {
    use std::ffi::{c_char, c_void};
    #[link(name = "kernel32")]
    extern "system" {
        fn GetModuleHandleA(name: *const c_char) -> *mut c_void;
        fn GetProcAddress(module: *mut c_void, name: *const c_char) -> *mut c_void;
    }
    // SAFETY: both names are NUL-terminated literals; ntdll is loaded in every process
    // and the module handle is not freed.
    unsafe {
        let ntdll = GetModuleHandleA(c"ntdll.dll".as_ptr());
        !ntdll.is_null() && !GetProcAddress(ntdll, c"wine_get_version".as_ptr()).is_null()
    }
}

/// Windows' own decoder as an [`EventSource`]: a file read by `OpenTraceW` and
/// `ProcessTrace` (ferrisetw's `FileTrace`).
///
/// The logfile header and clock come from heapdb's reader (the first buffer only):
/// ferrisetw does not hand out the header `OpenTraceW` fills in. Timestamps arrive as
/// FILETIMEs (ferrisetw never sets `PROCESS_TRACE_MODE_RAW_TIMESTAMP`) and are turned
/// back into raw values with that clock ([`crate::decode::record`]).
pub struct EtwSource {
    path: PathBuf,
    header: LogfileHeader,
    clock: Clock,
}

impl EtwSource {
    /// A capture file (not an archive entry: ETW reads files by name).
    pub fn open(input: &Input) -> Result<EtwSource, SourceError> {
        let Input::File(path) = input else {
            return Err(SourceError::Open(
                "Windows' ETW decoder reads files by name, not captures inside archives: use --decoder heapdb".into(),
            ));
        };
        let reader = HeapdbSource::open(input)?;
        Ok(EtwSource {
            path: path.clone(),
            header: reader.header().clone(),
            clock: *reader.clock(),
        })
    }
}

enum Msg {
    Event(OwnedEvent),
    Done(Result<(), EtwError>),
}

impl EventSource for EtwSource {
    fn decoder(&self) -> Decoder {
        Decoder::Etw
    }

    fn header(&self) -> &LogfileHeader {
        &self.header
    }

    fn clock(&self) -> &Clock {
        &self.clock
    }

    fn has_offsets(&self) -> bool {
        false
    }

    fn for_each(
        &mut self,
        f: &mut dyn FnMut(Result<&Event<'_>, &Error>) -> ControlFlow<()>,
    ) -> Result<(), SourceError> {
        let (tx, rx) = sync_channel::<Msg>(4096);
        let ts = Timestamps::FileTime(self.clock);
        let events = tx.clone();
        // Never panics (ferrisetw exits the process when a callback panics). A send
        // fails once the consumer stopped listening: the rest is ignored.
        let callback = move |record: &EventRecord, _: &ferrisetw::SchemaLocator| {
            let raw: *const EventRecord = record;
            // SAFETY: ferrisetw's EventRecord is #[repr(transparent)] over the windows
            // crate's EVENT_RECORD, which RawEventRecord mirrors field for field
            // (#[repr(C)], size checked in decode::record); ETW keeps the record and the
            // memory its pointers name alive during the callback.
            let fields = unsafe { fields_of(&*(raw as *const RawEventRecord)) };
            let _ = events.send(Msg::Event(map_record(&fields, &ts)));
        };
        let path = self.path.clone();
        let worker = std::thread::Builder::new()
            .name("heapdb-etw".into())
            .spawn(move || {
                let result = FileTrace::new(path.clone(), callback)
                    .start()
                    .map_err(|e| open_error(&path, e))
                    .and_then(|(trace, handle)| {
                        // Blocks until the whole file has been delivered.
                        let processed =
                            FileTrace::process_from_handle(handle).map_err(|e| EtwError::Process {
                                path: path.clone(),
                                message: format!("{e:?}"),
                            });
                        // CloseTrace; ferrisetw then ignores any late callback.
                        drop(trace);
                        processed
                    });
                let _ = tx.send(Msg::Done(result));
            })
            .map_err(|e| SourceError::Failed(format!("cannot start the ETW thread: {e}")))?;
        let mut outcome = Err(SourceError::Failed(
            "the ETW thread ended without a result".into(),
        ));
        for msg in rx.iter() {
            match msg {
                Msg::Event(e) => {
                    if f(Ok(&e.event())).is_break() {
                        outcome = Ok(());
                        break;
                    }
                }
                Msg::Done(r) => {
                    outcome = r.map_err(|e| match e {
                        EtwError::Open { .. } => SourceError::Open(e.to_string()),
                        EtwError::Process { .. } => SourceError::Failed(e.to_string()),
                    });
                    break;
                }
            }
        }
        // Stop listening: the callbacks still to come fail to send and return at once,
        // ProcessTrace reaches the end of the file and the thread ends.
        drop(rx);
        if worker.join().is_err() {
            return Err(SourceError::Failed("the ETW thread panicked".into()));
        }
        outcome
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
    .map_err(|e| open_error(path, e))?;
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
