//! Symbolization of a database: the PDBs its images name are looked for along a symbol
//! path, each distinct (PDB, RVA) of the call sites' frames is resolved once into the
//! `symbols` table, and each call site gets its names (`sites.call_function`,
//! `sites.function_site_id`). Rerun-safe: a run does only what is missing (PDBs not
//! found before, sites stored since), so it can follow every ingest, and it runs again
//! when the PDBs arrive.
//!
//! Data flow: images → `pdbs` (one row per PDB identity) → site frames get the PDB of
//! their module's image (the capture that first stored the site) → per PDB, in
//! parallel: locate, open, verify, resolve its RVAs → one transaction writes the
//! symbols, the PDBs' status and the sites' names. The frames keep module+RVA whenever
//! a PDB is missing or does not match: never a wrong name.

use crate::cancel::Cancel;
use crate::etl::Guid;
use crate::ingest::identity::Frame;
use crate::symbols::names::{short_name, AllocatorFunctions};
use crate::symbols::{
    LocateError, LocateOptions, PdbId, PdbSymbols, Resolved, SymError, SymbolPath,
};
use anyhow::{Context as _, Result};
use rayon::prelude::*;
use rusqlite::{params, Connection, OptionalExtension};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::time::Instant;

/// How to symbolize.
pub struct Options {
    pub path: SymbolPath,
    pub locate: LocateOptions,
    pub allocators: AllocatorFunctions,
    /// Threads for locating and reading PDBs (default: one per core). At most this many
    /// PDBs are open at once.
    pub jobs: Option<usize>,
}

/// What happened to one PDB in this run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Found, verified and read: `rvas` new addresses resolved.
    Loaded {
        found_by: String,
        rvas: usize,
    },
    NotFound(String),
    /// A PDB of another build was found (message names it).
    Mismatch(String),
    /// Found but unreadable (corrupt, truncated, wrong architecture).
    Error(String),
}

/// The result of a run.
#[derive(Debug, Default)]
pub struct Report {
    /// PDBs looked at in this run, with what happened.
    pub pdbs: Vec<(PdbId, Outcome)>,
    /// PDBs loaded by an earlier run that had nothing new to resolve.
    pub pdbs_current: usize,
    /// Distinct (PDB, RVA) resolved in this run, and how many of them no symbol covers.
    pub rvas: u64,
    pub rvas_unknown: u64,
    /// Call sites named in this run (given names or re-examined), and how many of them
    /// have a call function now.
    pub sites: u64,
    pub sites_with_function: u64,
    /// Problems with the symbol path itself (missing entries, dead servers).
    pub warnings: Vec<String>,
    /// Seconds spent locating and opening PDBs, resolving, and writing.
    pub load_seconds: f64,
    pub resolve_seconds: f64,
    pub write_seconds: f64,
    /// Stopped by Ctrl-C before writing: nothing of this run was stored.
    pub interrupted: bool,
}

impl Report {
    pub fn count(&self, f: impl Fn(&Outcome) -> bool) -> usize {
        self.pdbs.iter().filter(|(_, o)| f(o)).count()
    }
    /// True when a PDB was found but could not be used (mismatch or unreadable): what
    /// makes the command exit 1.
    pub fn had_bad_pdbs(&self) -> bool {
        self.count(|o| matches!(o, Outcome::Mismatch(_) | Outcome::Error(_))) > 0
    }
}

/// A PDB to look at in this run.
struct Job {
    pdb_id: i64,
    id: PdbId,
    /// Where an earlier run found it (reopened first).
    known_path: Option<(PathBuf, String)>,
    /// RVAs to resolve (already looked-up ones excluded), sorted.
    rvas: Vec<u32>,
}

/// One resolved address, ready for the `symbols` table.
struct SymRow {
    rva: u32,
    resolved: Option<Resolved>,
}

struct Done {
    pdb_id: i64,
    outcome: Outcome,
    path: Option<String>,
    rows: Vec<SymRow>,
    load_s: f64,
    resolve_s: f64,
}

/// Symbolizes what is missing in the database. The connection must be writable and at
/// the current schema.
pub fn symbolize(conn: &mut Connection, opts: &Options, cancel: &Cancel) -> Result<Report> {
    let mut report = Report::default();
    let tx = conn.transaction()?;
    assign_pdbs(&tx)?;
    tx.commit()?;

    // Sites never named, and the PDBs with work: not loaded yet (and used by a frame),
    // or loaded but with RVAs of those new sites not resolved yet.
    let jobs = plan(conn, &mut report)?;
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(opts.jobs.unwrap_or(0))
        .build()
        .context("starting the symbolization threads")?;
    let done: Vec<Done> = pool.install(|| {
        jobs.into_par_iter()
            .map(|j| {
                if cancel.requested() {
                    return None;
                }
                Some(run_job(j, opts))
            })
            .collect::<Option<Vec<_>>>()
            .unwrap_or_default()
    });
    report.warnings = opts
        .path
        .take_warnings()
        .iter()
        .map(|w| w.to_string())
        .collect();
    if cancel.requested() {
        report.interrupted = true;
        return Ok(report);
    }
    let t = Instant::now();
    let tx = conn.transaction()?;
    let mut newly_loaded = HashSet::new();
    {
        let mut ins = tx.prepare_cached(
            "INSERT OR IGNORE INTO symbols (pdb_id, rva, inline_depth, name, function, function_rva, file, line)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )?;
        let mut upd = tx.prepare_cached(
            "UPDATE pdbs SET status = ?2, path = ?3, found_by = ?4, message = ?5,
                    rvas = rvas + ?6, updated_ns = ?7 WHERE pdb_id = ?1",
        )?;
        let now = now_ns();
        for d in &done {
            report.load_seconds += d.load_s;
            report.resolve_seconds += d.resolve_s;
            for r in &d.rows {
                report.rvas += 1;
                match &r.resolved {
                    None => {
                        report.rvas_unknown += 1;
                        ins.execute(params![
                            d.pdb_id,
                            r.rva,
                            0,
                            None::<&str>,
                            None::<&str>,
                            None::<i64>,
                            None::<&str>,
                            None::<i64>
                        ])?;
                    }
                    Some(res) => {
                        // Stored outermost first: level 0 is the real function.
                        for (level, f) in res.frames.iter().rev().enumerate() {
                            let start = (level == 0)
                                .then(|| i64::from(r.rva) - i64::from(f.function_offset));
                            ins.execute(params![
                                d.pdb_id,
                                r.rva,
                                level as i64,
                                short_name(&f.function),
                                f.function,
                                start,
                                f.file,
                                f.line,
                            ])?;
                        }
                    }
                }
            }
            let (status, found_by, message, rvas) = match &d.outcome {
                Outcome::Loaded { found_by, rvas } => {
                    ("loaded", Some(found_by.as_str()), None, *rvas as i64)
                }
                Outcome::NotFound(m) => ("not_found", None, Some(m.as_str()), 0),
                Outcome::Mismatch(m) => ("mismatch", None, Some(m.as_str()), 0),
                Outcome::Error(m) => ("error", None, Some(m.as_str()), 0),
            };
            let was: String = tx.query_row(
                "SELECT status FROM pdbs WHERE pdb_id = ?1",
                [d.pdb_id],
                |r| r.get(0),
            )?;
            if status == "loaded" && was != "loaded" {
                newly_loaded.insert(d.pdb_id);
            }
            upd.execute(params![
                d.pdb_id, status, d.path, found_by, message, rvas, now
            ])?;
        }
    }
    let (named, with_function) = name_sites(&tx, &newly_loaded, &opts.allocators)?;
    report.sites = named;
    report.sites_with_function = with_function;
    tx.commit()?;
    report.write_seconds = t.elapsed().as_secs_f64();
    for d in done {
        let id = pdb_identity(conn, d.pdb_id)?;
        report.pdbs.push((id, d.outcome));
    }
    Ok(report)
}

fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

fn pdb_identity(conn: &Connection, pdb_id: i64) -> Result<PdbId> {
    let (name, guid, age): (String, String, i64) = conn.query_row(
        "SELECT name, guid, age FROM pdbs WHERE pdb_id = ?1",
        [pdb_id],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )?;
    Ok(PdbId {
        name,
        guid: guid.parse().unwrap_or(Guid([0; 16])),
        age: age as u32,
    })
}

/// Gives every image with an RSDS record its `pdbs` row, and every frame of a site
/// not yet named the PDB of its module's image (in the first capture that has the
/// site; kernel modules are images of pid 0).
fn assign_pdbs(conn: &Connection) -> Result<()> {
    {
        let mut images = conn.prepare(
            "SELECT image_row, coalesce(pdb_path, ''), pdb_guid, coalesce(pdb_age, 0)
             FROM images WHERE pdb_id IS NULL AND pdb_guid IS NOT NULL",
        )?;
        let rows: Vec<(i64, String, String, i64)> = images
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
            .collect::<rusqlite::Result<_>>()?;
        let mut ins = conn.prepare_cached(
            "INSERT INTO pdbs (name, guid, age) VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING",
        )?;
        let mut get = conn
            .prepare_cached("SELECT pdb_id FROM pdbs WHERE name = ?1 AND guid = ?2 AND age = ?3")?;
        let mut set = conn.prepare_cached("UPDATE images SET pdb_id = ?2 WHERE image_row = ?1")?;
        let mut ids: HashMap<(String, String, i64), i64> = HashMap::new();
        for (row, path, guid, age) in rows {
            let name = file_name(&path).to_string();
            let guid = guid.to_ascii_lowercase();
            let key = (name.to_ascii_lowercase(), guid.clone(), age);
            let id = match ids.get(&key) {
                Some(&id) => id,
                None => {
                    ins.execute(params![name, guid, age])?;
                    let id: i64 = get.query_row(params![name, guid, age], |r| r.get(0))?;
                    ids.insert(key, id);
                    id
                }
            };
            set.execute([row, id])?;
        }
    }
    // Modules' PDBs per (capture, pid, module name).
    let mut module_pdb: HashMap<(i64, i64, String), i64> = HashMap::new();
    {
        let mut st = conn.prepare(
            "SELECT capture_id, pid, name, pdb_id FROM images WHERE pdb_id IS NOT NULL
             ORDER BY capture_id, pid, load_ns IS NOT NULL, load_ns",
        )?;
        let mut rows = st.query([])?;
        while let Some(r) = rows.next()? {
            module_pdb
                .entry((r.get(0)?, r.get(1)?, r.get(2)?))
                .or_insert(r.get(3)?);
        }
    }
    if module_pdb.is_empty() {
        return Ok(());
    }
    let first_use: HashMap<i64, (i64, i64)> = {
        let mut st = conn.prepare(
            "SELECT cs.site_id, min(cs.capture_id), cs.pid FROM capture_stacks cs
             JOIN sites s ON s.site_id = cs.site_id
             WHERE s.symbolized IS NULL GROUP BY cs.site_id",
        )?;
        let rows = st.query_map([], |r| Ok((r.get(0)?, (r.get(1)?, r.get(2)?))))?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    let mut st = conn.prepare(
        "SELECT sf.site_id, sf.depth, sf.module FROM site_frames sf
         JOIN sites s ON s.site_id = sf.site_id
         WHERE s.symbolized IS NULL AND sf.module IS NOT NULL AND sf.pdb_id IS NULL",
    )?;
    let frames: Vec<(i64, i64, String)> = st
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<rusqlite::Result<_>>()?;
    let mut set = conn
        .prepare_cached("UPDATE site_frames SET pdb_id = ?3 WHERE site_id = ?1 AND depth = ?2")?;
    for (site, depth, module) in frames {
        let Some(&(capture, pid)) = first_use.get(&site) else {
            continue;
        };
        let pdb = module_pdb
            .get(&(capture, pid, module.clone()))
            .or_else(|| module_pdb.get(&(capture, 0, module)));
        if let Some(&pdb) = pdb {
            set.execute([site, depth, pdb])?;
        }
    }
    Ok(())
}

/// The file name of a path written on Windows (either separator).
fn file_name(p: &str) -> &str {
    p.rsplit(['\\', '/']).next().unwrap_or(p)
}

/// The RVA to look up for a frame: the call before a return address (every frame but
/// the innermost), the address itself for the innermost.
fn probe(depth: i64, rva: i64) -> Option<u32> {
    let p = if depth > 0 { rva - 1 } else { rva };
    u32::try_from(p).ok()
}

/// The PDBs to look at in this run, with the RVAs each must resolve.
fn plan(conn: &Connection, report: &mut Report) -> Result<Vec<Job>> {
    // Every (pdb, probe) of frames of sites not named yet, and of every site whose PDB
    // is not loaded (it will be named if the PDB turns up now).
    let mut want: BTreeMap<i64, Vec<u32>> = BTreeMap::new();
    let mut st = conn.prepare(
        "SELECT sf.pdb_id, sf.depth, sf.rva, s.symbolized IS NULL, p.status = 'loaded'
         FROM site_frames sf JOIN sites s ON s.site_id = sf.site_id
         JOIN pdbs p ON p.pdb_id = sf.pdb_id
         WHERE sf.pdb_id IS NOT NULL",
    )?;
    let mut rows = st.query([])?;
    while let Some(r) = rows.next()? {
        let (pdb, depth, rva, new_site, loaded): (i64, i64, i64, bool, bool) =
            (r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?);
        if new_site || !loaded {
            if let Some(p) = probe(depth, rva) {
                want.entry(pdb).or_default().push(p);
            }
        }
    }
    let mut have =
        conn.prepare_cached("SELECT rva FROM symbols WHERE pdb_id = ?1 AND inline_depth = 0")?;
    let mut info = conn.prepare_cached(
        "SELECT name, guid, age, status, path, found_by FROM pdbs WHERE pdb_id = ?1",
    )?;
    let mut jobs = Vec::new();
    for (pdb_id, mut rvas) in want {
        let known: HashSet<u32> = have
            .query_map([pdb_id], |r| r.get::<_, i64>(0))?
            .filter_map(|x| x.ok().and_then(|v| u32::try_from(v).ok()))
            .collect();
        rvas.sort_unstable();
        rvas.dedup();
        rvas.retain(|r| !known.contains(r));
        let (name, guid, age, status, path, found_by): (
            String,
            String,
            i64,
            String,
            Option<String>,
            Option<String>,
        ) = info.query_row([pdb_id], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
            ))
        })?;
        let loaded = status == "loaded";
        if loaded && rvas.is_empty() {
            report.pdbs_current += 1;
            continue;
        }
        let guid: Guid = match guid.parse() {
            Ok(g) => g,
            Err(_) => continue, // not written by heapdb: nothing to look for
        };
        jobs.push(Job {
            pdb_id,
            id: PdbId {
                name,
                guid,
                age: age as u32,
            },
            known_path: if loaded {
                path.map(|p| (PathBuf::from(p), found_by.unwrap_or_default()))
            } else {
                None
            },
            rvas,
        });
    }
    Ok(jobs)
}

fn run_job(j: Job, opts: &Options) -> Done {
    let t = Instant::now();
    let mut done = Done {
        pdb_id: j.pdb_id,
        outcome: Outcome::NotFound(String::new()),
        path: None,
        rows: Vec::new(),
        load_s: 0.0,
        resolve_s: 0.0,
    };
    if !j.id.has_plain_name() {
        done.outcome = Outcome::NotFound(format!(
            "{}: not looked for: the image names its PDB by a path, not a file name",
            j.id
        ));
        return done;
    }
    // A PDB loaded by an earlier run is reopened where it was; if it is gone, it is
    // looked for again.
    let mut opened = None;
    if let Some((p, how)) = &j.known_path {
        if let Ok(s) = PdbSymbols::open(p, &j.id) {
            opened = Some((s, how.clone()));
        }
    }
    let (mut syms, how) = match opened {
        Some(x) => x,
        None => match opts.path.locate(&j.id, &opts.locate) {
            Err(e @ LocateError::NotFound { .. }) => {
                let LocateError::NotFound { mismatched, .. } = &e;
                done.load_s = t.elapsed().as_secs_f64();
                done.outcome = if let Some(m) = mismatched.first() {
                    done.path = Some(m.display().to_string());
                    Outcome::Mismatch(e.to_string())
                } else {
                    Outcome::NotFound(e.to_string())
                };
                return done;
            }
            Ok(located) => {
                done.path = Some(located.path.display().to_string());
                match PdbSymbols::open(&located.path, &j.id) {
                    Ok(s) => (s, located.how.to_string()),
                    Err(e) => {
                        done.load_s = t.elapsed().as_secs_f64();
                        done.outcome = match e {
                            SymError::Mismatch { .. } => Outcome::Mismatch(e.to_string()),
                            _ => Outcome::Error(e.to_string()),
                        };
                        return done;
                    }
                }
            }
        },
    };
    done.path = Some(syms.path().display().to_string());
    done.load_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let mut rows = Vec::with_capacity(j.rvas.len());
    for &rva in &j.rvas {
        match syms.resolve(rva) {
            Ok(resolved) => rows.push(SymRow { rva, resolved }),
            Err(e) => {
                // The PDB parser gave up on this PDB: keep what was resolved, report
                // the rest as unreadable; those frames stay module+RVA.
                done.resolve_s = t.elapsed().as_secs_f64();
                done.outcome = Outcome::Error(e.to_string());
                done.rows = rows;
                return done;
            }
        }
    }
    done.resolve_s = t.elapsed().as_secs_f64();
    done.outcome = Outcome::Loaded {
        found_by: how,
        rvas: rows.len(),
    };
    done.rows = rows;
    done
}

/// Names the sites never named, and those with a frame in a PDB loaded in this run:
/// the call site moves past allocator functions, `call_function` is its
/// `module!function`, and `function_site_id` hashes the frames by function name.
fn name_sites(
    conn: &Connection,
    newly_loaded: &HashSet<i64>,
    allocators: &AllocatorFunctions,
) -> Result<(u64, u64)> {
    let mut sites: Vec<i64> = conn
        .prepare("SELECT site_id FROM sites WHERE symbolized IS NULL")?
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    if !newly_loaded.is_empty() {
        // One pass for all the PDBs: site_frames has no index on pdb_id, so a query per
        // PDB would scan the whole table once per PDB (50 PDBs: 50 scans).
        let mut st =
            conn.prepare("SELECT site_id, pdb_id FROM site_frames WHERE pdb_id IS NOT NULL")?;
        let mut more = HashSet::new();
        let mut rows = st.query([])?;
        while let Some(r) = rows.next()? {
            if newly_loaded.contains(&r.get::<_, i64>(1)?) {
                more.insert(r.get::<_, i64>(0)?);
            }
        }
        let seen: HashSet<i64> = sites.iter().copied().collect();
        sites.extend(more.into_iter().filter(|s| !seen.contains(s)));
    }
    let mut frames_of = conn.prepare_cached(
        "SELECT sf.depth, sf.module, sf.rva, sf.address, sym.name, sym.function
         FROM site_frames sf
         LEFT JOIN pdbs p ON p.pdb_id = sf.pdb_id AND p.status = 'loaded'
         LEFT JOIN symbols sym ON sym.pdb_id = p.pdb_id
              AND sym.rva = sf.rva - (sf.depth > 0) AND sym.inline_depth = 0
         WHERE sf.site_id = ?1 ORDER BY sf.depth",
    )?;
    let mut depth_of = conn.prepare_cached("SELECT call_depth FROM sites WHERE site_id = ?1")?;
    let mut update = conn.prepare_cached(
        "UPDATE sites SET call_depth = ?2, call_site = ?3, caller_module = ?4,
                call_function = ?5, function_site_id = ?6, symbolized = 1
         WHERE site_id = ?1",
    )?;
    let mut with_function = 0;
    for &site in &sites {
        let frames: Vec<NamedSiteFrame> = frames_of
            .query_map([site], |r| {
                let module: Option<String> = r.get(1)?;
                let frame = match module {
                    Some(module) => Frame::Module {
                        module,
                        rva: r.get::<_, i64>(2)? as u64,
                    },
                    None => Frame::Address(r.get::<_, Option<i64>>(3)?.unwrap_or(0) as u64),
                };
                Ok(NamedSiteFrame {
                    frame,
                    name: r.get(4)?,
                    function: r.get(5)?,
                })
            })?
            .collect::<rusqlite::Result<_>>()?;
        let Some(call_depth) = depth_of
            .query_row([site], |r| r.get::<_, i64>(0))
            .optional()?
        else {
            continue;
        };
        let named = name_site(&frames, call_depth as usize, allocators);
        if named.call_function.is_some() {
            with_function += 1;
        }
        update.execute(params![
            site,
            named.call_depth as i64,
            named.call_site,
            named.caller_module,
            named.call_function,
            named.function_site_id
        ])?;
    }
    Ok((sites.len() as u64, with_function))
}

/// A frame of a site with the name of its function, when its PDB gave one.
#[derive(Debug, Clone)]
pub struct NamedSiteFrame {
    pub frame: Frame,
    /// Short name (`JsonWriter::Grow`) and full name of the outer function.
    pub name: Option<String>,
    pub function: Option<String>,
}

/// A site's names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SiteNames {
    pub call_depth: usize,
    pub call_site: String,
    pub caller_module: Option<String>,
    pub call_function: Option<String>,
    pub function_site_id: Option<i64>,
}

/// The names of a site from its frames: the call site is the first frame from
/// `call_depth` (the first outside the heap modules) that is not an allocator
/// function; the function identity hashes each frame as `'f' module '\0' function`
/// when it has a name, else as [`crate::ingest::identity::site_id`] does, and exists
/// only when some frame has a name.
pub fn name_site(
    frames: &[NamedSiteFrame],
    call_depth: usize,
    allocators: &AllocatorFunctions,
) -> SiteNames {
    fn named(f: &NamedSiteFrame) -> Option<&str> {
        f.function.as_deref().filter(|n| *n != "<unknown>")
    }
    let mut depth = call_depth;
    while let Some(f) = frames.get(depth) {
        match named(f) {
            Some(func) if allocators.contains(func) && depth + 1 < frames.len() => depth += 1,
            _ => break,
        }
    }
    let call = frames.get(depth);
    let caller_module = call.and_then(|f| match &f.frame {
        Frame::Module { module, .. } => Some(module.clone()),
        Frame::Address(_) => None,
    });
    let call_function = call.and_then(|f| {
        let module = caller_module.as_deref()?;
        named(f)?;
        Some(format!("{module}!{}", f.name.as_deref().unwrap_or("")))
    });
    let function_site_id = frames.iter().any(|f| named(f).is_some()).then(|| {
        let mut h = blake3::Hasher::new();
        for f in frames {
            match (&f.frame, named(f)) {
                (Frame::Module { module, .. }, Some(func)) => {
                    h.update(b"f");
                    h.update(module.as_bytes());
                    h.update(b"\0");
                    h.update(func.as_bytes());
                    h.update(b"\0");
                }
                (Frame::Module { module, rva }, None) => {
                    h.update(b"m");
                    h.update(module.as_bytes());
                    h.update(b"\0");
                    h.update(&rva.to_le_bytes());
                }
                (Frame::Address(a), _) => {
                    h.update(b"a");
                    h.update(&a.to_le_bytes());
                }
            }
        }
        let b = h.finalize();
        let mut v = [0u8; 8];
        v.copy_from_slice(&b.as_bytes()[..8]);
        (u64::from_le_bytes(v) & (i64::MAX as u64)) as i64
    });
    SiteNames {
        call_depth: depth,
        call_site: call.map(|f| f.frame.to_string()).unwrap_or_default(),
        caller_module,
        call_function,
        function_site_id,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(module: &str, rva: u64, func: Option<&str>) -> NamedSiteFrame {
        NamedSiteFrame {
            frame: Frame::Module {
                module: module.into(),
                rva,
            },
            name: func.map(|n| short_name(n).to_string()),
            function: func.map(str::to_string),
        }
    }

    #[test]
    fn call_site_skips_allocator_functions_and_identity_ignores_rvas() {
        let a = AllocatorFunctions::default();
        let build1 = vec![
            f("ntdll.dll", 0x1a2b0, None),
            f(
                "heapdemo.dll",
                0x1021,
                Some("heap_realloc(void *, unsigned __int64)"),
            ),
            f(
                "heapdemo.dll",
                0x112d,
                Some("JsonWriter::Grow(unsigned __int64)"),
            ),
            f(
                "heapdemo.dll",
                0x1159,
                Some("JsonWriter::WriteString(char const *, unsigned __int64)"),
            ),
            f("app.exe", 0x4000, None),
        ];
        let n1 = name_site(&build1, 1, &a);
        assert_eq!(n1.call_depth, 2);
        assert_eq!(n1.call_site, "heapdemo.dll+0x112d");
        assert_eq!(
            n1.call_function.as_deref(),
            Some("heapdemo.dll!JsonWriter::Grow")
        );
        // A rebuild: every heapdemo frame moved, the names did not.
        let mut build2 = build1.clone();
        for (i, fr) in build2.iter_mut().enumerate().skip(1).take(3) {
            fr.frame = Frame::Module {
                module: "heapdemo.dll".into(),
                rva: 0x2000 + i as u64 * 0x40,
            };
        }
        let n2 = name_site(&build2, 1, &a);
        assert_eq!(n2.function_site_id, n1.function_site_id);
        assert_ne!(n2.call_site, n1.call_site);
        // An unnamed frame that differs still tells sites apart.
        let mut other = build1.clone();
        other[4].frame = Frame::Module {
            module: "app.exe".into(),
            rva: 0x4010,
        };
        assert_ne!(
            name_site(&other, 1, &a).function_site_id,
            n1.function_site_id
        );
        // Nothing named: no function identity, call site unchanged.
        let bare: Vec<_> = build1
            .iter()
            .map(|x| NamedSiteFrame {
                name: None,
                function: None,
                ..x.clone()
            })
            .collect();
        let n = name_site(&bare, 1, &a);
        assert_eq!(
            (n.call_depth, n.function_site_id, n.call_function),
            (1, None, None)
        );
    }
}
