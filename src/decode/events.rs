//! Heap decoding of a capture from any [`EventSource`]: the same per-CPU streams
//! ([`CpuStream`]) as the buffer pipeline, fed with runs of each CPU's events instead
//! of its buffers. This is how `ingest --decoder etw` stores a capture; with heapdb's
//! reader as the source it gives the rows the buffer pipeline gives (tested below).

use super::record::OwnedEvent;
use super::{EventSource, SourceError};
use crate::heap::capture::{Batch, Problem};
use crate::heap::stack::{self, stack_id, KeyTable, StackEvent};
use crate::heap::stream::CpuStream;
use std::collections::{BTreeMap, HashSet};
use std::ops::ControlFlow;

/// Events per run handed to a CPU's stream (the stand-in for a buffer).
pub const RUN_EVENTS: usize = 2048;

/// A key table and the stacks its definitions hold, by id.
pub type Keys = (KeyTable, Vec<(i64, Vec<u64>)>);

/// The stack-cache definitions (StackWalk KeyDelete/KeyRundown) of a source, in one
/// pass: the key table and the stacks it names, as
/// [`crate::heap::capture::KeyCollector`] gives them for buffers.
pub fn key_definitions(
    source: &mut dyn EventSource,
    stop: &dyn Fn() -> bool,
) -> Result<Keys, SourceError> {
    let mut table = KeyTable::default();
    let mut stacks = Vec::new();
    let mut seen = HashSet::new();
    source.for_each(&mut |item| {
        if let Ok(e) = item {
            if let Some(Ok(StackEvent::KeyDef { key, ts, frames })) = stack::decode(e) {
                let id = stack_id(&frames);
                table.add(key, ts, id);
                if seen.insert(id) {
                    stacks.push((id, frames));
                }
            }
        }
        if stop() {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    })?;
    table.finish();
    stacks.sort_by_key(|s| s.0);
    Ok((table, stacks))
}

/// Feeds events to per-CPU streams in runs of [`RUN_EVENTS`], handing out every
/// batch that can no longer change.
pub struct EventDecoder<'k> {
    keys: &'k KeyTable,
    streams: BTreeMap<u16, CpuStream>,
    pending: BTreeMap<u16, Vec<OwnedEvent>>,
    next_index: u32,
    /// Records the source could not read (no CPU known): reported at the end.
    problems: Vec<Problem>,
}

impl<'k> EventDecoder<'k> {
    pub fn new(keys: &'k KeyTable) -> EventDecoder<'k> {
        EventDecoder {
            keys,
            streams: BTreeMap::new(),
            pending: BTreeMap::new(),
            next_index: 0,
            problems: Vec::new(),
        }
    }

    /// Adds one event (or a record the source could not read).
    pub fn add<F: FnMut(Batch)>(
        &mut self,
        item: Result<&crate::etl::Event<'_>, &crate::etl::Error>,
        mut sink: F,
    ) {
        match item {
            Ok(e) => {
                let cpu = e.cpu;
                let run = self.pending.entry(cpu).or_default();
                run.push(OwnedEvent::from_event(e));
                if run.len() >= RUN_EVENTS {
                    let run = std::mem::take(run);
                    self.feed(cpu, run, &mut sink);
                }
            }
            Err(err) => self.problems.push(Problem::from(err)),
        }
    }

    fn feed<F: FnMut(Batch)>(&mut self, cpu: u16, run: Vec<OwnedEvent>, sink: &mut F) {
        let index = self.next_index;
        self.next_index = self.next_index.saturating_add(1);
        let stream = self.streams.entry(cpu).or_default();
        let released = stream.feed_events(index, run.iter().map(|e| Ok(e.event())), self.keys);
        if let Some(b) = released {
            sink(b);
        }
    }

    /// Feeds every run still pending to its stream (a live recording's checkpoint:
    /// a CPU that logs little would otherwise hold its events back until its run
    /// fills).
    pub fn flush<F: FnMut(Batch)>(&mut self, mut sink: F) {
        let pending = std::mem::take(&mut self.pending);
        for (cpu, run) in pending {
            if !run.is_empty() {
                self.feed(cpu, run, &mut sink);
            }
        }
    }

    /// Ends the capture: the runs still pending, then every stream's last batch, then
    /// the unreadable records.
    pub fn finish<F: FnMut(Batch)>(mut self, mut sink: F) {
        let pending = std::mem::take(&mut self.pending);
        for (cpu, run) in pending {
            if !run.is_empty() {
                self.feed(cpu, run, &mut sink);
            }
        }
        let keys = self.keys;
        let mut last: Vec<Batch> = self
            .streams
            .values_mut()
            .filter_map(|s| s.finish(keys))
            .collect();
        last.sort_by_key(|b| b.buffer_index);
        for b in last {
            sink(b);
        }
        if !self.problems.is_empty() {
            let n = self.problems.len() as u64;
            let mut b = Batch {
                buffer_index: u32::MAX,
                problems: std::mem::take(&mut self.problems),
                ..Batch::default()
            };
            b.stats.bad_records = n;
            sink(b);
        }
    }
}

/// Opens a fresh source over the same capture (each pass reads it from the start).
pub type Open<'o> = dyn FnMut() -> Result<Box<dyn EventSource>, SourceError> + 'o;

/// Decodes a whole capture into one batch, in two passes over fresh sources (key
/// definitions first, then the events): [`crate::heap::capture::decode_file`] for any
/// decoder.
pub fn decode_source(open: &mut Open<'_>) -> Result<Batch, SourceError> {
    let (keys, key_stacks) = key_definitions(open()?.as_mut(), &|| false)?;
    let mut source = open()?;
    let mut all = Batch::default();
    let mut seen: HashSet<i64> = key_stacks.iter().map(|s| s.0).collect();
    all.stacks.extend(key_stacks);
    let mut add = |mut one: Batch| {
        all.rows.append(&mut one.rows);
        for s in one.stacks.drain(..) {
            if seen.insert(s.0) {
                all.stacks.push(s);
            }
        }
        all.rundown.append(&mut one.rundown);
        all.problems.append(&mut one.problems);
        all.stats.add(&one.stats);
    };
    let mut d = EventDecoder::new(&keys);
    source.for_each(&mut |item| {
        d.add(item, &mut add);
        ControlFlow::Continue(())
    })?;
    d.finish(&mut add);
    Ok(all)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::{HeapdbSource, Remapped};
    use crate::etl::{EtlFile, EtlReader};
    use crate::heap::capture::{decode_file, index_by_key, HeapRow};
    use crate::synth::{HeapHeader, Options, PointerMode, StackMode};
    use std::io::Cursor;

    fn capture(opts: &Options) -> Vec<u8> {
        let mut out = Cursor::new(Vec::new());
        crate::synth::write_capture(&mut out, opts, 0).unwrap();
        out.into_inner()
    }

    fn heapdb(bytes: &[u8]) -> HeapdbSource<Cursor<Vec<u8>>> {
        HeapdbSource::new(EtlReader::new(Cursor::new(bytes.to_vec()), bytes.len() as u64).unwrap())
    }

    /// Rows as comparable text: the event, its stack, and the event its moving-ReAlloc
    /// link points at (row keys differ between the two pipelines, their targets not).
    fn rows(b: &Batch, zero_offsets: bool) -> Vec<String> {
        let index = index_by_key(&b.rows);
        let mut v: Vec<String> = b
            .rows
            .iter()
            .map(|r: &HeapRow| {
                let link = r
                    .realloc_link
                    .and_then(|k| index.get(&k))
                    .map(|&i| b.rows[i].event.info)
                    .map(|mut info| {
                        if zero_offsets {
                            info.offset = 0;
                        }
                        format!("{info:?}")
                    });
                let mut event = r.event.clone();
                if zero_offsets {
                    event.info.offset = 0;
                }
                format!("{event:?} {:?} {link:?}", r.stack)
            })
            .collect();
        v.sort();
        v
    }

    fn check(opts: &Options) {
        let bytes = capture(opts);
        let want = decode_file(&EtlFile::parse(&bytes).unwrap());
        assert!(want.rows.len() > 1000, "{}", want.rows.len());
        let mut via_reader =
            || -> Result<Box<dyn EventSource>, SourceError> { Ok(Box::new(heapdb(&bytes))) };
        let mut via_etw_mapping = || -> Result<Box<dyn EventSource>, SourceError> {
            Ok(Box::new(Remapped::new(heapdb(&bytes))))
        };
        for (open, etw) in [
            (&mut via_reader as &mut Open<'_>, false),
            (&mut via_etw_mapping as &mut Open<'_>, true),
        ] {
            let got = decode_source(open).unwrap();
            assert_eq!(got.stats, want.stats, "{opts:?}");
            // ETW's records have no file offset.
            assert_eq!(rows(&got, etw), rows(&want, etw), "{opts:?}");
            let mut s1 = got.stacks.clone();
            let mut s2 = want.stacks.clone();
            s1.sort();
            s2.sort();
            assert_eq!(s1, s2);
            let r = |b: &Batch| {
                let mut v: Vec<String> = b.rundown.iter().map(|r| format!("{r:?}")).collect();
                v.sort();
                v
            };
            assert_eq!(r(&got), r(&want));
            assert_eq!(got.problems, want.problems);
        }
    }

    #[test]
    fn plain_stacks_and_mixed_pointers_decode_as_the_buffer_pipeline() {
        check(&Options {
            events_per_file: 8000,
            buffer_size: 8192,
            cpus: 3,
            stacks: StackMode::Plain,
            pointer_mode: PointerMode::Mixed,
            ..Default::default()
        });
    }

    #[test]
    fn cached_stacks_decode_as_the_buffer_pipeline() {
        check(&Options {
            events_per_file: 8000,
            buffer_size: 8192,
            cpus: 2,
            stacks: StackMode::Keyed,
            ..Default::default()
        });
    }

    #[test]
    fn classic_and_event_header_heap_records_decode_as_the_buffer_pipeline() {
        for heap_header in [HeapHeader::Classic, HeapHeader::Event] {
            check(&Options {
                events_per_file: 5000,
                buffer_size: 8192,
                cpus: 2,
                stacks: StackMode::Plain,
                heap_header,
                ..Default::default()
            });
        }
    }
}
