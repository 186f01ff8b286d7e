//! The `mttx` command.

fn main() -> std::process::ExitCode {
    mttx_api::cli::main()
}
