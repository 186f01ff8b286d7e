//! The `mttx` command: each command module under [`cli`] parses its arguments, calls one
//! library function (mttx-etl, mttx-api, mttx-fixtures, mttx-state) and prints.

mod cli;

/// mimalloc: the ETL's workers allocate and free many small rows on several threads, where
/// the system allocator's arena locks showed in profiles.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    cli::main()
}
