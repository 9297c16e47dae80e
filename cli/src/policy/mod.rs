//! `weir policy validate|get|trace`: check policy files, show what an agent
//! enforces, and trace a connection through the policies like
//! `cilium policy trace`.
//!
//! - [`validate`]: parse files with `weir_policy::PolicySet`; no agent.
//! - [`get`]: `weir.Agent/GetPolicy`, printed per endpoint and direction.
//! - [`trace`]: the reference evaluator (`weir_policy::Evaluator`) on files
//!   given on the command line, or on the files the agent last applied
//!   ([`agent`]).
//! - [`files`]: turning `FILE|DIR` arguments into policy files.

pub mod agent;
pub mod files;
pub mod get;
pub mod trace;
pub mod validate;

use clap::{Subcommand, ValueEnum};

use crate::error::CliError;

pub use get::GetArgs;
pub use trace::TraceArgs;
pub use validate::ValidateArgs;

/// `weir policy <command>`.
#[derive(Debug, Clone, Subcommand)]
pub enum PolicyCommand {
    /// Check policy files: parse and validate them without an agent
    #[command(long_about = VALIDATE_ABOUT)]
    Validate(ValidateArgs),
    /// Show the policy the agent enforces, per endpoint and direction
    #[command(long_about = GET_ABOUT)]
    Get(GetArgs),
    /// Trace a connection through the policies: which rules decide and why
    #[command(long_about = TRACE_ABOUT)]
    Trace(Box<TraceArgs>),
}

const VALIDATE_ABOUT: &str = "Check policy files: parse and validate every CiliumNetworkPolicy, \
    CiliumClusterwideNetworkPolicy and NetworkPolicy in them, as the agent would. A directory \
    stands for its *.yaml and *.yml files (not recursive). All files form one set: a problem \
    anywhere rejects all of it, as it would in the agent.\n\n\
    On success, prints one line per policy and what the policies ask for that weir parses but \
    does not enforce yet, and exits 0. Otherwise prints every problem with its file, document, \
    line, column and field, and exits 1. Needs neither root nor an agent.\n\n\
    Examples:\n  \
    weir policy validate policies/\n  \
    weir policy validate -o json users.yaml billing.yaml";

const GET_ABOUT: &str = "Show the policy the agent enforces (weir.Agent/GetPolicy): its \
    revision, then per local endpoint and direction whether default deny is on, which policies \
    select the endpoint, and the rules in the datapath; then the parts of policies that are not \
    enforced yet, and the last rejected change, if any.\n\n\
    Examples:\n  \
    weir policy get\n  \
    weir policy get --endpoint default/users-0\n  \
    weir policy get -o json | jq '.endpoints[].ingress.enforced'";

const TRACE_ABOUT: &str = "Trace a connection through the policies, like `cilium policy \
    trace`: resolves both sides to labels and identities, then decides at every enforcement \
    point (egress of the source, ingress of the destination, when they are endpoints) and \
    prints the verdict, the drop reason and the policies that decided.\n\n\
    Each side is given by exactly one of --*-labels (pod labels, or reserved:/cidr: labels), \
    --*-endpoint or --*-ip. With --policies, the policies come from files (and the cluster \
    from --state); neither root nor an agent is needed. Without --policies, the policy and \
    state files the agent last applied are fetched (weir.Agent/GetPolicy) and evaluated here.\n\n\
    Exits 0 when the trace ran, whatever the verdict; 64 for bad flags or unknown endpoints; \
    1 when the policies or the state cannot be read.\n\n\
    Examples:\n  \
    weir policy trace --src-endpoint frontend --dst-endpoint users --dport 80/TCP\n  \
    weir policy trace --src-labels app=billing --dst-labels app=users --dport 80 \\\n    \
    --policies policies/ --state state/\n  \
    weir policy trace --src-endpoint default/backend --dst-ip 8.8.8.8 --dport 53/UDP -o json";

impl PolicyCommand {
    pub async fn run(&self) -> Result<(), CliError> {
        match self {
            PolicyCommand::Validate(args) => args.run(),
            PolicyCommand::Get(args) => args.run().await,
            PolicyCommand::Trace(args) => args.run().await,
        }
    }
}

/// `-o` of the policy commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum Format {
    // No doc comments: clap would list them instead of `[possible values: ...]`.
    #[default]
    Text,
    Json,
}

/// `Kind namespace/name`, or `Kind name` for cluster-wide policies (the
/// policy crate's and the agent's wording).
pub fn policy_name(kind: &str, namespace: &str, name: &str) -> String {
    if namespace.is_empty() {
        format!("{kind} {name}")
    } else {
        format!("{kind} {namespace}/{name}")
    }
}

/// The name of a reserved identity (Cilium's numbers), if it is one.
pub fn reserved_identity_name(identity: u32) -> Option<&'static str> {
    Some(match identity {
        1 => "host",
        2 => "world",
        3 => "unmanaged",
        4 => "health",
        5 => "init",
        6 => "remote-node",
        7 => "kube-apiserver",
        8 => "ingress",
        _ => return None,
    })
}

/// Pretty JSON with a final newline.
pub fn pretty_json<T: serde::Serialize + ?Sized>(value: &T) -> Result<String, CliError> {
    serde_json::to_string_pretty(value)
        .map(|s| s + "\n")
        .map_err(|e| CliError::runtime(format!("encoding JSON: {e}")))
}

/// Writes `text` to standard output.
pub fn print(text: &str) -> Result<(), CliError> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()?;
    Ok(())
}

/// Lines of a labelled block: `label` then the values one per line, the
/// continuation lines aligned under the first value.
pub(crate) fn push_list(out: &mut String, indent: usize, label: &str, values: &[String]) {
    let pad = " ".repeat(indent);
    if values.is_empty() {
        out.push_str(&format!("{pad}{label}-\n"));
        return;
    }
    for (i, v) in values.iter().enumerate() {
        if i == 0 {
            out.push_str(&format!("{pad}{label}{v}\n"));
        } else {
            out.push_str(&format!("{pad}{}{v}\n", " ".repeat(label.chars().count())));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_lists() {
        assert_eq!(
            policy_name("CiliumNetworkPolicy", "default", "web"),
            "CiliumNetworkPolicy default/web"
        );
        assert_eq!(
            policy_name("CiliumClusterwideNetworkPolicy", "", "deny"),
            "CiliumClusterwideNetworkPolicy deny"
        );
        assert_eq!(reserved_identity_name(6), Some("remote-node"));
        assert_eq!(reserved_identity_name(256), None);
        let mut out = String::new();
        push_list(&mut out, 2, "Labels:  ", &["a".into(), "b".into()]);
        push_list(&mut out, 2, "IPs:     ", &[]);
        assert_eq!(out, "  Labels:  a\n           b\n  IPs:     -\n");
    }
}
