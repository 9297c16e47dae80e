//! Connecting to a weir agent (or any Hubble server or relay).
//!
//! Commands that talk to a server flatten [`ServerArgs`] into their flags and
//! call [`ServerArgs::connect`]; the resulting [`Channel`] works with every
//! generated client (`ObserverClient`, `HealthClient`, `weir.Agent`, ...).

use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use hyper_util::rt::TokioIo;
use tonic::transport::{Channel, Endpoint, Uri};

use crate::gofmt;

/// Default server when neither `--server` nor `WEIR_SERVER` is set.
pub const DEFAULT_SERVER: &str = "unix:///var/run/weir/hubble.sock";
/// Port assumed for a `host` given without one: the agent's TCP port.
pub const DEFAULT_PORT: u16 = 4244;

/// Where and how to reach the server.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Server")]
pub struct ServerArgs {
    /// Address of the server: a unix socket (unix:///path or /path) or a TCP
    /// address (host:port or http://host:port)
    #[arg(long, env = "WEIR_SERVER", default_value = DEFAULT_SERVER, hide_env_values = true)]
    pub server: String,

    /// Timeout for connecting to the server
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = gofmt::parse_std_duration)]
    pub timeout: Duration,

    /// Timeout of unary requests (ServerStatus, GetNodes, GetNamespaces,
    /// GetPolicy); does not apply to streams
    #[arg(long, value_name = "DURATION", default_value = "12s", value_parser = gofmt::parse_std_duration)]
    pub request_timeout: Duration,
}

/// A parsed `--server` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerAddr {
    /// A unix domain socket.
    Unix(PathBuf),
    /// A plaintext HTTP/2 endpoint, `http://host:port`.
    Tcp(String),
}

impl std::fmt::Display for ServerAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ServerAddr::Unix(path) => write!(f, "unix://{}", path.display()),
            ServerAddr::Tcp(uri) => f.write_str(uri.trim_start_matches("http://")),
        }
    }
}

/// Why the server could not be reached.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("invalid --server value {value:?}: {reason}")]
    InvalidAddress { value: String, reason: String },
    #[error("failed to connect to {addr}: {}", error_chain(source))]
    Transport {
        addr: ServerAddr,
        #[source]
        source: tonic::transport::Error,
    },
    #[error("failed to connect to {addr}: timed out after {}", gofmt::duration(*.timeout))]
    Timeout { addr: ServerAddr, timeout: Duration },
}

/// An error and its sources, joined with `: ` (tonic's transport errors
/// keep the interesting part, such as "No such file or directory", in their
/// sources).
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![e.to_string()];
    let mut cur = e.source();
    while let Some(s) = cur {
        let text = s.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        cur = s.source();
    }
    parts.join(": ")
}

impl ServerAddr {
    /// Reads `unix:///path`, `unix:path`, `/path`, `http://host:port` or
    /// `host[:port]` (port 4244 when omitted). TLS (`tls://`, `https://`) is
    /// not supported.
    pub fn parse(value: &str) -> Result<Self, ConnectError> {
        let invalid = |reason: &str| ConnectError::InvalidAddress {
            value: value.to_owned(),
            reason: reason.to_owned(),
        };
        if let Some(rest) = value.strip_prefix("unix:") {
            let path = rest.strip_prefix("//").unwrap_or(rest);
            if path.is_empty() {
                return Err(invalid("empty socket path"));
            }
            return Ok(ServerAddr::Unix(PathBuf::from(path)));
        }
        if value.starts_with('/') {
            return Ok(ServerAddr::Unix(PathBuf::from(value)));
        }
        if value.starts_with("tls://") || value.starts_with("https://") {
            return Err(invalid(
                "TLS is not supported; use a unix socket or http://host:port",
            ));
        }
        let hostport = value
            .strip_prefix("http://")
            .unwrap_or(value)
            .trim_end_matches('/');
        if hostport.is_empty() || hostport.contains('/') {
            return Err(invalid(
                "expected unix:///path, /path, host:port or http://host:port",
            ));
        }
        let has_port = match hostport.rsplit_once(':') {
            // `[::1]` alone ends with `]`; `::1` without brackets is ambiguous
            // and taken as a host without a port only when bracketed.
            Some((host, port)) => {
                !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) && !host.ends_with(':')
            }
            None => false,
        };
        let uri = if has_port {
            format!("http://{hostport}")
        } else {
            format!("http://{hostport}:{DEFAULT_PORT}")
        };
        uri.parse::<Uri>().map_err(|e| invalid(&e.to_string()))?;
        Ok(ServerAddr::Tcp(uri))
    }
}

impl ServerArgs {
    /// The parsed `--server` address.
    pub fn addr(&self) -> Result<ServerAddr, ConnectError> {
        ServerAddr::parse(&self.server)
    }

    /// Connects within `--timeout`.
    pub async fn connect(&self) -> Result<Channel, ConnectError> {
        connect(&self.addr()?, self.timeout).await
    }

    /// Runs a unary call within `--request-timeout`.
    pub async fn unary<T, F>(&self, call: F) -> Result<T, tonic::Status>
    where
        F: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        match tokio::time::timeout(self.request_timeout, call).await {
            Ok(res) => res.map(tonic::Response::into_inner),
            Err(_) => Err(tonic::Status::deadline_exceeded(format!(
                "no answer within --request-timeout {}",
                gofmt::duration(self.request_timeout)
            ))),
        }
    }
}

/// Opens an HTTP/2 channel to `addr`, failing after `timeout`.
pub async fn connect(addr: &ServerAddr, timeout: Duration) -> Result<Channel, ConnectError> {
    let attempt = async {
        match addr {
            ServerAddr::Unix(path) => {
                let path = path.clone();
                // The URI is required by the API but unused: the connector
                // below ignores it and dials the socket.
                Endpoint::from_static("http://weir.invalid")
                    .connect_with_connector(tower::service_fn(move |_: Uri| {
                        let path = path.clone();
                        async move {
                            let stream = tokio::net::UnixStream::connect(path).await?;
                            Ok::<_, std::io::Error>(TokioIo::new(stream))
                        }
                    }))
                    .await
            }
            ServerAddr::Tcp(uri) => {
                Endpoint::from_shared(uri.clone())
                    .map_err(|source| ConnectError::Transport {
                        addr: addr.clone(),
                        source,
                    })?
                    .connect_timeout(timeout)
                    .connect()
                    .await
            }
        }
        .map_err(|source| ConnectError::Transport {
            addr: addr.clone(),
            source,
        })
    };
    match tokio::time::timeout(timeout, attempt).await {
        Ok(res) => res,
        Err(_) => Err(ConnectError::Timeout {
            addr: addr.clone(),
            timeout,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_server_addresses() {
        let unix = |p: &str| Ok(ServerAddr::Unix(PathBuf::from(p)));
        let tcp = |u: &str| Ok(ServerAddr::Tcp(u.to_owned()));
        let parse = |s: &str| ServerAddr::parse(s).map_err(|e| e.to_string());
        assert_eq!(
            parse("unix:///var/run/weir/hubble.sock"),
            unix("/var/run/weir/hubble.sock")
        );
        assert_eq!(parse("unix:relative.sock"), unix("relative.sock"));
        assert_eq!(parse("/tmp/x.sock"), unix("/tmp/x.sock"));
        assert_eq!(parse("localhost:4245"), tcp("http://localhost:4245"));
        assert_eq!(parse("http://10.0.0.1:4244"), tcp("http://10.0.0.1:4244"));
        assert_eq!(parse("node1"), tcp("http://node1:4244"));
        assert_eq!(parse("[fd00::1]:4244"), tcp("http://[fd00::1]:4244"));
        assert_eq!(parse("[fd00::1]"), tcp("http://[fd00::1]:4244"));
        assert!(
            parse("tls://relay:443")
                .unwrap_err()
                .contains("TLS is not supported")
        );
        assert!(parse("unix://").is_err());
        assert!(parse("http://a/b").is_err());
    }

    #[test]
    fn displays_addresses_for_messages() {
        assert_eq!(
            ServerAddr::parse("/run/x.sock").unwrap().to_string(),
            "unix:///run/x.sock"
        );
        assert_eq!(
            ServerAddr::parse("localhost:4245").unwrap().to_string(),
            "localhost:4245"
        );
    }
}
