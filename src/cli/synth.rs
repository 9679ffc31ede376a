//! `heapdb synth`: write realistic heap captures and their manifest.

use super::{say, Outcome, UsageError};
use clap::{Args, ValueEnum};
use heapdb::synth::{self, HeapHeader, Options, PointerMode, StackMode};
use std::path::PathBuf;
use std::time::Instant;

#[derive(Clone, Copy, ValueEnum)]
pub enum PtrArg {
    #[value(name = "32")]
    P32,
    #[value(name = "64")]
    P64,
    Mixed,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum HeaderArg {
    /// SYSTEM_TRACE_HEADER with a kernel hook id, as every capture seen so far.
    System,
    /// Classic EVENT_TRACE_HEADER with the heap provider's GUID.
    Classic,
    /// EVENT_HEADER with the heap provider's GUID (stacks in its extended data).
    Event,
}

#[derive(Args)]
#[command(
    after_help = "Writes DIR/synth-NNNN-seedS.etl and DIR/manifest.json (counts per \
opcode, per process and per heap, realloc statistics, sums of sizes) that tests compare the \
decoder and the database against, and the block lifetimes (`lifetimes`) an observer of the \
written events must find. By default the captures have what real traces have: blocks \
allocated before the trace, a few lost events, a heap destroyed and a process exiting \
mid-trace (--ideal: none of them). The same seed writes the same bytes.\n\n\
Examples:\n  heapdb synth --out demo\n  heapdb synth --out big --files 8 --events-per-file 5000000 --stacks\n  \
heapdb synth --out wow --pointer-size mixed --compress --seed 7"
)]
pub struct SynthArgs {
    /// Directory to write the captures and manifest.json into (created if needed).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Number of captures to write.
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub files: u32,
    /// Heap events per capture (rundown and stack events come on top).
    #[arg(long, default_value_t = 100_000, value_name = "M")]
    pub events_per_file: u64,
    /// Pointer size of the records: 32 (a 32-bit Windows), 64, or mixed (a 64-bit
    /// Windows with WOW64 processes writing 32-bit heap records).
    #[arg(long, value_enum, default_value = "64")]
    pub pointer_size: PtrArg,
    /// Processes per capture.
    #[arg(long, default_value_t = 4, value_name = "K")]
    pub processes: u32,
    /// Write a StackWalk event after each Create/Alloc/ReAlloc.
    #[arg(long)]
    pub stacks: bool,
    /// Write cached stacks instead (StackWalk key references + key definitions).
    #[arg(long, conflicts_with = "stacks")]
    pub stack_keys: bool,
    #[arg(long, default_value_t = 1, value_name = "S")]
    pub seed: u64,
    /// Compress every buffer but the first (LZ77 XPRESS, like `xperf -merge -compress`).
    #[arg(long)]
    pub compress: bool,
    /// Share of heap operations that are reallocs (0..1).
    #[arg(long, default_value_t = 0.25, value_name = "F")]
    pub realloc_share: f64,
    /// Share of moving reallocs logged with their internal Alloc + Free (0..1).
    #[arg(long, default_value_t = 0.5, value_name = "F")]
    pub internal_share: f64,
    /// CPUs of the simulated machine (one buffer stream each).
    #[arg(long, default_value_t = 4)]
    pub cpus: u16,
    /// Session buffer size in KiB (4..=1024).
    #[arg(long, default_value_t = 64, value_name = "KIB")]
    pub buffer_kib: u32,
    /// Record header of the heap events.
    #[arg(long, value_enum, default_value = "system")]
    pub heap_header: HeaderArg,
    /// The program traced: its processes, modules and call sites (module + RVA). The
    /// same program seed gives the same code every night, while `--seed` and the
    /// night change what the OS chooses (image bases, pids, thread ids, heap handles,
    /// times), as on real nightly captures.
    #[arg(long, default_value_t = 1, value_name = "S")]
    pub program_seed: u64,
    /// Simulate a rebuild of the program: its call sites' RVAs shift and its PDB
    /// identity changes, and its heapdemo.dll is the fixture's build 2 from 1 on
    /// (system DLLs stay).
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub build: u32,
    /// Plant a regression: the allocations (and so the reallocs) of process P's call
    /// site S grow by factor F per night (capture N has F^N times the share). The
    /// truth is written to manifest.json (`regression` of each file).
    #[arg(long, value_name = "P:S=F", value_parser = parse_regression)]
    pub regression: Option<(usize, usize, f64)>,
    /// Live blocks each process holds when the trace starts (allocated before it: no
    /// Alloc logged), in its default heap. Frees and reallocs pick them like any other
    /// block, so early Frees/ReAllocs touch blocks the trace never saw allocated.
    #[arg(long, default_value_t = 300, value_name = "N")]
    pub pre_trace_blocks: u32,
    /// Share of Alloc and Free events (not ReAllocs) that happen but are not written,
    /// as when a session's buffers overflow (0..0.5; 0 = none). Their number goes into
    /// the logfile header's EventsLost; the manifest counts them (`lifetimes`).
    #[arg(long, default_value_t = 0.0005, value_name = "F")]
    pub lost_events: f64,
    /// Do not destroy a private heap with live blocks in the middle of the trace (the
    /// end-of-trace destroys stay).
    #[arg(long)]
    pub no_mid_trace_destroy: bool,
    /// Do not make a process exit in the middle of the trace (at 60-80%, logging
    /// nothing afterwards); it exits at the end instead.
    #[arg(long)]
    pub no_mid_trace_exit: bool,
    /// An idealized trace: no pre-trace blocks, no lost events, no mid-trace heap
    /// destroy or process exit (overrides the four options above).
    #[arg(long)]
    pub ideal: bool,
}

fn parse_regression(s: &str) -> Result<(usize, usize, f64), String> {
    let err =
        || format!("expected P:S=F (process index, site index, factor), e.g. 0:3=1.5; got {s:?}");
    let (ps, f) = s.split_once('=').ok_or_else(err)?;
    let (p, site) = ps.split_once(':').ok_or_else(err)?;
    let f: f64 = f.trim().parse().map_err(|_| err())?;
    if !(f.is_finite() && f > 0.0 && f <= 100.0) {
        return Err(format!(
            "the factor of --regression must be in (0, 100]; got {f}"
        ));
    }
    Ok((
        p.trim().parse().map_err(|_| err())?,
        site.trim().parse().map_err(|_| err())?,
        f,
    ))
}

pub fn run(a: SynthArgs, quiet: bool) -> anyhow::Result<Outcome> {
    if !(0.0..=1.0).contains(&a.realloc_share) || !(0.0..=1.0).contains(&a.internal_share) {
        return Err(UsageError(
            "--realloc-share and --internal-share must be between 0 and 1".into(),
        )
        .into());
    }
    if !(0.0..=0.5).contains(&a.lost_events) {
        return Err(UsageError("--lost-events must be between 0 and 0.5".into()).into());
    }
    if !(4..=1024).contains(&a.buffer_kib) || a.cpus == 0 {
        return Err(
            UsageError("--buffer-kib must be 4..=1024 and --cpus at least 1".into()).into(),
        );
    }
    let opts = Options {
        files: a.files,
        events_per_file: a.events_per_file,
        pointer_mode: match a.pointer_size {
            PtrArg::P32 => PointerMode::P32,
            PtrArg::P64 => PointerMode::P64,
            PtrArg::Mixed => PointerMode::Mixed,
        },
        processes: a.processes.max(1),
        stacks: if a.stacks {
            StackMode::Plain
        } else if a.stack_keys {
            StackMode::Keyed
        } else {
            StackMode::None
        },
        seed: a.seed,
        compress: a.compress,
        realloc_share: a.realloc_share,
        internal_share: a.internal_share,
        cpus: a.cpus,
        buffer_size: a.buffer_kib * 1024,
        heap_header: match a.heap_header {
            HeaderArg::System => HeapHeader::System,
            HeaderArg::Classic => HeapHeader::Classic,
            HeaderArg::Event => HeapHeader::Event,
        },
        program_seed: a.program_seed,
        build: a.build,
        regression: a.regression,
        pre_trace_blocks: a.pre_trace_blocks,
        lost_events: a.lost_events,
        destroy_mid_trace: !a.no_mid_trace_destroy,
        exit_mid_trace: !a.no_mid_trace_exit,
    };
    let opts = if a.ideal { opts.ideal() } else { opts };
    if let Some((p, site, _)) = opts.regression {
        let sites = synth::sites_per_process(&opts);
        match sites.get(p) {
            None => {
                return Err(UsageError(format!(
                    "--regression {p}:{site}: there are {} processes (0..={})",
                    sites.len(),
                    sites.len() - 1
                ))
                .into())
            }
            Some(&n) if site >= n => {
                return Err(UsageError(format!(
                    "--regression {p}:{site}: process {p} has {n} call sites (0..={})",
                    n - 1
                ))
                .into())
            }
            _ => {}
        }
    }
    let t = Instant::now();
    let m = synth::generate(&a.out, &opts)
        .map_err(|e| anyhow::anyhow!("writing captures to {}: {e}", a.out.display()))?;
    if !quiet {
        let bytes: u64 = m.files.iter().map(|f| f.bytes).sum();
        let heap: u64 = m.files.iter().map(|f| f.heap_events).sum();
        let reallocs: u64 = m.files.iter().map(|f| f.reallocs.total).sum();
        let secs = t.elapsed().as_secs_f64();
        say(format!(
            "wrote {} capture(s), {:.1} MB, {heap} heap events ({reallocs} reallocs) to {} in {secs:.2} s ({:.0} MB/s); manifest: {}",
            m.files.len(),
            bytes as f64 / 1e6,
            a.out.display(),
            bytes as f64 / 1e6 / secs.max(1e-9),
            a.out.join("manifest.json").display()
        ));
    }
    Ok(Outcome::Ok)
}
