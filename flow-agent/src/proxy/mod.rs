//! The agent's L7 proxy for gRPC (HTTP/2 cleartext), where the datapath hands connections whose
//! rules are gRPC rules (`HttpRuleSet::is_grpc`; docs/l7.md, "gRPC").
//!
//! - Two listeners (127.0.0.1 and ::1, ephemeral ports, `IP_TRANSPARENT`) are registered in the
//!   datapath's `weir_proxy_listener` SOCKMAP; the client's `from_container` assigns a proxied
//!   connection's SYN to one of them, so the accepted socket's local address is the original
//!   destination. When the agent exits, the kernel removes the entries and such connections are
//!   dropped (SOCKET_LOOKUP_FAILED): nothing bypasses the rules.
//! - Each accepted connection is served with the `h2` crate and forwarded on one upstream
//!   connection to the original destination. To a local endpoint it is made from the client's
//!   address (and port when free) with `IP_TRANSPARENT` and `SO_MARK` WEIR_MARK_FROM_PROXY, so
//!   the server's hook sees the client's identity and marks the server's replies back to the
//!   proxy; to a world or CIDR destination, from the node; to an endpoint of another node, not
//!   at all ([`decide::connection`]).
//! - Every call (stream) is decided on its own ([`decide`]) with the policy the apply loop
//!   publishes ([`ProxyPolicyHandle`]) before the datapath enforces it: a denied gRPC call ends
//!   with `grpc-status: 7` (PERMISSION_DENIED) in a Trailers-Only response, a denied non-gRPC
//!   request with a 403; the connection and its other calls go on. Each call gives a request
//!   and a response L7 flow. Before any policy is published, every connection is refused.
//! - Limits: [`MAX_CONNECTIONS`] client connections at once, [`MAX_CONNECTIONS_PER_CLIENT`] per
//!   client address, [`MAX_STREAMS`] calls in flight per connection, [`MAX_HEADER_LIST`] bytes
//!   of headers per call, [`CONNECT_TIMEOUT`] to reach the server, [`IDLE_TIMEOUT`] without a
//!   call before a connection is closed.

pub mod decide;
mod forward;
pub mod route;

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex, RwLock};
use std::task::{Context, Poll};
use std::time::Duration;

use aya::maps::{MapData, SockMap};
use nix::sys::socket::{setsockopt, sockopt};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::Semaphore;
use weir_policy::compiled::CompiledPolicy;
use weir_probes::abi;

use crate::apply::EndpointRuntime;
use crate::flows::EnrichmentHandle;
use crate::store::FlowStore;

/// Client connections served at once; more wait in the listeners' backlog.
pub const MAX_CONNECTIONS: usize = 16_384;
/// Calls in flight per client connection (SETTINGS_MAX_CONCURRENT_STREAMS).
pub const MAX_STREAMS: u32 = 256;
/// Bytes of header fields per call (SETTINGS_MAX_HEADER_LIST_SIZE; gRPC's default limit for
/// metadata is 8 KiB).
pub const MAX_HEADER_LIST: u32 = 64 * 1024;
/// Flow-control window per connection, well above the 64 KiB per stream: calls whose data is
/// not being read hold up the connection's other calls only once together they hold 4 MiB.
pub const CONNECTION_WINDOW: u32 = 4 << 20;
/// How long the upstream connection may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Client connections from one address at once.
pub const MAX_CONNECTIONS_PER_CLIENT: usize = 1024;
/// A client connection with no call in flight for this long is closed (GOAWAY); the client
/// opens a new one for its next call.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(3600);

/// The policy the proxy decides with: the compiled policy and local endpoints the datapath
/// enforces (or is about to enforce), indexed by address once, when published.
#[derive(Debug, Default)]
pub struct ProxyPolicy {
    pub compiled: CompiledPolicy,
    pub endpoints: Vec<EndpointRuntime>,
    /// Attached local endpoints by address: index into `endpoints`.
    by_ip: HashMap<IpAddr, usize>,
    /// Every local endpoint's address, attached or not.
    local_ips: std::collections::HashSet<IpAddr>,
    /// Identities of full-length ipcache prefixes (/32, /128).
    hosts: HashMap<IpAddr, u32>,
}

impl ProxyPolicy {
    pub fn new(compiled: CompiledPolicy, endpoints: Vec<EndpointRuntime>) -> ProxyPolicy {
        let mut by_ip = HashMap::new();
        for (i, e) in endpoints.iter().enumerate().filter(|(_, e)| e.ifindex != 0) {
            for ip in &e.ips {
                by_ip.entry(*ip).or_insert(i);
            }
        }
        let local_ips = endpoints
            .iter()
            .flat_map(|e| e.ips.iter().copied())
            .collect();
        let hosts = compiled
            .ipcache
            .iter()
            .filter(|e| e.prefix.prefix_len() == e.prefix.max_prefix_len())
            .map(|e| (e.prefix.addr(), e.identity))
            .collect();
        ProxyPolicy {
            compiled,
            endpoints,
            by_ip,
            local_ips,
            hosts,
        }
    }

    /// Whether `ip` is a local endpoint's address, attached to an interface or not.
    pub fn is_local_address(&self, ip: IpAddr) -> bool {
        self.local_ips.contains(&ip)
    }

    /// The local endpoint with address `ip` (attached to an interface).
    pub fn endpoint(&self, ip: IpAddr) -> Option<&EndpointRuntime> {
        self.by_ip.get(&ip).map(|i| &self.endpoints[*i])
    }

    /// The identity the datapath gives `ip` (the ipcache's longest prefix).
    pub fn identity(&self, ip: IpAddr) -> u32 {
        match self.hosts.get(&ip) {
            Some(id) => *id,
            None => weir_policy::ipcache::lookup_entries(&self.compiled.ipcache, ip),
        }
    }
}

/// Where the apply loop publishes the policy for the proxy; `None` until the first policy is
/// applied.
#[derive(Debug, Default)]
pub struct ProxyPolicyHandle(RwLock<Option<Arc<ProxyPolicy>>>);

impl ProxyPolicyHandle {
    pub fn load(&self) -> Option<Arc<ProxyPolicy>> {
        self.0.read().expect("proxy policy lock").clone()
    }
    /// Replaces the policy; returns the one before.
    pub fn publish(&self, policy: Option<Arc<ProxyPolicy>>) -> Option<Arc<ProxyPolicy>> {
        std::mem::replace(&mut *self.0.write().expect("proxy policy lock"), policy)
    }
}

/// What the proxy reads (the enforced policy, the enrichment) and writes (flows).
pub struct ProxyContext {
    pub policy: Arc<ProxyPolicyHandle>,
    pub enrichment: Arc<EnrichmentHandle>,
    pub store: Arc<FlowStore>,
}

/// Client connections being served, per client address.
#[derive(Debug, Default)]
struct PerClient(Mutex<HashMap<IpAddr, usize>>);

impl PerClient {
    fn take(self: &Arc<Self>, ip: IpAddr) -> Option<ClientSlot> {
        let mut m = self.0.lock().expect("per-client lock");
        let n = m.entry(ip).or_insert(0);
        if *n >= MAX_CONNECTIONS_PER_CLIENT {
            return None;
        }
        *n += 1;
        Some(ClientSlot(self.clone(), ip))
    }
}

/// One connection of a client: given back when dropped.
struct ClientSlot(Arc<PerClient>, IpAddr);

impl Drop for ClientSlot {
    fn drop(&mut self) {
        let mut m = (self.0).0.lock().expect("per-client lock");
        if let Some(n) = m.get_mut(&self.1) {
            *n -= 1;
            if *n == 0 {
                m.remove(&self.1);
            }
        }
    }
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
    #[error("cannot start the L7 proxy's thread: {0}")]
    Runtime(#[source] io::Error),
    #[error("cannot register the L7 proxy's {family} listener in the datapath: {message}")]
    Register {
        family: &'static str,
        message: String,
    },
}

/// The running proxy: its thread holds the listeners (registered until the process exits).
pub struct Proxy {
    pub addresses: Vec<SocketAddr>,
}

/// HTTP/2's connection preface; anything else on a proxied port gets a 403.
const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// How long a new connection may take to send its preface, and then its HTTP/2 settings.
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

/// Sets up routing, opens and registers the listeners, and serves connections on a thread of
/// its own until the process exits: one single-threaded runtime keeps a call's hand-offs
/// between the client's connection, the call and the upstream connection on one core (measured
/// in docs/performance.md: less latency and CPU than on the agent's multi-threaded runtime).
/// The runtime is built, and on failure dropped, on that thread. Without IPv6 on the node,
/// only the IPv4 listener is registered.
pub fn start(map: SockMap<MapData>, ctx: Arc<ProxyContext>) -> Result<Proxy, ProxyError> {
    route::ensure()?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("weir-l7-proxy".into())
        .spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = tx.send(Err(ProxyError::Runtime(e)));
                    return;
                }
            };
            let listeners = {
                let _guard = rt.enter();
                register(map)
            };
            match listeners {
                Ok((map, listeners)) => {
                    let addresses = listeners.iter().map(|(_, a)| *a).collect();
                    let _ = tx.send(Ok(addresses));
                    let limit = Arc::new(Semaphore::new(MAX_CONNECTIONS));
                    let per_client = Arc::new(PerClient::default());
                    rt.block_on(async move {
                        let _map = map;
                        let loops: Vec<_> = listeners
                            .into_iter()
                            .map(|(l, own)| {
                                tokio::spawn(accept_loop(
                                    l,
                                    own,
                                    ctx.clone(),
                                    limit.clone(),
                                    per_client.clone(),
                                ))
                            })
                            .collect();
                        for l in loops {
                            let _ = l.await;
                        }
                    });
                }
                Err(e) => {
                    let _ = tx.send(Err(e));
                }
            }
        })
        .map_err(ProxyError::Runtime)?;
    let addresses = rx
        .recv()
        .map_err(|_| ProxyError::Runtime(io::Error::other("the L7 proxy's thread ended")))??;
    Ok(Proxy { addresses })
}

type Listeners = Vec<(TcpListener, SocketAddr)>;

/// Opens the listeners and registers them in the datapath's SOCKMAP (inside the proxy's
/// runtime). The IPv4 one is required; the IPv6 one is not.
fn register(mut map: SockMap<MapData>) -> Result<(SockMap<MapData>, Listeners), ProxyError> {
    let mut out = Vec::new();
    for (v6, family, index) in [
        (false, "IPv4", abi::PROXY_LISTENER_V4),
        (true, "IPv6", abi::PROXY_LISTENER_V6),
    ] {
        let registered = listener(v6)
            .map_err(|source| ProxyError::Listen { family, source })
            .and_then(|l| {
                let own = l
                    .local_addr()
                    .map_err(|source| ProxyError::Listen { family, source })?;
                map.set(index, &l, 0).map_err(|e| ProxyError::Register {
                    family,
                    message: e.to_string(),
                })?;
                Ok((l, own))
            });
        match registered {
            Ok(l) => out.push(l),
            Err(e) if v6 => {
                tracing::warn!(error = %e, "IPv6 connections to ports with gRPC rules will be refused");
            }
            Err(e) => return Err(e),
        }
    }
    Ok((map, out))
}

async fn accept_loop(
    l: TcpListener,
    own: SocketAddr,
    ctx: Arc<ProxyContext>,
    limit: Arc<Semaphore>,
    per_client: Arc<PerClient>,
) {
    loop {
        let Ok(permit) = limit.clone().acquire_owned().await else {
            return;
        };
        match l.accept().await {
            Ok((stream, client)) => {
                let Some(slot) = per_client.take(client.ip()) else {
                    tracing::warn!(%client, "L7 proxy: too many connections from this client; refused");
                    continue;
                };
                let ctx = ctx.clone();
                tokio::spawn(async move {
                    if let Err(e) = serve(ctx, stream, client, own).await {
                        tracing::debug!(%client, error = %e, "L7 proxy connection ended");
                    }
                    drop((permit, slot));
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

fn refuse(reason: &str) -> io::Error {
    io::Error::new(io::ErrorKind::PermissionDenied, reason.to_string())
}

async fn serve(
    ctx: Arc<ProxyContext>,
    mut stream: TcpStream,
    client: SocketAddr,
    own: SocketAddr,
) -> io::Result<()> {
    let server = stream.local_addr()?;
    // Only the datapath's hand-over gives the listener a connection for another address: one
    // made to the listener itself (or to any loopback address) is not a proxied connection,
    // and forwarding it would connect the proxy to itself.
    if server == own || server.ip().is_loopback() || server.ip().to_canonical().is_loopback() {
        return Err(refuse("not handed over by the datapath"));
    }
    let _ = stream.set_nodelay(true);
    let conn = Conn { client, server };
    let Some(policy) = ctx.policy.load() else {
        return Err(refuse("no policy applied yet"));
    };
    // Local endpoints' hooks hand connections over by their egress or the server's ingress
    // rules, node devices' hooks (from_netdev) those of other nodes' and outside clients by the
    // server's ingress rules. Those L3/L4 decisions must still hold (the policy may have
    // changed since), and the upstream must be one the server's hook can police by the
    // client's identity.
    let upstream_from_client =
        match decide::connection(&policy, client.ip(), server.ip(), server.port()) {
            decide::Upstream::Refused(why) => return Err(refuse(why)),
            decide::Upstream::FromClient => true,
            decide::Upstream::FromNode => false,
        };
    drop(policy);
    let mut head = [0u8; PREFACE.len()];
    let got = tokio::time::timeout(HANDSHAKE_TIMEOUT, read_preface(&mut stream, &mut head))
        .await
        .unwrap_or(Ok(0))?;
    if head[..got] != PREFACE[..] {
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
    let upstream = tokio::time::timeout(
        CONNECT_TIMEOUT,
        connect_upstream(client, server, upstream_from_client),
    )
    .await
    .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "upstream connect timed out"))??;
    let client_io = Prefixed {
        prefix: head,
        at: 0,
        io: stream,
    };
    forward::connection(ctx, conn, client_io, upstream).await
}

/// Reads until the buffer holds the preface or the bytes read differ from it; returns how many
/// bytes were read (fewer than the preface's length: the peer closed or sent something else).
async fn read_preface(stream: &mut TcpStream, head: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < head.len() {
        let n = stream.read(&mut head[got..]).await?;
        if n == 0 {
            break;
        }
        got += n;
        if head[..got] != PREFACE[..got] {
            break;
        }
    }
    Ok(got)
}

/// A stream whose first bytes (the preface, already read) are read again.
struct Prefixed<S> {
    prefix: [u8; PREFACE.len()],
    at: usize,
    io: S,
}

impl<S: AsyncRead + Unpin> AsyncRead for Prefixed<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.at < self.prefix.len() {
            let n = (self.prefix.len() - self.at).min(buf.remaining());
            let at = self.at;
            buf.put_slice(&self.prefix[at..at + n]);
            self.at += n;
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Prefixed<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// Connects to the original destination: from the client's address (its port when free) when
/// the destination is a local endpoint, so the endpoint's hook sees the client; else from the
/// node (world and CIDR destinations only, `decide::connection`).
async fn connect_upstream(
    client: SocketAddr,
    server: SocketAddr,
    from_client: bool,
) -> io::Result<TcpStream> {
    let new = || -> io::Result<TcpSocket> {
        let s = if server.is_ipv6() {
            TcpSocket::new_v6()?
        } else {
            TcpSocket::new_v4()?
        };
        setsockopt(&s, sockopt::Mark, &abi::MARK_FROM_PROXY)?;
        if from_client {
            setsockopt(&s, sockopt::IpTransparent, &true)?;
        }
        s.set_nodelay(true)?;
        Ok(s)
    };
    if !from_client {
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
