//! The `mttx` command.

/// mimalloc: the ETL's workers allocate and free many small rows on several threads, where
/// the system allocator's arena locks showed in profiles.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    mttx_api::cli::main()
}
