//! The agent's L7 proxy for gRPC (HTTP/2 cleartext), where the datapath hands connections whose
//! rules are gRPC rules (`HttpRuleSet::is_grpc`; docs/l7.md, "gRPC").
//!
//! - Two listeners (127.0.0.1 and ::1, ephemeral ports, `IP_TRANSPARENT`) are registered in the
//!   datapath's `weir_proxy_listener` SOCKMAP; the client's `from_container` assigns a proxied
//!   connection's SYN to one of them, so the accepted socket's local address is the original
//!   destination. When the agent exits, the kernel removes the entries and such connections are
//!   dropped (SOCKET_LOOKUP_FAILED): nothing bypasses the rules.
//! - Each accepted connection is served with the `h2` crate and forwarded on one upstream
//!   connection to the original destination, made from the client's address (and port when
//!   free) with `IP_TRANSPARENT` and `SO_MARK` WEIR_MARK_FROM_PROXY, so the server's hook sees
//!   the client's identity and marks the server's replies back to the proxy.
//! - Every call (stream) is decided on its own ([`decide`]): a denied gRPC call ends with
//!   `grpc-status: 7` (PERMISSION_DENIED) in a Trailers-Only response, a denied non-gRPC request
//!   with a 403; the connection and its other calls go on. Each call gives a request and a
//!   response L7 flow.

pub mod decide;
mod forward;
pub mod route;

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use aya::maps::{MapData, SockMap};
use nix::sys::socket::{setsockopt, sockopt};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use weir_probes::abi;

use crate::apply::PolicyStatus;
use crate::flows::EnrichmentHandle;
use crate::store::FlowStore;

/// What the proxy reads (the enforced policy, the enrichment) and writes (flows).
pub struct ProxyContext {
    pub status: Arc<RwLock<PolicyStatus>>,
    pub enrichment: Arc<EnrichmentHandle>,
    pub store: Arc<FlowStore>,
}

#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error(transparent)]
    Route(#[from] route::RouteError),
    #[error("cannot open the L7 proxy's {family} listener: {source}")]
    Listen {
        family: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("cannot register the L7 proxy's {family} listener in the datapath: {message}")]
    Register {
        family: &'static str,
        message: String,
    },
}

/// The running proxy: its listeners stay registered while this lives.
pub struct Proxy {
    pub addresses: Vec<SocketAddr>,
    _map: SockMap<MapData>,
}

/// HTTP/2's connection preface; anything else on a proxied port gets a 403.
const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// How long a new connection may take to send its preface and settings.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

fn listener(v6: bool) -> io::Result<TcpListener> {
    let socket = if v6 {
        TcpSocket::new_v6()?
    } else {
        TcpSocket::new_v4()?
    };
    setsockopt(&socket, sockopt::IpTransparent, &true)?;
    let addr = if v6 {
        SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), 0)
    } else {
        SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0)
    };
    socket.bind(addr)?;
    socket.listen(1024)
}

/// Sets up routing, opens and registers the listeners, and serves connections until the
/// runtime stops. Without IPv6 on the node, only the IPv4 listener is registered.
pub fn start(mut map: SockMap<MapData>, ctx: Arc<ProxyContext>) -> Result<Proxy, ProxyError> {
    route::ensure()?;
    let mut addresses = Vec::new();
    for (v6, family, index) in [
        (false, "IPv4", abi::PROXY_LISTENER_V4),
        (true, "IPv6", abi::PROXY_LISTENER_V6),
    ] {
        let l = match listener(v6) {
            Ok(l) => l,
            Err(source) if v6 => {
                tracing::warn!(error = %source, "no IPv6 listener for the L7 proxy: IPv6 connections to proxied ports will be refused");
                continue;
            }
            Err(source) => return Err(ProxyError::Listen { family, source }),
        };
        map.set(index, &l, 0).map_err(|e| ProxyError::Register {
            family,
            message: e.to_string(),
        })?;
        if let Ok(a) = l.local_addr() {
            addresses.push(a);
        }
        tokio::spawn(accept_loop(l, ctx.clone()));
    }
    Ok(Proxy {
        addresses,
        _map: map,
    })
}

async fn accept_loop(l: TcpListener, ctx: Arc<ProxyContext>) {
    loop {
        match l.accept().await {
            Ok((stream, client)) => {
                let ctx = ctx.clone();
                tokio::spawn(async move {
                    if let Err(e) = serve(ctx, stream, client).await {
                        tracing::debug!(%client, error = %e, "L7 proxy connection ended");
                    }
                });
            }
            Err(e) => {
                // Out of file descriptors and the like: the SYNs wait in the backlog.
                tracing::warn!(error = %e, "L7 proxy cannot accept");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// One proxied connection, as both sides of it see it.
#[derive(Debug, Clone, Copy)]
pub struct Conn {
    pub client: SocketAddr,
    /// The original destination.
    pub server: SocketAddr,
}

async fn serve(
    ctx: Arc<ProxyContext>,
    mut stream: TcpStream,
    client: SocketAddr,
) -> io::Result<()> {
    let server = stream.local_addr()?;
    let _ = stream.set_nodelay(true);
    let conn = Conn { client, server };
    if !tokio::time::timeout(HANDSHAKE_TIMEOUT, starts_with_preface(&stream))
        .await
        .unwrap_or(Ok(false))?
    {
        // HTTP/1.x (or anything else) on a port whose rules are gRPC rules.
        let body = "Access denied: this port's policy allows only gRPC (HTTP/2) calls\r\n";
        let answer = format!(
            "HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(answer.as_bytes()).await?;
        stream.shutdown().await?;
        return Ok(());
    }
    let local_server = {
        let status = ctx.status.read().expect("status lock");
        status
            .endpoints
            .iter()
            .any(|e| e.ifindex != 0 && e.ips.contains(&server.ip()))
    };
    let upstream = connect_upstream(client, server, local_server).await?;
    forward::connection(ctx, conn, stream, upstream).await
}

/// Waits until the first bytes show whether the client speaks HTTP/2 with prior knowledge.
async fn starts_with_preface(stream: &TcpStream) -> io::Result<bool> {
    let mut buf = [0u8; PREFACE.len()];
    loop {
        let n = stream.peek(&mut buf).await?;
        if n == 0 || buf[..n] != PREFACE[..n] {
            return Ok(false);
        }
        if n == PREFACE.len() {
            return Ok(true);
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// Connects to the original destination. To a local endpoint the connection comes from the
/// client's address (its port when free), so the endpoint's hook sees the client; elsewhere
/// from the node.
async fn connect_upstream(
    client: SocketAddr,
    server: SocketAddr,
    transparent: bool,
) -> io::Result<TcpStream> {
    let new = || -> io::Result<TcpSocket> {
        let s = if server.is_ipv6() {
            TcpSocket::new_v6()?
        } else {
            TcpSocket::new_v4()?
        };
        setsockopt(&s, sockopt::Mark, &abi::MARK_FROM_PROXY)?;
        if transparent {
            setsockopt(&s, sockopt::IpTransparent, &true)?;
        }
        s.set_nodelay(true)?;
        Ok(s)
    };
    if !transparent {
        return new()?.connect(server).await;
    }
    let same_port = async {
        let s = new()?;
        s.set_reuseaddr(true)?;
        s.bind(client)?;
        s.connect(server).await
    };
    match same_port.await {
        Ok(s) => Ok(s),
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::AddrInUse | io::ErrorKind::AddrNotAvailable
            ) =>
        {
            let s = new()?;
            s.bind(SocketAddr::new(client.ip(), 0))?;
            s.connect(server).await
        }
        Err(e) => Err(e),
    }
}
