//! Labels of captures: `--label KEY=VALUE` and `--label-from-path REGEX` (named groups
//! of a regular expression matched against each capture's path), stored in
//! `capture_labels` and used by reports to select and group captures.

use regex::Regex;

/// The labels an ingest gives its captures.
#[derive(Debug, Clone, Default)]
pub struct Labels {
    fixed: Vec<(String, String)>,
    from_path: Vec<Regex>,
}

/// A label key: letters, digits, `_`, `-` and `.`, as `--param label.KEY=...` reads it.
pub fn valid_key(k: &str) -> bool {
    !k.is_empty()
        && k.len() <= 64
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

/// Parses `KEY=VALUE`.
pub fn parse_label(s: &str) -> Result<(String, String), String> {
    let (k, v) = s
        .split_once('=')
        .ok_or_else(|| format!("expected KEY=VALUE (e.g. build=26100.1234); got {s:?}"))?;
    let k = k.trim();
    if !valid_key(k) {
        return Err(format!(
            "label key {k:?}: use letters, digits, '_', '-' and '.' (at most 64)"
        ));
    }
    if v.is_empty() {
        return Err(format!("label {k:?} has an empty value"));
    }
    Ok((k.to_string(), v.to_string()))
}

impl Labels {
    /// `fixed`: `KEY=VALUE`s; `patterns`: regular expressions with named groups.
    pub fn new(fixed: &[String], patterns: &[String]) -> Result<Labels, String> {
        let mut l = Labels::default();
        for f in fixed {
            let (k, v) = parse_label(f)?;
            l.fixed.retain(|(x, _)| *x != k);
            l.fixed.push((k, v));
        }
        for p in patterns {
            let re = Regex::new(p).map_err(|e| format!("--label-from-path {p:?}: {e}"))?;
            let names: Vec<&str> = re.capture_names().flatten().collect();
            if names.is_empty() {
                return Err(format!(
                    "--label-from-path {p:?} has no named group: write (?P<build>\\d+) to make a label 'build'"
                ));
            }
            if let Some(bad) = names.iter().find(|n| !valid_key(n)) {
                return Err(format!(
                    "--label-from-path {p:?}: group name {bad:?} is not a valid label key"
                ));
            }
            l.from_path.push(re);
        }
        Ok(l)
    }

    pub fn is_empty(&self) -> bool {
        self.fixed.is_empty() && self.from_path.is_empty()
    }

    /// The labels of the capture at `path` (as given to the ingest; an archive member
    /// reads `archive.zip!inner.etl`), sorted by key, and the patterns that did not
    /// match it. `--label` wins over a label taken from the path.
    pub fn for_path(&self, path: &str) -> (Vec<(String, String)>, Vec<String>) {
        let mut out: Vec<(String, String)> = Vec::new();
        let mut missed = Vec::new();
        // On Windows the path is matched with `/` for `\`, so that one expression
        // ('drops/(?P<build>[^/]+)/') works on every platform.
        let path: std::borrow::Cow<'_, str> = if cfg!(windows) {
            path.replace('\\', "/").into()
        } else {
            path.into()
        };
        let path = path.as_ref();
        for re in &self.from_path {
            match re.captures(path) {
                Some(c) => {
                    for name in re.capture_names().flatten() {
                        if let Some(m) = c.name(name) {
                            if !m.as_str().is_empty() {
                                out.retain(|(k, _)| k != name);
                                out.push((name.to_string(), m.as_str().to_string()));
                            }
                        }
                    }
                }
                None => missed.push(re.as_str().to_string()),
            }
        }
        for (k, v) in &self.fixed {
            out.retain(|(x, _)| x != k);
            out.push((k.clone(), v.clone()));
        }
        out.sort();
        (out, missed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_from_flags_and_paths() {
        let l = Labels::new(
            &["host=lab-7".into(), "branch=main".into()],
            &[r"nightly/(?P<build>\d+\.\d+)/(?P<branch>[^/]+)/".into()],
        )
        .unwrap();
        let (v, missed) = l.for_path("/drops/nightly/26100.1234/release/heap.etl");
        assert!(missed.is_empty());
        assert_eq!(
            v,
            [
                ("branch".into(), "main".into()), // --label wins
                ("build".into(), "26100.1234".into()),
                ("host".into(), "lab-7".into()),
            ]
        );
        let (v, missed) = l.for_path("/tmp/other.etl");
        assert_eq!(v.len(), 2);
        assert_eq!(missed.len(), 1);
    }

    #[test]
    fn bad_labels_are_refused() {
        assert!(parse_label("build").is_err());
        assert!(parse_label("bu ild=1").is_err());
        assert!(parse_label("build=").is_err());
        assert!(Labels::new(&[], &["(\\d+)".into()]).is_err());
        assert!(Labels::new(&[], &["(?P<x>".into()]).is_err());
        assert_eq!(
            parse_label("a.b=c=d").unwrap(),
            ("a.b".into(), "c=d".into())
        );
    }
}
