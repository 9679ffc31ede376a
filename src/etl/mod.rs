//! A pure-Rust, zero-copy reader for Windows ETW `.etl` files.
//!
//! Data flows file → [`Buffer`]s → [`Event`]s. A capture is read from a stream in
//! windows of whole buffers ([`EtlReader`], for files and archive entries) or borrowed
//! as a byte slice ([`EtlFile`], for bytes already in memory); buffers are independent
//! once the logfile header is known, so a window can be fanned out to threads. Every
//! read is bounds-checked; bad input becomes an [`Error`] with a byte offset.
//!
//! The layouts are documented in `docs/etl-format.md` of the shared docs.

pub mod buffer;
pub mod bytes;
pub mod error;
pub mod event;
pub mod guid;
pub mod headers;
pub mod kernel;
pub mod logfile;
pub mod source;
pub mod summary;
pub mod time;
pub mod xpress;

pub use buffer::{Buffer, BufferHeader, Buffers, BUFFER_HEADER_SIZE};
pub use error::{Error, ErrorKind, FileError, Location};
pub use event::{Event, Events, HeaderKind};
pub use guid::Guid;
pub use logfile::{ClockType, LogfileHeader};
pub use source::{EtlReader, Window};
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

/// What kind of file a path names, for the message that refuses it ("a FIFO").
pub fn file_kind(meta: &std::fs::Metadata) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        let t = meta.file_type();
        if t.is_fifo() {
            return "a FIFO";
        }
        if t.is_socket() {
            return "a socket";
        }
        if t.is_char_device() || t.is_block_device() {
            return "a device";
        }
    }
    if meta.is_dir() {
        "a directory"
    } else {
        "not a file"
    }
}

/// Opens a capture for reading: regular files only. A FIFO, a device or a socket
/// would block or never end; they are refused before they are opened. Returns the file
/// and its size when opened (the size the reader holds it to).
pub fn open_file(path: &Path) -> std::io::Result<(File, std::fs::Metadata)> {
    let refuse = |meta: &std::fs::Metadata| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("not a regular file ({})", file_kind(meta)),
        )
    };
    let meta = std::fs::metadata(path)?;
    if !meta.is_file() {
        return Err(refuse(&meta));
    }
    let file = File::open(path)?;
    // The path may have been replaced between the check and the open.
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(refuse(&meta));
    }
    Ok((file, meta))
}
