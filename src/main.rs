//! The `zdel` binary: parse the command line and hand over to the library.

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = zdel::cli::Cli::parse();
    zdel::cli::main(cli)
}
