//! `heapdb symbolize`: function names for the stacks of a database, from PDB files.

use super::{say, Outcome, UsageError};
use clap::Args;
use heapdb::db::symbolize::{self, Outcome as PdbOutcome, Report};
use heapdb::symbols::names::AllocatorFunctions;
use heapdb::symbols::{LocateOptions, SymbolPath};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The symbol options `symbolize` and `ingest` share.
#[derive(Args, Clone, Default)]
pub struct SymbolArgs {
    /// Symbol path, as the Windows debuggers take it: `;`-separated directories,
    /// symbol stores, `cache*DIR` and `srv*CACHE*URL` entries (downloads from URL into
    /// CACHE), e.g. 'srv*/var/cache/symbols*https://msdl.microsoft.com/download/symbols'.
    /// Default: $_NT_SYMBOL_PATH (after $_NT_ALT_SYMBOL_PATH).
    #[arg(long = "symbols", value_name = "PATH")]
    pub symbols: Option<String>,
    /// Never download PDBs: search the directories, stores and caches of the path only.
    #[arg(long)]
    pub offline: bool,
    /// Give up on a symbol server that sends nothing for this long (connecting, each
    /// wait for data); it is then not asked again in this run.
    #[arg(long, value_name = "SECS", default_value = "20")]
    pub symbol_timeout: f64,
    /// A function of the program's own that allocates for its callers (repeatable; `*`
    /// matches anything, case-insensitive), e.g. 'MyArena::Grow' or 'xmem_*': call
    /// sites move past it, as past malloc, realloc, operator new and HeapAlloc.
    #[arg(long = "allocator", value_name = "PATTERN")]
    pub allocators: Vec<String>,
}

impl SymbolArgs {
    /// The symbol path of the flag, else of the environment; None when neither gives one.
    pub fn path(&self) -> anyhow::Result<Option<SymbolPath>> {
        let path = match &self.symbols {
            Some(p) => SymbolPath::parse(p),
            None => SymbolPath::from_env(),
        }
        .map_err(|e| UsageError(format!("--symbols: {e}")))?;
        Ok((!path.entries().is_empty()).then_some(path))
    }

    pub fn options(
        &self,
        path: SymbolPath,
        jobs: Option<usize>,
    ) -> anyhow::Result<symbolize::Options> {
        if !(self.symbol_timeout > 0.0 && self.symbol_timeout.is_finite()) {
            return Err(
                UsageError("--symbol-timeout must be a positive number of seconds".into()).into(),
            );
        }
        Ok(symbolize::Options {
            path,
            locate: LocateOptions {
                offline: self.offline,
                timeout: Duration::from_secs_f64(self.symbol_timeout),
                default_cache: None,
            },
            allocators: AllocatorFunctions::new(&self.allocators),
            jobs,
        })
    }
}

#[derive(Args)]
#[command(
    after_help = "Looks for the PDB of every image of the stored captures along \
the symbol path, checks that it is the one the image was built with (GUID and age), and \
names every frame of the call sites: module!function+0xOFF with source file and line, \
and inline frames. Each distinct address is resolved once. A frame whose PDB is missing \
or does not match stays module+0xRVA, never a wrong name. Call sites move past \
allocator functions (malloc, realloc, operator new, HeapAlloc, ... and --allocator), so \
reports group by the function that asked for memory; `capture-diff` and `trend` then \
match a call site across rebuilds of the program by its functions.\n\n\
Rerun-safe: a run does only what is missing (PDBs not found before, captures stored \
since), so run it again when the PDBs arrive. `heapdb ingest --symbols PATH` does the \
same after loading. `heapdb query --db heap.db symbol-status` lists each PDB with what \
was found.\n\n\
Exit codes: 0 done (PDBs that were not found are listed, not errors), 1 a PDB was found \
but did not match its image or could not be read, 2 usage error, 3 database failure, \
4 interrupted (nothing of the run is stored).\n\n\
Examples:\n  heapdb symbolize --db heap.db --symbols 'C:\\build\\out;srv*C:\\symcache*https://msdl.microsoft.com/download/symbols'\n  \
heapdb symbolize --db demo.db --symbols fixtures/symbols/x64\n  \
_NT_SYMBOL_PATH=/srv/symbols heapdb symbolize --db heap.db --offline"
)]
pub struct SymbolizeArgs {
    /// Database file.
    #[arg(long, default_value = "heap.db", value_name = "FILE")]
    pub db: PathBuf,
    #[command(flatten)]
    pub symbols: SymbolArgs,
    /// Threads for reading PDBs (default: one per core).
    #[arg(long, short, value_name = "N")]
    pub jobs: Option<usize>,
}

pub fn run(a: SymbolizeArgs, quiet: bool) -> anyhow::Result<Outcome> {
    let Some(path) = a.symbols.path()? else {
        return Err(UsageError(
            "no symbol path: give --symbols PATH or set _NT_SYMBOL_PATH".into(),
        )
        .into());
    };
    if !a.db.exists() {
        anyhow::bail!("{}: no such database", a.db.display());
    }
    let opts = a.symbols.options(path, a.jobs)?;
    run_on(&a.db, &opts, quiet)
}

/// Symbolizes `db` and prints what happened: shared by `symbolize` and `ingest`.
pub fn run_on(db: &Path, opts: &symbolize::Options, quiet: bool) -> anyhow::Result<Outcome> {
    let mut conn = heapdb::db::open_rw(db)?;
    let term = super::progress::Terminal::new(quiet, 0);
    let report = symbolize::symbolize(&mut conn, opts, &term, super::cancel());
    term.finish();
    let report = report.map_err(|e| anyhow::anyhow!("{}: {e:#}", db.display()))?;
    print_report(db, &report, quiet);
    Ok(if report.interrupted {
        Outcome::Interrupted
    } else if report.had_bad_pdbs() {
        Outcome::InputErrors
    } else {
        Outcome::Ok
    })
}

fn print_report(db: &Path, r: &Report, quiet: bool) {
    for w in &r.warnings {
        say(format!("warning: {w}"));
    }
    for (_, o) in &r.pdbs {
        match o {
            PdbOutcome::Mismatch(m) | PdbOutcome::Error(m) => say(m),
            _ => {}
        }
    }
    if r.interrupted {
        say("symbolize: interrupted; nothing of this run was stored");
        return;
    }
    let loaded = r.count(|o| matches!(o, PdbOutcome::Loaded { .. }));
    let missing: Vec<String> = r
        .pdbs
        .iter()
        .filter(|(_, o)| matches!(o, PdbOutcome::NotFound(_)))
        .map(|(id, _)| id.name.clone())
        .collect();
    if !quiet && !missing.is_empty() {
        let mut names = missing.clone();
        names.sort();
        names.dedup();
        let shown: Vec<&str> = names.iter().take(8).map(String::as_str).collect();
        say(format!(
            "{} PDB(s) not found: {}{} (frames in those modules stay module+0xRVA; see: heapdb query --db {} symbol-status)",
            missing.len(),
            shown.join(", "),
            if names.len() > shown.len() { ", ..." } else { "" },
            db.display()
        ));
    }
    say(format!(
        "{}: symbols: {} PDB(s) loaded, {} already current, {} not found, {} unusable; {} address(es) resolved ({} outside any function) at {:.2} M/s per thread; {} call site(s) named, {} by function; PDBs {:.2} s, resolving {:.2} s, writing {:.2} s",
        db.display(),
        loaded,
        r.pdbs_current,
        missing.len(),
        r.count(|o| matches!(o, PdbOutcome::Mismatch(_) | PdbOutcome::Error(_))),
        r.rvas,
        r.rvas_unknown,
        r.rvas as f64 / r.resolve_seconds.max(1e-9) / 1e6,
        r.sites,
        r.sites_with_function,
        r.load_seconds,
        r.resolve_seconds,
        r.write_seconds,
    ));
}
