//! `--format`: the same six names in every command (see `heapdb::output`).

use clap::ValueEnum;
use heapdb::output::Format;
use std::io::IsTerminal;

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FormatArg {
    /// Aligned columns for people (the default on a terminal).
    Table,
    /// Comma-separated values with a header line.
    Csv,
    /// Tab-separated values with a header line (tabs inside values become spaces).
    Tsv,
    /// One JSON array of objects.
    Json,
    /// One JSON object per line.
    Jsonl,
    /// A markdown table.
    Markdown,
}

impl From<FormatArg> for Format {
    fn from(f: FormatArg) -> Format {
        match f {
            FormatArg::Table => Format::Table,
            FormatArg::Csv => Format::Csv,
            FormatArg::Tsv => Format::Tsv,
            FormatArg::Json => Format::Json,
            FormatArg::Jsonl => Format::Jsonl,
            FormatArg::Markdown => Format::Markdown,
        }
    }
}

/// The format asked for, else `table` on a terminal and `piped` otherwise.
pub fn choose(asked: Option<FormatArg>, piped: Format) -> Format {
    match asked {
        Some(f) => f.into(),
        None if std::io::stdout().is_terminal() => Format::Table,
        None => piped,
    }
}
