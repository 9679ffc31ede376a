//! WMI_BUFFER_HEADER (0x48 bytes) and the walk over the buffers of a file.

use super::bytes::{u16_at, u32_at, u64_at, u8_at};
use super::error::{Error, ErrorKind, Location};
use super::event::Events;
use super::xpress;

pub const BUFFER_HEADER_SIZE: usize = 0x48;
/// Windows caps buffers at 16 MiB (ntwmi, Windows 8+).
pub const MAX_BUFFER_SIZE: u32 = 16 << 20;

pub const FLAG_FLUSH: u16 = 0x0001;
pub const FLAG_EVENTS_LOST: u16 = 0x0002;
pub const FLAG_BUFFER_LOST: u16 = 0x0004;
pub const FLAG_PROC_INDEX: u16 = 0x0020;
pub const FLAG_COMPRESSED: u16 = 0x0040;

pub const BUFFER_TYPE_HEADER: u16 = 4;

/// A view of one buffer header.
#[derive(Clone, Copy)]
pub struct BufferHeader<'a>(&'a [u8; BUFFER_HEADER_SIZE]);

impl<'a> BufferHeader<'a> {
    /// Views the first 0x48 bytes of `b`, if there are that many.
    pub fn new(b: &'a [u8]) -> Option<BufferHeader<'a>> {
        b.get(..BUFFER_HEADER_SIZE)
            .and_then(|s| s.try_into().ok())
            .map(BufferHeader)
    }
    fn u16(&self, off: usize) -> u16 {
        u16_at(self.0, off).unwrap_or(0)
    }
    fn u32(&self, off: usize) -> u32 {
        u32_at(self.0, off).unwrap_or(0)
    }
    fn u64(&self, off: usize) -> u64 {
        u64_at(self.0, off).unwrap_or(0)
    }
    /// Bytes this buffer occupies in the file (the compressed size if compressed).
    pub fn buffer_size(&self) -> u32 {
        self.u32(0x00)
    }
    /// Stale in header buffers (see the format doc §3); kept for display only.
    pub fn saved_offset(&self) -> u32 {
        self.u32(0x04)
    }
    /// Raw session-clock value at flush time.
    pub fn timestamp(&self) -> u64 {
        self.u64(0x10)
    }
    pub fn sequence_number(&self) -> u64 {
        self.u64(0x18)
    }
    pub fn logger_id(&self) -> u16 {
        self.u16(0x2A)
    }
    pub fn state(&self) -> u32 {
        self.u32(0x2C)
    }
    /// End of the records, counted from the buffer start, header included.
    pub fn filled(&self) -> u32 {
        self.u32(0x30)
    }
    pub fn flags(&self) -> u16 {
        self.u16(0x34)
    }
    pub fn buffer_type(&self) -> u16 {
        self.u16(0x36)
    }
    pub fn is_compressed(&self) -> bool {
        self.flags() & FLAG_COMPRESSED != 0
    }
    /// CPU whose events the buffer holds. Without the processor-index flag the field is
    /// a CPU byte followed by an alignment byte (pyetw writes 0x0800 for CPU 0).
    pub fn cpu(&self) -> u16 {
        if self.flags() & FLAG_PROC_INDEX != 0 {
            self.u16(0x28) & 0x07FF
        } else {
            u8_at(self.0, 0x28).unwrap_or(0) as u16
        }
    }

    /// Checks the sizes a reader relies on. `available` is how many file bytes follow
    /// the buffer start.
    fn validate(&self, available: u64) -> Result<(), String> {
        let size = self.buffer_size();
        let filled = self.filled();
        if (size as usize) < BUFFER_HEADER_SIZE {
            return Err(format!(
                "BufferSize {size} is smaller than the 72-byte buffer header"
            ));
        }
        if size > MAX_BUFFER_SIZE {
            return Err(format!("BufferSize {size} exceeds the 16 MiB maximum"));
        }
        if (filled as usize) < BUFFER_HEADER_SIZE {
            return Err(format!(
                "used length (Offset) {filled} is smaller than the buffer header"
            ));
        }
        if self.is_compressed() {
            if filled > MAX_BUFFER_SIZE {
                return Err(format!(
                    "used length (Offset) {filled} exceeds the 16 MiB maximum"
                ));
            }
        } else if filled > size {
            return Err(format!(
                "used length (Offset) {filled} is past BufferSize {size}"
            ));
        }
        if size as u64 > available {
            return Err(format!(
                "BufferSize {size} runs past the end of the file ({available} bytes left)"
            ));
        }
        Ok(())
    }
}

/// One buffer of the file: its header and bytes, ready to be decoded on its own
/// (buffers are independent once the logfile header is known, so callers may decode
/// them in parallel).
#[derive(Clone, Copy)]
pub struct Buffer<'a> {
    /// File offset of the buffer header.
    pub offset: u64,
    /// Position of the buffer in file order (0 = the header buffer).
    pub index: u32,
    pub header: BufferHeader<'a>,
    bytes: &'a [u8],
}

impl<'a> Buffer<'a> {
    /// A buffer whose header the walk validated: `bytes` is the whole buffer
    /// (`header.buffer_size()` bytes). Errors only if fewer than 72 bytes are given.
    pub(crate) fn new(offset: u64, index: u32, bytes: &'a [u8]) -> Result<Buffer<'a>, Error> {
        let header = BufferHeader::new(bytes).ok_or_else(|| {
            Error::at(
                ErrorKind::Truncated(format!(
                    "{} bytes, too short for a 72-byte buffer header",
                    bytes.len()
                )),
                offset,
            )
        })?;
        Ok(Buffer {
            offset,
            index,
            header,
            bytes,
        })
    }

    /// The whole buffer, header included, as stored in the file.
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// The record bytes of this buffer: borrowed from the file when uncompressed,
    /// decompressed into `scratch` otherwise.
    pub fn records<'s>(&self, scratch: &'s mut Vec<u8>) -> Result<&'s [u8], Error>
    where
        'a: 's,
    {
        let filled = self.header.filled() as usize;
        if self.header.is_compressed() {
            let input = self.bytes.get(BUFFER_HEADER_SIZE..).unwrap_or(&[]);
            xpress::decompress(input, scratch, filled.saturating_sub(BUFFER_HEADER_SIZE))
                .map_err(|m| Error::at(ErrorKind::Decompress(m), self.offset))?;
            Ok(&scratch[..])
        } else {
            self.bytes.get(BUFFER_HEADER_SIZE..filled).ok_or_else(|| {
                Error::at(
                    ErrorKind::BadBuffer(format!(
                        "used length (Offset) {filled} is past the buffer's {} bytes",
                        self.bytes.len()
                    )),
                    self.offset,
                )
            })
        }
    }

    /// Iterates the events of this buffer. Errors inside the buffer are yielded in
    /// place; the iterator stops after an error it cannot skip past.
    pub fn events<'s>(&self, scratch: &'s mut Vec<u8>) -> Result<Events<'s>, Error>
    where
        'a: 's,
    {
        let compressed = self.header.is_compressed();
        let data = self.records(scratch)?;
        Ok(Events::new(
            data,
            Location {
                buffer_offset: self.offset,
                record_pos: None,
                compressed,
            },
            self.header.cpu(),
        ))
    }
}

/// The buffer walk's decisions, shared by the walk over bytes in memory ([`Buffers`])
/// and the walk over a stream ([`super::source::EtlReader`]): where the next buffer
/// is, how big it is, and where to resynchronise after a corrupt header.
///
/// A buffer whose header is corrupt is reported; if the session writes fixed-size
/// buffers (uncompressed captures), the walk resynchronises on the next buffer boundary
/// so the intact buffers after it are still read.
#[derive(Debug, Clone)]
pub(crate) struct Walk {
    pub pos: u64,
    pub index: u32,
    len: u64,
    /// Session buffer size from the logfile header (0 = unknown): used to resync.
    session_buffer_size: u32,
    done: bool,
}

/// Where the next buffer is: its file offset, index and size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Located {
    pub offset: u64,
    pub index: u32,
    pub size: u32,
}

impl Walk {
    pub fn new(len: u64, session_buffer_size: u32) -> Walk {
        Walk {
            pos: 0,
            index: 0,
            len,
            session_buffer_size,
            done: false,
        }
    }

    /// The next buffer, or the error that stands where it should be. `header(pos)`
    /// returns the 72 bytes at `pos` (None when fewer remain); it is called with
    /// increasing positions only, so a stream can serve it.
    pub fn next<H>(&mut self, mut header: H) -> Option<Result<Located, Error>>
    where
        H: FnMut(u64) -> Result<Option<[u8; BUFFER_HEADER_SIZE]>, Error>,
    {
        if self.done {
            return None;
        }
        let len = self.len;
        if self.pos >= len {
            self.done = true;
            return None;
        }
        let left = len - self.pos;
        let bytes = match header(self.pos) {
            Ok(Some(b)) => b,
            Ok(None) => {
                self.done = true;
                return Some(Err(Error::at(
                    ErrorKind::Truncated(format!(
                        "{left} trailing bytes, too short for a 72-byte buffer header"
                    )),
                    self.pos,
                )));
            }
            Err(e) => {
                self.done = true;
                return Some(Err(e));
            }
        };
        let h = BufferHeader(&bytes);
        if let Err(msg) = h.validate(left) {
            let bad = self.pos;
            let kind = if h.buffer_size() as u64 > left
                && h.buffer_size() as usize >= BUFFER_HEADER_SIZE
                && h.buffer_size() <= MAX_BUFFER_SIZE
            {
                ErrorKind::Truncated(msg)
            } else {
                ErrorKind::BadBuffer(msg)
            };
            match self.resync(bad, &mut header) {
                Ok(Some(next)) => self.pos = next,
                Ok(None) => self.done = true,
                Err(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
            }
            return Some(Err(Error::at(kind, bad)));
        }
        let found = Located {
            offset: self.pos,
            index: self.index,
            size: h.buffer_size(),
        };
        self.pos += found.size as u64;
        self.index += 1;
        Some(Ok(found))
    }

    /// After a corrupt header at `bad`, finds the next session-size boundary holding a
    /// plausible buffer header.
    fn resync<H>(&self, bad: u64, header: &mut H) -> Result<Option<u64>, Error>
    where
        H: FnMut(u64) -> Result<Option<[u8; BUFFER_HEADER_SIZE]>, Error>,
    {
        let step = self.session_buffer_size as u64;
        if step < BUFFER_HEADER_SIZE as u64 {
            return Ok(None);
        }
        let len = self.len;
        let mut cand = (bad / step + 1) * step;
        while cand + BUFFER_HEADER_SIZE as u64 <= len {
            if let Some(b) = header(cand)? {
                if BufferHeader(&b).validate(len - cand).is_ok() {
                    return Ok(Some(cand));
                }
            }
            cand += step;
        }
        Ok(None)
    }
}

/// Walks the buffers of a file held in memory, in file order (see [`Walk`]).
pub struct Buffers<'a> {
    data: &'a [u8],
    walk: Walk,
}

impl<'a> Buffers<'a> {
    pub fn new(data: &'a [u8], session_buffer_size: u32) -> Buffers<'a> {
        Buffers {
            data,
            walk: Walk::new(data.len() as u64, session_buffer_size),
        }
    }
}

impl<'a> Iterator for Buffers<'a> {
    type Item = Result<Buffer<'a>, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        let data = self.data;
        let found = self.walk.next(|pos| {
            Ok(data
                .get(pos as usize..)
                .and_then(|s| s.get(..BUFFER_HEADER_SIZE))
                .and_then(|s| s.try_into().ok()))
        })?;
        Some(found.and_then(|l| {
            let start = l.offset as usize;
            let bytes = data.get(start..start + l.size as usize).unwrap_or(&[]);
            Buffer::new(l.offset, l.index, bytes)
        }))
    }
}
