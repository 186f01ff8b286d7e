//! The `mttx` command: each command module under [`cli`] parses its arguments, calls one
//! library function (mttx-etl, mttx-api, mttx-fixtures, mttx-state) and prints.

mod cli;

/// mimalloc: the ETL's workers allocate and free many small rows on several threads, where
/// the system allocator's arena locks showed in profiles. Built without transparent huge
/// pages (the `no_thp` feature): mimalloc returns freed memory to the system after 10 ms
/// and takes it back at the next read, and with huge pages every fault zeroed 2 MiB; the
/// kernel's page zeroing was a quarter of the ETL's CPU (BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    cli::main()
}
