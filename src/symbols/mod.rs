//! Symbolization: find the PDB of a module ([`path`]), check that it is the one the
//! image was built with, and turn RVAs into function / file / line / inline frames
//! ([`pdb`]). [`pe`] reads the identity a PE image records for its PDB.
//!
//! The library never prints: problems that do not stop the work (a symbol path entry
//! that does not exist, say) come back as [`path::Warning`]s for the caller to report.
//!
//! Typical use, once per image of a capture:
//!
//! ```no_run
//! use heapdb::symbols::{LocateOptions, PdbId, PdbSymbols, SymbolPath};
//! # fn f(id: PdbId, rvas: &[u32]) -> Result<(), Box<dyn std::error::Error>> {
//! let path = SymbolPath::parse("srv*/var/cache/symbols*https://msdl.microsoft.com/download/symbols")?;
//! let located = path.locate(&id, &LocateOptions::default())?;
//! let mut syms = PdbSymbols::open(&located.path, &id)?;
//! for (depth, &rva) in rvas.iter().enumerate() {
//!     // Every frame but the innermost is a return address: look up the call instead.
//!     let probe = if depth == 0 { rva } else { rva.saturating_sub(1) };
//!     if let Some(resolved) = syms.resolve(probe)? {
//!         let _outer = resolved.outer();
//!     }
//! }
//! # Ok(()) }
//! ```

pub mod demo_module;
mod http;
pub mod names;
pub mod path;
pub mod pdb;
pub mod pe;
mod store;

use crate::etl::Guid;
use std::fmt;

pub use self::path::{
    LocateError, LocateOptions, Located, PathError, SymbolPath, Warning, DEFAULT_TIMEOUT,
};
pub use self::pdb::{NamedFrame, PdbSymbols, Resolved, SymError};
pub use self::pe::{read_pe_info, PeError, PeInfo};

/// What identifies a PDB: the name, GUID and age an image's CodeView (RSDS) record holds.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct PdbId {
    /// The PDB's file name, e.g. `chrome.pdb`. Image records often hold the full path
    /// of the build machine (`D:\build\out\chrome.pdb`): [`PdbId::new`] keeps only the
    /// file name, which is all symbol stores and directories are searched by.
    pub name: String,
    pub guid: Guid,
    pub age: u32,
}

impl PdbId {
    /// Builds an id from an image's record, keeping only the file name of `pdb_path`
    /// (either separator: the path was written on Windows but may have `/` too).
    pub fn new(pdb_path: &str, guid: Guid, age: u32) -> PdbId {
        let name = pdb_path
            .rsplit(['\\', '/'])
            .next()
            .unwrap_or(pdb_path)
            .to_string();
        PdbId { name, guid, age }
    }

    /// False for names that are not a plain file name (empty, `.`, `..`, with a path
    /// separator or NUL): the name comes from the capture and is used to build paths
    /// in stores and caches, so such a name is never looked up or downloaded.
    pub fn has_plain_name(&self) -> bool {
        let n = self.name.as_str();
        !(n.is_empty() || n == "." || n == ".." || n.contains(['/', '\\', '\0']))
    }

    /// The symbol-store key: the GUID as 32 uppercase hex digits in its usual text
    /// order (first three fields little-endian-decoded, as `{...}` prints them),
    /// followed by the age in uppercase hex without leading zeros.
    pub fn store_key(&self) -> String {
        let hex: String = self
            .guid
            .to_string()
            .chars()
            .filter(|c| *c != '-')
            .collect();
        format!("{}{:X}", hex.to_ascii_uppercase(), self.age)
    }
}

impl fmt::Display for PdbId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {{{}}} age {}", self.name, self.guid, self.age)
    }
}

impl fmt::Debug for PdbId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PdbId({self})")
    }
}

/// The first bytes of every PDB (MSF 7.00): checked before a download is accepted.
pub const PDB_MAGIC: &[u8; 32] = b"Microsoft C/C++ MSF 7.00\r\n\x1aDS\0\0\0";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_key_is_guid_text_then_hex_age() {
        let g: Guid = "7a7b3306-77dd-8ac9-4c4c-44205044422e".parse().unwrap();
        let id = PdbId::new(r"C:\src\out\heapdemo.pdb", g, 1);
        assert_eq!(id.name, "heapdemo.pdb");
        assert_eq!(id.store_key(), "7A7B330677DD8AC94C4C44205044422E1");
        let id = PdbId::new("/x/y/heapdemo.pdb", g, 0x1a);
        assert_eq!(id.name, "heapdemo.pdb");
        assert_eq!(id.store_key(), "7A7B330677DD8AC94C4C44205044422E1A");
        assert_eq!(PdbId::new("plain.pdb", g, 0).store_key().len(), 33);
        assert!(PdbId::new("a b.pdb", g, 1).has_plain_name());
        for bad in ["", "..", "x\\..", "C:\\dir\\"] {
            assert!(!PdbId::new(bad, g, 1).has_plain_name(), "{bad:?}");
        }
        let odd = PdbId {
            name: "a/b.pdb".into(),
            guid: g,
            age: 1,
        };
        assert!(!odd.has_plain_name());
    }
}
