//! Process, thread and image lifetimes of a capture, from its rundown events: a pure
//! function from events to the rows of `processes`, `threads` and `images`.

use super::rows::RundownRow;
use crate::heap::rundown::{ImageInfo, PdbInfo, Phase, Rundown};
use std::collections::{BTreeMap, HashMap, HashSet};

/// One process instance (a pid can be reused within a capture: one row per start).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ProcessRow {
    pub pid: u32,
    pub name: Option<String>,
    pub command_line: Option<String>,
    pub parent_pid: Option<u32>,
    pub session_id: Option<u32>,
    pub unique_key: Option<u64>,
    pub start_ns: Option<i64>,
    pub end_ns: Option<i64>,
    /// 'rundown' (running when the trace started), 'start' (started during it) or
    /// 'heap_events_only' (known only from its heap events).
    pub seen_as: &'static str,
    /// The same process on another night (see `identity::process_identities`); set
    /// when the capture ends.
    pub identity: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThreadRow {
    pub pid: u32,
    pub tid: u32,
    pub start_ns: Option<i64>,
    pub end_ns: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRow {
    pub pid: u32,
    pub base: u64,
    pub size: u64,
    pub path: String,
    /// File name, lowercase.
    pub name: String,
    pub checksum: u32,
    pub timedatestamp: u32,
    pub pdb: Option<PdbInfo>,
    pub load_ns: Option<i64>,
    pub unload_ns: Option<i64>,
}

/// The rundown tables of one capture.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RundownTables {
    /// Sorted by pid, then start.
    pub processes: Vec<ProcessRow>,
    /// Sorted by (pid, tid).
    pub threads: Vec<ThreadRow>,
    /// Sorted by (pid, base).
    pub images: Vec<ImageRow>,
}

/// An image with its load and unload times.
type ImageLife = (ImageInfo, Option<i64>, Option<i64>);

/// Builds the tables. `heap_pids` are the processes seen in heap events: each gets a
/// row even without rundown, so every pid can be joined to a process.
pub fn assemble(rundown: &[RundownRow], heap_pids: &HashSet<u32>) -> RundownTables {
    let mut procs: BTreeMap<u32, Vec<ProcessRow>> = BTreeMap::new();
    let mut threads: BTreeMap<(u32, u32), (Option<i64>, Option<i64>)> = BTreeMap::new();
    let mut images: BTreeMap<(u32, u64), ImageLife> = BTreeMap::new();
    let mut pdbs: HashMap<(u32, u64), PdbInfo> = HashMap::new();
    for r in rundown {
        match &r.item {
            Rundown::Process(p) => {
                let list = procs.entry(p.pid).or_default();
                let fill = |x: &mut ProcessRow| {
                    if x.name.as_deref().is_none_or(str::is_empty) && !p.image_name.is_empty() {
                        x.name = Some(p.image_name.clone());
                    }
                    if x.command_line.as_deref().is_none_or(str::is_empty)
                        && !p.command_line.is_empty()
                    {
                        x.command_line = Some(p.command_line.clone());
                    }
                    x.parent_pid.get_or_insert(p.parent_pid);
                    x.session_id.get_or_insert(p.session_id);
                    x.unique_key.get_or_insert(p.unique_key);
                };
                if p.phase == Phase::Start {
                    let mut x = ProcessRow {
                        pid: p.pid,
                        start_ns: Some(r.time_ns),
                        seen_as: "start",
                        ..ProcessRow::default()
                    };
                    fill(&mut x);
                    list.push(x);
                    continue;
                }
                if list.is_empty() {
                    list.push(ProcessRow {
                        pid: p.pid,
                        seen_as: "rundown",
                        ..ProcessRow::default()
                    });
                }
                if let Some(x) = list.last_mut() {
                    fill(x);
                    if p.phase == Phase::End {
                        x.end_ns = Some(r.time_ns);
                    }
                }
            }
            Rundown::Thread(t) => {
                let e = threads.entry((t.pid, t.tid)).or_default();
                match t.phase {
                    Phase::Start => e.0 = Some(r.time_ns),
                    Phase::End => e.1 = Some(r.time_ns),
                    _ => {}
                }
            }
            Rundown::Image(i) => {
                let e = images
                    .entry((i.pid, i.base))
                    .or_insert_with(|| (i.clone(), None, None));
                match i.phase {
                    Phase::Start => e.1 = Some(r.time_ns),
                    Phase::End => e.2 = Some(r.time_ns),
                    _ => {}
                }
            }
            Rundown::Pdb(p) => {
                pdbs.insert((p.pid, p.base), p.clone());
            }
        }
    }
    for &pid in heap_pids {
        procs.entry(pid).or_insert_with(|| {
            vec![ProcessRow {
                pid,
                seen_as: "heap_events_only",
                ..ProcessRow::default()
            }]
        });
    }
    RundownTables {
        processes: procs.into_values().flatten().collect(),
        threads: threads
            .into_iter()
            .map(|((pid, tid), (start_ns, end_ns))| ThreadRow {
                pid,
                tid,
                start_ns,
                end_ns,
            })
            .collect(),
        images: images
            .into_iter()
            .map(|((pid, base), (i, load_ns, unload_ns))| ImageRow {
                pid,
                base,
                size: i.size,
                name: i
                    .path
                    .rsplit(['\\', '/'])
                    .next()
                    .unwrap_or(&i.path)
                    .to_lowercase(),
                path: i.path,
                checksum: i.checksum,
                timedatestamp: i.timedatestamp,
                pdb: pdbs.remove(&(pid, base)),
                load_ns,
                unload_ns,
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::heap::rundown::{ProcessInfo, ThreadInfo};

    fn process(phase: Phase, pid: u32, name: &str) -> Rundown {
        Rundown::Process(ProcessInfo {
            phase,
            ts_raw: 0,
            unique_key: 0xffff_1000 + pid as u64,
            pid,
            parent_pid: 4,
            session_id: 1,
            exit_status: 0,
            image_name: name.into(),
            command_line: format!("{name} --x"),
        })
    }

    fn at(time_ns: i64, item: Rundown) -> RundownRow {
        RundownRow { time_ns, item }
    }

    #[test]
    fn lifetimes_from_rundown_start_and_end() {
        let thread = |phase, tid| {
            Rundown::Thread(ThreadInfo {
                phase,
                ts_raw: 0,
                pid: 10,
                tid,
            })
        };
        let rows = vec![
            at(100, process(Phase::RundownStart, 10, "a.exe")),
            at(100, thread(Phase::RundownStart, 11)),
            at(150, thread(Phase::Start, 12)),
            at(200, process(Phase::Start, 20, "b.exe")),
            at(300, process(Phase::End, 20, "b.exe")),
            // pid 20 reused by another program.
            at(400, process(Phase::Start, 20, "c.exe")),
            at(500, thread(Phase::End, 12)),
        ];
        let t = assemble(&rows, &HashSet::from([10, 30]));
        type Life<'a> = (u32, Option<&'a str>, Option<i64>, Option<i64>, &'a str);
        let summary: Vec<Life<'_>> = t
            .processes
            .iter()
            .map(|p| (p.pid, p.name.as_deref(), p.start_ns, p.end_ns, p.seen_as))
            .collect();
        assert_eq!(
            summary,
            [
                (10, Some("a.exe"), None, None, "rundown"),
                (20, Some("b.exe"), Some(200), Some(300), "start"),
                (20, Some("c.exe"), Some(400), None, "start"),
                (30, None, None, None, "heap_events_only"),
            ]
        );
        assert_eq!(t.processes[0].command_line.as_deref(), Some("a.exe --x"));
        assert_eq!(
            t.threads,
            [
                ThreadRow {
                    pid: 10,
                    tid: 11,
                    start_ns: None,
                    end_ns: None
                },
                ThreadRow {
                    pid: 10,
                    tid: 12,
                    start_ns: Some(150),
                    end_ns: Some(500)
                },
            ]
        );
    }
}
