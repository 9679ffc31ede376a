//! The decoding side of an ingest: for each capture, one pass that fingerprints its
//! bytes and collects its stack-cache definitions, then (unless it is already stored)
//! one pass that decodes its heap events, per CPU in parallel, and sends rows to the
//! loading thread.

use super::discover::Input;
use super::load::{Msg, RowBatch};
use super::observe::{Level, Note, Phase, Progress};
use super::rows::{HeapEventRow, RundownRow};
use super::sink::{CaptureStart, Catalog, FileFailure};
use super::Shared;
use crate::etl::source::WINDOW_BYTES;
use crate::etl::{Clock, Error, ErrorKind, EtlReader};
use crate::heap::capture::{Batch, Decoder, KeyCollector, Stats};
use anyhow::{Context, Result};
use std::io::Read;
use std::ops::ControlFlow;
use std::sync::mpsc::SyncSender;

/// Buffers decoded per window (per CPU stream in parallel); bounds memory.
const WINDOW_BUFFERS: usize = 64;

/// Fingerprint (BLAKE3, hex) of an input that could not be parsed: recorded with its
/// failure so that a rerun over the same bad bytes adds no row.
fn plain_fingerprint(input: &Input) -> String {
    let Ok(mut o) = input.open() else {
        return String::new();
    };
    let mut h = blake3::Hasher::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut left = o.len;
    while left > 0 {
        let n = (left as usize).min(buf.len());
        match o.reader.read(&mut buf[..n]) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                h.update(&buf[..n]);
                left -= n as u64;
            }
        }
    }
    h.finalize().to_hex().to_string()
}

pub(super) struct Producer<'a> {
    pub tx: &'a SyncSender<Msg>,
    pub shared: &'a Shared<'a>,
    pub catalog: &'a dyn Catalog,
    pub strict: bool,
    pub labels: &'a super::labels::Labels,
    /// Bytes of the inputs before this one, and of all inputs.
    pub bytes_before: u64,
    pub bytes_total: u64,
    pub file: usize,
    pub files: usize,
    pub decoder: crate::decode::Decoder,
}

impl Producer<'_> {
    fn send(&self, msg: Msg) -> Result<()> {
        self.tx
            .send(msg)
            .map_err(|_| anyhow::anyhow!("the loading thread stopped"))
    }

    fn fail(
        &self,
        fingerprint: String,
        offset: Option<u64>,
        message: String,
        path: &str,
    ) -> Result<()> {
        if self.strict {
            self.shared.stop();
        }
        self.send(Msg::Failed(FileFailure {
            path: path.to_string(),
            fingerprint,
            offset,
            message,
        }))
    }

    fn progress(&self, done_in_file: u64, name: &str) {
        self.shared.observer.progress(&Progress {
            phase: Phase::Loading {
                file: self.file,
                files: self.files,
                name: name.to_string(),
            },
            bytes_done: self.bytes_before + done_in_file,
            bytes_total: self.bytes_total,
            rows: self.shared.rows(),
        });
    }

    /// Ingests one input. Errors returned are fatal for the run (the loading thread is
    /// gone); a bad input is reported and sent as a failure.
    pub fn ingest(&self, input: &Input) -> Result<()> {
        let path = input.display();
        let name = input.file_name();
        self.progress(0, &name);
        if self.decoder != crate::decode::Decoder::Heapdb
            && !matches!(input, Input::Unusable { .. })
        {
            return self.ingest_events(input);
        }
        if let Input::Unusable { message, .. } = input {
            let fp = match input {
                Input::Unusable { path, .. } if !path.contains('!') => {
                    plain_fingerprint(&Input::File(path.into()))
                }
                _ => String::new(),
            };
            return self.fail(fp, None, message.clone(), &path);
        }
        // Pass 1: fingerprint and stack-cache definitions, in one read.
        let first = match input.open() {
            Ok(o) => o,
            Err(e) => return self.fail(String::new(), None, e.to_string(), &path),
        };
        let version = first.version;
        let mut reader = match EtlReader::with_fingerprint(first.reader, first.len) {
            Ok(r) => r,
            Err(e) => {
                let fp = plain_fingerprint(input);
                return self.fail(fp, Some(e.offset()), e.kind.to_string(), &path);
            }
        };
        let header = reader.header().clone();
        let clock = *reader.clock();
        let mut keys = KeyCollector::new();
        let mut read_error: Option<Error> = None;
        reader.for_each_window(WINDOW_BYTES, 1024, |w| {
            keys.add(w);
            if let Some(e) = fatal(w) {
                read_error = Some(e);
                return ControlFlow::Break(());
            }
            if self.shared.cancel.requested() {
                return ControlFlow::Break(());
            }
            ControlFlow::Continue(())
        });
        if self.shared.cancel.requested() {
            return Ok(());
        }
        if let Some(e) = read_error {
            return self.fail(String::new(), Some(e.offset()), e.kind.to_string(), &path);
        }
        let fingerprint = match reader.fingerprint() {
            Ok(f) => f,
            Err(e) => return self.fail(String::new(), Some(e.offset()), e.kind.to_string(), &path),
        };
        if let Some((id, first_path)) = self
            .catalog
            .find(&fingerprint)
            .context("reading the database")?
        {
            self.shared.duplicate(&path, id, &first_path);
            return Ok(());
        }
        let (key_table, key_stacks) = keys.finish();

        // Pass 2: decode.
        let second = match input.open() {
            Ok(o) if o.version == version => o,
            Ok(_) => {
                return self.fail(fingerprint, None, changed_message(), &path);
            }
            Err(e) => return self.fail(fingerprint, None, e.to_string(), &path),
        };
        let mut reader = match EtlReader::new(second.reader, second.len) {
            Ok(r) => r,
            Err(e) => return self.fail(fingerprint, Some(e.offset()), e.kind.to_string(), &path),
        };
        let labels = self.labels_for(&path);
        self.send(Msg::Begin(Box::new(CaptureStart {
            path: path.clone(),
            file_name: name.clone(),
            size: second.len,
            fingerprint: fingerprint.clone(),
            header,
            started: super::now_rfc3339(),
            labels,
        })))?;
        if !key_stacks.is_empty() {
            self.send(Msg::Rows(RowBatch {
                rows: Vec::new(),
                stacks: key_stacks,
                rundown: Vec::new(),
                problems: Vec::new(),
            }))?;
        }
        let mut stats = Stats::default();
        let mut decoder = Decoder::new(&key_table);
        let mut result: Result<()> = Ok(());
        let mut read_error: Option<Error> = None;
        let mut ready = Vec::new();
        reader.for_each_window(WINDOW_BYTES, WINDOW_BUFFERS, |w| {
            if let Some(e) = fatal(w) {
                read_error = Some(e);
                return ControlFlow::Break(());
            }
            if self.shared.stopped() || self.shared.cancel.requested() {
                return ControlFlow::Break(());
            }
            decoder.add(w, |b| ready.push(b));
            for b in ready.drain(..) {
                if let Err(e) = self.send_batch(b, &clock, &mut stats) {
                    result = Err(e);
                    return ControlFlow::Break(());
                }
            }
            if let Some(Ok(last)) = w.last() {
                self.progress(last.offset + last.header.buffer_size() as u64, &name);
            }
            ControlFlow::Continue(())
        });
        if read_error.is_none() && result.is_ok() && !self.shared.cancel.requested() {
            decoder.finish(|b| ready.push(b));
            for b in ready.drain(..) {
                self.send_batch(b, &clock, &mut stats)?;
            }
        }
        result?;
        if self.shared.cancel.requested() {
            return Ok(()); // the loading thread rolls the capture back
        }
        let changed = match input.open() {
            Ok(o) => o.version != version,
            Err(_) => true,
        };
        if let Some(e) = read_error {
            return self.abort(fingerprint, Some(e.offset()), e.kind.to_string(), &path);
        }
        if changed {
            return self.abort(fingerprint, None, changed_message(), &path);
        }
        self.send(Msg::End(Box::new(stats)))
    }

    /// [`Producer::ingest`] through an event source other than heapdb's buffer
    /// pipeline (`--decoder etw`): the capture's identity is still the BLAKE3 of its
    /// bytes (the same capture whichever decoder reads it), then one pass of the source
    /// for the stack-key definitions and one for the events, fed to the per-CPU streams
    /// in runs ([`crate::decode::events`]).
    fn ingest_events(&self, input: &Input) -> Result<()> {
        use crate::decode::events::{key_definitions, EventDecoder};
        let path = input.display();
        let name = input.file_name();
        let version = match input.open() {
            Ok(o) => o.version,
            Err(e) => return self.fail(String::new(), None, e.to_string(), &path),
        };
        let fingerprint = plain_fingerprint(input);
        if fingerprint.is_empty() {
            return self.fail(fingerprint, None, "could not be read".into(), &path);
        }
        if let Some((id, first_path)) = self
            .catalog
            .find(&fingerprint)
            .context("reading the database")?
        {
            self.shared.duplicate(&path, id, &first_path);
            return Ok(());
        }
        let open = || crate::decode::open(self.decoder, input);
        let stop = || self.shared.stopped() || self.shared.cancel.requested();
        let keys = open().and_then(|mut s| key_definitions(s.as_mut(), &stop));
        let (key_table, key_stacks) = match keys {
            Ok(k) => k,
            Err(e) => return self.fail(fingerprint, None, e.to_string(), &path),
        };
        if self.shared.cancel.requested() {
            return Ok(());
        }
        let mut source = match open() {
            Ok(s) => s,
            Err(e) => return self.fail(fingerprint, None, e.to_string(), &path),
        };
        let clock = *source.clock();
        let labels = self.labels_for(&path);
        self.send(Msg::Begin(Box::new(CaptureStart {
            path: path.clone(),
            file_name: name.clone(),
            size: input.size(),
            fingerprint: fingerprint.clone(),
            header: source.header().clone(),
            started: super::now_rfc3339(),
            labels,
        })))?;
        if !key_stacks.is_empty() {
            self.send(Msg::Rows(RowBatch {
                rows: Vec::new(),
                stacks: key_stacks,
                rundown: Vec::new(),
                problems: Vec::new(),
            }))?;
        }
        let mut stats = Stats::default();
        let mut decoder = EventDecoder::new(&key_table);
        let mut result: Result<()> = Ok(());
        let mut ready = Vec::new();
        let ran = source.for_each(&mut |item| {
            if stop() {
                return ControlFlow::Break(());
            }
            decoder.add(item, |b| ready.push(b));
            for b in ready.drain(..) {
                if let Err(e) = self.send_batch(b, &clock, &mut stats) {
                    result = Err(e);
                    return ControlFlow::Break(());
                }
            }
            ControlFlow::Continue(())
        });
        result?;
        if self.shared.cancel.requested() {
            return Ok(()); // the loading thread rolls the capture back
        }
        if let Err(e) = ran {
            return self.abort(fingerprint, None, e.to_string(), &path);
        }
        decoder.finish(|b| ready.push(b));
        for b in ready.drain(..) {
            self.send_batch(b, &clock, &mut stats)?;
        }
        self.progress(input.size(), &name);
        let changed = match input.open() {
            Ok(o) => o.version != version,
            Err(_) => true,
        };
        if changed {
            return self.abort(fingerprint, None, changed_message(), &path);
        }
        self.send(Msg::End(Box::new(stats)))
    }

    /// The labels of the capture at `path`; says which --label-from-path did not match.
    fn labels_for(&self, path: &str) -> Vec<(String, String)> {
        let (labels, missed) = self.labels.for_path(path);
        for re in missed {
            self.shared.note(Note::about(
                Level::Warning,
                path,
                format!(
                    "--label-from-path {re:?} does not match this path: no label taken from it"
                ),
            ));
        }
        labels
    }

    /// Sends the rows of a final batch.
    fn send_batch(&self, batch: Batch, clock: &Clock, stats: &mut Stats) -> Result<()> {
        stats.add(&batch.stats);
        // --strict stops in the loading thread, in capture order (`load::rows`): a
        // decoding thread stopping here, on a file decoded ahead of its turn, would stop
        // the batch before the good captures before it were stored, and with nobody
        // left to report the bad one.
        self.send(Msg::Rows(row_batch(batch, clock)))
    }

    /// Ends the capture being sent without storing it, and records why.
    fn abort(
        &self,
        fingerprint: String,
        offset: Option<u64>,
        message: String,
        path: &str,
    ) -> Result<()> {
        self.send(Msg::Abort)?;
        self.fail(fingerprint, offset, message, path)
    }
}

/// A decoded batch as the loading thread takes it: rows with absolute times.
pub(super) fn row_batch(batch: Batch, clock: &Clock) -> RowBatch {
    let rows = batch
        .rows
        .iter()
        .map(|r| HeapEventRow::from_heap(r, clock))
        .collect();
    let rundown = batch
        .rundown
        .into_iter()
        .map(|r| RundownRow::new(r, clock))
        .collect();
    RowBatch {
        rows,
        stacks: batch.stacks,
        rundown,
        problems: batch.problems,
    }
}

fn changed_message() -> String {
    "the file changed while it was read (a copy still in progress?); not stored, ingest it again once it is complete".to_string()
}

/// A read error in a window: the rest of the capture cannot be read.
fn fatal(window: &[Result<crate::etl::Buffer<'_>, Error>]) -> Option<Error> {
    window.iter().find_map(|b| match b {
        Err(e) if matches!(e.kind, ErrorKind::Read(_)) => Some(e.clone()),
        _ => None,
    })
}

impl Shared<'_> {
    /// A note about a capture already stored.
    pub(super) fn duplicate(&self, path: &str, id: i64, first_path: &str) {
        self.count(|r| r.duplicates += 1);
        self.note(Note::about(
            Level::Info,
            path,
            format!("already ingested as capture {id} ({first_path}), skipped"),
        ));
    }
}
