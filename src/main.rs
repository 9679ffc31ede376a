fn main() -> std::process::ExitCode {
    heapdb::cli::main()
}
