//! Errors of the ETL reader. Every error carries the byte offset it was found at, so a
//! report can point an analyst (or a hex editor) at the bad spot.

use std::fmt;

/// What went wrong, without the location.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ErrorKind {
    #[error("empty file (0 bytes)")]
    Empty,
    #[error("not an ETL file: {0}")]
    NotEtl(String),
    #[error("truncated: {0}")]
    Truncated(String),
    #[error("corrupt buffer header: {0}")]
    BadBuffer(String),
    #[error("compressed buffers are not supported: {0}")]
    UnsupportedCompression(String),
    #[error("corrupt compressed buffer: {0}")]
    Decompress(String),
    #[error("corrupt record: {0}")]
    BadRecord(String),
    #[error("unknown record header kind (marker 0x{0:08x}); record skipped")]
    UnknownHeader(u32),
    /// The bytes could not be read (an I/O error, or the file changed while it was
    /// read: a copy still in progress, a rotated log).
    #[error("{0}")]
    Read(String),
}

/// Where in the file an error was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Location {
    /// File offset of the buffer that holds the bad bytes (or of the bad bytes
    /// themselves when no buffer applies).
    pub buffer_offset: u64,
    /// Offset of the bad record inside the buffer's record region (after the 0x48-byte
    /// buffer header), when the error is about a record.
    pub record_pos: Option<u32>,
    /// True when the buffer is compressed: `record_pos` then counts bytes of the
    /// decompressed data, which have no file offset of their own.
    pub compressed: bool,
}

impl Location {
    pub fn at(offset: u64) -> Location {
        Location {
            buffer_offset: offset,
            record_pos: None,
            compressed: false,
        }
    }

    /// The file offset closest to the problem: the record itself in an uncompressed
    /// buffer, the buffer in a compressed one.
    pub fn file_offset(&self) -> u64 {
        match (self.record_pos, self.compressed) {
            (Some(pos), false) => {
                self.buffer_offset + super::buffer::BUFFER_HEADER_SIZE as u64 + pos as u64
            }
            _ => self.buffer_offset,
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.record_pos, self.compressed) {
            (Some(pos), true) => write!(
                f,
                "byte offset {} (compressed buffer; record at {} in its decompressed data)",
                self.buffer_offset, pos
            ),
            _ => write!(f, "byte offset {}", self.file_offset()),
        }
    }
}

/// An error of the reader: what and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    pub kind: ErrorKind,
    pub loc: Location,
}

impl Error {
    pub fn new(kind: ErrorKind, loc: Location) -> Error {
        Error { kind, loc }
    }

    pub fn at(kind: ErrorKind, offset: u64) -> Error {
        Error::new(kind, Location::at(offset))
    }

    /// The file offset to report (see [`Location::file_offset`]).
    pub fn offset(&self) -> u64 {
        self.loc.file_offset()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.loc, self.kind)
    }
}

impl std::error::Error for Error {}

/// An error together with the file it came from, for messages shown to people.
#[derive(Debug, Clone)]
pub struct FileError {
    pub path: String,
    pub error: Error,
}

impl fmt::Display for FileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.error)
    }
}

impl std::error::Error for FileError {}
