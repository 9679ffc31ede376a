//! The `heapdb` command. Everything about the command line (arguments, progress bars,
//! signals, messages, exit codes) lives in `cli`; the library never prints.

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
