//! Expands the inputs of `heapdb ingest` (files, directories searched recursively,
//! glob patterns, `.zip`/`.diagsession` archives) into a sorted list of captures.
//!
//! Directory links are followed once per directory (by device and inode), so a link
//! loop cannot make the walk endless; a file reached twice is read once. Only regular
//! files are read: a FIFO or a device would block or never end.

use std::collections::HashSet;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// Largest member of an archive heapdb reads: a declared size above it is not a
/// capture but a zip bomb (or a corrupt directory entry).
pub const MAX_MEMBER_BYTES: u64 = 1 << 40;
/// Largest compression ratio believed for a member of more than 1 GiB: real captures
/// compress 5–20×, half-empty buffers up to a few hundred times.
pub const MAX_MEMBER_RATIO: u64 = 2000;

/// One capture to ingest.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Input {
    /// A capture file.
    File(PathBuf),
    /// A capture inside a ZIP archive (a `.diagsession` is one): read from the
    /// archive, never unpacked to disk.
    Member {
        archive: PathBuf,
        index: usize,
        name: String,
        size: u64,
    },
    /// An input that is named but cannot be read as a capture (a corrupt archive, a
    /// member whose declared size is absurd): recorded as a failure.
    Unusable { path: String, message: String },
}

impl Input {
    /// The name messages and the `captures.path` column use: `archive.zip!inner.etl`
    /// for an archive member.
    pub fn display(&self) -> String {
        match self {
            Input::File(p) => p.display().to_string(),
            Input::Member { archive, name, .. } => format!("{}!{name}", archive.display()),
            Input::Unusable { path, .. } => path.clone(),
        }
    }

    /// The last component of the name.
    pub fn file_name(&self) -> String {
        match self {
            Input::File(p) => p
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or_default(),
            Input::Member { name, .. } => {
                name.rsplit(['/', '\\']).next().unwrap_or(name).to_string()
            }
            Input::Unusable { path, .. } => {
                path.rsplit(['/', '\\']).next().unwrap_or(path).to_string()
            }
        }
    }

    /// Bytes of capture (uncompressed), for progress.
    pub fn size(&self) -> u64 {
        match self {
            Input::File(p) => std::fs::metadata(p).map(|m| m.len()).unwrap_or(0),
            Input::Member { size, .. } => *size,
            Input::Unusable { .. } => 0,
        }
    }

    fn sort_key(&self) -> String {
        self.display()
    }
}

/// An input opened for one pass: the stream, its length, and what identifies the
/// version of the file that was opened (to notice a file that changes between passes).
pub struct Opened {
    pub reader: Box<dyn Read + Send>,
    pub len: u64,
    pub version: Option<(u64, Option<SystemTime>)>,
}

impl Input {
    /// Opens the capture for one pass.
    pub fn open(&self) -> std::io::Result<Opened> {
        match self {
            Input::File(path) => {
                let (file, meta) = crate::etl::open_file(path)?;
                Ok(Opened {
                    reader: Box::new(file),
                    len: meta.len(),
                    version: Some((meta.len(), meta.modified().ok())),
                })
            }
            Input::Member {
                archive,
                index,
                size,
                ..
            } => {
                let (file, meta) = crate::etl::open_file(archive)?;
                let version = Some((meta.len(), meta.modified().ok()));
                let zip = zip::ZipArchive::new(file).map_err(std::io::Error::other)?;
                let member = MemberReader::new(zip, *index)?;
                Ok(Opened {
                    reader: Box::new(member),
                    len: *size,
                    version,
                })
            }
            Input::Unusable { message, .. } => Err(std::io::Error::other(message.clone())),
        }
    }
}

/// A member of a ZIP archive as a stream. The `zip` crate's member reader borrows
/// its archive, so a thread owns both and hands out decompressed chunks through a
/// bounded channel (memory stays at a few chunks); dropping the reader stops it.
struct MemberReader {
    rx: std::sync::mpsc::Receiver<std::io::Result<Vec<u8>>>,
    buf: Vec<u8>,
    at: usize,
}

/// Decompressed bytes per chunk.
const MEMBER_CHUNK: usize = 4 << 20;

impl MemberReader {
    fn new(mut zip: zip::ZipArchive<std::fs::File>, index: usize) -> std::io::Result<MemberReader> {
        let (tx, rx) = std::sync::mpsc::sync_channel(2);
        std::thread::Builder::new()
            .name("heapdb-unzip".into())
            .spawn(move || {
                let mut member = match zip.by_index(index) {
                    Ok(m) => m,
                    Err(e) => {
                        let _ = tx.send(Err(std::io::Error::other(e)));
                        return;
                    }
                };
                loop {
                    let mut chunk = Vec::with_capacity(MEMBER_CHUNK);
                    match (&mut member)
                        .take(MEMBER_CHUNK as u64)
                        .read_to_end(&mut chunk)
                    {
                        Ok(0) => return,
                        Ok(_) => {
                            if tx.send(Ok(chunk)).is_err() {
                                return; // the reader was dropped
                            }
                        }
                        Err(e) => {
                            // The bytes before the error first, so it is reported where
                            // it happened (a bad checksum: at the member's end).
                            if !chunk.is_empty() && tx.send(Ok(chunk)).is_err() {
                                return;
                            }
                            let _ = tx.send(Err(e));
                            return;
                        }
                    }
                }
            })?;
        Ok(MemberReader {
            rx,
            buf: Vec::new(),
            at: 0,
        })
    }
}

impl Read for MemberReader {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        if self.at == self.buf.len() {
            match self.rx.recv() {
                Ok(chunk) => {
                    self.buf = chunk?;
                    self.at = 0;
                }
                Err(_) => return Ok(0), // the member ended
            }
        }
        let n = out.len().min(self.buf.len() - self.at);
        out[..n].copy_from_slice(&self.buf[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

/// An input that names nothing usable (printed, not stored).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadInput {
    pub input: String,
    pub message: String,
}

/// What the inputs expand to.
#[derive(Debug, Default)]
pub struct Discovered {
    /// Sorted by name (so ids are the same on every run over the same inputs).
    pub inputs: Vec<Input>,
    pub bad: Vec<BadInput>,
    /// Non-regular files (FIFOs, sockets, devices) named like captures inside the
    /// directories walked: skipped.
    pub skipped_non_regular: usize,
    /// Archives inside the directories walked that hold no `.etl`: skipped.
    pub skipped_archives: usize,
    /// Directory links that lead back to a directory already walked: the first one
    /// found, and how many.
    pub loops: Option<(PathBuf, PathBuf)>,
    pub loop_count: usize,
}

fn has_ext(p: &Path, exts: &[&str]) -> bool {
    p.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| exts.iter().any(|x| e.eq_ignore_ascii_case(x)))
}

fn is_etl(p: &Path) -> bool {
    has_ext(p, &["etl"])
}

/// `.zip`, and Visual Studio's `.diagsession` (a ZIP package of the session's files).
pub fn is_archive(p: &Path) -> bool {
    has_ext(p, &["zip", "diagsession"])
}

/// Identity of a file or directory: (device, inode) where the platform has them.
fn identity(meta: &std::fs::Metadata, path: &Path) -> (u64, u64, Option<PathBuf>) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let _ = path;
        (meta.dev(), meta.ino(), None)
    }
    #[cfg(not(unix))]
    {
        let _ = meta;
        (0, 0, std::fs::canonicalize(path).ok())
    }
}

struct Walker {
    out: Discovered,
    dirs: HashSet<(u64, u64, Option<PathBuf>)>,
    files: HashSet<(u64, u64, Option<PathBuf>)>,
}

impl Walker {
    fn take_file(&mut self, p: PathBuf, meta: &std::fs::Metadata, explicit: bool) {
        if !self.files.insert(identity(meta, &p)) {
            return; // the same file, reached again (a link, or named twice)
        }
        if is_archive(&p) {
            let before = self.out.inputs.len();
            expand_archive(&p, &mut self.out.inputs);
            if self.out.inputs.len() == before {
                if explicit {
                    self.out.bad.push(BadInput {
                        input: p.display().to_string(),
                        message: "archive holds no .etl file".into(),
                    });
                } else {
                    self.out.skipped_archives += 1;
                }
            }
        } else {
            self.out.inputs.push(Input::File(p));
        }
    }

    fn walk(&mut self, dir: &Path, meta: &std::fs::Metadata) {
        if !self.dirs.insert(identity(meta, dir)) {
            return;
        }
        let entries = match std::fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) => {
                self.out.bad.push(BadInput {
                    input: dir.display().to_string(),
                    message: e.to_string(),
                });
                return;
            }
        };
        let mut entries: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
        entries.sort();
        for p in entries {
            // Follows links: a link to a directory is walked (once), to a file taken.
            let Ok(meta) = std::fs::metadata(&p) else {
                continue; // a dangling link inside a directory: nothing to read
            };
            if meta.is_dir() {
                if self.dirs.contains(&identity(&meta, &p)) {
                    self.out.loop_count += 1;
                    if self.out.loops.is_none() {
                        self.out.loops = Some((p.clone(), dir.to_path_buf()));
                    }
                    continue;
                }
                self.walk(&p, &meta);
            } else if is_etl(&p) || is_archive(&p) {
                if meta.is_file() {
                    self.take_file(p, &meta, false);
                } else {
                    self.out.skipped_non_regular += 1;
                }
            }
        }
    }

    fn input(&mut self, input: &str) {
        let p = Path::new(input);
        match std::fs::metadata(p) {
            Ok(m) if m.is_dir() => self.walk(p, &m),
            // A file named explicitly is taken whatever its extension.
            Ok(m) if m.is_file() => self.take_file(p.to_path_buf(), &m, true),
            Ok(m) => self.out.bad.push(BadInput {
                input: input.to_string(),
                message: format!("not a regular file ({})", crate::etl::file_kind(&m)),
            }),
            Err(_) if input.contains(['*', '?', '[']) => self.glob(input),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => self.out.bad.push(BadInput {
                input: input.to_string(),
                message: "no such file or directory".into(),
            }),
            Err(e) => self.out.bad.push(BadInput {
                input: input.to_string(),
                message: e.to_string(),
            }),
        }
    }

    fn glob(&mut self, pattern: &str) {
        match glob::glob(pattern) {
            Ok(paths) => {
                let mut matched = 0;
                for m in paths.flatten() {
                    matched += 1;
                    self.input(&m.to_string_lossy());
                }
                if matched == 0 {
                    self.out.bad.push(BadInput {
                        input: pattern.to_string(),
                        message: "pattern matched no file".into(),
                    });
                }
            }
            Err(e) => self.out.bad.push(BadInput {
                input: pattern.to_string(),
                message: format!("bad pattern: {e}"),
            }),
        }
    }
}

/// The `.etl` members of an archive; an archive that cannot be read becomes one
/// [`Input::Unusable`].
fn expand_archive(path: &Path, out: &mut Vec<Input>) {
    let unusable = |message: String| Input::Unusable {
        path: path.display().to_string(),
        message,
    };
    let archive = std::fs::File::open(path)
        .map_err(|e| e.to_string())
        .and_then(|f| {
            zip::ZipArchive::new(f).map_err(|e| format!("not a readable ZIP archive: {e}"))
        });
    let mut archive = match archive {
        Ok(a) => a,
        Err(m) => {
            out.push(unusable(m));
            return;
        }
    };
    for index in 0..archive.len() {
        let entry = match archive.by_index_raw(index) {
            Ok(e) => e,
            Err(e) => {
                out.push(unusable(format!("archive entry {index}: {e}")));
                continue;
            }
        };
        let name = entry.name().to_string();
        if entry.is_dir() || !is_etl(Path::new(&name)) {
            continue;
        }
        let (size, packed) = (entry.size(), entry.compressed_size());
        let member = format!("{}!{name}", path.display());
        if size > MAX_MEMBER_BYTES || (size > 1 << 30 && size / packed.max(1) > MAX_MEMBER_RATIO) {
            out.push(Input::Unusable {
                path: member,
                message: format!(
                    "declared size of {size} bytes ({packed} compressed) is implausible for a capture; refused (zip bomb guard)"
                ),
            });
            continue;
        }
        out.push(Input::Member {
            archive: path.to_path_buf(),
            index,
            name,
            size,
        });
    }
}

/// Captures to ingest, sorted by name, and what was refused or skipped.
pub fn expand(inputs: &[String]) -> Discovered {
    let mut w = Walker {
        out: Discovered::default(),
        dirs: HashSet::new(),
        files: HashSet::new(),
    };
    for input in inputs {
        w.input(input);
    }
    let mut out = w.out;
    out.inputs.sort_by_key(Input::sort_key);
    out.inputs.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_dirs_and_globs() {
        let d = tempfile::tempdir().unwrap();
        let sub = d.path().join("night1/cpu");
        std::fs::create_dir_all(&sub).unwrap();
        for f in ["a.etl", "b.ETL", "notes.txt"] {
            std::fs::write(d.path().join("night1").join(f), f).unwrap();
        }
        std::fs::write(sub.join("c.etl"), b"c").unwrap();
        std::fs::write(d.path().join("explicit.bin"), b"e").unwrap();
        let root = d.path().display().to_string();
        let found = expand(&[
            format!("{root}/night1"),
            format!("{root}/night1/*.etl"),
            format!("{root}/explicit.bin"),
            format!("{root}/missing.etl"),
            format!("{root}/nothing*.etl"),
        ]);
        // Compared as paths, not strings: Windows prints the separators as `\`.
        let names: Vec<PathBuf> = found
            .inputs
            .iter()
            .map(|i| {
                PathBuf::from(i.display())
                    .strip_prefix(d.path())
                    .unwrap()
                    .to_path_buf()
            })
            .collect();
        assert_eq!(
            names,
            [
                "explicit.bin",
                "night1/a.etl",
                "night1/b.ETL",
                "night1/cpu/c.etl"
            ]
            .map(PathBuf::from)
        );
        assert_eq!(found.bad.len(), 2);
        assert!(found.bad[0].message.contains("no such file"));
        assert!(found.bad[1].message.contains("matched no file"));
    }

    #[cfg(unix)]
    #[test]
    fn links_are_followed_once() {
        let d = tempfile::tempdir().unwrap();
        let caps = d.path().join("caps");
        std::fs::create_dir(&caps).unwrap();
        std::fs::write(caps.join("x.etl"), b"x").unwrap();
        std::os::unix::fs::symlink(&caps, caps.join("self-a")).unwrap();
        std::os::unix::fs::symlink(&caps, caps.join("self-b")).unwrap();
        std::os::unix::fs::symlink(caps.join("x.etl"), caps.join("y.etl")).unwrap();
        let found = expand(&[caps.display().to_string()]);
        assert_eq!(found.inputs, [Input::File(caps.join("x.etl"))]);
        assert_eq!(found.loop_count, 2);
        assert_eq!(
            found.loops,
            Some((caps.join("self-a"), caps.clone())),
            "the first loop, for the message"
        );
    }
}
