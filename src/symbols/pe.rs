//! The identity of a PE image: machine, size, timestamp and the CodeView (RSDS) record
//! that names its PDB. Hand-written, bounds-checked reads like the rest of heapdb.

use super::PdbId;
use crate::etl::bytes::{u16_at, u32_at, u64_at};
use crate::etl::Guid;
use std::path::Path;

const IMAGE_DEBUG_TYPE_CODEVIEW: u32 = 2;
const DEBUG_DIRECTORY_INDEX: usize = 6;

#[derive(Debug, thiserror::Error)]
pub enum PeError {
    #[error("{file}: {source}")]
    Io {
        file: String,
        source: std::io::Error,
    },
    /// `offset` is where the bad or missing field is in the file.
    #[error("{file}not a valid PE image at offset 0x{offset:x}: {what}")]
    Invalid {
        file: String,
        offset: usize,
        what: &'static str,
    },
}

/// The CodeView record: what the image says its PDB is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeView {
    pub guid: Guid,
    pub age: u32,
    /// As the linker wrote it: often a full path of the build machine.
    pub pdb_path: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeSection {
    pub name: String,
    pub rva: u32,
    pub virtual_size: u32,
    pub file_offset: u32,
    pub file_size: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeInfo {
    /// IMAGE_FILE_MACHINE_* (0x8664 x64, 0x14c x86, 0xaa64 ARM64).
    pub machine: u16,
    pub time_date_stamp: u32,
    pub size_of_image: u32,
    pub image_base: u64,
    pub is_64: bool,
    pub sections: Vec<PeSection>,
    /// `None` for an image built without debug information.
    pub codeview: Option<CodeView>,
}

impl PeInfo {
    /// The PDB id to look up for this image.
    pub fn pdb_id(&self) -> Option<PdbId> {
        self.codeview
            .as_ref()
            .map(|cv| PdbId::new(&cv.pdb_path, cv.guid, cv.age))
    }

    /// The file offset holding `rva`, if a section maps it from the file.
    pub fn rva_to_offset(&self, rva: u32) -> Option<usize> {
        self.sections.iter().find_map(|s| {
            let delta = rva.checked_sub(s.rva)?;
            (delta < s.file_size).then(|| s.file_offset as usize + delta as usize)
        })
    }
}

/// Reads the file at `path` and parses it with [`read_pe_info`], naming the file in errors.
pub fn read_pe_file(path: &Path) -> Result<PeInfo, PeError> {
    let file = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|source| PeError::Io {
        file: file.clone(),
        source,
    })?;
    read_pe_info(&bytes).map_err(|e| match e {
        PeError::Invalid { offset, what, .. } => PeError::Invalid {
            file: format!("{file}: "),
            offset,
            what,
        },
        other => other,
    })
}

/// Parses the headers of a PE image held in `b` (the file as on disk).
pub fn read_pe_info(b: &[u8]) -> Result<PeInfo, PeError> {
    let bad = |offset: usize, what: &'static str| PeError::Invalid {
        file: String::new(),
        offset,
        what,
    };
    if b.get(..2) != Some(b"MZ") {
        return Err(bad(0, "no MZ signature"));
    }
    let pe = u32_at(b, 0x3c).ok_or(bad(0x3c, "truncated DOS header"))? as usize;
    if pe.checked_add(4).and_then(|end| b.get(pe..end)) != Some(b"PE\0\0") {
        return Err(bad(pe, "no PE signature"));
    }
    let coff = pe + 4;
    let field16 = |off: usize, what| u16_at(b, off).ok_or(bad(off, what));
    let field32 = |off: usize, what| u32_at(b, off).ok_or(bad(off, what));
    let machine = field16(coff, "truncated COFF header")?;
    let nsections = field16(coff + 2, "truncated COFF header")? as usize;
    let time_date_stamp = field32(coff + 4, "truncated COFF header")?;
    let opt_size = field16(coff + 16, "truncated COFF header")? as usize;
    let opt = coff + 20;
    let is_64 = match field16(opt, "truncated optional header")? {
        0x10b => false,
        0x20b => true,
        _ => return Err(bad(opt, "unknown optional header magic")),
    };
    let size_of_image = field32(opt + 56, "truncated optional header")?;
    let image_base = if is_64 {
        u64_at(b, opt + 24).ok_or(bad(opt + 24, "truncated optional header"))?
    } else {
        u64::from(field32(opt + 28, "truncated optional header")?)
    };
    let (ndirs_off, dirs) = if is_64 {
        (opt + 108, opt + 112)
    } else {
        (opt + 92, opt + 96)
    };

    let sect_table = opt + opt_size;
    let mut sections = Vec::with_capacity(nsections.min(96));
    for i in 0..nsections {
        let s = sect_table + i * 40;
        let raw_name = b.get(s..s + 8).ok_or(bad(s, "truncated section table"))?;
        let name_len = raw_name.iter().position(|&c| c == 0).unwrap_or(8);
        sections.push(PeSection {
            name: String::from_utf8_lossy(raw_name.get(..name_len).unwrap_or(&[])).into_owned(),
            virtual_size: field32(s + 8, "truncated section table")?,
            rva: field32(s + 12, "truncated section table")?,
            file_size: field32(s + 16, "truncated section table")?,
            file_offset: field32(s + 20, "truncated section table")?,
        });
    }

    let mut info = PeInfo {
        machine,
        time_date_stamp,
        size_of_image,
        image_base,
        is_64,
        sections,
        codeview: None,
    };
    let ndirs = field32(ndirs_off, "truncated optional header")? as usize;
    let d = dirs + DEBUG_DIRECTORY_INDEX * 8;
    // The debug directory entry must lie inside the optional header the file declares.
    if ndirs > DEBUG_DIRECTORY_INDEX && d + 8 <= sect_table {
        let rva = field32(d, "truncated data directories")?;
        let size = field32(d + 4, "truncated data directories")? as usize;
        if rva != 0 && size != 0 {
            info.codeview = read_codeview(b, &info, rva, size)?;
        }
    }
    Ok(info)
}

fn read_codeview(
    b: &[u8],
    info: &PeInfo,
    dir_rva: u32,
    dir_size: usize,
) -> Result<Option<CodeView>, PeError> {
    let bad = |offset: usize, what: &'static str| PeError::Invalid {
        file: String::new(),
        offset,
        what,
    };
    let dir = info
        .rva_to_offset(dir_rva)
        .ok_or(bad(0, "debug directory outside every section"))?;
    for i in 0..dir_size / 28 {
        let e = dir + i * 28;
        let kind = u32_at(b, e + 12).ok_or(bad(e, "truncated debug directory"))?;
        if kind != IMAGE_DEBUG_TYPE_CODEVIEW {
            continue;
        }
        let size = u32_at(b, e + 16).ok_or(bad(e, "truncated debug directory"))? as usize;
        let ptr = u32_at(b, e + 24).ok_or(bad(e, "truncated debug directory"))? as usize;
        let rec = b
            .get(ptr..ptr.saturating_add(size))
            .ok_or(bad(ptr, "CodeView record past the end of the file"))?;
        if rec.get(..4) != Some(b"RSDS") {
            // NB10 (VC6-era) records carry no GUID; nothing to look up by.
            continue;
        }
        let guid = Guid::read(rec, 4).ok_or(bad(ptr, "truncated RSDS record"))?;
        let age = u32_at(rec, 20).ok_or(bad(ptr, "truncated RSDS record"))?;
        let (pdb_path, _) = crate::etl::bytes::cstr_at(rec, 24);
        return Ok(Some(CodeView {
            guid,
            age,
            pdb_path,
        }));
    }
    Ok(None)
}
