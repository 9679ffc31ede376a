//! `heapdb verify`: decode captures with heapdb's reader and with Windows' own ETW
//! consumer, and compare them event by event.

use super::decoder::DecoderArg;
use super::{say, Outcome};
use clap::Args;
use heapdb::decode::compare::{compare, Comparison, Options};
use heapdb::decode::{self, Decoder};
use heapdb::ingest::discover;
use std::io::{self, Write};
use std::path::PathBuf;

#[derive(Args)]
#[command(
    after_help = "Windows only: each capture is decoded twice, by heapdb's own reader and by \
Windows' ETW consumer (OpenTraceW/ProcessTrace through ferrisetw), and the two are compared \
event by event, CPU by CPU in each CPU's order: provider, opcode, version, pid, tid, CPU, \
timestamp (as a FILETIME: ETW delivers 100 ns), payload bytes, and for heap events the \
decoded heap record field by field. Prints per capture the counts of both sides, the \
differing fields and the first differences.\n\n\
Both decodings are held in memory (about twice the capture's size).\n\n\
Exit codes: 0 every capture decoded the same, 1 some capture differs (or a decoder reported \
unreadable records), 2 usage error (or not Windows), 3 a decoder could not read a capture.\n\n\
Example:\n  heapdb verify C:\\traces\\heap.etl"
)]
pub struct VerifyArgs {
    /// Captures to verify (files, archives, directories).
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Differences to show per capture (all are counted).
    #[arg(long, default_value_t = 20, value_name = "N")]
    pub max_differences: usize,
    /// Timestamps may differ by this many 100 ns ticks (default: none).
    #[arg(long, default_value_t = 0, value_name = "TICKS")]
    pub time_tolerance: u64,
    /// The decoder compared with heapdb's reader (etw; etw-mapped runs the ETW
    /// mapping over heapdb's own reading, everywhere: a test of verify itself).
    #[arg(long, value_enum, default_value = "etw", hide = true)]
    pub against: DecoderArg,
}

pub fn run(args: VerifyArgs) -> anyhow::Result<Outcome> {
    #[cfg(not(windows))]
    if args.against == DecoderArg::Etw {
        return Err(super::decoder::windows_only(
            "heapdb verify",
            "it compares heapdb's reader with Windows' own ETW decoder",
        ));
    }
    let against = args.against.decoder()?;
    let opts = Options {
        max_differences: args.max_differences,
        time_tolerance: args.time_tolerance,
    };
    let mut inputs = Vec::new();
    let mut unreadable = false;
    for f in &args.files {
        let found = discover::expand(&[f.display().to_string()]);
        for b in &found.bad {
            say(format!("{}: {}", b.input, b.message));
            unreadable = true;
        }
        inputs.extend(found.inputs);
    }
    let stdout = io::stdout();
    let mut out = stdout.lock();
    let mut differ = false;
    for input in &inputs {
        let name = input.display();
        let sources = decode::open(Decoder::Heapdb, input)
            .and_then(|a| Ok((a, decode::open(against, input)?)));
        let compared = sources.and_then(|(mut a, mut b)| compare(a.as_mut(), b.as_mut(), &opts));
        match compared {
            Ok(c) => {
                print(&mut out, &name, &c)?;
                differ |= !c.is_equal();
            }
            Err(e) => {
                say(format!("{name}: {e}"));
                unreadable = true;
            }
        }
    }
    out.flush()?;
    if unreadable {
        anyhow::bail!("some capture could not be decoded by both decoders");
    }
    Ok(if differ {
        Outcome::InputErrors
    } else {
        Outcome::Ok
    })
}

fn print(out: &mut impl Write, name: &str, c: &Comparison) -> io::Result<()> {
    writeln!(out, "{name}")?;
    for side in [&c.a, &c.b] {
        writeln!(
            out,
            "  {:<10} {} events ({} heap) on {} CPUs, {} unreadable records",
            format!("{}:", side.decoder),
            side.events,
            side.heap_events,
            side.per_cpu.len(),
            side.record_errors
        )?;
        for e in &side.first_errors {
            writeln!(out, "    {e}")?;
        }
    }
    let fields: Vec<String> = c.by_field.iter().map(|(k, v)| format!("{k} {v}")).collect();
    writeln!(
        out,
        "  compared {} events: {} differ{}; heap records: {} compared, {} differ; only {}: {}, only {}: {}",
        c.compared,
        c.differing,
        if fields.is_empty() {
            String::new()
        } else {
            format!(" ({})", fields.join(", "))
        },
        c.heap_compared,
        c.heap_differing,
        c.a.decoder,
        c.only_a,
        c.b.decoder,
        c.only_b
    )?;
    if !c.differences.is_empty() {
        writeln!(out, "  first differences:")?;
        for d in &c.differences {
            writeln!(
                out,
                "    cpu {} event #{}: {}: {} {} | {} {}",
                d.cpu, d.position, d.field, c.a.decoder, d.a, c.b.decoder, d.b
            )?;
        }
    }
    writeln!(
        out,
        "  result: {}",
        if c.is_equal() { "same" } else { "DIFFERENT" }
    )
}
