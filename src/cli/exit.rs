//! Exit codes scripts can rely on (documented in the README), decided here and only here.

use heapdb::query::QueryError;

/// Everything worked.
pub const OK: u8 = 0;
/// The job finished, but some input was bad (reported on stderr and, for ingest, in
/// `ingest_errors`).
pub const INPUT_ERRORS: u8 = 1;
/// Bad command line (clap's own code for usage errors).
pub const USAGE: u8 = 2;
/// The job could not be done: database, SQL or I/O failure.
pub const FAILURE: u8 = 3;
/// Interrupted (Ctrl-C, SIGTERM) or `--timeout` expired.
pub const INTERRUPTED: u8 = 4;

/// How a command that ran to its end (or was stopped cleanly) went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    /// Done, but some input was bad (already reported).
    InputErrors,
    /// Stopped on request; what was kept is already reported.
    Interrupted,
}

/// A mistake in the request (arguments, an unknown name): exit code 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(heapdb::output::is_broken_pipe)
            || matches!(c.downcast_ref::<QueryError>(), Some(QueryError::Io(io)) if heapdb::output::is_broken_pipe(io))
    })
}

/// The exit code of a command's result; prints the error (once) when there is one.
pub fn code(result: anyhow::Result<Outcome>) -> u8 {
    let e = match result {
        Ok(Outcome::Ok) => return OK,
        Ok(Outcome::InputErrors) => return INPUT_ERRORS,
        Ok(Outcome::Interrupted) => return INTERRUPTED,
        Err(e) => e,
    };
    // `heapdb dump | head`: the reader went away; nothing worth a message.
    if is_broken_pipe(&e) {
        return OK;
    }
    super::say(format!("{e:#}"));
    if e.downcast_ref::<UsageError>().is_some() {
        return USAGE;
    }
    if e.downcast_ref::<heapdb::ingest::sink::Interrupted>()
        .is_some()
    {
        return INTERRUPTED;
    }
    match e.downcast_ref::<QueryError>() {
        Some(QueryError::Usage(_)) => USAGE,
        Some(QueryError::Interrupted | QueryError::TimedOut(_)) => INTERRUPTED,
        _ => FAILURE,
    }
}
