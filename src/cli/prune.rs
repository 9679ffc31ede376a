//! `heapdb prune`: retention, whole captures at a time.

use super::{say, Outcome, UsageError};
use clap::Args;
use heapdb::db::prune::{self, Selection};
use std::path::PathBuf;

#[derive(Args)]
#[command(
    group(clap::ArgGroup::new("which").required(true).args(["before", "keep_last", "capture"])),
    after_help = "Removes whole captures from every table: their events, processes, \
threads, images, errors and whatever else a capture has rows in, and the stacks no \
remaining event uses. A removed capture disappears for readers at once; its events are \
then deleted in transactions of 200,000 rows, so readers and a concurrent ingest never \
wait long. The freed space is returned to the file system a few pages at a time \
(databases created by heapdb allow it), or all at once with --vacuum (which rewrites the \
file: it needs as much free disk as the database, and locks it meanwhile).\n\n\
Re-ingesting a pruned capture works like the first time (it gets new ids).\n\n\
Exit codes: 0 done (also when --keep-last finds nothing to remove), 1 nothing matched \
--before or --capture (nothing was changed), 2 usage error, 3 database failure, \
4 interrupted (the captures removed so far stay removed).\n\n\
Examples:\n  heapdb prune --db heap.db --keep-last 30\n  \
heapdb prune --db heap.db --before 2026-10-01\n  heapdb prune --db heap.db --capture 3 --capture 4 --vacuum"
)]
pub struct PruneArgs {
    /// Database file.
    #[arg(long, default_value = "heap.db", value_name = "FILE")]
    pub db: PathBuf,
    /// Remove captures whose session started before this date (YYYY-MM-DD, or RFC 3339
    /// like 2026-10-01T12:00:00Z; UTC).
    #[arg(long, value_name = "DATE")]
    pub before: Option<String>,
    /// Keep the N most recent captures (by session start), remove the others.
    #[arg(long, value_name = "N")]
    pub keep_last: Option<u64>,
    /// Remove this capture (repeatable).
    #[arg(long, value_name = "ID")]
    pub capture: Vec<i64>,
    /// Rewrite the database file afterwards to give back all free space at once.
    #[arg(long)]
    pub vacuum: bool,
}

/// UTC nanoseconds of `YYYY-MM-DD` or `YYYY-MM-DDTHH:MM:SS[Z]`.
fn parse_date(s: &str) -> Option<i64> {
    let s = s.trim().trim_end_matches('Z');
    let (date, time) = s.split_once(['T', ' ']).unwrap_or((s, "00:00:00"));
    let d: Vec<i64> = date
        .split('-')
        .map(|x| x.parse().ok())
        .collect::<Option<_>>()?;
    let t: Vec<i64> = time
        .split(':')
        .map(|x| x.parse().ok())
        .collect::<Option<_>>()?;
    let ([y, m, day], [hh, mm, ss]) = (d.as_slice(), t.as_slice()) else {
        return None;
    };
    if !(1..=12).contains(m) || !(1..=31).contains(day) || *hh > 23 || *mm > 59 || *ss > 60 {
        return None;
    }
    // Days from civil (Howard Hinnant's algorithm).
    let (y, m) = if *m <= 2 { (y - 1, m + 9) } else { (*y, m - 3) };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * m + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(((days * 86_400) + hh * 3600 + mm * 60 + ss) * 1_000_000_000)
}

pub fn run(a: PruneArgs, quiet: bool) -> anyhow::Result<Outcome> {
    let sel = if let Some(d) = &a.before {
        Selection::Before(parse_date(d).ok_or_else(|| {
            UsageError(format!(
                "--before {d:?}: expected a date like 2026-10-01 or 2026-10-01T12:00:00Z"
            ))
        })?)
    } else if let Some(n) = a.keep_last {
        Selection::KeepLast(n)
    } else {
        Selection::Ids(a.capture.clone())
    };
    let term = super::progress::Terminal::new(quiet, 0);
    let r = prune::prune(&a.db, &sel, a.vacuum, &term, super::cancel());
    term.finish();
    let r = r?;
    if let Some(why) = &r.nothing {
        say(format!("{}: nothing to prune: {why}", a.db.display()));
        return Ok(match sel {
            Selection::KeepLast(_) => Outcome::Ok,
            _ => Outcome::InputErrors,
        });
    }
    let names: Vec<String> = r
        .captures
        .iter()
        .map(|c| format!("{} ({})", c.capture_id, c.file_name))
        .collect();
    say(format!(
        "{}: removed {} capture(s): {}; {} reallocs, {} other heap events, {} block lifetimes, {} other rows, {} stacks no longer used; the file shrank by {:.1} MB{}",
        a.db.display(),
        r.captures.len(),
        names.join(", "),
        r.reallocs,
        r.heap_events,
        r.blocks,
        r.other_rows,
        r.stacks,
        r.bytes_freed as f64 / 1e6,
        if r.vacuumed { " (vacuumed)" } else { "" }
    ));
    if super::cancel().requested() {
        return Ok(Outcome::Interrupted);
    }
    Ok(Outcome::Ok)
}

#[cfg(test)]
mod tests {
    #[test]
    fn dates() {
        assert_eq!(super::parse_date("1970-01-02"), Some(86_400_000_000_000));
        assert_eq!(
            super::parse_date("2026-11-25T01:02:03Z"),
            Some(1_795_568_523_000_000_000) // date -u -d 2026-11-25T01:02:03Z +%s
        );
        assert_eq!(super::parse_date("2026-13-01"), None);
        assert_eq!(super::parse_date("yesterday"), None);
    }
}
