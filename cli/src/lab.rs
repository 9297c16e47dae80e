//! `weir lab up|down`: a cluster of network namespaces on this host, with an agent on its node
//! (see docs/lab.md).

use std::path::PathBuf;

use clap::{Args, Subcommand};
use weir_lab::{Lab, LabConfig};

use crate::error::CliError;

#[derive(Debug, Clone, Subcommand)]
pub enum LabCommand {
    /// Build the lab and start weir-agent on its node
    Up(UpArgs),
    /// Remove a lab: stop its processes, delete its namespaces and pinned BPF objects
    Down(DownArgs),
}

#[derive(Debug, Clone, Args)]
pub struct UpArgs {
    /// Prefix of every name the lab creates
    #[arg(long, default_value = weir_lab::DEFAULT_PREFIX)]
    pub prefix: String,
    /// Do not start weir-agent
    #[arg(long)]
    pub no_agent: bool,
    /// The weir-agent binary [default: next to this binary, else on PATH]
    #[arg(long, value_name = "PATH")]
    pub agent_bin: Option<PathBuf>,
    /// Extra flags for weir-agent (repeatable), e.g. --agent-arg=--trace-interval=0s
    #[arg(long = "agent-arg", value_name = "FLAG", allow_hyphen_values = true)]
    pub agent_args: Vec<String>,
}

#[derive(Debug, Clone, Args)]
pub struct DownArgs {
    /// Prefix of the lab to remove
    #[arg(long, default_value = weir_lab::DEFAULT_PREFIX, conflicts_with = "all")]
    pub prefix: String,
    /// Remove every lab on this host
    #[arg(long)]
    pub all: bool,
}

impl LabCommand {
    pub async fn run(&self) -> Result<(), CliError> {
        if !nix::unistd::geteuid().is_root() {
            return Err(CliError::usage(
                "weir lab needs root (network namespaces and eBPF); run it with sudo",
            ));
        }
        match self {
            LabCommand::Up(args) => args.run().await,
            LabCommand::Down(args) => args.run(),
        }
    }
}

fn agent_binary(explicit: &Option<PathBuf>) -> Result<PathBuf, CliError> {
    if let Some(path) = explicit {
        return Ok(path.clone());
    }
    if let Some(sibling) = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|d| d.join("weir-agent")))
        .filter(|p| p.is_file())
    {
        return Ok(sibling);
    }
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .map(|dir| dir.join("weir-agent"))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            CliError::usage("cannot find weir-agent next to weir or on PATH; pass --agent-bin")
        })
}

impl UpArgs {
    async fn run(&self) -> Result<(), CliError> {
        let agent_bin = if self.no_agent {
            None
        } else {
            Some(agent_binary(&self.agent_bin)?)
        };
        let config = LabConfig::with_prefix(&self.prefix);
        let args = self.agent_args.clone();
        // Building is blocking; Ctrl-C meanwhile must not leave half a lab behind: wait for
        // it to finish, then remove it.
        let build = tokio::task::spawn_blocking(move || -> Result<_, String> {
            let lab = Lab::up(config).map_err(|e| e.to_string())?;
            let agent = match agent_bin {
                Some(bin) => {
                    let extra: Vec<&str> = args.iter().map(String::as_str).collect();
                    let mut agent = lab
                        .spawn_agent("node1", &bin, &extra)
                        .map_err(|e| e.to_string())?;
                    if let Err(e) = agent.wait_ready() {
                        let log = std::fs::read_to_string(agent.log_path()).unwrap_or_default();
                        return Err(format!("weir-agent did not start: {e}\n{log}"));
                    }
                    Some(agent)
                }
                None => None,
            };
            Ok((lab, agent))
        });
        tokio::pin!(build);
        let mut interrupted = false;
        let built = loop {
            tokio::select! {
                r = &mut build => break r,
                _ = tokio::signal::ctrl_c(), if !interrupted => interrupted = true,
            }
        };
        let (lab, agent) = built
            .map_err(|e| CliError::runtime(format!("building the lab failed: {e}")))?
            .map_err(CliError::runtime)?;
        if interrupted {
            // Dropping both removes everything that was built.
            drop(agent);
            drop(lab);
            return Err(CliError::runtime("interrupted; the lab was removed"));
        }
        print_summary(&lab, agent.as_ref());
        let socket = agent.as_ref().map(|a| a.socket_path().to_path_buf());
        if let Some(agent) = agent {
            agent.persist();
        }
        let run_dir = lab.persist();
        println!("\nRun directory: {}", run_dir.display());
        if let Some(socket) = socket {
            println!(
                "Observe it:    export WEIR_SERVER=unix://{}",
                socket.display()
            );
            println!("               weir observe --last 50");
        }
        println!("Remove it:     weir lab down --prefix {}", self.prefix);
        Ok(())
    }
}

fn print_summary(lab: &Lab, agent: Option<&weir_lab::AgentProcess>) {
    println!("Lab {} is up.\n", lab.prefix());
    println!(
        "{:<14} {:<26} {:<14} {:<18} {:<8} LABELS",
        "NAMESPACE", "ENDPOINT", "IPV4", "IPV6", "IFACE"
    );
    for ep in lab.endpoints() {
        let labels: Vec<String> = ep.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        println!(
            "{:<14} {:<26} {:<14} {:<18} {:<8} {}",
            ep.namespace,
            ep.name,
            ep.ipv4,
            ep.ipv6,
            ep.interface,
            labels.join(",")
        );
    }
    let world = lab.world();
    println!(
        "{:<14} {:<26} {:<14} {:<18}",
        "-", "world", world.ipv4, world.ipv6
    );
    println!(
        "\nPolicies:      copy YAML files into {}",
        lab.policy_dir().display()
    );
    println!("State:         {}", lab.state_dir().display());
    if let Some(agent) = agent {
        println!(
            "Agent:         weir-agent on {} (pid {}), log {}",
            agent.node(),
            agent.pid().map(|p| p.to_string()).unwrap_or_default(),
            agent.log_path().display()
        );
    }
    println!(
        "Traffic:       ip netns exec {}-default-frontend-0 curl http://{}/",
        lab.prefix(),
        lab.endpoint("users-0")
            .map(|e| e.ipv4.to_string())
            .unwrap_or_default()
    );
}

impl DownArgs {
    fn run(&self) -> Result<(), CliError> {
        if self.all {
            let removed = weir_lab::down_all().map_err(|e| CliError::runtime(e.to_string()))?;
            if removed.is_empty() {
                println!("No lab found.");
            }
            for prefix in removed {
                println!("Lab {prefix} removed.");
            }
            return Ok(());
        }
        weir_lab::down(&self.prefix).map_err(|e| CliError::runtime(e.to_string()))?;
        println!("Lab {} removed.", self.prefix);
        Ok(())
    }
}
