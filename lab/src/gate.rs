//! The gate of privileged tests: run where root, network namespaces and BPF are available;
//! elsewhere skip with a message, except under `CI=true`, where a skip would hide a broken
//! machine and the test fails instead.

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use nix::sched::{CloneFlags, unshare};
use nix::unistd::geteuid;

/// Capabilities a lab needs, by number.
const CAPABILITIES: &[(u32, &str)] = &[(12, "CAP_NET_ADMIN"), (21, "CAP_SYS_ADMIN")];

/// True when this test can build labs. Otherwise prints why and returns false, or panics with
/// what is missing when `CI=true`.
///
/// ```no_run
/// #[test]
/// fn frontend_reaches_users() {
///     if !weir_lab::privileged("frontend_reaches_users") {
///         return;
///     }
///     // ...
/// }
/// ```
pub fn privileged(test: &str) -> bool {
    static MISSING: OnceLock<Vec<String>> = OnceLock::new();
    let missing = MISSING.get_or_init(missing_requirements);
    decide(
        test,
        missing,
        std::env::var("CI").is_ok_and(|v| v == "true"),
    )
}

fn decide(test: &str, missing: &[String], ci: bool) -> bool {
    if missing.is_empty() {
        return true;
    }
    let what = missing.join("; ");
    if ci {
        panic!("{test}: privileged test cannot run under CI=true: missing {what}");
    }
    eprintln!("skipping {test}: it needs root with network namespaces and BPF; missing {what}");
    false
}

/// What this machine lacks to build a lab, in words; empty when nothing.
pub fn missing_requirements() -> Vec<String> {
    let mut missing = Vec::new();
    let uid = geteuid();
    if !uid.is_root() {
        missing.push(format!("root (running as uid {uid})"));
    }
    match effective_capabilities() {
        Some(caps) => {
            for (bit, name) in CAPABILITIES {
                if caps & (1u64 << bit) == 0 {
                    missing.push(format!("capability {name}"));
                }
            }
        }
        None => missing.push("readable /proc/self/status (to check capabilities)".to_string()),
    }
    // A throwaway network namespace on a throwaway thread.
    let netns = std::thread::spawn(|| unshare(CloneFlags::CLONE_NEWNET))
        .join()
        .map_err(|_| "panicked".to_string())
        .and_then(|r| r.map_err(|e| e.to_string()));
    if let Err(e) = netns {
        missing.push(format!("network namespaces (unshare(CLONE_NEWNET): {e})"));
    }
    for (program, args, what) in [
        ("ip", &["-V"][..], "iproute2's `ip`"),
        ("python3", &["--version"], "python3 (the lab's servers)"),
        (
            "python3",
            &["-c", "import grpc, grpc_tools"],
            "python3's grpcio and grpcio-tools (the catalog's gRPC server and client; \
             scripts/deps.sh installs them)",
        ),
        ("setsid", &["--version"], "util-linux's `setsid`"),
    ] {
        let ok = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            missing.push(what.to_string());
        }
    }
    if !Path::new("/proc/sys/kernel/unprivileged_bpf_disabled").exists() {
        missing.push("a kernel with the bpf() system call (CONFIG_BPF_SYSCALL)".to_string());
    }
    if !Path::new("/sys/fs/bpf").is_dir() {
        missing.push("/sys/fs/bpf (where bpffs is mounted)".to_string());
    }
    missing
}

fn effective_capabilities() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let hex = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))?
        .trim();
    u64::from_str_radix(hex, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_when_nothing_is_missing_and_skips_otherwise() {
        assert!(decide("t", &[], true));
        assert!(!decide(
            "t",
            &["root (running as uid 1000)".to_string()],
            false
        ));
    }

    #[test]
    #[should_panic(
        expected = "t: privileged test cannot run under CI=true: missing root (running as uid 1000); python3"
    )]
    fn fails_under_ci_naming_what_is_missing() {
        decide(
            "t",
            &[
                "root (running as uid 1000)".to_string(),
                "python3".to_string(),
            ],
            true,
        );
    }
}
