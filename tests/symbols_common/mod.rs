//! Helpers of the symbolization tests: the fixtures of fixtures/symbols and what the
//! independent LLVM tools said about them (expected.json, written by build.sh).
#![allow(dead_code)]

use heapdb::etl::Guid;
use heapdb::symbols::PdbId;
use serde_json::Value;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

pub fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/symbols")
}

pub struct Fixture {
    pub arch: &'static str,
    pub dll: PathBuf,
    pub pdb: PathBuf,
    pub expected: Value,
}

impl Fixture {
    pub fn load(arch: &'static str) -> Fixture {
        let dir = fixtures().join(arch);
        let text = std::fs::read_to_string(dir.join("expected.json")).unwrap();
        Fixture {
            arch,
            dll: dir.join("heapdemo.dll"),
            pdb: dir.join("heapdemo.pdb"),
            expected: serde_json::from_str(&text).unwrap(),
        }
    }

    /// The id the DLL's RSDS record holds, as llvm-readobj printed it.
    pub fn id(&self) -> PdbId {
        let pe = &self.expected["pe"];
        let guid: Guid = pe["pdb_guid"].as_str().unwrap().parse().unwrap();
        PdbId::new(
            pe["pdb_name"].as_str().unwrap(),
            guid,
            pe["pdb_age"].as_u64().unwrap() as u32,
        )
    }

    pub fn machine(&self) -> u16 {
        self.expected["pe"]["machine"].as_u64().unwrap() as u16
    }

    /// Every instruction llvm-symbolizer placed in a function.
    pub fn instructions(&self) -> Vec<ExpectedAt> {
        self.expected["instructions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| at(i, "rva"))
            .collect()
    }

    /// Every call instruction: `rva` is the return address, `frames` those of `rva - 1`.
    pub fn call_sites(&self) -> Vec<ExpectedAt> {
        self.expected["call_sites"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| at(c, "return_rva"))
            .collect()
    }

    /// Start RVA of the function whose public symbol undecorates to `name`'s prefix:
    /// found by the containing public symbol (the greatest public start ≤ rva).
    pub fn public_start(&self, rva: u32) -> u32 {
        self.expected["publics"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["rva"].as_u64().unwrap() as u32)
            .filter(|&s| s <= rva)
            .max()
            .unwrap()
    }
}

/// What llvm-symbolizer said at one address.
#[derive(Debug, Clone)]
pub struct ExpectedAt {
    pub rva: u32,
    pub frames: Vec<ExpectedFrame>,
    /// Padding between functions: named, but no line; only the name is compared.
    pub padding: bool,
    /// Lines of several line-table entries at the same address (llvm-pdbutil dump -l):
    /// any of them is a right answer for the outer frame.
    pub outer_line_alternatives: Vec<u32>,
}

fn at(v: &Value, rva_key: &str) -> ExpectedAt {
    ExpectedAt {
        rva: v[rva_key].as_u64().unwrap() as u32,
        frames: frames(&v["frames"]),
        padding: v["padding"].as_bool().unwrap_or(false),
        outer_line_alternatives: v["outer_line_alternatives"]
            .as_array()
            .map(|a| a.iter().map(|l| l.as_u64().unwrap() as u32).collect())
            .unwrap_or_default(),
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpectedFrame {
    pub function: String,
    pub file: Option<String>,
    pub line: Option<u32>,
}

fn frames(v: &Value) -> Vec<ExpectedFrame> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|f| ExpectedFrame {
            function: f["function"].as_str().unwrap().to_string(),
            file: f["file"].as_str().map(str::to_string),
            line: f["line"].as_u64().map(|l| l as u32),
        })
        .collect()
}

/// Copies `src` to `dst`, creating parent directories.
pub fn copy_to(src: &Path, dst: &Path) {
    std::fs::create_dir_all(dst.parent().unwrap()).unwrap();
    std::fs::copy(src, dst).unwrap();
}

/// The bytes of MSF stream `index` of a PDB image, as (file offset, length) pieces:
/// enough of the MSF 7.00 layout to patch a field of a stream in a copy.
pub fn msf_stream_blocks(pdb: &[u8], index: usize) -> Vec<usize> {
    let u32_at = |off: usize| u32::from_le_bytes(pdb[off..off + 4].try_into().unwrap()) as usize;
    let block_size = u32_at(32);
    let dir_bytes = u32_at(44);
    let block_map = u32_at(52);
    // The directory's own blocks are listed at block_map; it is small here (one block).
    let dir_blocks = dir_bytes.div_ceil(block_size);
    let mut dir = Vec::new();
    for i in 0..dir_blocks {
        let b = u32_at(block_map * block_size + i * 4);
        dir.extend_from_slice(&pdb[b * block_size..(b + 1) * block_size]);
    }
    let d = |off: usize| u32::from_le_bytes(dir[off..off + 4].try_into().unwrap()) as usize;
    let nstreams = d(0);
    let sizes: Vec<usize> = (0..nstreams).map(|i| d(4 + i * 4)).collect();
    let mut pos = 4 + nstreams * 4;
    for (i, &size) in sizes.iter().enumerate() {
        let size = if size == u32::MAX as usize { 0 } else { size };
        let n = size.div_ceil(block_size);
        let blocks: Vec<usize> = (0..n).map(|k| d(pos + k * 4) * block_size).collect();
        if i == index {
            return blocks;
        }
        pos += n * 4;
    }
    panic!("no stream {index}");
}

// ---- a symbol server for the tests ----

/// Serves `root` as a symbol store on 127.0.0.1; paths under `/trunc/` answer with a
/// Content-Length larger than the body and close, paths under `/html/` with an HTML
/// page and status 200. Counts requests.
pub fn serve(root: PathBuf) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let count = Arc::new(AtomicUsize::new(0));
    let counter = count.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            counter.fetch_add(1, Ordering::SeqCst);
            let root = root.clone();
            std::thread::spawn(move || answer(stream, &root));
        }
    });
    (base, count)
}

fn answer(mut stream: TcpStream, root: &Path) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut request = String::new();
    if reader.read_line(&mut request).is_err() {
        return;
    }
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
            break;
        }
    }
    let target = request.split_whitespace().nth(1).unwrap_or("/").to_string();
    let (mode, rel) = match target.split_once('/').map(|(_, r)| r) {
        Some(r) if r.starts_with("trunc/") => ("trunc", r.trim_start_matches("trunc/")),
        Some(r) if r.starts_with("html/") => ("html", r.trim_start_matches("html/")),
        Some(r) => ("ok", r.trim_start_matches("sym/")),
        None => ("ok", ""),
    };
    let file = root.join(rel);
    let _ = match (mode, std::fs::read(&file)) {
        ("html", _) => {
            let body = "<html><body>Sign in to continue</body></html>";
            write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            )
        }
        (_, Err(_)) => stream
            .write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"),
        ("trunc", Ok(bytes)) => {
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                bytes.len()
            );
            stream.write_all(&bytes[..bytes.len() / 2])
        }
        (_, Ok(bytes)) => {
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                bytes.len()
            );
            stream.write_all(&bytes)
        }
    };
    let _ = stream.flush();
}
