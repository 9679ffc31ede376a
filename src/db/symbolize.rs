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
use crate::ingest::{Observer, Phase, Progress};
use crate::symbols::names::{short_name, AllocatorFunctions};
use crate::symbols::{
    LocateError, LocateOptions, PdbId, PdbSymbols, Resolved, SymError, SymbolPath,
};
use anyhow::{Context as _, Result};
use rayon::prelude::*;
use rusqlite::{params, Connection, OptionalExtension};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
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
    /// Seconds spent by the threads locating and opening PDBs, and resolving (summed
    /// over threads).
    pub load_seconds: f64,
    pub resolve_seconds: f64,
    /// Wall seconds: finding (and downloading) the PDBs; opening and resolving them;
    /// everything else of the transaction (writing symbols, naming sites, commit).
    pub locate_seconds: f64,
    pub resolve_wall_seconds: f64,
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
    id: PdbId,
    outcome: Outcome,
    path: Option<String>,
    rows: Vec<SymRow>,
    load_s: f64,
    resolve_s: f64,
}

/// Symbolizes what is missing in the database. The connection must be writable and at
/// the current schema.
///
/// PDBs are located (and downloaded) first, outside any transaction; then, inside one,
/// they are opened and resolved a few at a time (as many as there are threads) and
/// their rows written as each group finishes, so memory holds the open PDBs and one
/// group's names, and the write lock is held for local work only.
pub fn symbolize(
    conn: &mut Connection,
    opts: &Options,
    observer: &dyn Observer,
    cancel: &Cancel,
) -> Result<Report> {
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
    let t = Instant::now();
    let total = jobs.len();
    let finished = AtomicUsize::new(0);
    let tell = |step: &'static str, name: &str| {
        let done = finished.fetch_add(1, Ordering::Relaxed) + 1;
        observer.progress(&Progress {
            phase: Phase::Symbols {
                step,
                done,
                total,
                name: name.to_string(),
            },
            bytes_done: 0,
            bytes_total: 0,
            rows: 0,
        });
    };
    let located: Vec<Located> = pool.install(|| {
        jobs.into_par_iter()
            .map(|j| {
                if cancel.requested() {
                    None
                } else {
                    let l = locate(j, opts);
                    tell("finding", &l.job.id.name);
                    Some(l)
                }
            })
            .collect::<Option<Vec<_>>>()
            .unwrap_or_default()
    });
    report.locate_seconds = t.elapsed().as_secs_f64();
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
    finished.store(0, Ordering::Relaxed);
    let mut names = NameMap::default();
    let mut newly_loaded = HashSet::new();
    let mut outcomes = Vec::new();
    let mut resolve_wall = 0.0;
    {
        let mut ins = tx.prepare_cached(
            "INSERT OR IGNORE INTO symbols (pdb_id, rva, inline_depth, name, function, function_rva, file, line)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )?;
        let mut upd = tx.prepare_cached(
            "UPDATE pdbs SET status = ?2, path = ?3, found_by = ?4, message = ?5,
                    rvas = rvas + ?6, updated_ns = ?7 WHERE pdb_id = ?1",
        )?;
        let mut was = tx.prepare_cached("SELECT status FROM pdbs WHERE pdb_id = ?1")?;
        let now = now_ns();
        let group = pool.current_num_threads().max(1);
        for chunk in located.chunks(group) {
            if cancel.requested() {
                report.interrupted = true;
                return Ok(report); // the transaction rolls back
            }
            let tr = Instant::now();
            let done: Vec<Done> = pool.install(|| {
                chunk
                    .par_iter()
                    .map(|l| {
                        let d = resolve(l);
                        tell("reading", &l.job.id.name);
                        d
                    })
                    .collect()
            });
            resolve_wall += tr.elapsed().as_secs_f64();
            for d in done {
                report.load_seconds += d.load_s;
                report.resolve_seconds += d.resolve_s;
                for r in &d.rows {
                    report.rvas += 1;
                    let Some(res) = &r.resolved else {
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
                        names.insert(d.pdb_id, r.rva, None);
                        continue;
                    };
                    // Stored outermost first: level 0 is the real function.
                    for (level, f) in res.frames.iter().rev().enumerate() {
                        let start =
                            (level == 0).then(|| i64::from(r.rva) - i64::from(f.function_offset));
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
                    names.insert(d.pdb_id, r.rva, res.outer().map(|f| f.function.as_str()));
                }
                let (status, found_by, message, rvas) = match &d.outcome {
                    Outcome::Loaded { found_by, rvas } => {
                        ("loaded", Some(found_by.as_str()), None, *rvas as i64)
                    }
                    Outcome::NotFound(m) => ("not_found", None, Some(m.as_str()), 0),
                    Outcome::Mismatch(m) => ("mismatch", None, Some(m.as_str()), 0),
                    Outcome::Error(m) => ("error", None, Some(m.as_str()), 0),
                };
                let before: String = was.query_row([d.pdb_id], |r| r.get(0))?;
                if status == "loaded" && before != "loaded" {
                    newly_loaded.insert(d.pdb_id);
                }
                upd.execute(params![
                    d.pdb_id, status, d.path, found_by, message, rvas, now
                ])?;
                outcomes.push((d.id, d.outcome));
            }
        }
    }
    let (named, with_function) = name_sites(&tx, &newly_loaded, &opts.allocators, &mut names)?;
    report.sites = named;
    report.sites_with_function = with_function;
    tx.commit()?;
    report.resolve_wall_seconds = resolve_wall;
    report.write_seconds = (t.elapsed().as_secs_f64() - resolve_wall).max(0.0);
    report.pdbs = outcomes;
    Ok(report)
}

/// The outer function of each (PDB, RVA) a run needs to name sites: the ones it
/// resolved, and those of earlier runs, read when first asked for. Names are interned.
#[derive(Default)]
struct NameMap {
    of: HashMap<(i64, u32), Option<u32>>,
    functions: Vec<String>,
    ids: HashMap<String, u32>,
}

impl NameMap {
    fn insert(&mut self, pdb: i64, rva: u32, function: Option<&str>) {
        let id = function.map(|f| match self.ids.get(f) {
            Some(&id) => id,
            None => {
                let id = self.functions.len() as u32;
                self.functions.push(f.to_string());
                self.ids.insert(f.to_string(), id);
                id
            }
        });
        self.of.insert((pdb, rva), id);
    }

    /// The function id at (pdb, rva), reading `symbols` for one resolved by an earlier run.
    fn get(&mut self, conn: &Connection, pdb: i64, rva: u32) -> rusqlite::Result<Option<u32>> {
        if let Some(&id) = self.of.get(&(pdb, rva)) {
            return Ok(id);
        }
        let f: Option<Option<String>> = conn
            .prepare_cached(
                "SELECT function FROM symbols WHERE pdb_id = ?1 AND rva = ?2 AND inline_depth = 0",
            )?
            .query_row(params![pdb, rva], |r| r.get(0))
            .optional()?;
        self.insert(pdb, rva, f.flatten().as_deref());
        Ok(self.of.get(&(pdb, rva)).copied().flatten())
    }
}

fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
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
    // Loaded by an earlier run and nothing new to resolve in them.
    let loaded: usize = conn.query_row(
        "SELECT count(*) FROM pdbs WHERE status = 'loaded'",
        [],
        |r| r.get(0),
    )?;
    report.pdbs_current = loaded - jobs.iter().filter(|j| j.known_path.is_some()).count();
    Ok(jobs)
}

/// A PDB after the search: the file to open, or why there is none.
struct Located {
    job: Job,
    found: Result<(PathBuf, String), (Outcome, Option<String>)>,
    seconds: f64,
}

/// Finds a job's PDB along the path (downloading it when a server has it). A PDB
/// loaded by an earlier run is taken where it was, if it is still there.
fn locate(j: Job, opts: &Options) -> Located {
    let t = Instant::now();
    let found = if !j.id.has_plain_name() {
        Err((
            Outcome::NotFound(format!(
                "{}: not looked for: the image names its PDB by a path, not a file name",
                j.id
            )),
            None,
        ))
    } else if let Some(known) = j.known_path.clone().filter(|(p, _)| p.is_file()) {
        Ok(known)
    } else {
        match opts.path.locate(&j.id, &opts.locate) {
            Ok(l) => Ok((l.path, l.how.to_string())),
            Err(e @ LocateError::NotFound { .. }) => {
                let LocateError::NotFound { mismatched, .. } = &e;
                Err(match mismatched.first() {
                    Some(m) => (
                        Outcome::Mismatch(e.to_string()),
                        Some(m.display().to_string()),
                    ),
                    None => (Outcome::NotFound(e.to_string()), None),
                })
            }
        }
    };
    Located {
        job: j,
        found,
        seconds: t.elapsed().as_secs_f64(),
    }
}

/// Opens, verifies and reads a located PDB: the names of the job's RVAs.
fn resolve(l: &Located) -> Done {
    let j = &l.job;
    let mut done = Done {
        pdb_id: j.pdb_id,
        id: j.id.clone(),
        outcome: Outcome::NotFound(String::new()),
        path: None,
        rows: Vec::new(),
        load_s: l.seconds,
        resolve_s: 0.0,
    };
    let (path, how) = match &l.found {
        Ok(x) => x,
        Err((outcome, path)) => {
            done.outcome = outcome.clone();
            done.path = path.clone();
            return done;
        }
    };
    done.path = Some(path.display().to_string());
    let t = Instant::now();
    let mut syms = match PdbSymbols::open(path, &j.id) {
        Ok(s) => s,
        Err(e) => {
            done.load_s += t.elapsed().as_secs_f64();
            done.outcome = match e {
                SymError::Mismatch { .. } => Outcome::Mismatch(e.to_string()),
                _ => Outcome::Error(e.to_string()),
            };
            return done;
        }
    };
    done.load_s += t.elapsed().as_secs_f64();
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
        found_by: how.clone(),
        rvas: rows.len(),
    };
    done.rows = rows;
    done
}

/// Names the sites never named, and those with a frame in a PDB loaded in this run:
/// the call site moves past allocator functions, `call_function` is its
/// `module!function`, and `function_site_id` hashes the frames by function name.
/// One pass over `site_frames` in key order, a site at a time.
fn name_sites(
    conn: &Connection,
    newly_loaded: &HashSet<i64>,
    allocators: &AllocatorFunctions,
    names: &mut NameMap,
) -> Result<(u64, u64)> {
    let mut call_depth: HashMap<i64, i64> = HashMap::new();
    let mut named_before: HashMap<i64, i64> = HashMap::new();
    {
        let mut st = conn.prepare("SELECT site_id, call_depth, symbolized FROM sites")?;
        let mut rows = st.query([])?;
        while let Some(r) = rows.next()? {
            let (site, depth, done): (i64, i64, Option<i64>) = (r.get(0)?, r.get(1)?, r.get(2)?);
            if done.is_none() {
                call_depth.insert(site, depth);
            } else if !newly_loaded.is_empty() {
                named_before.insert(site, depth);
            }
        }
    }
    let pdb_loaded: HashSet<i64> = conn
        .prepare("SELECT pdb_id FROM pdbs WHERE status = 'loaded'")?
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let mut update = conn.prepare_cached(
        "UPDATE sites SET call_depth = ?2, call_site = ?3, caller_module = ?4,
                call_function = ?5, function_site_id = ?6, symbolized = 1
         WHERE site_id = ?1",
    )?;
    let mut is_alloc: HashMap<u32, bool> = HashMap::new();
    let (mut count, mut with_function) = (0u64, 0u64);
    // Raw frames of the current site: (depth, frame, pdb).
    let mut current: Option<(i64, i64, bool)> = None;
    let mut raw: Vec<(Frame, Option<i64>, i64)> = Vec::new();
    let mut finish = |site: i64,
                      depth: i64,
                      new: bool,
                      raw: &mut Vec<(Frame, Option<i64>, i64)>,
                      names: &mut NameMap|
     -> Result<()> {
        // A site named before changes only if a PDB of its frames was loaded now.
        if !new
            && !raw
                .iter()
                .any(|f| f.1.is_some_and(|p| newly_loaded.contains(&p)))
        {
            raw.clear();
            return Ok(());
        }
        let mut frames = Vec::with_capacity(raw.len());
        for (frame, pdb, d) in raw.drain(..) {
            let mut func = None;
            if let (Frame::Module { rva, .. }, Some(pdb)) = (&frame, pdb) {
                if pdb_loaded.contains(&pdb) {
                    if let Some(p) = probe(d, *rva as i64) {
                        func = names.get(conn, pdb, p)?;
                    }
                }
            }
            frames.push((frame, func));
        }
        let functions = &names.functions;
        let n = name_site_with(
            &frames,
            depth as usize,
            |id| {
                *is_alloc
                    .entry(id)
                    .or_insert_with(|| allocators.contains(&functions[id as usize]))
            },
            functions,
        );
        if n.call_function.is_some() {
            with_function += 1;
        }
        count += 1;
        update.execute(params![
            site,
            n.call_depth as i64,
            n.call_site,
            n.caller_module,
            n.call_function,
            n.function_site_id
        ])?;
        Ok(())
    };
    let mut st = conn.prepare(
        "SELECT site_id, depth, module, rva, address, pdb_id FROM site_frames ORDER BY site_id, depth",
    )?;
    let mut rows = st.query([])?;
    while let Some(r) = rows.next()? {
        let site: i64 = r.get(0)?;
        let pdb: Option<i64> = r.get(5)?;
        if current.is_some_and(|(s, _, _)| s != site) {
            if let Some((s, d, new)) = current.take() {
                finish(s, d, new, &mut raw, names)?;
            }
        }
        if current.is_none() {
            let depth = match call_depth.get(&site) {
                Some(&d) => Some((d, true)),
                None => named_before.get(&site).map(|&d| (d, false)),
            };
            match depth {
                Some((d, new)) => current = Some((site, d, new)),
                None => continue,
            }
            raw.clear();
        }
        let module: Option<String> = r.get(2)?;
        let frame = match module {
            Some(module) => Frame::Module {
                module,
                rva: r.get::<_, i64>(3)? as u64,
            },
            None => Frame::Address(r.get::<_, Option<i64>>(4)?.unwrap_or(0) as u64),
        };
        raw.push((frame, pdb, r.get(1)?));
    }
    if let Some((s, d, new)) = current.take() {
        finish(s, d, new, &mut raw, names)?;
    }
    Ok((count, with_function))
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

/// The names of a site from its frames, each with the index of its outer function's
/// full name in `functions` (None: no name): the call site is the first frame from
/// `call_depth` (the first outside the heap modules) whose function is not an
/// allocator's (`is_alloc`; callers cache it); the function identity hashes each frame
/// as `'f' module '\0' function` when it has a name, else as
/// [`crate::ingest::identity::site_id`] does, and exists only when some frame has a
/// name.
fn name_site_with(
    frames: &[(Frame, Option<u32>)],
    call_depth: usize,
    mut is_alloc: impl FnMut(u32) -> bool,
    functions: &[String],
) -> SiteNames {
    let named = |f: &(Frame, Option<u32>)| -> Option<u32> {
        f.1.filter(|&id| functions[id as usize] != "<unknown>")
    };
    let mut depth = call_depth;
    while let Some(f) = frames.get(depth) {
        match named(f) {
            Some(id) if depth + 1 < frames.len() && is_alloc(id) => depth += 1,
            _ => break,
        }
    }
    let call = frames.get(depth);
    let caller_module = call.and_then(|f| match &f.0 {
        Frame::Module { module, .. } => Some(module.clone()),
        Frame::Address(_) => None,
    });
    let call_function = call.and_then(|f| {
        let module = caller_module.as_deref()?;
        let id = named(f)?;
        Some(format!("{module}!{}", short_name(&functions[id as usize])))
    });
    let function_site_id = frames.iter().any(|f| named(f).is_some()).then(|| {
        let mut h = blake3::Hasher::new();
        for f in frames {
            match (&f.0, named(f)) {
                (Frame::Module { module, .. }, Some(id)) => {
                    h.update(b"f");
                    h.update(module.as_bytes());
                    h.update(b"\0");
                    h.update(functions[id as usize].as_bytes());
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
        call_site: call.map(|f| f.0.to_string()).unwrap_or_default(),
        caller_module,
        call_function,
        function_site_id,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type F = (Frame, Option<&'static str>);

    fn f(module: &str, rva: u64, func: Option<&'static str>) -> F {
        (
            Frame::Module {
                module: module.into(),
                rva,
            },
            func,
        )
    }

    /// name_site_with over frames carrying their names.
    fn name_site(frames: &[F], call_depth: usize, a: &AllocatorFunctions) -> SiteNames {
        let functions: Vec<String> = frames
            .iter()
            .map(|f| f.1.unwrap_or_default().to_string())
            .collect();
        let ids: Vec<(Frame, Option<u32>)> = frames
            .iter()
            .enumerate()
            .map(|(i, f)| (f.0.clone(), f.1.map(|_| i as u32)))
            .collect();
        name_site_with(
            &ids,
            call_depth,
            |id| a.contains(&functions[id as usize]),
            &functions,
        )
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
            fr.0 = Frame::Module {
                module: "heapdemo.dll".into(),
                rva: 0x2000 + i as u64 * 0x40,
            };
        }
        let n2 = name_site(&build2, 1, &a);
        assert_eq!(n2.function_site_id, n1.function_site_id);
        assert_ne!(n2.call_site, n1.call_site);
        // An unnamed frame that differs still tells sites apart.
        let mut other = build1.clone();
        other[4].0 = Frame::Module {
            module: "app.exe".into(),
            rva: 0x4010,
        };
        assert_ne!(
            name_site(&other, 1, &a).function_site_id,
            n1.function_site_id
        );
        // Nothing named: no function identity, call site unchanged.
        let bare: Vec<F> = build1.iter().map(|x| (x.0.clone(), None)).collect();
        let n = name_site(&bare, 1, &a);
        assert_eq!(
            (n.call_depth, n.function_site_id, n.call_function),
            (1, None, None)
        );
    }
}
