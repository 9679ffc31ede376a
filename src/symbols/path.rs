//! `_NT_SYMBOL_PATH`-style symbol paths: parsing, and finding a PDB along one (local
//! directories, symbol stores, symbol servers with a download cache).
//!
//! Supported entries (`;`-separated, keywords case-insensitive), see docs/symbols.md:
//! - `DIR`: a plain directory (`DIR/x.pdb`, `DIR/symbols/pdb/x.pdb`, `DIR/pdb/x.pdb`),
//!   also searched as a symbol store;
//! - `srv*[STORE*...]URL` / `symsrv*symsrv.dll*STORE*...*URL`: stores searched in
//!   order, the server asked last, downloads cached in the first store;
//! - `cache*[DIR]`: DIR is searched, and caches downloads of later `srv*` entries
//!   that name no store of their own.

use super::http;
use super::pdb::read_identity;
use super::store::{find_in_store, plain_candidates, StoreMiss};
use super::PdbId;
use std::collections::HashSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

/// Connect / per-phase / per-read timeout of symbol-server requests.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(20);

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Store {
    Local(PathBuf),
    /// An empty element (`srv**URL`): the default cache.
    DefaultCache,
    Http(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    Dir(PathBuf),
    Server(Vec<Store>),
    /// `None`: the default cache.
    Cache(Option<PathBuf>),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("symbol path entry {entry:?}: {reason}")]
pub struct PathError {
    pub entry: String,
    pub reason: &'static str,
}

/// How a lookup may behave.
#[derive(Debug, Clone)]
pub struct LocateOptions {
    /// Never download: search local directories and caches only.
    pub offline: bool,
    /// Bound on connecting and on each wait for data from a server.
    pub timeout: Duration,
    /// Where `srv*URL` entries cache downloads. `None`: [`default_cache_dir`].
    pub default_cache: Option<PathBuf>,
}

impl Default for LocateOptions {
    fn default() -> Self {
        LocateOptions {
            offline: false,
            timeout: DEFAULT_TIMEOUT,
            default_cache: None,
        }
    }
}

/// `$HEAPDB_SYMBOL_CACHE`, else `$XDG_CACHE_HOME/heapdb/symbols`, else
/// `$HOME/.cache/heapdb/symbols`, else `<temp dir>/heapdb-symbols`.
pub fn default_cache_dir() -> PathBuf {
    let var = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    var("HEAPDB_SYMBOL_CACHE")
        .or_else(|| var("XDG_CACHE_HOME").map(|d| d.join("heapdb/symbols")))
        .or_else(|| var("HOME").map(|d| d.join(".cache/heapdb/symbols")))
        .unwrap_or_else(|| std::env::temp_dir().join("heapdb-symbols"))
}

/// Where a PDB was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum How {
    Directory(PathBuf),
    Store(PathBuf),
    Downloaded { url: String },
}

impl fmt::Display for How {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            How::Directory(d) => write!(f, "directory {}", d.display()),
            How::Store(d) => write!(f, "store {}", d.display()),
            How::Downloaded { url } => write!(f, "downloaded from {url}"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located {
    pub path: PathBuf,
    pub how: How,
}

/// Problems that do not stop a lookup; each is reported once per [`SymbolPath`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Warning {
    /// A directory or store of the path does not exist.
    MissingEntry(PathBuf),
    /// A server failed in a way that would fail again (timeout, refused connection,
    /// TLS...): it is not asked again through this `SymbolPath`.
    ServerDisabled { url: String, error: String },
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Warning::MissingEntry(p) => {
                write!(f, "symbol path entry {} does not exist", p.display())
            }
            Warning::ServerDisabled { url, error } => {
                write!(f, "symbol server {url} disabled for this run: {error}")
            }
        }
    }
}

/// Why a download did not give a usable PDB.
#[derive(Debug, thiserror::Error)]
pub enum DownloadError {
    #[error("{url}: not on the server (404)")]
    NotFound { url: String },
    #[error("{url}: HTTP status {status}")]
    Status { url: String, status: u16 },
    #[error("{url}: no answer within {after:?}")]
    Timeout { url: String, after: Duration },
    #[error("{url}: {message}")]
    Transport { url: String, message: String },
    #[error("{url}: body truncated: got {got} bytes of {}", expected.map_or("?".to_string(), |e| e.to_string()))]
    Truncated {
        url: String,
        expected: Option<u64>,
        got: u64,
    },
    #[error("{url}: the server's answer is not a PDB file")]
    NotPdb { url: String },
    #[error("cannot write the download to {path}: {source}")]
    Cache {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl DownloadError {
    /// Failures that say nothing about this PDB but about the server or network: the
    /// server is skipped from then on.
    fn disables_server(&self) -> bool {
        matches!(
            self,
            DownloadError::Timeout { .. } | DownloadError::Transport { .. }
        )
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LocateError {
    #[error("{id}: not found ({})", tried.join("; "))]
    NotFound {
        id: PdbId,
        /// One line per place looked at, saying what was there instead.
        tried: Vec<String>,
        /// Files with the right name but another GUID or age.
        mismatched: Vec<PathBuf>,
        /// Downloads that failed other than by 404.
        failures: Vec<DownloadError>,
    },
}

#[derive(Default)]
struct State {
    warnings: Vec<Warning>,
    reported: HashSet<String>,
    dead_servers: HashSet<String>,
}

pub struct SymbolPath {
    entries: Vec<Entry>,
    state: Mutex<State>,
}

impl fmt::Debug for SymbolPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SymbolPath")
            .field("entries", &self.entries)
            .finish()
    }
}

fn is_url(s: &str) -> bool {
    let l = s.to_ascii_lowercase();
    l.starts_with("http://") || l.starts_with("https://")
}

fn store_of(part: &str) -> Store {
    if part.is_empty() {
        Store::DefaultCache
    } else if is_url(part) {
        Store::Http(part.to_string())
    } else {
        Store::Local(PathBuf::from(part))
    }
}

fn parse_entry(raw: &str) -> Result<Entry, PathError> {
    let err = |reason| PathError {
        entry: raw.to_string(),
        reason,
    };
    let parts: Vec<&str> = raw.split('*').map(str::trim).collect();
    let keyword = parts.first().map(|k| k.to_ascii_lowercase());
    let rest = parts.get(1..).unwrap_or(&[]);
    match keyword.as_deref() {
        _ if parts.len() == 1 => {
            if is_url(raw) {
                return Err(err("a URL must be given as srv*URL"));
            }
            Ok(Entry::Dir(PathBuf::from(raw)))
        }
        Some("srv") => server(rest, raw),
        Some("symsrv") => match rest.split_first() {
            Some((dll, stores)) if !dll.is_empty() => server(stores, raw),
            _ => Err(err(
                "symsrv* needs a DLL name, e.g. symsrv*symsrv.dll*CACHE*URL",
            )),
        },
        Some("cache") => match rest {
            [] | [""] => Ok(Entry::Cache(None)),
            [dir] => Ok(Entry::Cache(Some(PathBuf::from(dir)))),
            _ => Err(err("cache* takes one directory")),
        },
        _ => Err(err("unknown keyword (supported: srv*, symsrv*, cache*)")),
    }
}

fn server(parts: &[&str], raw: &str) -> Result<Entry, PathError> {
    let stores: Vec<Store> = parts.iter().map(|p| store_of(p)).collect();
    let urls = stores
        .iter()
        .filter(|s| matches!(s, Store::Http(_)))
        .count();
    if stores
        .iter()
        .any(|s| matches!(s, Store::Local(p) if p.to_string_lossy().contains("://")))
    {
        return Err(PathError {
            entry: raw.to_string(),
            reason: "only http:// and https:// servers are supported",
        });
    }
    if urls == 0 && stores.is_empty() {
        return Ok(Entry::Server(vec![Store::DefaultCache]));
    }
    Ok(Entry::Server(stores))
}

impl SymbolPath {
    /// Parses a `;`-separated symbol path. Empty entries are skipped; whether entries
    /// exist is checked at lookup time (and reported as warnings).
    pub fn parse(s: &str) -> Result<SymbolPath, PathError> {
        let entries = s
            .split(';')
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .map(parse_entry)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(SymbolPath {
            entries,
            state: Mutex::default(),
        })
    }

    /// `_NT_ALT_SYMBOL_PATH` then `_NT_SYMBOL_PATH`, as the Windows debuggers combine
    /// them; empty when neither is set.
    pub fn from_env() -> Result<SymbolPath, PathError> {
        let parts: Vec<String> = ["_NT_ALT_SYMBOL_PATH", "_NT_SYMBOL_PATH"]
            .iter()
            .filter_map(|k| std::env::var(k).ok())
            .collect();
        SymbolPath::parse(&parts.join(";"))
    }

    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// Warnings gathered since the last call (each problem is reported only once per
    /// `SymbolPath`, however many lookups hit it).
    pub fn take_warnings(&self) -> Vec<Warning> {
        match self.state.lock() {
            Ok(mut s) => std::mem::take(&mut s.warnings),
            Err(_) => Vec::new(),
        }
    }

    fn warn(&self, key: String, w: Warning) {
        if let Ok(mut s) = self.state.lock() {
            if s.reported.insert(key) {
                s.warnings.push(w);
            }
        }
    }

    fn server_dead(&self, url: &str) -> bool {
        self.state
            .lock()
            .map(|s| s.dead_servers.contains(url))
            .unwrap_or(false)
    }

    /// Finds the PDB for `id` along the path, downloading it when a server entry has
    /// it (unless `opts.offline`). Plain-directory candidates are checked against the
    /// GUID and age; store entries are trusted by their key (the caller's
    /// [`super::PdbSymbols::open`] checks again).
    pub fn locate(&self, id: &PdbId, opts: &LocateOptions) -> Result<Located, LocateError> {
        let mut s = Search {
            path: self,
            id,
            opts,
            tried: Vec::new(),
            mismatched: Vec::new(),
            failures: Vec::new(),
        };
        let default_cache = || opts.default_cache.clone().unwrap_or_else(default_cache_dir);
        if !id.has_plain_name() {
            return Err(LocateError::NotFound {
                id: id.clone(),
                tried: vec![format!(
                    "{:?} is not a plain file name: not looked up",
                    id.name
                )],
                mismatched: Vec::new(),
                failures: Vec::new(),
            });
        }
        let mut cache_for_servers: Option<PathBuf> = None;
        for entry in &self.entries {
            let found = match entry {
                Entry::Dir(dir) => s.directory(dir),
                Entry::Cache(dir) => {
                    let dir = dir.clone().unwrap_or_else(default_cache);
                    cache_for_servers = Some(dir.clone());
                    s.store(&dir, false)
                }
                Entry::Server(stores) => {
                    let downstream = stores.iter().find_map(|st| match st {
                        Store::Local(p) => Some(p.clone()),
                        Store::DefaultCache => Some(default_cache()),
                        Store::Http(_) => None,
                    });
                    let cache = downstream
                        .or_else(|| cache_for_servers.clone())
                        .unwrap_or_else(default_cache);
                    s.server(stores, &cache, &default_cache)
                }
            };
            if let Some(found) = found {
                return Ok(found);
            }
        }
        Err(LocateError::NotFound {
            id: id.clone(),
            tried: s.tried,
            mismatched: s.mismatched,
            failures: s.failures,
        })
    }
}

/// One lookup's progress along the path.
struct Search<'a> {
    path: &'a SymbolPath,
    id: &'a PdbId,
    opts: &'a LocateOptions,
    tried: Vec<String>,
    mismatched: Vec<PathBuf>,
    failures: Vec<DownloadError>,
}

impl Search<'_> {
    fn missing(&mut self, dir: &Path) {
        self.tried
            .push(format!("{}: does not exist", dir.display()));
        self.path.warn(
            format!("missing:{}", dir.display()),
            Warning::MissingEntry(dir.to_path_buf()),
        );
    }

    fn directory(&mut self, dir: &Path) -> Option<Located> {
        if !dir.is_dir() {
            self.missing(dir);
            return None;
        }
        for candidate in plain_candidates(dir, self.id) {
            match read_identity(&candidate) {
                Ok(ident) if ident.guid == self.id.guid && ident.matching_age() == self.id.age => {
                    return Some(Located {
                        path: candidate,
                        how: How::Directory(dir.to_path_buf()),
                    });
                }
                Ok(ident) => {
                    self.tried.push(format!(
                        "{}: another build ({{{}}} age {})",
                        candidate.display(),
                        ident.guid,
                        ident.matching_age()
                    ));
                    self.mismatched.push(candidate);
                }
                Err(e) => self.tried.push(e.to_string()),
            }
        }
        // People point _NT_SYMBOL_PATH at a store without srv*: the debuggers accept it.
        self.store(dir, true)
    }

    /// `quiet_missing`: the directory was already reported (plain search) or is a cache
    /// that downloads will create.
    fn store(&mut self, root: &Path, quiet_missing: bool) -> Option<Located> {
        if !root.is_dir() {
            if !quiet_missing {
                self.tried
                    .push(format!("{}: does not exist", root.display()));
            }
            return None;
        }
        match find_in_store(root, self.id) {
            Ok(path) => Some(Located {
                path,
                how: How::Store(root.to_path_buf()),
            }),
            Err(miss) => {
                let what = match miss {
                    StoreMiss::Absent => "not in store".to_string(),
                    StoreMiss::Message(m) => format!("file.ptr says: {m}"),
                    StoreMiss::DanglingPointer(p) => {
                        format!("file.ptr points to missing {}", p.display())
                    }
                    StoreMiss::Compressed(p) => format!(
                        "only a compressed copy {} (not supported: expand it with cabextract)",
                        p.display()
                    ),
                };
                self.tried.push(format!("{}: {what}", root.display()));
                None
            }
        }
    }

    fn server(
        &mut self,
        stores: &[Store],
        cache: &Path,
        default_cache: &dyn Fn() -> PathBuf,
    ) -> Option<Located> {
        for (i, st) in stores.iter().enumerate() {
            let found = match st {
                // The first store is the download cache: that it does not exist yet
                // is normal. Later ones are real misconfigurations.
                Store::Local(dir) if i > 0 && !dir.is_dir() => {
                    self.missing(dir);
                    None
                }
                Store::Local(dir) => self.store(dir, true),
                Store::DefaultCache => self.store(&default_cache(), true),
                Store::Http(url) => self.download(url, cache),
            };
            if found.is_some() {
                return found;
            }
        }
        None
    }

    fn download(&mut self, url: &str, cache: &Path) -> Option<Located> {
        if self.opts.offline {
            self.tried.push(format!("{url}: offline, not asked"));
            return None;
        }
        if self.path.server_dead(url) {
            self.tried
                .push(format!("{url}: disabled after an earlier failure"));
            return None;
        }
        match http::download(url, self.id, cache, self.opts.timeout) {
            Ok(path) => Some(Located {
                path,
                how: How::Downloaded {
                    url: http::pdb_url(url, self.id),
                },
            }),
            Err(e) => {
                self.tried.push(e.to_string());
                if e.disables_server() {
                    if let Ok(mut s) = self.path.state.lock() {
                        s.dead_servers.insert(url.to_string());
                    }
                    self.path.warn(
                        format!("server:{url}"),
                        Warning::ServerDisabled {
                            url: url.to_string(),
                            error: e.to_string(),
                        },
                    );
                }
                if !matches!(e, DownloadError::NotFound { .. }) {
                    self.failures.push(e);
                }
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_debuggers_syntax() {
        let p = SymbolPath::parse(
            " C:\\syms ; SRV*/c*https://msdl.microsoft.com/download/symbols;;\
             symsrv*symsrv.dll*/d*http://x/s;cache*/e;cache*;srv*http://only;srv**http://y",
        )
        .unwrap();
        assert_eq!(
            p.entries(),
            &[
                Entry::Dir(PathBuf::from("C:\\syms")),
                Entry::Server(vec![
                    Store::Local("/c".into()),
                    Store::Http("https://msdl.microsoft.com/download/symbols".into())
                ]),
                Entry::Server(vec![
                    Store::Local("/d".into()),
                    Store::Http("http://x/s".into())
                ]),
                Entry::Cache(Some("/e".into())),
                Entry::Cache(None),
                Entry::Server(vec![Store::Http("http://only".into())]),
                Entry::Server(vec![Store::DefaultCache, Store::Http("http://y".into())]),
            ]
        );
        assert!(SymbolPath::parse("").unwrap().entries().is_empty());
        for bad in [
            "https://x",
            "foo*bar",
            "symsrv*",
            "srv*/c*ftp://x",
            "cache*a*b",
        ] {
            assert!(SymbolPath::parse(bad).is_err(), "{bad}");
        }
    }
}
