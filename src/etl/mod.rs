//! A pure-Rust, zero-copy reader for Windows ETW `.etl` files.
//!
//! Data flows file → [`Buffer`]s → [`Event`]s. The file is borrowed as a byte slice
//! (usually a memory map, see [`MappedFile`]); buffers are independent once the logfile
//! header is known, so [`EtlFile::buffers`] can be fanned out to threads. Every read is
//! bounds-checked; bad input becomes an [`Error`] with a byte offset.
//!
//! The layouts are documented in `docs/etl-format.md` of the shared docs.

pub mod buffer;
pub mod bytes;
pub mod error;
pub mod event;
pub mod guid;
pub mod kernel;
pub mod logfile;
pub mod summary;
pub mod time;
pub mod xpress;

pub use buffer::{Buffer, BufferHeader, Buffers, BUFFER_HEADER_SIZE};
pub use error::{Error, ErrorKind, FileError, Location};
pub use event::{Event, Events, HeaderKind};
pub use guid::Guid;
pub use logfile::{ClockType, LogfileHeader};
pub use time::Clock;

use std::fs::File;
use std::path::Path;

/// A parsed ETL file: the logfile header plus access to the buffers.
pub struct EtlFile<'a> {
    data: &'a [u8],
    header: LogfileHeader,
    clock: Clock,
    compression_format: Option<u16>,
}

impl<'a> EtlFile<'a> {
    /// Reads the first buffer and its logfile header. Fails when the bytes are not an
    /// ETL file (empty, too short, no logfile header) or use an unsupported compression.
    pub fn parse(data: &'a [u8]) -> Result<EtlFile<'a>, Error> {
        if data.is_empty() {
            return Err(Error::at(ErrorKind::Empty, 0));
        }
        if data.len() < BUFFER_HEADER_SIZE + 0x20 {
            return Err(Error::at(
                ErrorKind::NotEtl(format!(
                    "{} bytes is too short for a buffer header and a logfile header",
                    data.len()
                )),
                0,
            ));
        }
        let mut buffers = Buffers::new(data, 0);
        let first = match buffers.next() {
            Some(Ok(b)) => b,
            Some(Err(e)) => {
                return Err(Error::at(
                    ErrorKind::NotEtl(format!("first buffer header is invalid ({})", e.kind)),
                    0,
                ))
            }
            None => return Err(Error::at(ErrorKind::Empty, 0)),
        };
        if first.header.is_compressed() {
            return Err(Error::at(
                ErrorKind::NotEtl(
                    "the first buffer is compressed; it must hold the logfile header".into(),
                ),
                0,
            ));
        }
        let mut scratch = Vec::new();
        let mut events = first.events(&mut scratch)?;
        let header = match events.next() {
            Some(Ok(e)) => LogfileHeader::from_event(&e)
                .map_err(|m| Error::new(ErrorKind::NotEtl(m), e.loc))?,
            Some(Err(e)) => {
                return Err(Error::new(
                    ErrorKind::NotEtl(format!("no logfile header ({})", e.kind)),
                    e.loc,
                ))
            }
            None => {
                return Err(Error::at(
                    ErrorKind::NotEtl("the first buffer holds no records".into()),
                    0,
                ))
            }
        };
        // The compression format is named by the first buffer's State (snail); only
        // XPRESS (3) has been seen and is implemented. Files that never set it (0) are
        // treated as XPRESS, as dissect.etl and s4 do.
        let compression_format = if header.compressed_mode() {
            Some((first.header.state() & 0xFFFF) as u16)
        } else {
            None
        };
        if let Some(fmt) = compression_format {
            if fmt == 2 || fmt == 4 {
                let name = if fmt == 2 { "LZNT1" } else { "XPRESS Huffman" };
                return Err(Error::at(
                    ErrorKind::UnsupportedCompression(format!(
                        "format {fmt} ({name}); only plain LZ77 XPRESS (3) is implemented"
                    )),
                    0,
                ));
            }
        }
        let clock = Clock::new(&header);
        Ok(EtlFile {
            data,
            header,
            clock,
            compression_format,
        })
    }

    pub fn data(&self) -> &'a [u8] {
        self.data
    }

    pub fn header(&self) -> &LogfileHeader {
        &self.header
    }

    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    pub fn compression_format(&self) -> Option<u16> {
        self.compression_format
    }

    /// The buffers in file order, the header buffer first.
    pub fn buffers(&self) -> Buffers<'a> {
        Buffers::new(self.data, self.header.buffer_size)
    }

    /// Visits every event and every error of the file, sequentially, in file order.
    /// Errors do not stop the walk: the rest of the buffer (when it can be skipped past)
    /// and the other buffers are still read.
    pub fn for_each<F>(&self, mut f: F)
    where
        F: FnMut(Result<&Event<'_>, &Error>),
    {
        let mut scratch = Vec::new();
        for buffer in self.buffers() {
            match buffer {
                Ok(b) => match b.events(&mut scratch) {
                    Ok(events) => {
                        for item in events {
                            match item {
                                Ok(e) => f(Ok(&e)),
                                Err(err) => f(Err(&err)),
                            }
                        }
                    }
                    Err(err) => f(Err(&err)),
                },
                Err(err) => f(Err(&err)),
            }
        }
    }
}

/// A file's bytes, memory-mapped (or read, for empty files which cannot be mapped).
pub struct MappedFile {
    map: Option<memmap2::Mmap>,
}

impl MappedFile {
    pub fn open(path: &Path) -> std::io::Result<MappedFile> {
        let file = File::open(path)?;
        let len = file.metadata()?.len();
        if len == 0 {
            return Ok(MappedFile { map: None });
        }
        // SAFETY: the map is read-only; heapdb never writes to captures. A capture that
        // another process truncates while mapped can fault (SIGBUS); captures are
        // closed files by the time they are ingested, which is the documented contract.
        let map = unsafe { memmap2::MmapOptions::new().map(&file)? };
        #[cfg(unix)]
        {
            let _ = map.advise(memmap2::Advice::Sequential);
        }
        Ok(MappedFile { map: Some(map) })
    }

    pub fn bytes(&self) -> &[u8] {
        self.map.as_deref().unwrap_or(&[])
    }

    /// Drops the pages of `[start, end)` from this process's resident memory once they
    /// have been read, so a multi-GB capture does not grow the process. The bytes stay
    /// readable: touching them again reads them back from the file (page cache).
    pub fn release(&self, start: u64, end: u64) {
        #[cfg(unix)]
        if let Some(map) = &self.map {
            const PAGE: u64 = 4096;
            let start = start.div_ceil(PAGE) * PAGE;
            let end = end.min(map.len() as u64) / PAGE * PAGE;
            if end > start {
                // SAFETY: the mapping is a read-only shared file mapping; MADV_DONTNEED
                // only drops page-table entries, later reads fault the file's pages in
                // again, so no reference into the map ever sees changed or freed memory.
                let _ = unsafe {
                    map.unchecked_advise_range(
                        memmap2::UncheckedAdvice::DontNeed,
                        start as usize,
                        (end - start) as usize,
                    )
                };
            }
        }
        #[cfg(not(unix))]
        let _ = (start, end);
    }
}
