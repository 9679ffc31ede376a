//! `--format`: the same six names in every command (see `heapdb::output`).

use clap::builder::{PossibleValuesParser, TypedValueParser};
use heapdb::output::Format;
use std::io::IsTerminal;

/// The value parser of every `--format` option: the names of [`Format::ALL`].
pub fn parser() -> impl TypedValueParser<Value = Format> {
    PossibleValuesParser::new(Format::ALL.map(Format::name))
        .map(|s| Format::from_name(&s).unwrap_or(Format::Table))
}

/// The format asked for, else `table` on a terminal and `piped` otherwise.
pub fn choose(asked: Option<Format>, piped: Format) -> Format {
    match asked {
        Some(f) => f,
        None if std::io::stdout().is_terminal() => Format::Table,
        None => piped,
    }
}
