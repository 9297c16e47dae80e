//! `weir`: parse the command line, set up logging, run the command, and map
//! failures to exit codes (64 for usage errors, 1 for runtime failures).

#![forbid(unsafe_code)]

use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use weir_cli::error::EXIT_USAGE;

fn main() -> anyhow::Result<ExitCode> {
    let cli = match weir_cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // --help and --version are "errors" that print to stdout.
            let code = if e.use_stderr() { EXIT_USAGE } else { 0 };
            e.print().context("printing the usage message")?;
            return Ok(ExitCode::from(code));
        }
    };
    weir_cli::init_tracing(cli.global.debug);

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    match runtime.block_on(cli.run()) {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(e) if e.is_broken_pipe() => Ok(ExitCode::SUCCESS),
        Err(e) => {
            eprintln!("Error: {e}");
            Ok(ExitCode::from(e.exit_code()))
        }
    }
}
