//! Finding a PDB on disk: plain directories and symbol-store layouts, matched
//! case-insensitively (a store copied from Windows keeps whatever case it had there).

use super::PdbId;
use std::fs;
use std::path::{Path, PathBuf};

/// What a store entry directory said about the PDB, when it was not the file itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreMiss {
    /// No entry for this name/key.
    Absent,
    /// A `file.ptr` with `MSG:` text: the store knows the file but does not have it.
    Message(String),
    /// A `file.ptr` whose `PATH:` target does not exist.
    DanglingPointer(PathBuf),
    /// Only a compressed (`.pd_`, CAB) copy is there, which heapdb does not expand.
    Compressed(PathBuf),
}

/// `dir/name`, or the entry of `dir` whose name equals `name` ignoring case. The exact
/// name is tried first so the common case costs one `stat`.
pub fn child_ci(dir: &Path, name: &str) -> Option<PathBuf> {
    let exact = dir.join(name);
    if exact.exists() {
        return Some(exact);
    }
    let wanted = name.to_lowercase();
    fs::read_dir(dir)
        .ok()?
        .filter_map(Result::ok)
        .find(|e| e.file_name().to_string_lossy().to_lowercase() == wanted)
        .map(|e| e.path())
}

/// Follows `parts` below `root`, each matched case-insensitively.
pub fn descend_ci(root: &Path, parts: &[&str]) -> Option<PathBuf> {
    parts
        .iter()
        .try_fold(root.to_path_buf(), |dir, part| child_ci(&dir, part))
}

/// The extension directories Windows debuggers also search in a plain directory:
/// `pdb` for `x.pdb` (so `dir/symbols/pdb/x.pdb` and `dir/pdb/x.pdb`).
fn ext_of(name: &str) -> Option<&str> {
    let (_, ext) = name.rsplit_once('.')?;
    (!ext.is_empty()).then_some(ext)
}

/// Candidate files for `id` in a plain directory, in the debuggers' order. They still
/// have to be checked against the GUID and age: a plain directory is keyed by name only.
pub fn plain_candidates(dir: &Path, id: &PdbId) -> Vec<PathBuf> {
    let name = id.name.as_str();
    let mut out = Vec::new();
    let mut push = |p: Option<PathBuf>| {
        if let Some(p) = p.filter(|p| p.is_file()) {
            if !out.contains(&p) {
                out.push(p);
            }
        }
    };
    push(child_ci(dir, name));
    if let Some(ext) = ext_of(name) {
        push(descend_ci(dir, &["symbols", ext, name]));
        push(descend_ci(dir, &[ext, name]));
    }
    out
}

/// True when `root` is a two-tier store: `index2.txt` at its root means entries live
/// under a directory named after the first two characters of the file name.
fn is_two_tier(root: &Path) -> bool {
    child_ci(root, "index2.txt").is_some_and(|p| p.is_file())
}

/// Looks `id` up in the store at `root` (`<pdb>/<KEY>/<pdb>`, or two-tier).
pub fn find_in_store(root: &Path, id: &PdbId) -> Result<PathBuf, StoreMiss> {
    let key = id.store_key();
    let name = id.name.as_str();
    let entry = if is_two_tier(root) {
        let prefix: String = name.chars().take(2).collect();
        descend_ci(root, &[&prefix, name, &key])
    } else {
        descend_ci(root, &[name, &key])
    };
    let Some(entry) = entry.filter(|p| p.is_dir()) else {
        return Err(StoreMiss::Absent);
    };
    if let Some(file) = child_ci(&entry, name).filter(|p| p.is_file()) {
        return Ok(file);
    }
    if let Some(ptr) = child_ci(&entry, "file.ptr").filter(|p| p.is_file()) {
        return follow_pointer(root, &ptr);
    }
    let compressed = compressed_name(name);
    match child_ci(&entry, &compressed) {
        Some(p) => Err(StoreMiss::Compressed(p)),
        None => Err(StoreMiss::Absent),
    }
}

/// `x.pdb` → `x.pd_`, the name makecab/symstore give a compressed copy.
fn compressed_name(name: &str) -> String {
    let mut s: String = name.to_string();
    s.pop();
    s.push('_');
    s
}

/// Reads a `file.ptr`: `PATH:<path>` names the real file (absolute, or relative to the
/// store root), `MSG:<text>` says why there is none.
fn follow_pointer(root: &Path, ptr: &Path) -> Result<PathBuf, StoreMiss> {
    let text = fs::read(ptr).map_err(|_| StoreMiss::Absent)?;
    let text = String::from_utf8_lossy(&text);
    let text = text.trim_start_matches('\u{feff}').trim();
    if let Some(target) = strip_prefix_ci(text, "PATH:") {
        let target = target.trim();
        // A pointer written on Windows may use backslashes; on this side they are
        // separators too.
        let native = if std::path::MAIN_SEPARATOR == '/' {
            target.replace('\\', "/")
        } else {
            target.to_string()
        };
        let p = PathBuf::from(native);
        let p = if p.is_absolute() { p } else { root.join(p) };
        return if p.is_file() {
            Ok(p)
        } else {
            Err(StoreMiss::DanglingPointer(p))
        };
    }
    if let Some(msg) = strip_prefix_ci(text, "MSG:") {
        return Err(StoreMiss::Message(msg.trim().to_string()));
    }
    Err(StoreMiss::Message(format!(
        "unreadable file.ptr {}: {:?}",
        ptr.display(),
        text.chars().take(80).collect::<String>()
    )))
}

fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| s.get(prefix.len()..))
        .flatten()
}

/// Where a download for `id` goes in the store at `root`: always the one-tier layout
/// with the name and key as given (lookups are case-insensitive anyway).
pub fn store_destination(root: &Path, id: &PdbId) -> PathBuf {
    root.join(&id.name).join(id.store_key()).join(&id.name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::etl::Guid;

    fn id() -> PdbId {
        let g: Guid = "7a7b3306-77dd-8ac9-4c4c-44205044422e".parse().unwrap();
        PdbId::new("Heapdemo.pdb", g, 1)
    }

    #[test]
    fn pointer_messages_and_paths() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path();
        let entry = root.join("heapdemo.pdb").join(id().store_key());
        fs::create_dir_all(&entry).unwrap();
        fs::write(entry.join("file.ptr"), "MSG: moved to tape").unwrap();
        assert_eq!(
            find_in_store(root, &id()),
            Err(StoreMiss::Message("moved to tape".into()))
        );
        fs::write(entry.join("file.ptr"), "PATH:real\\x.pdb").unwrap();
        assert_eq!(
            find_in_store(root, &id()),
            Err(StoreMiss::DanglingPointer(root.join("real/x.pdb")))
        );
        fs::create_dir_all(root.join("real")).unwrap();
        fs::write(root.join("real/x.pdb"), b"x").unwrap();
        assert_eq!(find_in_store(root, &id()), Ok(root.join("real/x.pdb")));
        fs::remove_file(entry.join("file.ptr")).unwrap();
        fs::write(entry.join("HEAPDEMO.PD_"), b"cab").unwrap();
        match find_in_store(root, &id()) {
            Err(StoreMiss::Compressed(p)) => same_path(&p, &entry.join("HEAPDEMO.PD_")),
            other => panic!("{other:?}"),
        }
    }

    /// The same file: the exact path on Linux (finding the on-disk case is the point),
    /// any case of it on Windows, whose file system ignores case.
    fn same_path(found: &Path, want: &Path) {
        if cfg!(windows) {
            let norm = |p: &Path| p.display().to_string().replace('/', "\\").to_lowercase();
            assert_eq!(norm(found), norm(want));
        } else {
            assert_eq!(found, want);
        }
    }

    #[test]
    fn plain_directory_layouts() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path();
        fs::create_dir_all(root.join("Symbols/PDB")).unwrap();
        fs::write(root.join("Symbols/PDB/HEAPDEMO.PDB"), b"x").unwrap();
        fs::create_dir_all(root.join("pdb")).unwrap();
        fs::write(root.join("pdb/heapdemo.pdb"), b"x").unwrap();
        let found = plain_candidates(root, &id());
        assert_eq!(found.len(), 2);
        for (p, want) in found.iter().zip([
            root.join("Symbols/PDB/HEAPDEMO.PDB"),
            root.join("pdb/heapdemo.pdb"),
        ]) {
            same_path(p, &want);
        }
        assert_eq!(compressed_name("a.pdb"), "a.pd_");
    }
}
