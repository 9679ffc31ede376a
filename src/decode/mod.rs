//! The decoder seam: where a capture's events come from.
//!
//! Everything after this point (heap decoding, stacks, rundown, `dump`, `verify`, the
//! event-level ingest) consumes [`Event`]s through one trait, [`EventSource`]. Two
//! decoders implement it:
//!
//! - [`Decoder::Heapdb`]: heapdb's own pure-Rust reader ([`crate::etl`]), on every
//!   platform, the default ([`HeapdbSource`]);
//! - [`Decoder::Etw`]: Windows' own consumer (`OpenTraceW`/`ProcessTrace` through the
//!   ferrisetw crate), Windows only (`crate::etw::EtwSource`). Each `EVENT_RECORD` it
//!   delivers becomes heapdb's event through the pure functions of [`record`], which
//!   are compiled and tested on every platform.
//!
//! [`compare`] checks two sources of the same capture against each other (`heapdb
//! verify`).

pub mod compare;
pub mod events;
pub mod record;
pub mod session;

use crate::etl::{Clock, Error, EtlReader, Event, LogfileHeader, Window};
use crate::ingest::discover::Input;
use std::io::Read;
use std::ops::ControlFlow;

/// Which decoder reads a capture.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Decoder {
    /// heapdb's own reader (every platform).
    Heapdb,
    /// Windows' ETW consumer API, through ferrisetw (Windows only).
    Etw,
    /// heapdb's reader with every event passed through the ETW decoder's mapping
    /// ([`Remapped`]): the ETW code path minus Windows, on every platform. For tests.
    EtwMapped,
}

impl Decoder {
    pub fn name(&self) -> &'static str {
        match self {
            Decoder::Heapdb => "heapdb",
            Decoder::Etw => "etw",
            Decoder::EtwMapped => "etw-mapped",
        }
    }

    /// True when this build can use the decoder.
    pub fn available(&self) -> bool {
        match self {
            Decoder::Heapdb | Decoder::EtwMapped => true,
            Decoder::Etw => cfg!(windows),
        }
    }
}

/// Why a source could not be opened or run to its end.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The capture could not be read at all (not a capture, unreadable, refused).
    #[error("{0}")]
    Open(String),
    /// The decoder does not exist in this build.
    #[error("--decoder {} is available on Windows only (it reads captures through Windows' own ETW API); heapdb's own reader, --decoder heapdb (the default), runs everywhere", .0.name())]
    Unavailable(Decoder),
    /// The decoder stopped part-way (ProcessTrace failed).
    #[error("{0}")]
    Failed(String),
}

/// Where a capture's events come from. The visiting style (a callback per event)
/// suits both decoders: heapdb's reader lends events from its buffers, ETW's consumer
/// calls back once per `EVENT_RECORD`.
pub trait EventSource {
    fn decoder(&self) -> Decoder;

    /// The capture's logfile header (for both decoders read by heapdb's reader from
    /// the first buffer: ferrisetw does not hand out the header `OpenTraceW` fills).
    fn header(&self) -> &LogfileHeader;

    /// The capture's clock: raw timestamps to absolute time.
    fn clock(&self) -> &Clock;

    /// True when events carry file offsets (heapdb's reader); ETW's records do not
    /// say where in the file they were.
    fn has_offsets(&self) -> bool;

    /// Visits every event, and every record the decoder could not read, in the
    /// decoder's order (heapdb: file order; ETW: merged by time across CPUs), until
    /// `f` breaks. An `Err` return: the decoder could not run or stopped part-way.
    fn for_each(
        &mut self,
        f: &mut dyn FnMut(Result<&Event<'_>, &Error>) -> ControlFlow<()>,
    ) -> Result<(), SourceError>;
}

/// heapdb's own reader as an [`EventSource`]: buffers in file order, their events in
/// record order.
pub struct HeapdbSource<R> {
    reader: EtlReader<R>,
}

impl<R: Read> HeapdbSource<R> {
    pub fn new(reader: EtlReader<R>) -> HeapdbSource<R> {
        HeapdbSource { reader }
    }
}

impl HeapdbSource<Box<dyn Read + Send>> {
    /// Opens an input (file or archive entry).
    pub fn open(input: &Input) -> Result<Self, SourceError> {
        let opened = input.open().map_err(|e| SourceError::Open(e.to_string()))?;
        let reader = EtlReader::new(opened.reader, opened.len)
            .map_err(|e| SourceError::Open(e.to_string()))?;
        Ok(HeapdbSource::new(reader))
    }
}

impl<R: Read> EventSource for HeapdbSource<R> {
    fn decoder(&self) -> Decoder {
        Decoder::Heapdb
    }

    fn header(&self) -> &LogfileHeader {
        self.reader.header()
    }

    fn clock(&self) -> &Clock {
        self.reader.clock()
    }

    fn has_offsets(&self) -> bool {
        true
    }

    fn for_each(
        &mut self,
        f: &mut dyn FnMut(Result<&Event<'_>, &Error>) -> ControlFlow<()>,
    ) -> Result<(), SourceError> {
        let mut window = Window::new();
        let mut scratch = Vec::new();
        while self.reader.next_window(&mut window, 32 << 20, 256) {
            for item in window.items() {
                let events = match item.and_then(|b| b.events(&mut scratch)) {
                    Ok(ev) => ev,
                    Err(e) => {
                        if f(Err(&e)).is_break() {
                            return Ok(());
                        }
                        continue;
                    }
                };
                for ev in events {
                    let flow = match &ev {
                        Ok(e) => f(Ok(e)),
                        Err(err) => f(Err(err)),
                    };
                    if flow.is_break() {
                        return Ok(());
                    }
                }
            }
        }
        Ok(())
    }
}

/// Opens `input` with `decoder`. On a build without the decoder (ETW outside
/// Windows): [`SourceError::Unavailable`].
pub fn open(decoder: Decoder, input: &Input) -> Result<Box<dyn EventSource>, SourceError> {
    match decoder {
        Decoder::Heapdb => Ok(Box::new(HeapdbSource::open(input)?)),
        Decoder::EtwMapped => Ok(Box::new(Remapped::new(HeapdbSource::open(input)?))),
        #[cfg(windows)]
        Decoder::Etw => Ok(Box::new(crate::etw::EtwSource::open(input)?)),
        #[cfg(not(windows))]
        Decoder::Etw => Err(SourceError::Unavailable(Decoder::Etw)),
    }
}

/// What the ETW decoder would hand on for another source's events if Windows delivered
/// each record unchanged: every event goes through [`record::fields_of_event`] (the
/// fields of an `EVENT_RECORD`, with a FILETIME timestamp as ferrisetw gets it) and
/// back through [`record::map_record`]. Runs the ETW mapping over whole captures on
/// every platform (tests, and `verify`'s own tests); `perturb` may change each mapped
/// event, to test what a comparison finds.
pub struct Remapped<S> {
    inner: S,
    /// Called with each event's position and the event mapped back.
    #[allow(clippy::type_complexity)]
    perturb: Option<Box<dyn FnMut(u64, &mut record::OwnedEvent)>>,
}

impl<S: EventSource> Remapped<S> {
    pub fn new(inner: S) -> Remapped<S> {
        Remapped {
            inner,
            perturb: None,
        }
    }

    pub fn perturbed(
        inner: S,
        perturb: impl FnMut(u64, &mut record::OwnedEvent) + 'static,
    ) -> Remapped<S> {
        Remapped {
            inner,
            perturb: Some(Box::new(perturb)),
        }
    }
}

impl<S: EventSource> EventSource for Remapped<S> {
    fn decoder(&self) -> Decoder {
        Decoder::EtwMapped
    }

    fn header(&self) -> &LogfileHeader {
        self.inner.header()
    }

    fn clock(&self) -> &Clock {
        self.inner.clock()
    }

    fn has_offsets(&self) -> bool {
        false
    }

    fn for_each(
        &mut self,
        f: &mut dyn FnMut(Result<&Event<'_>, &Error>) -> ControlFlow<()>,
    ) -> Result<(), SourceError> {
        let ts = record::Timestamps::FileTime(*self.inner.clock());
        let mut n = 0u64;
        let perturb = &mut self.perturb;
        self.inner.for_each(&mut |item| match item {
            Ok(e) => {
                let fields = record::fields_of_event(e, &ts);
                let mut owned = record::map_record(&fields, &ts);
                if let Some(p) = perturb.as_mut() {
                    p(n, &mut owned);
                }
                n += 1;
                f(Ok(&owned.event()))
            }
            Err(err) => f(Err(err)),
        })
    }
}
