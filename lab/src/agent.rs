//! Running `weir-agent` on a lab node.
//!
//! The agent is started inside the node's network namespace by a thread that joined it, which
//! is what `nsenter --net=/run/netns/<node>` does. It is *not* started with `ip netns exec`: that
//! also gives the process a private mount namespace with a fresh `/sys`, which hides the host's
//! `/sys/fs/bpf`, so the agent's pins would die with it and a restarted agent could not adopt
//! them.

use std::ffi::OsString;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use nix::fcntl::{Flock, FlockArg};
use nix::sys::signal::{Signal, kill};
use nix::sys::statfs::{BPF_FS_MAGIC, statfs};
use nix::unistd::Pid;

use crate::cmd::describe;
use crate::error::LabError;
use crate::netns;
use crate::servers::tail;

/// Default time [`AgentProcess::wait_ready`] waits for the socket.
pub const AGENT_READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long [`AgentProcess::stop`] waits after SIGTERM before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// Where the agent of a node keeps its things.
#[derive(Debug, Clone)]
pub(crate) struct AgentPaths {
    pub runtime_dir: PathBuf,
    pub socket: PathBuf,
    pub log: PathBuf,
    pub pid: PathBuf,
}

impl AgentPaths {
    pub fn new(run_dir: &Path, node_id: &str) -> Self {
        let runtime_dir = run_dir.join(node_id);
        Self {
            socket: runtime_dir.join("hubble.sock"),
            log: runtime_dir.join("agent.log"),
            pid: runtime_dir.join("agent.pid"),
            runtime_dir,
        }
    }
}

/// A `weir-agent` running on a lab node. Dropping it stops the agent (SIGTERM, then SIGKILL).
#[derive(Debug)]
pub struct AgentProcess {
    node: String,
    netns: String,
    argv: Vec<OsString>,
    paths: AgentPaths,
    child: Option<Child>,
}

impl AgentProcess {
    /// Builds the command line and starts the agent.
    pub(crate) fn spawn(
        node: &str,
        netns: &str,
        run_root: &Path,
        paths: AgentPaths,
        args: Vec<OsString>,
    ) -> Result<Self, LabError> {
        ensure_bpffs(run_root)?;
        std::fs::create_dir_all(&paths.runtime_dir)
            .map_err(|e| LabError::io("create", &paths.runtime_dir, e))?;
        let mut agent = AgentProcess {
            node: node.to_string(),
            netns: netns.to_string(),
            argv: args,
            paths,
            child: None,
        };
        agent.start()?;
        Ok(agent)
    }

    fn command(&self) -> Result<Command, LabError> {
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.paths.log)
            .map_err(|e| LabError::io("open", &self.paths.log, e))?;
        let stderr = log
            .try_clone()
            .map_err(|e| LabError::io("open", &self.paths.log, e))?;
        let mut cmd = Command::new(&self.argv[0]);
        cmd.args(&self.argv[1..])
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(stderr);
        Ok(cmd)
    }

    fn start(&mut self) -> Result<(), LabError> {
        let mut cmd = self.command()?;
        let command = describe(&cmd);
        if let Ok(mut log) = OpenOptions::new().append(true).open(&self.paths.log) {
            let _ = writeln!(
                log,
                "# weir-lab: starting in netns {}: {command}",
                self.netns
            );
        }
        tracing::info!(node = %self.node, %command, "starting agent");
        // A child inherits the network namespace of the thread that spawns it.
        let child = netns::in_netns(&self.netns, move || cmd.spawn())
            .map_err(|source| LabError::Netns {
                netns: self.netns.clone(),
                source,
            })?
            .map_err(|source| LabError::Spawn { command, source })?;
        std::fs::write(&self.paths.pid, format!("{}\n", child.id()))
            .map_err(|e| LabError::io("write", &self.paths.pid, e))?;
        self.child = Some(child);
        Ok(())
    }

    /// The node's name (`<prefix>-node1`).
    pub fn node(&self) -> &str {
        &self.node
    }

    /// The agent's process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// `<run-dir>/<node>/hubble.sock`.
    pub fn socket_path(&self) -> &Path {
        &self.paths.socket
    }

    /// `<run-dir>/<node>/agent.log` (stdout and stderr of every start).
    pub fn log_path(&self) -> &Path {
        &self.paths.log
    }

    /// `<run-dir>/<node>/`.
    pub fn runtime_dir(&self) -> &Path {
        &self.paths.runtime_dir
    }

    /// The command line, program first.
    pub fn command_line(&self) -> &[OsString] {
        &self.argv
    }

    /// Whether the agent process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.as_mut().map(Child::try_wait), Some(Ok(None)))
    }

    /// Sends a signal (SIGKILL simulates a crash).
    pub fn kill(&mut self, signal: Signal) -> Result<(), LabError> {
        let pid = self
            .pid()
            .ok_or_else(|| self.error("not started".to_string()))?;
        if !self.is_running() {
            return Err(self.error(format!(
                "cannot send {signal}: the agent (pid {pid}) has exited"
            )));
        }
        kill(Pid::from_raw(pid as i32), signal)
            .map_err(|e| self.error(format!("cannot send {signal} to {pid}: {e}")))
    }

    /// Waits for the agent to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> Result<ExitStatus, LabError> {
        let deadline = Instant::now() + timeout;
        loop {
            let polled = match self.child.as_mut() {
                Some(child) => child.try_wait(),
                None => return Err(self.error("not started".into())),
            };
            match polled {
                Ok(Some(status)) => return Ok(status),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                Ok(None) => return Err(self.error(format!("still running after {timeout:?}"))),
                Err(e) => return Err(self.error(format!("cannot wait: {e}"))),
            }
        }
    }

    /// Waits until the agent's gRPC socket accepts connections; fails early, with the end of the
    /// log, if the agent exits.
    pub fn wait_socket(&mut self, timeout: Duration) -> Result<(), LabError> {
        let start = Instant::now();
        loop {
            if !self.is_running() {
                let status = match self.child.as_mut().map(Child::try_wait) {
                    Some(Ok(Some(status))) => status.to_string(),
                    _ => "not running".to_string(),
                };
                return Err(self.error(format!(
                    "exited ({status}) before its socket {} accepted connections; log {}: {}",
                    self.paths.socket.display(),
                    self.paths.log.display(),
                    tail(&self.paths.log, 2000)
                )));
            }
            if UnixStream::connect(&self.paths.socket).is_ok() {
                tracing::debug!(node = %self.node, waited = ?start.elapsed(), "agent socket accepts connections");
                return Ok(());
            }
            if start.elapsed() > timeout {
                return Err(self.error(format!(
                    "socket {} does not accept connections after {timeout:?}; log {}: {}",
                    self.paths.socket.display(),
                    self.paths.log.display(),
                    tail(&self.paths.log, 2000)
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// [`wait_socket`](Self::wait_socket) with [`AGENT_READY_TIMEOUT`].
    pub fn wait_ready(&mut self) -> Result<(), LabError> {
        self.wait_socket(AGENT_READY_TIMEOUT)
    }

    /// Stops the agent: SIGTERM, SIGKILL after 10 s. Returns how it ended, `None` if it was not
    /// running.
    pub fn stop(&mut self) -> Result<Option<ExitStatus>, LabError> {
        let Some(child) = self.child.as_mut() else {
            return Ok(None);
        };
        if let Ok(Some(status)) = child.try_wait() {
            return Ok(Some(status));
        }
        let pid = Pid::from_raw(child.id() as i32);
        let _ = kill(pid, Signal::SIGTERM);
        match self.wait_exit(STOP_GRACE) {
            Ok(status) => Ok(Some(status)),
            Err(_) => {
                tracing::warn!(node = %self.node, %pid, "agent ignored SIGTERM, sending SIGKILL");
                let _ = kill(pid, Signal::SIGKILL);
                self.wait_exit(Duration::from_secs(5)).map(Some)
            }
        }
    }

    /// Lets the agent outlive this value (`weir lab up`): it keeps running after this process
    /// exits, and `weir lab down` (which stops every process in the lab's namespaces) ends it.
    /// Returns its process id.
    pub fn persist(mut self) -> Option<u32> {
        // Dropping a `Child` neither kills nor waits for it.
        self.child.take().map(|c| c.id())
    }

    /// Stops the agent if it runs (after a `kill`, only reaps it) and starts it again with the
    /// same command line. Does not wait for it to be ready.
    pub fn restart(&mut self) -> Result<(), LabError> {
        self.stop()?;
        self.start()
    }

    /// Stops the agent and starts it again with `flag` and its value left out of the command
    /// line: the node reconfigured (say, without `--devices`). Later restarts keep it out. Does
    /// not wait for the agent to be ready.
    pub fn restart_without(&mut self, flag: &str) -> Result<(), LabError> {
        let Some(at) = self.argv.iter().position(|a| a == flag) else {
            return Err(self.error(format!("no {flag} on its command line")));
        };
        self.stop()?;
        let end = (at + 2).min(self.argv.len());
        self.argv.drain(at..end);
        self.start()
    }

    fn error(&self, detail: String) -> LabError {
        LabError::Agent {
            node: self.node.clone(),
            detail,
        }
    }
}

impl Drop for AgentProcess {
    fn drop(&mut self) {
        if self.child.is_none() {
            // Never started, or persisted: nothing of ours to stop.
            return;
        }
        if let Err(e) = self.stop() {
            tracing::warn!(node = %self.node, error = %e, "could not stop agent");
        }
        let _ = std::fs::remove_file(&self.paths.pid);
    }
}

/// Mounts bpffs on `/sys/fs/bpf` in the host's mount namespace unless it is there already. Done
/// once, under a lock, so two agents starting together cannot stack two mounts (the second
/// would hide the first one's pins).
fn ensure_bpffs(run_root: &Path) -> Result<(), LabError> {
    let target = Path::new("/sys/fs/bpf");
    let is_bpffs = || statfs(target).is_ok_and(|s| s.filesystem_type() == BPF_FS_MAGIC);
    if is_bpffs() {
        return Ok(());
    }
    std::fs::create_dir_all(run_root).map_err(|e| LabError::io("create", run_root, e))?;
    let lock_path = run_root.join(".bpffs.lock");
    let file = File::create(&lock_path).map_err(|e| LabError::io("create", &lock_path, e))?;
    let _lock = Flock::lock(file, FlockArg::LockExclusive)
        .map_err(|(_, errno)| LabError::io("lock", &lock_path, errno.into()))?;
    if is_bpffs() {
        return Ok(());
    }
    tracing::info!("mounting bpffs on /sys/fs/bpf");
    nix::mount::mount(
        Some("bpf"),
        target,
        Some("bpf"),
        nix::mount::MsFlags::empty(),
        None::<&str>,
    )
    .map_err(|e| LabError::io("mount bpffs on", target, e.into()))
}
