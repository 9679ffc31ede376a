//! `--decoder`, and the refusal of what only Windows can do.

use super::UsageError;
use clap::ValueEnum;
use heapdb::decode::Decoder;

/// The `--decoder` of `dump` and `ingest`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum DecoderArg {
    /// heapdb's own pure-Rust reader (every platform).
    Heapdb,
    /// Windows' own ETW consumer (OpenTraceW/ProcessTrace through ferrisetw); Windows
    /// only.
    Etw,
    /// heapdb's reader with every event sent through the ETW decoder's mapping (the
    /// ETW path without Windows, for tests).
    #[value(hide = true)]
    EtwMapped,
}

impl DecoderArg {
    /// The decoder, or a usage error (exit 2) where this build does not have it.
    pub fn decoder(self) -> anyhow::Result<Decoder> {
        let d = match self {
            DecoderArg::Heapdb => Decoder::Heapdb,
            DecoderArg::Etw => Decoder::Etw,
            DecoderArg::EtwMapped => Decoder::EtwMapped,
        };
        if !d.available() {
            return Err(UsageError(heapdb::decode::SourceError::Unavailable(d).to_string()).into());
        }
        Ok(d)
    }
}

/// The usage error (exit 2) of a command that exists only on Windows.
#[cfg(not(windows))]
pub fn windows_only(what: &str, why: &str) -> anyhow::Error {
    UsageError(format!(
        "{what} is available on Windows only ({why}); this heapdb was built for {}",
        std::env::consts::OS
    ))
    .into()
}
