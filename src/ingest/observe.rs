//! How an ingest tells its caller what it is doing, without printing: notes (a file
//! skipped, a bad record, a wait) and progress. The command line draws them; a library
//! user may log them or ignore them ([`Silent`]).

/// How much a note matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// Something was bad and was not (or not entirely) stored.
    Error,
    /// Worth knowing; nothing was lost.
    Warning,
    /// What happened (a duplicate skipped, a phase started).
    Info,
}

/// A line for the user, about a file (and a place in it) or about the whole run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    pub level: Level,
    pub path: Option<String>,
    pub offset: Option<u64>,
    pub text: String,
}

impl Note {
    pub fn new(level: Level, text: impl Into<String>) -> Note {
        Note {
            level,
            path: None,
            offset: None,
            text: text.into(),
        }
    }

    pub fn about(level: Level, path: &str, text: impl Into<String>) -> Note {
        Note {
            path: Some(path.to_string()),
            ..Note::new(level, text)
        }
    }
}

impl std::fmt::Display for Note {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(p) = &self.path {
            write!(f, "{p}: ")?;
        }
        if let Some(o) = self.offset {
            write!(f, "byte offset {o}: ")?;
        }
        f.write_str(&self.text)
    }
}

/// What a run is busy with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Phase {
    /// Reading and storing captures.
    Loading {
        /// 1-based index of the file being read, and the number of files.
        file: usize,
        files: usize,
        name: String,
    },
    /// `heapdb record`: the recording so far.
    Recording {
        /// Since it started.
        millis: u64,
        /// Heap events stored, and parts committed.
        rows: u64,
        parts: u64,
    },
    /// Moving a capture's staged rows into the indexed tables (an append).
    Storing { name: String, rows: u64 },
    /// Building secondary indexes after a bulk load: `done` of `total` built,
    /// `name` is being built.
    Indexes {
        done: usize,
        total: usize,
        name: String,
    },
    /// Symbolizing: `done` of `total` PDBs looked for (`step` "finding") or read
    /// (`step` "reading"); `name` is the last one.
    Symbols {
        step: &'static str,
        done: usize,
        total: usize,
        name: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    pub phase: Phase,
    /// Bytes of input read so far, and in all.
    pub bytes_done: u64,
    pub bytes_total: u64,
    /// Heap events stored so far.
    pub rows: u64,
}

/// Receives the notes and progress of a run (from several threads).
pub trait Observer: Sync {
    fn note(&self, _note: &Note) {}
    fn progress(&self, _progress: &Progress) {}
}

/// An observer that ignores everything.
pub struct Silent;

impl Observer for Silent {}
