//! What can go wrong in a command, and the exit code each failure maps to.

use std::io;

/// Exit code for usage and configuration errors (`EX_USAGE`).
pub const EXIT_USAGE: u8 = 64;
/// Exit code for runtime failures (connection, RPC, I/O).
pub const EXIT_FAILURE: u8 = 1;

/// A failed command. [`CliError::exit_code`] tells usage errors (64) from
/// runtime failures (1).
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// Invalid flags or flag combinations, bad filter values, bad files
    /// named on the command line: nothing was sent to a server.
    #[error("{0}")]
    Usage(String),
    /// The server could not be reached.
    #[error(transparent)]
    Connect(#[from] crate::client::ConnectError),
    /// The server answered with an error, or a check failed ("not healthy").
    #[error("{0}")]
    Runtime(String),
    /// Reading input or writing output failed.
    #[error(transparent)]
    Io(#[from] io::Error),
}

impl CliError {
    /// A usage error with the given message.
    pub fn usage(msg: impl Into<String>) -> Self {
        CliError::Usage(msg.into())
    }

    /// A runtime failure with the given message.
    pub fn runtime(msg: impl Into<String>) -> Self {
        CliError::Runtime(msg.into())
    }

    /// 64 for usage errors, 1 for everything else.
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Usage(_) => EXIT_USAGE,
            _ => EXIT_FAILURE,
        }
    }

    /// True when the failure is only that the reader of our output went
    /// away (`weir observe | head`), which is not worth reporting.
    pub fn is_broken_pipe(&self) -> bool {
        matches!(self, CliError::Io(e) if e.kind() == io::ErrorKind::BrokenPipe)
    }
}

/// Turns a gRPC status into the message Hubble prints: the bare message for
/// `Unknown` (how servers report custom errors), otherwise
/// `rpc error: code = <Code> desc = <message>`, the Go client's wording.
pub fn rpc_message(status: &tonic::Status) -> String {
    if status.code() == tonic::Code::Unknown {
        status.message().to_owned()
    } else {
        format!(
            "rpc error: code = {:?} desc = {}",
            status.code(),
            status.message()
        )
    }
}

impl From<tonic::Status> for CliError {
    fn from(status: tonic::Status) -> Self {
        CliError::Runtime(rpc_message(&status))
    }
}
