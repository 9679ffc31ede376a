//! Reading a capture from a stream (a file, an entry of a ZIP archive) in windows of
//! whole buffers, instead of mapping it.
//!
//! Mapping a file is faster to write but not safe to read: a capture that another
//! process truncates while it is mapped (a nightly copy still in progress, a rotated
//! log) faults with SIGBUS and kills the process. Reading copies each buffer once into
//! a window that is reused, so memory stays flat; a file that ends early becomes an
//! [`ErrorKind::Read`] error naming the offset, for that file only. The same
//! [`Walk`](super::buffer) decides where buffers are as for bytes in memory, so both
//! paths see the same buffers and the same errors.

use super::buffer::{Buffer, Walk, BUFFER_HEADER_SIZE, MAX_BUFFER_SIZE};
use super::bytes::u32_at;
use super::error::{Error, ErrorKind};
use super::{Clock, EtlFile, LogfileHeader};
use std::io::{self, Read};
use std::ops::ControlFlow;

/// Default window: buffers are decoded a window at a time (in parallel per CPU
/// inside it) while the next window is read.
pub const WINDOW_BYTES: usize = 32 << 20;
pub const WINDOW_BUFFERS: usize = 256;

/// A stream read forward only, remembering how far it got.
struct Stream<R> {
    inner: R,
    pos: u64,
    /// Length the source had when it was opened (file size, declared entry size).
    len: u64,
    /// The header the walk peeked at `peeked.0`, already consumed from `inner`.
    peeked: Option<(u64, [u8; BUFFER_HEADER_SIZE])>,
    skip: Vec<u8>,
    /// BLAKE3 of every byte read so far, in order, when a fingerprint is wanted.
    hasher: Option<blake3::Hasher>,
}

impl<R: Read> Stream<R> {
    fn read_error(&self, at: u64, e: &io::Error) -> Error {
        let kind = if e.kind() == io::ErrorKind::UnexpectedEof {
            ErrorKind::Read(format!(
                "the file ends at byte {at} but was {} bytes when it was opened: it changed while it was read (a copy still in progress?)",
                self.len
            ))
        } else {
            ErrorKind::Read(format!("read error: {e}"))
        };
        Error::at(kind, at)
    }

    /// Reads exactly `out.len()` bytes at the current position.
    fn fill(&mut self, out: &mut [u8]) -> Result<(), Error> {
        let mut got = 0;
        while got < out.len() {
            match self.inner.read(&mut out[got..]) {
                Ok(0) => {
                    let at = self.pos + got as u64;
                    return Err(self.read_error(at, &io::ErrorKind::UnexpectedEof.into()));
                }
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    let at = self.pos + got as u64;
                    return Err(self.read_error(at, &e));
                }
            }
        }
        self.pos += got as u64;
        if let Some(h) = self.hasher.as_mut() {
            // Large pieces (buffer bodies) are hashed on every core.
            if out.len() >= 1 << 20 {
                h.update_rayon(out);
            } else {
                h.update(out);
            }
        }
        Ok(())
    }

    /// Moves forward to `pos`, discarding what lies before it.
    fn skip_to(&mut self, pos: u64) -> Result<(), Error> {
        self.peeked = None;
        while self.pos < pos {
            let n = ((pos - self.pos) as usize).min(1 << 20);
            self.skip.resize(n, 0);
            let mut buf = std::mem::take(&mut self.skip);
            let r = self.fill(&mut buf[..n]);
            self.skip = buf;
            r?;
        }
        Ok(())
    }

    /// The 72 bytes at `pos` (None when fewer remain in the source's length).
    fn header_at(&mut self, pos: u64) -> Result<Option<[u8; BUFFER_HEADER_SIZE]>, Error> {
        if let Some((p, h)) = self.peeked {
            if p == pos {
                return Ok(Some(h));
            }
        }
        if pos + BUFFER_HEADER_SIZE as u64 > self.len {
            return Ok(None);
        }
        self.skip_to(pos)?;
        let mut h = [0u8; BUFFER_HEADER_SIZE];
        self.fill(&mut h)?;
        self.peeked = Some((pos, h));
        Ok(Some(h))
    }
}

/// One window: whole buffers back to back, and the errors the walk met between them.
#[derive(Default)]
pub struct Window {
    data: Vec<u8>,
    items: Vec<Item>,
}

enum Item {
    Buffer {
        offset: u64,
        index: u32,
        start: usize,
        len: usize,
    },
    Error(Error),
}

impl Window {
    pub fn new() -> Window {
        Window::default()
    }

    fn clear(&mut self) {
        self.data.clear();
        self.items.clear();
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The buffers and errors of the window, in file order.
    pub fn items(&self) -> Vec<Result<Buffer<'_>, Error>> {
        self.items
            .iter()
            .map(|it| match it {
                Item::Buffer {
                    offset,
                    index,
                    start,
                    len,
                } => {
                    let bytes = self.data.get(*start..*start + *len).unwrap_or(&[]);
                    Buffer::new(*offset, *index, bytes)
                }
                Item::Error(e) => Err(e.clone()),
            })
            .collect()
    }
}

/// A capture read from a stream: the logfile header (from the first buffer), then the
/// buffers window by window.
pub struct EtlReader<R> {
    stream: Stream<R>,
    walk: Walk,
    header: LogfileHeader,
    clock: Clock,
    compression_format: Option<u16>,
    /// The first buffer, read to parse the logfile header; handed out with window 1.
    first: Option<Vec<u8>>,
    failed: bool,
}

impl<R: Read> EtlReader<R> {
    /// Reads the first buffer and its logfile header. `len` is the size of the source
    /// (the file's size when it was opened). Fails, like [`EtlFile::parse`] and with
    /// the same messages, when the bytes are not an ETL capture.
    pub fn new(inner: R, len: u64) -> Result<EtlReader<R>, Error> {
        Self::open(inner, len, false)
    }

    /// [`EtlReader::new`], also computing the BLAKE3 fingerprint of every byte of the
    /// source as it is read (see [`EtlReader::fingerprint`]): one read gives both.
    pub fn with_fingerprint(inner: R, len: u64) -> Result<EtlReader<R>, Error> {
        Self::open(inner, len, true)
    }

    fn open(inner: R, len: u64, hash: bool) -> Result<EtlReader<R>, Error> {
        let mut stream = Stream {
            inner,
            pos: 0,
            len,
            peeked: None,
            skip: Vec::new(),
            hasher: hash.then(blake3::Hasher::new),
        };
        // Read as much of the first buffer as the file holds (at most 16 MiB): parsing
        // those bytes gives exactly the errors parsing the whole file in memory gives.
        let mut first = vec![0u8; (len as usize).min(BUFFER_HEADER_SIZE)];
        stream.fill(&mut first)?;
        let claimed = u32_at(&first, 0).unwrap_or(0);
        let want = if (BUFFER_HEADER_SIZE as u32..=MAX_BUFFER_SIZE).contains(&claimed) {
            (claimed as u64).min(len) as usize
        } else {
            first.len()
        };
        if want > first.len() {
            let have = first.len();
            first.resize(want, 0);
            stream.fill(&mut first[have..])?;
        }
        let (header, clock, compression_format) = {
            let file = EtlFile::parse(&first)?;
            (
                file.header().clone(),
                *file.clock(),
                file.compression_format(),
            )
        };
        let mut walk = Walk::new(len, header.buffer_size);
        // The first buffer is the one parsed: let the walk step over it.
        let mut peek = Some(first[..BUFFER_HEADER_SIZE].try_into().unwrap_or([0; 72]));
        let found = walk.next(|_| Ok(peek.take()));
        let first = match found {
            Some(Ok(l)) => first.get(..l.size as usize).map(<[u8]>::to_vec),
            _ => None,
        };
        Ok(EtlReader {
            stream,
            walk,
            header,
            clock,
            compression_format,
            first,
            failed: false,
        })
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

    /// Fills `w` with the next buffers (at most `max_buffers`, and about `max_bytes`):
    /// false when the capture is done.
    pub fn next_window(&mut self, w: &mut Window, max_bytes: usize, max_buffers: usize) -> bool {
        w.clear();
        if let Some(first) = self.first.take() {
            w.items.push(Item::Buffer {
                offset: 0,
                index: 0,
                start: 0,
                len: first.len(),
            });
            w.data.extend_from_slice(&first);
        }
        while !self.failed && w.items.len() < max_buffers.max(1) && w.data.len() < max_bytes {
            let stream = &mut self.stream;
            let Some(found) = self.walk.next(|pos| stream.header_at(pos)) else {
                break;
            };
            match found {
                Ok(l) => {
                    let start = w.data.len();
                    let size = l.size as usize;
                    w.data.resize(start + size, 0);
                    let header = self.stream.header_at(l.offset);
                    let body = header.and_then(|h| {
                        let h = h.unwrap_or([0; BUFFER_HEADER_SIZE]);
                        w.data[start..start + BUFFER_HEADER_SIZE].copy_from_slice(&h);
                        self.stream.peeked = None;
                        self.stream
                            .fill(&mut w.data[start + BUFFER_HEADER_SIZE..start + size])
                    });
                    match body {
                        Ok(()) => w.items.push(Item::Buffer {
                            offset: l.offset,
                            index: l.index,
                            start,
                            len: size,
                        }),
                        Err(e) => {
                            w.data.truncate(start);
                            w.items.push(Item::Error(e));
                            self.failed = true;
                        }
                    }
                }
                Err(e) => {
                    if matches!(e.kind, ErrorKind::Read(_)) {
                        self.failed = true;
                    }
                    w.items.push(Item::Error(e));
                }
            }
        }
        !w.is_empty()
    }

    /// BLAKE3 of the source's `len` bytes, hex: reads what the walk left unread (the
    /// rest of the capture, or bytes after a fatal error). Only for readers made with
    /// [`EtlReader::with_fingerprint`].
    pub fn fingerprint(mut self) -> Result<String, Error> {
        let len = self.stream.len;
        self.stream.skip_to(len)?;
        match self.stream.hasher.take() {
            Some(h) => Ok(h.finalize().to_hex().to_string()),
            None => Err(Error::at(
                ErrorKind::Read("no fingerprint was computed".into()),
                0,
            )),
        }
    }

    /// Calls `f` with each window of the capture, until it returns
    /// `ControlFlow::Break`. The next window is read while `f` works on the current one
    /// (two windows in memory at most).
    pub fn for_each_window<F>(&mut self, max_bytes: usize, max_buffers: usize, mut f: F)
    where
        R: Send,
        F: FnMut(&[Result<Buffer<'_>, Error>]) -> ControlFlow<()> + Send,
    {
        let mut current = Window::new();
        let mut next = Window::new();
        if !self.next_window(&mut current, max_bytes, max_buffers) {
            return;
        }
        loop {
            let mut more = false;
            let (flow, ()) = rayon::join(
                || f(&current.items()),
                || more = self.next_window(&mut next, max_bytes, max_buffers),
            );
            if !more || flow.is_break() {
                break;
            }
            std::mem::swap(&mut current, &mut next);
        }
    }
}

impl<'a> EtlFile<'a> {
    /// Calls `f` with windows of the file's buffers (borrowed, no copy), as
    /// [`EtlReader::for_each_window`] does for a stream.
    pub fn for_each_window<F>(&self, max_bytes: usize, max_buffers: usize, mut f: F)
    where
        F: FnMut(&[Result<Buffer<'a>, Error>]) -> ControlFlow<()>,
    {
        let mut window: Vec<Result<Buffer<'a>, Error>> = Vec::new();
        let mut bytes = 0usize;
        for b in self.buffers() {
            if let Ok(b) = &b {
                bytes += b.header.buffer_size() as usize;
            }
            window.push(b);
            if window.len() >= max_buffers.max(1) || bytes >= max_bytes {
                if f(&window).is_break() {
                    return;
                }
                window.clear();
                bytes = 0;
            }
        }
        if !window.is_empty() {
            let _ = f(&window);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reader that hands out at most `n` bytes at a time and then, optionally, ends
    /// early (as a file truncated while it is read does).
    struct Chunky<'a> {
        data: &'a [u8],
        pos: usize,
        n: usize,
    }

    impl Read for Chunky<'_> {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            let k = out.len().min(self.n).min(self.data.len() - self.pos);
            out[..k].copy_from_slice(&self.data[self.pos..self.pos + k]);
            self.pos += k;
            Ok(k)
        }
    }

    fn capture() -> Vec<u8> {
        let mut out = std::io::Cursor::new(Vec::new());
        let opts = crate::synth::Options {
            events_per_file: 3000,
            buffer_size: 4096,
            ..Default::default()
        };
        crate::synth::write_capture(&mut out, &opts, 0).unwrap();
        out.into_inner()
    }

    fn offsets_in_memory(data: &[u8]) -> (Vec<u64>, Vec<String>) {
        let file = EtlFile::parse(data).unwrap();
        let mut ok = Vec::new();
        let mut errors = Vec::new();
        for b in file.buffers() {
            match b {
                Ok(b) => ok.push(b.offset),
                Err(e) => errors.push(e.to_string()),
            }
        }
        (ok, errors)
    }

    fn offsets_streamed(data: &[u8], len: u64, chunk: usize) -> (Vec<u64>, Vec<String>) {
        let mut r = EtlReader::new(
            Chunky {
                data,
                pos: 0,
                n: chunk,
            },
            len,
        )
        .unwrap();
        let (mut ok, mut errors) = (Vec::new(), Vec::new());
        let mut w = Window::new();
        while r.next_window(&mut w, 10_000, 3) {
            for it in w.items() {
                match it {
                    Ok(b) => ok.push(b.offset),
                    Err(e) => errors.push(e.to_string()),
                }
            }
        }
        (ok, errors)
    }

    #[test]
    fn streamed_buffers_equal_the_buffers_in_memory() {
        let data = capture();
        assert!(data.len() > 40_000);
        let want = offsets_in_memory(&data);
        assert!(want.1.is_empty());
        for chunk in [7, 4096, 1 << 20] {
            assert_eq!(offsets_streamed(&data, data.len() as u64, chunk), want);
        }
        // A corrupt buffer header in the middle: the same error and the same resync.
        let mut bad = data.clone();
        bad[5 * 4096] = 0xff;
        bad[5 * 4096 + 1] = 0xff;
        bad[5 * 4096 + 2] = 0xff;
        let want = offsets_in_memory(&bad);
        assert_eq!(want.1.len(), 1);
        assert_eq!(offsets_streamed(&bad, bad.len() as u64, 1000), want);
    }

    #[test]
    fn a_stream_that_ends_early_is_an_error_at_its_offset() {
        let data = capture();
        // The source claims the full length but delivers only 10 buffers' worth + 100.
        let cut = 10 * 4096 + 100;
        let (ok, errors) = offsets_streamed(&data[..cut], data.len() as u64, 4096);
        assert_eq!(ok.len(), 10);
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(
            errors[0].starts_with(&format!(
                "byte offset {cut}: the file ends at byte {cut} but was {} bytes",
                data.len()
            )),
            "{errors:?}"
        );
    }
}
