//! Downloading a PDB from a symbol server (`GET <url>/<pdb>/<KEY>/<pdb>`) into a local
//! store, atomically: the body goes to a temporary file beside the destination, is
//! checked (length, PDB magic), and only then renamed into place, so an interrupted or
//! bad download never leaves a file a later lookup would take for the PDB.

use super::path::DownloadError;
use super::store::store_destination;
use super::{PdbId, PDB_MAGIC};
use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The URL of `id` on the server at `base`; the name is percent-encoded (PDB names
/// may hold spaces and other characters a URL path cannot).
pub fn pdb_url(base: &str, id: &PdbId) -> String {
    let name = percent_encode(&id.name);
    format!(
        "{}/{name}/{}/{name}",
        base.trim_end_matches('/'),
        id.store_key()
    )
}

fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn agent(timeout: Duration) -> ureq::Agent {
    // Every phase gets the same bound and body reads get it per read, so a server that
    // stops answering costs at most `timeout` per phase, while a large PDB that keeps
    // arriving is never cut off by a total deadline.
    ureq::Agent::config_builder()
        .timeout_resolve(Some(timeout))
        .timeout_connect(Some(timeout))
        .timeout_send_request(Some(timeout))
        .timeout_recv_response(Some(timeout))
        .timeout_per_read(Some(timeout))
        .http_status_as_error(false)
        .user_agent(concat!("heapdb/", env!("CARGO_PKG_VERSION")))
        .build()
        .new_agent()
}

/// Downloads `id` from `base` into the store at `cache`; returns the stored file.
pub fn download(
    base: &str,
    id: &PdbId,
    cache: &Path,
    timeout: Duration,
) -> Result<PathBuf, DownloadError> {
    let url = pdb_url(base, id);
    let transport = |e: ureq::Error| match e {
        ureq::Error::Timeout(_) => DownloadError::Timeout {
            url: url.clone(),
            after: timeout,
        },
        ureq::Error::Io(ref io) if is_timeout(io) => DownloadError::Timeout {
            url: url.clone(),
            after: timeout,
        },
        other => DownloadError::Transport {
            url: url.clone(),
            message: other.to_string(),
        },
    };
    let response = agent(timeout).get(&url).call().map_err(transport)?;
    let status = response.status().as_u16();
    if status == 404 || status == 410 {
        return Err(DownloadError::NotFound { url });
    }
    if status != 200 {
        return Err(DownloadError::Status { url, status });
    }
    let expected_len = response
        .headers()
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());

    let dest = store_destination(cache, id);
    let dir = dest.parent().unwrap_or(cache);
    let cache_err = |path: &Path, source: io::Error| DownloadError::Cache {
        path: path.to_path_buf(),
        source,
    };
    fs::create_dir_all(dir).map_err(|e| cache_err(dir, e))?;
    let tmp = temp_name(dir, &id.name);
    let result = (|| {
        let mut file = fs::File::create(&tmp).map_err(|e| cache_err(&tmp, e))?;
        let mut body = response.into_body().into_reader();
        let got = copy_checked(&mut body, &mut file, &url, &tmp, timeout, expected_len)?;
        if let Some(want) = expected_len {
            if got != want {
                return Err(DownloadError::Truncated {
                    url: url.clone(),
                    expected: Some(want),
                    got,
                });
            }
        }
        file.sync_all().map_err(|e| cache_err(&tmp, e))?;
        fs::rename(&tmp, &dest).map_err(|e| cache_err(&dest, e))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.map(|()| dest)
}

/// Copies the body, checking the PDB magic on the first bytes so an HTML error page
/// served with status 200 is rejected early rather than stored.
fn copy_checked(
    body: &mut impl Read,
    out: &mut fs::File,
    url: &str,
    tmp: &Path,
    timeout: Duration,
    expected: Option<u64>,
) -> Result<u64, DownloadError> {
    let mut buf = vec![0u8; 1 << 16];
    let mut total: u64 = 0;
    let mut head: Vec<u8> = Vec::with_capacity(PDB_MAGIC.len());
    loop {
        let n = match body.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if is_timeout(&e) => {
                return Err(DownloadError::Timeout {
                    url: url.to_string(),
                    after: timeout,
                })
            }
            // A connection closed before Content-Length bytes arrived: ureq reports it
            // as an I/O error; it is a truncated body either way.
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                return Err(DownloadError::Truncated {
                    url: url.to_string(),
                    expected,
                    got: total,
                })
            }
            Err(e) => {
                return Err(DownloadError::Transport {
                    url: url.to_string(),
                    message: e.to_string(),
                })
            }
        };
        let chunk = buf.get(..n).unwrap_or(&[]);
        if head.len() < PDB_MAGIC.len() {
            let take = (PDB_MAGIC.len() - head.len()).min(chunk.len());
            head.extend_from_slice(chunk.get(..take).unwrap_or(&[]));
            if !PDB_MAGIC.starts_with(&head) {
                return Err(DownloadError::NotPdb {
                    url: url.to_string(),
                });
            }
        }
        out.write_all(chunk).map_err(|e| DownloadError::Cache {
            path: tmp.to_path_buf(),
            source: e,
        })?;
        total += n as u64;
    }
    if head.len() < PDB_MAGIC.len() {
        return Err(DownloadError::NotPdb {
            url: url.to_string(),
        });
    }
    Ok(total)
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
    ) || e.to_string().contains("timeout")
}

/// A name no other download (thread or process) uses, starting with `.` so directory
/// scans that look for the PDB by name never pick it up.
fn temp_name(dir: &Path, name: &str) -> PathBuf {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let n = SEQ.fetch_add(1, Ordering::Relaxed);
    dir.join(format!(".{name}.{}.{n}.partial", std::process::id()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::etl::Guid;

    #[test]
    fn urls_encode_the_name() {
        let g: Guid = "7a7b3306-77dd-8ac9-4c4c-44205044422e".parse().unwrap();
        let id = PdbId::new("My App+1.pdb", g, 10);
        assert_eq!(
            pdb_url("https://sym.example/s/", &id),
            "https://sym.example/s/My%20App%2B1.pdb/7A7B330677DD8AC94C4C44205044422EA/My%20App%2B1.pdb"
        );
    }
}
