//! Errors of the lab and of its traffic helpers.

use std::fmt;
use std::io;
use std::path::PathBuf;
use std::time::Duration;

/// Building, using or removing a lab failed; the message names what.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    #[error("invalid lab config: {0}")]
    Config(String),
    /// A command ran and failed: the command line, how it ended, and its stderr.
    #[error("`{command}` failed ({status}): {stderr}")]
    Command {
        command: String,
        status: String,
        stderr: String,
    },
    #[error("cannot run `{command}`: {source}")]
    Spawn {
        command: String,
        #[source]
        source: io::Error,
    },
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot enter network namespace `{netns}`: {source}")]
    Netns {
        netns: String,
        #[source]
        source: io::Error,
    },
    #[error(
        "lab `{prefix}` already exists ({what}); remove it first with `weir lab down {prefix}`"
    )]
    Exists { prefix: String, what: String },
    #[error("no lab `{prefix}` under {} (no lab.json)", run_root.display())]
    NotFound { prefix: String, run_root: PathBuf },
    #[error("{}: {message}", path.display())]
    Record { path: PathBuf, message: String },
    #[error("lab `{prefix}` has no {kind} `{name}` (it has: {known})")]
    Unknown {
        prefix: String,
        kind: &'static str,
        name: String,
        known: String,
    },
    #[error("server `{server}` in {place} is not ready after {waited:?}: {detail}")]
    ServerNotReady {
        place: String,
        server: String,
        waited: Duration,
        detail: String,
    },
    #[error("agent on {node}: {detail}")]
    Agent { node: String, detail: String },
    #[error(transparent)]
    Traffic(#[from] TrafficError),
    #[error("removing lab `{prefix}` failed: {}", failures.join("; "))]
    Cleanup {
        prefix: String,
        failures: Vec<String>,
    },
}

impl LabError {
    pub(crate) fn io(action: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        LabError::Io {
            action,
            path: path.into(),
            source,
        }
    }
}

/// Which part of an exchange failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Connect,
    Send,
    Receive,
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Stage::Connect => "connect",
            Stage::Send => "send",
            Stage::Receive => "receive",
        })
    }
}

/// A traffic helper's exchange did not complete. Tests tell *why* apart: a policy drop is a
/// [`Timeout`](TrafficError::Timeout), a closed port [`Refused`](TrafficError::Refused), a
/// killed connection [`Reset`](TrafficError::Reset).
#[derive(Debug, thiserror::Error)]
pub enum TrafficError {
    #[error("{from} -> {to}: no answer within {after:?} ({stage})")]
    Timeout {
        from: String,
        to: String,
        stage: Stage,
        after: Duration,
    },
    #[error("{from} -> {to}: connection refused")]
    Refused { from: String, to: String },
    #[error("{from} -> {to}: connection reset ({stage})")]
    Reset {
        from: String,
        to: String,
        stage: Stage,
    },
    #[error("{from} -> {to}: unreachable ({stage}): {source}")]
    Unreachable {
        from: String,
        to: String,
        stage: Stage,
        #[source]
        source: io::Error,
    },
    #[error("{from} -> {to}: {stage} failed: {source}")]
    Io {
        from: String,
        to: String,
        stage: Stage,
        #[source]
        source: io::Error,
    },
    #[error("{from} -> {to}: {message}")]
    Protocol {
        from: String,
        to: String,
        message: String,
    },
    #[error("{from}: cannot enter network namespace `{netns}`: {source}")]
    Netns {
        from: String,
        netns: String,
        #[source]
        source: io::Error,
    },
    #[error("unknown place `{place}` (known: {known})")]
    UnknownPlace { place: String, known: String },
    #[error("bad URL `{url}`: {message}")]
    Url { url: String, message: String },
}

impl TrafficError {
    pub fn is_timeout(&self) -> bool {
        matches!(self, TrafficError::Timeout { .. })
    }

    pub fn is_refused(&self) -> bool {
        matches!(self, TrafficError::Refused { .. })
    }

    pub fn is_reset(&self) -> bool {
        matches!(self, TrafficError::Reset { .. })
    }

    /// Sorts an I/O error of a socket operation into timeout / refused / reset / unreachable.
    pub(crate) fn classify(
        from: &str,
        to: &str,
        stage: Stage,
        after: Duration,
        err: io::Error,
    ) -> Self {
        let (from, to) = (from.to_string(), to.to_string());
        match err.kind() {
            io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => TrafficError::Timeout {
                from,
                to,
                stage,
                after,
            },
            io::ErrorKind::ConnectionRefused => TrafficError::Refused { from, to },
            io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe => TrafficError::Reset { from, to, stage },
            io::ErrorKind::HostUnreachable | io::ErrorKind::NetworkUnreachable => {
                TrafficError::Unreachable {
                    from,
                    to,
                    stage,
                    source: err,
                }
            }
            _ => TrafficError::Io {
                from,
                to,
                stage,
                source: err,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_socket_errors() {
        let t = Duration::from_secs(1);
        let c = |kind| TrafficError::classify("a", "b", Stage::Connect, t, io::Error::from(kind));
        assert!(c(io::ErrorKind::TimedOut).is_timeout());
        assert!(c(io::ErrorKind::WouldBlock).is_timeout());
        assert!(c(io::ErrorKind::ConnectionRefused).is_refused());
        assert!(c(io::ErrorKind::ConnectionReset).is_reset());
        assert!(matches!(
            TrafficError::classify(
                "a",
                "b",
                Stage::Connect,
                t,
                io::Error::from_raw_os_error(libc::EHOSTUNREACH)
            ),
            TrafficError::Unreachable { .. }
        ));
        assert_eq!(
            c(io::ErrorKind::TimedOut).to_string(),
            "a -> b: no answer within 1s (connect)"
        );
    }
}
