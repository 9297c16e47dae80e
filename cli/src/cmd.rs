//! The command tree of `weir`.
//!
//! # Adding a subcommand
//!
//! 1. Write a module with a clap `Args` (or `Subcommand`) type and an
//!    `async fn run(&self, global: &GlobalArgs) -> Result<(), CliError>`.
//!    Commands that talk to an agent flatten [`ServerArgs`] and call
//!    [`ServerArgs::connect`] for a channel that any generated client accepts.
//!    Return [`CliError::Usage`] for bad input (exit 64) and
//!    [`CliError::Runtime`] for failures (exit 1).
//! 2. Add a variant to [`Command`] with a doc comment (it becomes the help
//!    line) and one arm to [`Command::run`].
//! 3. Refresh the help snapshots: `WEIR_UPDATE_SNAPSHOTS=1 cargo test -p
//!    weir-cli --test help` and add the new command to the list in
//!    `tests/help.rs`.
//!
//! [`ServerArgs`]: crate::client::ServerArgs
//! [`ServerArgs::connect`]: crate::client::ServerArgs::connect

use clap::{Args, Parser, Subcommand};

use crate::error::CliError;
use crate::lab::LabCommand;
use crate::list::ListCommand;
use crate::observe::ObserveCommand;
use crate::policy::PolicyCommand;
use crate::status::StatusArgs;

/// weir: Cilium-style network policy in eBPF, with Hubble-compatible flow
/// observability.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "weir",
    version,
    about = "weir: enforce network policies with eBPF and observe every flow",
    long_about = "weir enforces CiliumNetworkPolicy in the kernel with eBPF and reports every \
                  verdict as a Hubble-compatible flow. This client talks to a weir agent (or any \
                  Hubble server or relay) over Hubble's Observer API."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,

    #[command(subcommand)]
    pub command: Command,
}

/// Flags accepted by every subcommand.
#[derive(Debug, Clone, Default, Args)]
pub struct GlobalArgs {
    /// Print debug logs, informational node status events and unknown
    /// responses
    #[arg(short = 'D', long, global = true)]
    pub debug: bool,
}

/// The subcommands of `weir`.
#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Observe flows of a weir agent or Hubble server
    #[command(long_about = OBSERVE_ABOUT)]
    Observe(Box<ObserveCommand>),
    /// Display the status of the server
    #[command(
        long_about = "Display the status of the server: a health check of its Observer service, \
                      then its flow buffer, flow rate, connected nodes and lost datapath events."
    )]
    Status(StatusArgs),
    /// List nodes or namespaces
    #[command(subcommand)]
    List(ListCommand),
    /// Validate policy files, show the enforced policy, trace a connection
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Build or remove a lab: a cluster of network namespaces on this host
    #[command(subcommand)]
    Lab(LabCommand),
}

const OBSERVE_ABOUT: &str = "Observe flows of a weir agent or Hubble server: the last 20 by default, \
    or --last N, --first N, --all, a --since/--until window, or --follow.\n\n\
    A filter flag given more than once matches any of its values (OR); different filter \
    flags must all match (AND). --not before a filter flag inverts it: flows matching \
    that flag are left out. Flags without from-/to- (--ip, --pod, -n, -l, --port, ...) \
    match either side of a flow.\n\n\
    Examples:\n  \
    weir observe -n kube-system -t drop\n  \
    weir observe --from-pod default/frontend --to-port 8080 -f\n  \
    weir observe --verdict DROPPED --not --to-namespace kube-system\n  \
    weir observe -o jsonpb --last 1000 > flows.json; weir observe --input-file flows.json --verdict DROPPED";

impl Command {
    /// Runs the subcommand.
    pub async fn run(&self, global: &GlobalArgs) -> Result<(), CliError> {
        match self {
            Command::Observe(cmd) => cmd.run(global).await,
            Command::Status(args) => args.run().await,
            Command::List(cmd) => cmd.run().await,
            Command::Policy(cmd) => cmd.run().await,
            Command::Lab(cmd) => cmd.run().await,
        }
    }
}

impl Cli {
    /// Runs the parsed command line.
    pub async fn run(&self) -> Result<(), CliError> {
        self.command.run(&self.global).await
    }
}
