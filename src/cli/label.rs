//! `heapdb label`: set or remove labels of captures already stored.

use super::{say, Outcome, UsageError};
use clap::Args;
use heapdb::db::history::{self, LabelTarget};
use heapdb::ingest::labels::{parse_label, valid_key};
use std::path::PathBuf;

#[derive(Args)]
#[command(
    group(clap::ArgGroup::new("which").required(true).args(["capture", "file"])),
    after_help = "Labels are usually given at ingest (--label, --label-from-path); this sets \
them afterwards, for captures stored without them or with a wrong value. A label of the \
same key is replaced. Without KEY=VALUE or --remove, prints the labels of the captures.\n\n\
Exit codes: 0 done, 1 no capture matched (nothing was changed), 2 usage error, \
3 database failure.\n\n\
Examples:\n  heapdb label --db heap.db --capture 3 build=26100.1234 host=lab-7\n  \
heapdb label --db heap.db --file 'nightly-2026-11-*' branch=main\n  \
heapdb label --db heap.db --capture 3 --remove host"
)]
pub struct LabelArgs {
    /// Database file (must exist).
    #[arg(long, default_value = "heap.db", value_name = "FILE")]
    pub db: PathBuf,
    /// The capture to label, by id (repeatable).
    #[arg(long, value_name = "ID")]
    pub capture: Vec<i64>,
    /// The captures to label, by file name as stored (`captures.file_name`); `*`, `?`
    /// and `[...]` match as in a shell (repeatable).
    #[arg(long, value_name = "NAME")]
    pub file: Vec<String>,
    /// Remove the label with this key (repeatable).
    #[arg(long, value_name = "KEY")]
    pub remove: Vec<String>,
    /// Labels to set.
    #[arg(value_name = "KEY=VALUE", value_parser = parse_label)]
    pub labels: Vec<(String, String)>,
}

pub fn run(a: LabelArgs) -> anyhow::Result<Outcome> {
    if let Some(k) = a.remove.iter().find(|k| !valid_key(k)) {
        return Err(UsageError(format!(
            "--remove {k:?}: a label key is letters, digits, '_', '-' and '.' (at most 64)"
        ))
        .into());
    }
    let target = if a.capture.is_empty() {
        LabelTarget::Files(a.file.clone())
    } else {
        LabelTarget::Ids(a.capture.clone())
    };
    let done = history::relabel(&a.db, &target, &a.labels, &a.remove)?;
    if done.is_empty() {
        say(format!(
            "{}: no capture matched {}; nothing changed",
            a.db.display(),
            match &target {
                LabelTarget::Ids(v) => format!("--capture {v:?}"),
                LabelTarget::Files(v) => format!("--file {v:?}"),
            }
        ));
        return Ok(Outcome::InputErrors);
    }
    for c in &done {
        let labels: Vec<String> = c.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        println!(
            "{}\t{}\t{}",
            c.capture_id,
            c.file_name,
            if labels.is_empty() {
                "(no labels)".to_string()
            } else {
                labels.join(" ")
            }
        );
    }
    Ok(Outcome::Ok)
}
