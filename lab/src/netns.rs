//! Entering network namespaces from a thread, sysctls inside them, and finding the processes
//! that live in them.
//!
//! A network namespace belongs to a thread, not to a process: [`in_netns`] runs a closure on a
//! fresh thread that has joined the namespace, so the caller's own threads never move. Sockets
//! keep the namespace they were created in, so a socket made there can be used from anywhere.

use std::fs::File;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::sched::{CloneFlags, setns};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::error::LabError;

/// Where `ip netns add` mounts named namespaces.
pub(crate) const NETNS_DIR: &str = "/run/netns";

pub(crate) fn path(netns: &str) -> PathBuf {
    Path::new(NETNS_DIR).join(netns)
}

pub(crate) fn exists(netns: &str) -> bool {
    path(netns).symlink_metadata().is_ok()
}

/// Runs `f` on a new thread inside the network namespace `netns` and returns its result. A panic
/// in `f` is resumed on the caller's thread.
pub(crate) fn in_netns<T, F>(netns: &str, f: F) -> io::Result<T>
where
    T: Send,
    F: FnOnce() -> T + Send,
{
    let file = File::open(path(netns))?;
    std::thread::scope(|scope| {
        let handle = std::thread::Builder::new()
            .name(format!("netns:{netns}"))
            .spawn_scoped(scope, move || -> io::Result<T> {
                setns(&file, CloneFlags::CLONE_NEWNET).map_err(io::Error::from)?;
                drop(file);
                Ok(f())
            })?;
        match handle.join() {
            Ok(result) => result,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    })
}

/// Writes sysctls (`net.ipv4.ip_forward` = `1`) inside a namespace: `/proc/sys/net` shows the
/// namespace of the thread that opens it.
pub(crate) fn set_sysctls(netns: &str, settings: &[(&str, &str)]) -> Result<(), LabError> {
    in_netns(netns, || {
        for (key, value) in settings {
            let file = Path::new("/proc/sys").join(key.replace('.', "/"));
            std::fs::write(&file, value).map_err(|source| LabError::Io {
                action: "write sysctl",
                path: file.clone(),
                source,
            })?;
        }
        Ok(())
    })
    .map_err(|source| LabError::Netns {
        netns: netns.to_string(),
        source,
    })?
}

/// Device and inode of a namespace file: equal for two paths naming the same namespace.
fn identity(path: &Path) -> io::Result<(u64, u64)> {
    let meta = std::fs::metadata(path)?;
    Ok((meta.dev(), meta.ino()))
}

/// Processes (other than this one) whose network namespace is one of `netns`.
pub(crate) fn processes_in(netns: &[String]) -> Vec<(Pid, String)> {
    let ids: Vec<((u64, u64), &String)> = netns
        .iter()
        .filter_map(|name| identity(&path(name)).ok().map(|id| (id, name)))
        .collect();
    if ids.is_empty() {
        return Vec::new();
    }
    let me = std::process::id();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == me {
            continue;
        }
        let Ok(id) = identity(&entry.path().join("ns/net")) else {
            continue;
        };
        if let Some((_, name)) = ids.iter().find(|(candidate, _)| *candidate == id) {
            found.push((Pid::from_raw(pid as i32), (*name).clone()));
        }
    }
    found
}

/// True while the process exists and is not a zombie.
pub(crate) fn alive(pid: Pid) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the command name, which is in parentheses and may hold spaces.
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

/// Sends SIGTERM to every process, waits up to `grace` for them to exit, then SIGKILLs the rest
/// and waits a little more. Returns the processes still alive at the end.
pub(crate) fn terminate(pids: &[Pid], grace: Duration) -> Vec<Pid> {
    for pid in pids {
        let _ = kill(*pid, Signal::SIGTERM);
    }
    let wait_all = |limit: Duration| {
        let deadline = Instant::now() + limit;
        loop {
            let left: Vec<Pid> = pids.iter().copied().filter(|p| alive(*p)).collect();
            if left.is_empty() || Instant::now() >= deadline {
                return left;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    let left = wait_all(grace);
    for pid in &left {
        tracing::debug!(%pid, "did not stop on SIGTERM, sending SIGKILL");
        let _ = kill(*pid, Signal::SIGKILL);
    }
    if left.is_empty() {
        return left;
    }
    wait_all(Duration::from_secs(2))
}
