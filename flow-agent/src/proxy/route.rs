//! The node's routing for the proxy: packets the datapath marks WEIR_MARK_TO_PROXY are
//! delivered locally (to the proxy's sockets, which hold the original addresses with
//! IP_TRANSPARENT) instead of being forwarded. The rules stay when the agent stops; with no
//! proxy socket a marked packet finds no socket and the connection fails closed.
//!
//! ```text
//! ip -4 rule add fwmark 0x200/0xf00 lookup 2004 pref 9
//! ip -4 route replace local 0.0.0.0/0 dev lo table 2004
//! (the same with -6 and ::/0)
//! ```

use std::process::Command;

use weir_probes::abi;

/// The routing table of the proxy's local route (Cilium's number for the same purpose).
pub const TABLE: u32 = 2004;
/// The routing rule's priority.
pub const PREF: u32 = 9;

#[derive(Debug, thiserror::Error)]
#[error("cannot set up the L7 proxy's routing (`ip {command}`): {message}")]
pub struct RouteError {
    pub command: String,
    pub message: String,
}

fn ip(args: &[&str]) -> Result<String, RouteError> {
    let command = args.join(" ");
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| RouteError {
            command: command.clone(),
            message: format!("cannot run ip (iproute2): {e}"),
        })?;
    if !out.status.success() {
        return Err(RouteError {
            command,
            message: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Installs the rule and the route for one family (`-4` or `-6`) unless present.
fn ensure_family(family: &str, default: &str) -> Result<(), RouteError> {
    let mark = format!("{:#x}/{:#x}", abi::MARK_TO_PROXY, abi::MARK_MAGIC_MASK);
    let table = TABLE.to_string();
    let rules = ip(&[family, "rule", "show"])?;
    let wanted = format!("fwmark {mark} lookup {table}");
    if !rules.lines().any(|l| l.contains(&wanted)) {
        ip(&[
            family,
            "rule",
            "add",
            "fwmark",
            &mark,
            "lookup",
            &table,
            "pref",
            &PREF.to_string(),
        ])?;
    }
    ip(&[
        family, "route", "replace", "local", default, "dev", "lo", "table", &table,
    ])?;
    Ok(())
}

/// Sets up IPv4 routing (required) and IPv6 routing (a warning when the node has no IPv6).
pub fn ensure() -> Result<(), RouteError> {
    ensure_family("-4", "0.0.0.0/0")?;
    if let Err(e) = ensure_family("-6", "::/0") {
        tracing::warn!(error = %e, "no IPv6 routing for the L7 proxy: IPv6 connections to proxied ports will be refused");
    }
    Ok(())
}
