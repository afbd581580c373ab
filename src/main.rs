//! The `zdel` binary: parse the command line and hand over to the library.

use clap::Parser;

// mimalloc rather than glibc's malloc: measured, glibc's allocator took ~15%
// of the CPU of a full-speed run (bench/RESULTS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    let cli = zdel::cli::Cli::parse();
    zdel::cli::main(cli)
}
