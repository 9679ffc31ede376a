//! Expands the inputs of `heapdb ingest`: files, directories (recursively, `*.etl`) and
//! glob patterns, into a sorted, de-duplicated list of files.

use std::path::{Path, PathBuf};

/// An input that names nothing usable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadInput {
    pub input: String,
    pub message: String,
}

fn is_etl(p: &Path) -> bool {
    p.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("etl"))
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>, bad: &mut Vec<BadInput>) {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            bad.push(BadInput {
                input: dir.display().to_string(),
                message: e.to_string(),
            });
            return;
        }
    };
    for entry in entries.flatten() {
        let p = entry.path();
        match entry.file_type() {
            Ok(t) if t.is_dir() => walk(&p, out, bad),
            Ok(t) if t.is_file() && is_etl(&p) => out.push(p),
            Ok(t) if t.is_symlink() => {
                if p.is_dir() {
                    walk(&p, out, bad);
                } else if p.is_file() && is_etl(&p) {
                    out.push(p);
                }
            }
            _ => {}
        }
    }
}

/// Files to ingest, sorted by path (so ids are the same on every run over the same
/// inputs), and the inputs that matched nothing.
pub fn expand(inputs: &[String]) -> (Vec<PathBuf>, Vec<BadInput>) {
    let mut out = Vec::new();
    let mut bad = Vec::new();
    for input in inputs {
        let p = Path::new(input);
        if p.is_dir() {
            walk(p, &mut out, &mut bad);
        } else if p.exists() {
            // A file named explicitly is taken whatever its extension.
            out.push(p.to_path_buf());
        } else if input.contains(['*', '?', '[']) {
            match glob::glob(input) {
                Ok(paths) => {
                    let before = out.len();
                    for m in paths.flatten() {
                        if m.is_dir() {
                            walk(&m, &mut out, &mut bad);
                        } else {
                            out.push(m);
                        }
                    }
                    if out.len() == before {
                        bad.push(BadInput {
                            input: input.clone(),
                            message: "pattern matched no file".into(),
                        });
                    }
                }
                Err(e) => bad.push(BadInput {
                    input: input.clone(),
                    message: format!("bad pattern: {e}"),
                }),
            }
        } else {
            bad.push(BadInput {
                input: input.clone(),
                message: "no such file or directory".into(),
            });
        }
    }
    out.sort();
    out.dedup();
    (out, bad)
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
            std::fs::write(d.path().join("night1").join(f), b"x").unwrap();
        }
        std::fs::write(sub.join("c.etl"), b"x").unwrap();
        std::fs::write(d.path().join("explicit.bin"), b"x").unwrap();
        let root = d.path().display().to_string();
        let (files, bad) = expand(&[
            format!("{root}/night1"),
            format!("{root}/night1/*.etl"),
            format!("{root}/explicit.bin"),
            format!("{root}/missing.etl"),
            format!("{root}/nothing*.etl"),
        ]);
        // Compared as paths, not strings: Windows prints the separators as `\`.
        let names: Vec<&Path> = files
            .iter()
            .map(|p| p.strip_prefix(d.path()).unwrap())
            .collect();
        assert_eq!(
            names,
            [
                "explicit.bin",
                "night1/a.etl",
                "night1/b.ETL",
                "night1/cpu/c.etl"
            ]
            .map(Path::new)
        );
        assert_eq!(bad.len(), 2);
        assert!(bad[0].message.contains("no such file"));
        assert!(bad[1].message.contains("matched no file"));
    }
}
