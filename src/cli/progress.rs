//! Draws an ingest's progress and notes on stderr: a bar on a terminal (hidden with
//! `--quiet` or when stderr is not a terminal), notes as `heapdb: ...` lines.

use heapdb::ingest::{Level, Note, Observer, Phase, Progress};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::Instant;

pub struct Terminal {
    bar: Option<ProgressBar>,
    quiet: bool,
    start: Instant,
    /// The index build shows its own bar.
    indexes: Mutex<Option<ProgressBar>>,
}

impl Terminal {
    pub fn new(quiet: bool, total_hint: u64) -> Terminal {
        let show = !quiet && std::io::stderr().is_terminal();
        let bar = show.then(|| {
            let b = ProgressBar::with_draw_target(Some(total_hint), ProgressDrawTarget::stderr());
            b.set_style(
                ProgressStyle::with_template(
                    "{spinner} [{elapsed_precise}] {bar:30} {bytes}/{total_bytes} {bytes_per_sec} ETA {eta} {msg}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            // Long single statements (moving a capture into the indexed tables) keep
            // the spinner and the elapsed time going.
            b.enable_steady_tick(std::time::Duration::from_millis(250));
            b
        });
        Terminal {
            bar,
            quiet,
            start: Instant::now(),
            indexes: Mutex::new(None),
        }
    }

    fn line(&self, text: String) {
        let line = format!("heapdb: {text}");
        match &self.bar {
            Some(b) if !b.is_finished() => b.suspend(|| eprintln!("{line}")),
            _ => eprintln!("{line}"),
        }
    }

    pub fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
        if let Ok(mut g) = self.indexes.lock() {
            if let Some(b) = g.take() {
                b.finish_and_clear();
            }
        }
    }
}

impl Observer for Terminal {
    fn note(&self, note: &Note) {
        if self.quiet && note.level == Level::Info {
            return;
        }
        self.line(note.to_string());
    }

    fn progress(&self, p: &Progress) {
        match &p.phase {
            Phase::Loading { file, files, name } => {
                if let Some(b) = &self.bar {
                    let secs = self.start.elapsed().as_secs_f64().max(1e-3);
                    b.set_length(p.bytes_total);
                    b.set_position(p.bytes_done);
                    b.set_message(format!(
                        "{:.2} M events/s  file {file}/{files} {name}",
                        p.rows as f64 / secs / 1e6
                    ));
                }
            }
            Phase::Recording {
                millis,
                rows,
                parts,
            } => {
                if let Some(b) = &self.bar {
                    // No bytes to count: a spinner, the time and the counts.
                    if let Ok(style) =
                        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {msg}")
                    {
                        b.set_style(style);
                    }
                    b.set_message(format!(
                        "recording {:.0} s: {rows} heap events, {parts} part(s) committed (Ctrl-C ends and commits)",
                        *millis as f64 / 1e3
                    ));
                }
            }
            Phase::Storing { name, rows } => {
                if let Some(b) = &self.bar {
                    b.set_message(format!(
                        "storing {name}: {:.1} M rows into the indexed tables",
                        *rows as f64 / 1e6
                    ));
                }
            }
            Phase::Symbols {
                step,
                done,
                total,
                name,
            } => {
                if let Some(b) = &self.bar {
                    b.set_length(*total as u64);
                    b.set_position(*done as u64);
                    b.set_message(format!("PDBs: {step} {done}/{total} {name}"));
                }
            }
            Phase::Indexes { done, total, name } => {
                if self.quiet {
                    return;
                }
                if let Some(b) = &self.bar {
                    b.finish_and_clear();
                }
                if !std::io::stderr().is_terminal() {
                    if *done == 0 {
                        self.line(format!("building {total} indexes"));
                    }
                    return;
                }
                let Ok(mut g) = self.indexes.lock() else {
                    return;
                };
                let b = g.get_or_insert_with(|| {
                    let b = ProgressBar::with_draw_target(Some(*total as u64), ProgressDrawTarget::stderr());
                    b.set_style(
                        ProgressStyle::with_template(
                            "{spinner} [{elapsed_precise}] building indexes {pos}/{len} ETA {eta} {msg}",
                        )
                        .unwrap_or_else(|_| ProgressStyle::default_bar()),
                    );
                    b.enable_steady_tick(std::time::Duration::from_millis(200));
                    b
                });
                b.set_position(*done as u64);
                b.set_message(name.clone());
            }
        }
    }
}
