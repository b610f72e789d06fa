//! The `eosbench` binary: parse, run, and turn the result into an exit code (0 success,
//! 1 runtime error or failed check, 2 usage error as reported by clap, 130 a training run
//! stopped by a signal after writing its files).

use std::process::ExitCode;

use clap::Parser;
use eosbench::cli::{run, Cli};

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        // --help / --version print and exit 0; usage errors print and exit 2.
        Err(e) => e.exit(),
    };
    match run(&cli, &mut std::io::stdout().lock()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}
