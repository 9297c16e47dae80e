//! `weir`, the command line of weir.
//!
//! - [`cmd`]: the clap command tree ([`Cli`], [`Command`]) and where new
//!   subcommands go.
//! - [`observe`]: `weir observe` — Hubble's flags, filters and printers.
//! - [`status`], [`list`]: `weir status`, `weir list nodes|namespaces`.
//! - [`policy`]: `weir policy validate|get|trace`.
//! - [`lab`]: `weir lab up|down`.
//! - [`client`]: connecting to an agent over a unix socket or TCP.
//! - [`error`]: failures and their exit codes (64 usage, 1 runtime).
//!
//! See `docs/cli.md` for the behaviour, which follows the `hubble` CLI.

#![forbid(unsafe_code)]

pub mod client;
pub mod cmd;
pub mod error;
pub mod gofmt;
pub mod lab;
pub mod list;
pub mod observe;
pub mod policy;
pub mod schema;
pub mod status;
pub mod tabwriter;
pub mod timefmt;

pub use cmd::{Cli, Command, GlobalArgs};
pub use error::CliError;

/// Logs go to standard error; `-D` turns on debug logs, `WEIR_LOG` (an
/// `EnvFilter` directive) overrides both.
pub fn init_tracing(debug: bool) {
    let default = if debug { "debug" } else { "warn" };
    let filter = tracing_subscriber::EnvFilter::try_from_env("WEIR_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
}
