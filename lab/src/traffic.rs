//! Traffic from inside a lab namespace, without external tools: a thread joins the namespace
//! and uses std sockets (or an ICMP echo socket for ping).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use nix::sys::socket::{AddressFamily, SockFlag, SockProtocol, SockType, socket};

use crate::error::{Stage, TrafficError};
use crate::http::{self, ExchangeError, HttpRequest, HttpResponse, Target};
use crate::netns;

/// A place traffic starts from: what to call it in errors, and its namespace.
#[derive(Debug, Clone)]
pub(crate) struct Origin<'a> {
    pub display: &'a str,
    pub netns: &'a str,
}

impl Origin<'_> {
    fn run<T: Send>(
        &self,
        f: impl FnOnce() -> Result<T, TrafficError> + Send,
    ) -> Result<T, TrafficError> {
        netns::in_netns(self.netns, f).map_err(|source| TrafficError::Netns {
            from: self.display.to_string(),
            netns: self.netns.to_string(),
            source,
        })?
    }

    fn fail(
        &self,
        to: impl ToString,
        stage: Stage,
        after: Duration,
        err: std::io::Error,
    ) -> TrafficError {
        TrafficError::classify(self.display, &to.to_string(), stage, after, err)
    }
}

pub(crate) fn tcp_connect(
    from: &Origin<'_>,
    addr: SocketAddr,
    timeout: Duration,
) -> Result<TcpStream, TrafficError> {
    from.run(|| {
        let stream = TcpStream::connect_timeout(&addr, timeout)
            .map_err(|e| from.fail(addr, Stage::Connect, timeout, e))?;
        let _ = stream.set_nodelay(true);
        Ok(stream)
    })
}

pub(crate) fn tcp_listen(from: &Origin<'_>, addr: SocketAddr) -> Result<TcpListener, TrafficError> {
    from.run(|| {
        TcpListener::bind(addr).map_err(|e| from.fail(addr, Stage::Connect, Duration::ZERO, e))
    })
}

pub(crate) fn udp_bind(from: &Origin<'_>, addr: SocketAddr) -> Result<UdpSocket, TrafficError> {
    from.run(|| {
        UdpSocket::bind(addr).map_err(|e| from.fail(addr, Stage::Connect, Duration::ZERO, e))
    })
}

fn unspecified(addr: &SocketAddr) -> SocketAddr {
    match addr {
        SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    }
}

pub(crate) fn udp_roundtrip(
    from: &Origin<'_>,
    addr: SocketAddr,
    payload: &[u8],
    timeout: Duration,
) -> Result<Vec<u8>, TrafficError> {
    from.run(|| {
        let start = Instant::now();
        let socket = UdpSocket::bind(unspecified(&addr))
            .map_err(|e| from.fail(addr, Stage::Connect, timeout, e))?;
        // Connected, so an ICMP port unreachable comes back as "connection refused".
        socket
            .connect(addr)
            .map_err(|e| from.fail(addr, Stage::Connect, timeout, e))?;
        socket
            .send(payload)
            .map_err(|e| from.fail(addr, Stage::Send, timeout, e))?;
        let mut buf = vec![0u8; 65536];
        let left = timeout
            .saturating_sub(start.elapsed())
            .max(Duration::from_millis(1));
        socket
            .set_read_timeout(Some(left))
            .map_err(|e| from.fail(addr, Stage::Receive, timeout, e))?;
        let n = socket
            .recv(&mut buf)
            .map_err(|e| from.fail(addr, Stage::Receive, timeout, e))?;
        buf.truncate(n);
        Ok(buf)
    })
}

pub(crate) fn http(
    from: &Origin<'_>,
    request: &HttpRequest,
    target: &Target,
    timeout: Duration,
) -> Result<HttpResponse, TrafficError> {
    let to = target.addr;
    from.run(|| {
        let deadline = Instant::now() + timeout;
        let mut stream = TcpStream::connect_timeout(&to, timeout)
            .map_err(|e| from.fail(to, Stage::Connect, timeout, e))?;
        let _ = stream.set_nodelay(true);
        http::exchange(&mut stream, request, target, deadline).map_err(|e| match e {
            ExchangeError::Io(stage, err) => from.fail(to, stage, timeout, err),
            ExchangeError::Protocol(message) => TrafficError::Protocol {
                from: from.display.to_string(),
                to: to.to_string(),
                message: format!("{} {}: {message}", request.method, request.url),
            },
        })
    })
}

/// One ICMP echo request; returns the round-trip time.
pub(crate) fn ping(
    from: &Origin<'_>,
    addr: IpAddr,
    timeout: Duration,
) -> Result<Duration, TrafficError> {
    const SEQ: u16 = 1;
    from.run(|| {
        let start = Instant::now();
        let fail = |stage, e: std::io::Error| from.fail(addr, stage, timeout, e);
        let (family, protocol, request_type, reply_type) = match addr {
            IpAddr::V4(_) => (AddressFamily::Inet, SockProtocol::Icmp, 8u8, 0u8),
            IpAddr::V6(_) => (AddressFamily::Inet6, SockProtocol::IcmpV6, 128u8, 129u8),
        };
        // An ICMP "ping" socket: the kernel sets the identifier and the checksum, and hands us
        // only the replies to this socket.
        let fd = socket(family, SockType::Datagram, SockFlag::SOCK_CLOEXEC, protocol)
            .map_err(|e| fail(Stage::Connect, e.into()))?;
        let socket = UdpSocket::from(fd);
        socket
            .connect(SocketAddr::new(addr, 0))
            .map_err(|e| fail(Stage::Connect, e))?;
        let mut packet = vec![request_type, 0, 0, 0, 0, 0];
        packet.extend_from_slice(&SEQ.to_be_bytes());
        packet.extend_from_slice(b"weir-lab ping");
        socket.send(&packet).map_err(|e| fail(Stage::Send, e))?;
        let mut buf = [0u8; 1500];
        loop {
            let left = timeout.saturating_sub(start.elapsed());
            if left.is_zero() {
                return Err(fail(Stage::Receive, std::io::ErrorKind::TimedOut.into()));
            }
            socket
                .set_read_timeout(Some(left))
                .map_err(|e| fail(Stage::Receive, e))?;
            let n = socket.recv(&mut buf).map_err(|e| fail(Stage::Receive, e))?;
            if n >= 8 && buf[0] == reply_type && buf[6..8] == SEQ.to_be_bytes() {
                return Ok(start.elapsed());
            }
        }
    })
}
