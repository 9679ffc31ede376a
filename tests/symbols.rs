//! Symbolization against the heapdemo fixtures (x64, its rebuild x64-build2, and x86),
//! every expected value
//! taken from llvm-readobj / llvm-pdbutil / llvm-symbolizer (fixtures/symbols/*/expected.json),
//! plus mismatch, DBI-vs-info age, architecture and corrupt-PDB cases.

mod symbols_common;

use heapdb::etl::Guid;
use heapdb::symbols::pdb::read_identity;
use heapdb::symbols::pe::read_pe_file;
use heapdb::symbols::{read_pe_info, PdbId, PdbSymbols, SymError};
use symbols_common::{msf_stream_blocks, ExpectedAt, Fixture};

const ARCHES: [&str; 3] = ["x64", "x64-build2", "x86"];

#[test]
fn pe_identity_matches_llvm_readobj() {
    for arch in ARCHES {
        let f = Fixture::load(arch);
        let pe = &f.expected["pe"];
        let info = read_pe_info(&std::fs::read(&f.dll).unwrap()).unwrap();
        assert_eq!(
            info.machine as u64,
            pe["machine"].as_u64().unwrap(),
            "{arch}"
        );
        assert_eq!(
            info.time_date_stamp as u64,
            pe["time_date_stamp"].as_u64().unwrap()
        );
        assert_eq!(
            info.size_of_image as u64,
            pe["size_of_image"].as_u64().unwrap()
        );
        assert_eq!(info.image_base, pe["image_base"].as_u64().unwrap());
        assert_eq!(info.is_64, arch.starts_with("x64"));
        let cv = info.codeview.clone().unwrap();
        assert_eq!(cv.guid.to_string(), pe["pdb_guid"].as_str().unwrap());
        assert_eq!(cv.age as u64, pe["pdb_age"].as_u64().unwrap());
        assert_eq!(cv.pdb_path, pe["pdb_name"].as_str().unwrap());
        assert_eq!(info.pdb_id().unwrap(), f.id());
        let text = &pe["sections"][0];
        assert_eq!(info.sections[0].name, text["name"].as_str().unwrap());
        assert_eq!(info.sections[0].rva as u64, text["rva"].as_u64().unwrap());
    }
}

#[test]
fn pe_parsing_rejects_bad_images_with_offsets() {
    let f = Fixture::load("x64");
    let dll = std::fs::read(&f.dll).unwrap();
    for len in [0, 1, 2, 0x3c, 0x40, 0x80, 0x90, 0x100, 0x180] {
        assert!(read_pe_info(&dll[..len]).is_err(), "truncated at {len}");
    }
    // Every prefix either parses or errors; none panics.
    for len in 0..dll.len() {
        let _ = read_pe_info(&dll[..len]);
    }
    let err = read_pe_file(&f.pdb).unwrap_err().to_string();
    assert!(err.contains("heapdemo.pdb") && err.contains("MZ"), "{err}");
}

#[test]
fn pdb_identity_matches_llvm_pdbutil() {
    for arch in ARCHES {
        let f = Fixture::load(arch);
        let want = &f.expected["pdb"];
        let id = read_identity(&f.pdb).unwrap();
        assert_eq!(id.guid.to_string(), want["guid"].as_str().unwrap());
        assert_eq!(id.info_age as u64, want["info_age"].as_u64().unwrap());
        assert_eq!(id.dbi_age.map(u64::from), want["dbi_age"].as_u64());
        let machine = match want["dbi_machine"].as_str().unwrap() {
            "Amd64" => 0x8664,
            "x86" | "X86" | "Intel386" | "I386" => 0x14c,
            other => panic!("unexpected machine {other}"),
        };
        assert_eq!(id.machine, machine, "{arch}");
        assert_eq!(id.machine, f.machine());
    }
}

/// Checks heapdb's frames against llvm-symbolizer's. Differences allowed, each a
/// matter of spelling or of an ambiguous PDB:
/// - llvm-symbolizer prints C functions and inlinees by bare name, heapdb C functions
///   with their argument list: where the expected name has no `(`, heapdb's name is
///   compared up to its `(`;
/// - `f(void)` (llvm) and `f()` (heapdb) are the same;
/// - padding between functions: only the name is compared (llvm gives no line there,
///   heapdb the function's last line);
/// - the outer line may be any line of the entries sharing that address.
fn check(got: &[heapdb::symbols::NamedFrame], want: &ExpectedAt, what: &str) {
    let norm = |s: &str| s.replace("(void)", "()");
    assert_eq!(got.len(), want.frames.len(), "{what}: {got:?} vs {want:?}");
    for (i, (g, w)) in got.iter().zip(&want.frames).enumerate() {
        let name = if w.function.contains('(') {
            g.function.clone()
        } else {
            g.function.split('(').next().unwrap().to_string()
        };
        assert_eq!(norm(&name), norm(&w.function), "{what}: frame {i}");
        assert_eq!(g.inlined, i + 1 < got.len(), "{what}: frame {i}");
        if want.padding {
            continue;
        }
        assert_eq!(g.file, w.file, "{what}: frame {i}");
        let outer = i + 1 == got.len();
        if outer && !want.outer_line_alternatives.is_empty() {
            assert!(
                want.outer_line_alternatives.contains(&g.line.unwrap()),
                "{what}: line {:?} not in {:?}",
                g.line,
                want.outer_line_alternatives
            );
        } else {
            assert_eq!(g.line, w.line, "{what}: frame {i} ({})", w.function);
        }
    }
}

#[test]
fn every_instruction_resolves_like_llvm_symbolizer() {
    for arch in ARCHES {
        let f = Fixture::load(arch);
        let mut syms = PdbSymbols::open_for_machine(&f.pdb, &f.id(), Some(f.machine())).unwrap();
        let insns = f.instructions();
        assert!(insns.len() > 200, "{arch}: {} instructions", insns.len());
        let mut inline_seen = 0;
        let mut unnamed_padding = 0;
        for want in &insns {
            let rva = want.rva;
            let what = format!("{arch} rva 0x{rva:x}");
            let Some(got) = syms.resolve(rva).unwrap() else {
                // The int3 padding after x64-build2's extra object (code known only from
                // public symbols, no debug information): llvm-symbolizer extends the
                // last public symbol up to the next one, heapdb names nothing there (the
                // bytes are in no function and no object's section contribution).
                assert!(
                    arch == "x64-build2"
                        && want.padding
                        && want.frames.iter().all(|f| f.file.is_none()),
                    "{what}: no frames"
                );
                unnamed_padding += 1;
                continue;
            };
            check(&got.frames, want, &what);
            for fr in &got.frames {
                assert_eq!(fr.function_offset, rva - f.public_start(rva), "{what}");
            }
            inline_seen += usize::from(got.frames.len() > 1);
        }
        assert!(
            inline_seen > 10,
            "{arch}: only {inline_seen} inlined addresses"
        );
        assert!(unnamed_padding <= 12, "{arch}: {unnamed_padding}");
    }
}

#[test]
fn call_sites_resolve_as_return_addresses_with_inline_frames() {
    for arch in ARCHES {
        let f = Fixture::load(arch);
        let mut syms = PdbSymbols::open(&f.pdb, &f.id()).unwrap();
        let sites = f.call_sites();
        assert!(sites.len() >= 10, "{arch}");
        for want in &sites {
            let ret = want.rva;
            let what = format!("{arch} return address 0x{ret:x}");
            let got = syms.resolve_return_address(ret).unwrap().unwrap();
            check(&got.frames, want, &what);
            let outer = got.outer().unwrap();
            assert!(!outer.inlined);
            assert_eq!(
                outer.function_offset,
                ret - f.public_start(ret - 1),
                "{what}"
            );
            // The caller's convention: the same frames as resolving ret - 1 by hand.
            let by_hand = syms.resolve(ret - 1).unwrap().unwrap();
            check(&by_hand.frames, want, &what);
        }
        // The inlined allocation helper shows up at real call sites, inside each Grow.
        for outer in [
            "Vector<unsigned int>::Grow",
            "JsonWriter::Grow",
            "StringBuilder::Reserve",
        ] {
            assert!(
                sites.iter().any(|s| s.frames.len() >= 2
                    && s.frames[0].function.starts_with("GrowBuffer")
                    && s.frames.last().unwrap().function.starts_with(outer)),
                "{arch}: no inlined GrowBuffer call site in {outer}"
            );
        }
    }
}

#[test]
fn addresses_outside_functions_resolve_to_nothing() {
    let f = Fixture::load("x64");
    let mut syms = PdbSymbols::open(&f.pdb, &f.id()).unwrap();
    for rva in [0, 0x10, 0x3000 + 0x100, 0x10_0000, u32::MAX] {
        assert_eq!(syms.resolve(rva).unwrap(), None, "0x{rva:x}");
    }
    assert_eq!(syms.resolve_return_address(0).unwrap(), None);
}

#[test]
fn another_age_or_guid_is_a_mismatch() {
    let f = Fixture::load("x64");
    let id = f.id();
    let older = PdbId {
        age: id.age + 1,
        ..id.clone()
    };
    match PdbSymbols::open(&f.pdb, &older) {
        Err(SymError::Mismatch {
            found_age,
            found_guid,
            ..
        }) => {
            assert_eq!(found_age, id.age);
            assert_eq!(found_guid, id.guid);
        }
        other => panic!("expected a mismatch, got {:?}", other.err()),
    }
    // The same through a DLL whose RSDS record says age 2 (a patched copy), as an
    // image rebuilt against an updated PDB would.
    let mut dll = std::fs::read(&f.dll).unwrap();
    let rsds = dll.windows(4).position(|w| w == b"RSDS").unwrap();
    dll[rsds + 20..rsds + 24].copy_from_slice(&2u32.to_le_bytes());
    let patched = read_pe_info(&dll).unwrap().pdb_id().unwrap();
    assert_eq!((patched.guid, patched.age), (id.guid, 2));
    assert!(matches!(
        PdbSymbols::open(&f.pdb, &patched),
        Err(SymError::Mismatch { found_age: 1, .. })
    ));
    let other_build = PdbId {
        guid: Guid::from_fields(1, 2, 3, [4; 8]),
        ..id
    };
    let err = PdbSymbols::open(&f.pdb, &other_build).err().unwrap();
    assert!(matches!(err, SymError::Mismatch { .. }));
    assert!(err.to_string().contains("heapdemo.pdb"), "{err}");
}

/// Writes `age` at `offset` of MSF stream `stream` (1: PDB info, 3: DBI) of a copy.
fn patch_age(pdb: &[u8], stream: usize, offset: usize, age: u32) -> Vec<u8> {
    let mut bytes = pdb.to_vec();
    let first = msf_stream_blocks(&bytes, stream)[0];
    bytes[first + offset..first + offset + 4].copy_from_slice(&age.to_le_bytes());
    bytes
}

/// The image's RSDS age is the DBI stream's age; the info stream's age can be larger
/// (tools that rewrite a PDB bump it without relinking). A copy with info age 5 and DBI
/// age 1 must match images that say age 1 and not those that say 5, and a copy with DBI
/// age 3 must match age 3. llvm-pdbutil confirms the patch did what we think, when
/// installed.
#[test]
fn dbi_age_not_info_age_decides_the_match() {
    let f = Fixture::load("x64");
    let id = f.id();
    let original = std::fs::read(&f.pdb).unwrap();
    let dir = tempfile::tempdir().unwrap();

    // Info stream: version u32, signature u32, age u32. DBI header: signature, version, age.
    let info_bumped = dir.path().join("info5.pdb");
    std::fs::write(&info_bumped, patch_age(&original, 1, 8, 5)).unwrap();
    let ident = read_identity(&info_bumped).unwrap();
    assert_eq!((ident.info_age, ident.dbi_age), (5, Some(id.age)));
    assert!(PdbSymbols::open(&info_bumped, &id).is_ok());
    let five = PdbId {
        age: 5,
        ..id.clone()
    };
    assert!(matches!(
        PdbSymbols::open(&info_bumped, &five),
        Err(SymError::Mismatch { found_age: 1, .. })
    ));

    let dbi_bumped = dir.path().join("dbi3.pdb");
    std::fs::write(&dbi_bumped, patch_age(&original, 3, 8, 3)).unwrap();
    let three = PdbId {
        age: 3,
        ..id.clone()
    };
    assert!(PdbSymbols::open(&dbi_bumped, &three).is_ok());
    assert!(matches!(
        PdbSymbols::open(&dbi_bumped, &id),
        Err(SymError::Mismatch { .. })
    ));

    if let Ok(out) = std::process::Command::new("llvm-pdbutil-14")
        .args(["pdb2yaml", "--pdb-stream", "--dbi-stream"])
        .arg(&info_bumped)
        .output()
    {
        let yaml = String::from_utf8_lossy(&out.stdout);
        let (pdb_part, dbi_part) = yaml.split_once("DbiStream:").unwrap();
        assert!(pdb_part.contains("Age:             5"), "{yaml}");
        assert!(dbi_part.contains("Age:             1"), "{yaml}");
    } else {
        println!("llvm-pdbutil-14 not installed: patch not cross-checked");
    }
}

#[test]
fn wrong_architecture_is_rejected() {
    let f = Fixture::load("x86");
    let err = PdbSymbols::open_for_machine(&f.pdb, &f.id(), Some(0x8664))
        .err()
        .unwrap();
    assert!(
        matches!(
            err,
            SymError::WrongArchitecture {
                image: 0x8664,
                pdb: 0x14c,
                ..
            }
        ),
        "{err}"
    );
    assert!(PdbSymbols::open_for_machine(&f.pdb, &f.id(), Some(0x14c)).is_ok());
}

#[test]
fn not_a_pdb_and_missing_files_are_errors_naming_the_file() {
    let f = Fixture::load("x64");
    let err = PdbSymbols::open(&f.dll, &f.id()).err().unwrap();
    assert!(matches!(err, SymError::NotPdb { .. }), "{err}");
    assert!(err.to_string().contains("heapdemo.dll"));
    let missing = f.pdb.with_file_name("nope.pdb");
    let err = PdbSymbols::open(&missing, &f.id()).err().unwrap();
    assert!(matches!(err, SymError::Io { .. }) && err.to_string().contains("nope.pdb"));
}

/// Truncated and damaged copies: each gives an error naming the file (or, where the
/// damage misses everything read, a PDB that still resolves), never a panic.
#[test]
fn truncated_and_corrupt_pdbs_give_errors_not_panics() {
    for arch in ARCHES {
        let f = Fixture::load(arch);
        let id = f.id();
        let original = std::fs::read(&f.pdb).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("heapdemo.pdb");
        let rvas: Vec<u32> = f.instructions().iter().map(|i| i.rva).collect();

        let block = 4096;
        let mut lengths: Vec<usize> = vec![0, 1, 31, 32, 33, 56, 100, block - 1, block, block + 1];
        lengths.extend((2..original.len() / block).map(|b| b * block));
        lengths.extend((1..original.len() / block).map(|b| b * block + 1000));
        lengths.push(original.len() - 1);
        for len in lengths {
            std::fs::write(&path, &original[..len]).unwrap();
            match PdbSymbols::open(&path, &id) {
                Err(e) => assert!(e.to_string().contains("heapdemo.pdb"), "{e}"),
                Ok(mut s) => {
                    // The cut missed everything open() reads: lookups may still fail,
                    // with an error, not a panic.
                    for &r in &rvas {
                        let _ = s.resolve(r);
                    }
                }
            }
        }
        // Only a file cut inside the MSF header or directory must fail at open.
        for len in [0, 1, 31, 32, 100, block] {
            std::fs::write(&path, &original[..len]).unwrap();
            assert!(
                PdbSymbols::open(&path, &id).is_err(),
                "{arch}: cut at {len} opened"
            );
        }

        // Damage: overwrite 16 bytes at a spread of offsets with 0xff.
        for off in (64..original.len()).step_by(997) {
            let mut bytes = original.clone();
            let end = (off + 16).min(bytes.len());
            bytes[off..end].fill(0xff);
            std::fs::write(&path, &bytes).unwrap();
            if let Ok(mut s) = PdbSymbols::open(&path, &id) {
                for &r in &rvas {
                    let _ = s.resolve(r);
                }
            }
        }
    }
}

/// The generated `demo_module` (for the synthesizer) agrees with the fixtures it was
/// generated from: identity from llvm-readobj, each call site and chain frame resolves,
/// through heapdb, to the function llvm-symbolizer named, and the chains are made of
/// call sites llvm-objdump found, in caller order.
#[test]
fn demo_module_matches_the_fixtures() {
    use heapdb::symbols::demo_module as demo;
    // The single items are build 1 (x64).
    assert_eq!(demo::PDB_GUID, demo::X64.pdb_guid);
    assert_eq!(demo::CALL_SITES, demo::X64.call_sites);
    assert_eq!(demo::BUILDS.map(|b| b.label), ["x64", "x64-build2", "x86"]);
    for b in demo::BUILDS {
        let f = Fixture::load(b.label);
        let info = read_pe_file(&f.dll).unwrap();
        assert_eq!(info.size_of_image, b.size_of_image);
        assert_eq!(info.time_date_stamp, b.time_date_stamp);
        assert_eq!(info.image_base, b.image_base);
        assert_eq!(info.machine, b.machine);
        assert_eq!(b.machine, f.machine());
        let id = PdbId::new(b.pdb_name, b.pdb_guid, b.pdb_age);
        assert_eq!(id, f.id());
        assert_eq!(f.dll.file_name().unwrap(), b.image_name);
        let mut syms = PdbSymbols::open(&f.pdb, &id).unwrap();
        assert!(b.call_sites.len() >= 8);
        let llvm: Vec<_> = f.call_sites();
        let chain_frames = b.chains.iter().flat_map(|c| c.frames.iter());
        for site in b.call_sites.iter().chain(chain_frames) {
            let r = syms
                .resolve_return_address(site.return_rva)
                .unwrap()
                .unwrap();
            let outer = &r.outer().unwrap().function;
            let want = site.function.split('(').next().unwrap();
            assert!(outer.starts_with(want), "{}: {site:?}: {outer}", b.label);
            let at = llvm.iter().find(|c| c.rva == site.return_rva);
            let at = at.unwrap_or_else(|| panic!("{}: {site:?} is no call site", b.label));
            assert_eq!(at.frames.last().unwrap().function, site.function);
        }
        let outer_names = |name: &str| -> Vec<String> {
            b.chain(name)
                .unwrap()
                .frames
                .iter()
                .map(|f| f.function.split('(').next().unwrap().to_string())
                .collect()
        };
        assert_eq!(
            outer_names("line_reader"),
            [
                "heap_realloc",
                "StringBuilder::Reserve",
                "StringBuilder::Append",
                "LineReader::ReadLine",
                "Report::Save",
                "heapdemo_run"
            ]
        );
        assert_eq!(
            outer_names("json_writer"),
            [
                "heap_realloc",
                "JsonWriter::Grow",
                "JsonWriter::WriteString",
                "Report::Save",
                "heapdemo_run"
            ]
        );
        assert_eq!(
            outer_names("vector"),
            [
                "heap_realloc",
                "Vector<unsigned int>::Grow",
                "Vector<unsigned int>::PushBack",
                "Report::Save",
                "heapdemo_run"
            ]
        );
    }
    // The rebuild moved every function and kept its names.
    let (one, two) = (demo::X64, demo::X64_BUILD2);
    assert_ne!(one.pdb_guid, two.pdb_guid);
    for (c1, c2) in one.chains.iter().zip(two.chains) {
        for (f1, f2) in c1.frames.iter().zip(c2.frames) {
            assert_eq!(f1.function, f2.function);
            assert_ne!(f1.return_rva, f2.return_rva);
        }
    }
}
