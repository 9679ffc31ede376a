//! Reading a PDB: checking it is the one an image was built with, and resolving RVAs to
//! functions, files, lines and inline frames (through `pdb-addr2line`, which caches
//! per-function data, so resolving many addresses of one PDB is cheap once it is open).

use super::{PdbId, PDB_MAGIC};
use crate::etl::Guid;
use pdb_addr2line::pdb::{self as pdbcrate, MachineType, PDB};
use pdb_addr2line::{ContextPdbData, TypeFormatterFlags};
use std::fs::File;
use std::io::{BufReader, Read};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

/// The PDB is read through a buffered file, page by page as the PDB crate asks: no
/// mapping (a file truncated under a mapping faults the process, see the ETL reader),
/// and no whole-file copy (PDBs of large programs are gigabytes).
type Source = BufReader<File>;
type Data = ContextPdbData<'static, 'static, Source>;
type Ctx<'a> = pdb_addr2line::Context<'a, 'static>;

self_cell::self_cell!(
    struct Loaded {
        owner: Data,
        #[not_covariant]
        dependent: Ctx,
    }
);

/// Why a PDB cannot be used. Every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum SymError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: not a PDB (MSF 7.00) file")]
    NotPdb { path: PathBuf },
    #[error("{path}: corrupt or truncated PDB: {message}")]
    Corrupt { path: PathBuf, message: String },
    /// The PDB is fine but belongs to another build of the image: the caller keeps the
    /// frames as module+RVA and reports this once per image.
    #[error("{path}: PDB does not match the image: image wants {{{}}} age {}, PDB is {{{found_guid}}} age {found_age}", expected.guid, expected.age)]
    Mismatch {
        path: PathBuf,
        expected: PdbId,
        found_guid: Guid,
        found_age: u32,
    },
    #[error("{path}: PDB is for machine 0x{pdb:04x}, the image for 0x{image:04x}")]
    WrongArchitecture { path: PathBuf, image: u16, pdb: u16 },
    #[error("{path}: cannot resolve RVA 0x{rva:x}: {message}")]
    Lookup {
        path: PathBuf,
        rva: u32,
        message: String,
    },
}

/// One frame of a resolved address: an inlined function, or the function that holds
/// the code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamedFrame {
    /// Demangled, with argument types and without return type or calling convention,
    /// as llvm-symbolizer prints C++ functions: `JsonWriter::Grow(unsigned __int64)`.
    /// Unlike llvm-symbolizer, C functions get their argument types too
    /// (`heapdemo_init(void * (*)(void *, unsigned __int64))`). Names known only
    /// from public symbols are undecorated. `<unknown>` when the PDB has no name.
    pub function: String,
    /// RVA minus the start of the (outer, non-inlined) function holding the code; the
    /// same for every frame of one address, since inlined code has no start of its own.
    pub function_offset: u32,
    pub file: Option<String>,
    pub line: Option<u32>,
    /// True for every frame but the last.
    pub inlined: bool,
}

/// The frames at one address: inlined functions innermost first, then the function
/// that holds the code (always present, always last).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub frames: Vec<NamedFrame>,
}

impl Resolved {
    /// The non-inlined function holding the code.
    pub fn outer(&self) -> Option<&NamedFrame> {
        self.frames.last()
    }
}

/// What a PDB says it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PdbIdentity {
    pub guid: Guid,
    /// The age in the PDB information stream: bumped by every tool that rewrites the PDB.
    pub info_age: u32,
    /// The age in the DBI stream, the one the linker copies into the image's RSDS
    /// record. It can lag behind `info_age` (e.g. after a tool rewrote the PDB), so
    /// matching uses this one; `None` when the DBI stream has age 0 or is missing.
    pub dbi_age: Option<u32>,
    /// The DBI stream's machine type (an IMAGE_FILE_MACHINE_* value), 0 if unknown.
    pub machine: u16,
}

impl PdbIdentity {
    /// The age an image must record to match this PDB.
    pub fn matching_age(&self) -> u32 {
        self.dbi_age.unwrap_or(self.info_age)
    }
}

/// An open, verified PDB. `Send`, not `Sync`: resolution updates per-function caches.
pub struct PdbSymbols {
    path: PathBuf,
    identity: PdbIdentity,
    x86_names: bool,
    loaded: Loaded,
    poisoned: bool,
}

// Callers symbolize images in parallel, one PdbSymbols per image and thread.
const _: fn() = || {
    fn assert_send<T: Send>() {}
    assert_send::<PdbSymbols>();
};

impl PdbSymbols {
    /// Opens `path` and checks it against the image's `expected` id (GUID and DBI age).
    pub fn open(path: &Path, expected: &PdbId) -> Result<PdbSymbols, SymError> {
        Self::open_for_machine(path, expected, None)
    }

    /// As [`PdbSymbols::open`], also rejecting a PDB whose DBI machine type differs from
    /// the image's `machine` (IMAGE_FILE_MACHINE_*), when both are known.
    pub fn open_for_machine(
        path: &Path,
        expected: &PdbId,
        machine: Option<u16>,
    ) -> Result<PdbSymbols, SymError> {
        let (mut pdb, identity) = open_pdb(path)?;
        if identity.guid != expected.guid || identity.matching_age() != expected.age {
            return Err(SymError::Mismatch {
                path: path.to_path_buf(),
                expected: expected.clone(),
                found_guid: identity.guid,
                found_age: identity.matching_age(),
            });
        }
        if let Some(image) = machine {
            if image != 0 && identity.machine != 0 && image != identity.machine {
                return Err(SymError::WrongArchitecture {
                    path: path.to_path_buf(),
                    image,
                    pdb: identity.machine,
                });
            }
        }
        let corrupt = |message: String| SymError::Corrupt {
            path: path.to_path_buf(),
            message,
        };
        // Last resort: pdb2 and pdb-addr2line index into stream data in places, and a
        // corrupt PDB must become an error, not take the whole ingest down.
        let loaded = catch_unwind(AssertUnwindSafe(|| {
            // Touch the section headers now so a broken section stream fails here.
            pdb.sections().map_err(|e| e.to_string())?;
            let data = ContextPdbData::try_from_pdb(pdb).map_err(|e| e.to_string())?;
            Loaded::try_new(data, |data| {
                let flags =
                    TypeFormatterFlags::default() | TypeFormatterFlags::SPACE_BEFORE_POINTER;
                data.make_context_with_formatter_flags(flags)
                    .map_err(|e| e.to_string())
            })
        }))
        .map_err(|p| corrupt(panic_message(&p)))?
        .map_err(corrupt)?;
        Ok(PdbSymbols {
            path: path.to_path_buf(),
            identity,
            x86_names: identity.machine == 0x14c,
            loaded,
            poisoned: false,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn identity(&self) -> PdbIdentity {
        self.identity
    }

    /// The frames at `rva` (inline frames innermost first, then the function), or
    /// `None` when no function covers it.
    ///
    /// In a stack, every frame but the innermost is a return address: the instruction
    /// after a call, which can belong to the next line or even the next function. Look
    /// up those with [`PdbSymbols::resolve_return_address`] (or `rva - 1` yourself);
    /// which frames are return addresses is the caller's call.
    pub fn resolve(&mut self, rva: u32) -> Result<Option<Resolved>, SymError> {
        self.resolve_inner(rva, rva)
    }

    /// Resolves the call before return address `rva` (looks up `rva - 1`), reporting
    /// `function_offset` from `rva` itself, as debuggers print `function+offset` for a
    /// return address.
    pub fn resolve_return_address(&mut self, rva: u32) -> Result<Option<Resolved>, SymError> {
        match rva.checked_sub(1) {
            Some(probe) => self.resolve_inner(probe, rva),
            None => Ok(None),
        }
    }

    fn resolve_inner(&mut self, probe: u32, shown: u32) -> Result<Option<Resolved>, SymError> {
        let lookup_err = |message: String| SymError::Lookup {
            path: self.path.clone(),
            rva: probe,
            message,
        };
        if self.poisoned {
            return Err(lookup_err(
                "an earlier lookup failed inside the PDB parser".into(),
            ));
        }
        let x86 = self.x86_names;
        let result = catch_unwind(AssertUnwindSafe(|| {
            self.loaded.with_dependent(|_, ctx| {
                let Some(ff) = ctx.find_frames(probe).map_err(|e| e.to_string())? else {
                    return Ok(None);
                };
                let function_offset = shown.wrapping_sub(ff.start_rva);
                let last = ff.frames.len().saturating_sub(1);
                let frames = ff
                    .frames
                    .into_iter()
                    .enumerate()
                    .map(|(i, f)| NamedFrame {
                        // Inlinee names are never decorated; only the outer function
                        // can come from a (decorated) public symbol.
                        function: display_name(f.function.as_deref(), x86 && i == last),
                        function_offset,
                        file: f.file.map(|s| s.into_owned()),
                        line: f.line,
                        inlined: i < last,
                    })
                    .collect();
                Ok(Some(Resolved { frames }))
            })
        }));
        match result {
            Ok(r) => r.map_err(lookup_err),
            Err(p) => {
                self.poisoned = true;
                Err(lookup_err(panic_message(&p)))
            }
        }
    }
}

/// Reads only what identifies `path` (GUID, ages, machine): what a directory search
/// needs to tell the right `x.pdb` from another build's.
pub fn read_identity(path: &Path) -> Result<PdbIdentity, SymError> {
    open_pdb(path).map(|(_, id)| id)
}

fn open_pdb(path: &Path) -> Result<(PDB<'static, Source>, PdbIdentity), SymError> {
    let io = |source| SymError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut file = File::open(path).map_err(io)?;
    let mut magic = [0u8; PDB_MAGIC.len()];
    let got = file.read(&mut magic).map_err(io)?;
    if got < magic.len() || magic != *PDB_MAGIC {
        return Err(SymError::NotPdb {
            path: path.to_path_buf(),
        });
    }
    let corrupt = |message: String| SymError::Corrupt {
        path: path.to_path_buf(),
        message,
    };
    let opened = catch_unwind(AssertUnwindSafe(|| -> Result<_, pdbcrate::Error> {
        let mut pdb = PDB::open(BufReader::with_capacity(64 << 10, file))?;
        let info = pdb.pdb_information()?;
        let dbi = pdb.debug_information()?;
        let (d1, d2, d3, d4) = info.guid.as_fields();
        let machine = match dbi.machine_type()? {
            MachineType::Unknown | MachineType::Invalid => 0,
            m => m as u16,
        };
        let identity = PdbIdentity {
            guid: Guid::from_fields(d1, d2, d3, *d4),
            info_age: info.age,
            dbi_age: dbi.age(),
            machine,
        };
        Ok((pdb, identity))
    }));
    opened
        .map_err(|p| corrupt(panic_message(&p)))?
        .map_err(|e| corrupt(e.to_string()))
}

fn panic_message(p: &Box<dyn std::any::Any + Send>) -> String {
    let what = p
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_default();
    format!("PDB parser failed: {what}")
}

/// Names from procedure records come formatted from type information (with an argument
/// list); names that come only from public symbols are decorated and are undecorated
/// here. `x86_public`: an x86 name that may carry C decoration (`_f`, `_f@12`).
fn display_name(name: Option<&str>, x86_public: bool) -> String {
    let Some(name) = name.filter(|n| !n.is_empty()) else {
        return "<unknown>".to_string();
    };
    if name.contains("long long") {
        // pdb-addr2line spells the 64-bit primitives `long long`; MSVC, DIA, the
        // demangler below and llvm-symbolizer say `__int64`. One spelling for all.
        return name
            .replace("unsigned long long", "unsigned __int64")
            .replace("long long", "__int64");
    }
    if name.starts_with('?') {
        use msvc_demangler::DemangleFlags as F;
        let flags = F::NO_FUNCTION_RETURNS
            | F::NO_MS_KEYWORDS
            | F::NO_ACCESS_SPECIFIERS
            | F::NO_MEMBER_TYPE
            | F::NO_THISTYPE
            | F::NO_CLASS_TYPE
            | F::SPACE_AFTER_COMMA
            | F::SPACE_BEFORE_POINTER
            | F::MS_TYPENAMES;
        if let Ok(d) = msvc_demangler::demangle(name, flags) {
            return d;
        }
    } else if x86_public && !name.contains('(') {
        return undecorate_c(name).to_string();
    }
    name.to_string()
}

/// x86 C names: `_f` (cdecl), `_f@12` (stdcall), `@f@8` (fastcall) → `f`.
fn undecorate_c(name: &str) -> &str {
    let (body, at_suffix) = match name.rsplit_once('@') {
        Some((b, n)) if !n.is_empty() && n.bytes().all(|c| c.is_ascii_digit()) => (b, true),
        _ => (name, false),
    };
    match body.as_bytes().first() {
        Some(b'_') => body.get(1..).unwrap_or(body),
        Some(b'@') if at_suffix => body.get(1..).unwrap_or(body),
        _ if at_suffix => body,
        _ => name,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_names_are_undecorated() {
        assert_eq!(
            display_name(Some("?Grow@JsonWriter@@QEAAX_K@Z"), false),
            "JsonWriter::Grow(unsigned __int64)"
        );
        assert_eq!(display_name(Some("_heapdemo_init"), true), "heapdemo_init");
        assert_eq!(display_name(Some("_CreateFileW@28"), true), "CreateFileW");
        assert_eq!(display_name(Some("@fast@8"), true), "fast");
        assert_eq!(display_name(Some("_keep_on_x64"), false), "_keep_on_x64");
        assert_eq!(display_name(None, false), "<unknown>");
    }
}
