//! HTTP/2 forwarding, call by call, with flow control passed through and L7 flows reported.

use std::future::poll_fn;
use std::io;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use h2::server::SendResponse;
use h2::{Reason, RecvStream, SendStream};
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tokio::task::JoinSet;
use weir_policy::compiled::Direction;
use weir_probes::abi::{self, FlowEvent};

use super::decide::{self, CallDecision};
use super::{
    CONNECT_TIMEOUT, CONNECTION_WINDOW, Conn, HANDSHAKE_TIMEOUT, IDLE_TIMEOUT, MAX_HEADER_LIST,
    MAX_STREAMS, ProxyContext,
};
use crate::flows::{PolicyMeta, StoredFlow};
use crate::l7::{HttpRecord, L7Kind};

const GRPC_PERMISSION_DENIED: &str = "7";
const DENIED_MESSAGE: &str = "Access denied by policy";

/// Serves one client connection until it ends, each call on the upstream connection. When it
/// ends, its calls and the upstream connection end with it.
pub async fn connection<C>(
    ctx: Arc<ProxyContext>,
    conn: Conn,
    client: C,
    upstream: TcpStream,
) -> io::Result<()>
where
    C: AsyncRead + AsyncWrite + Unpin,
{
    let timed_out = || io::Error::new(io::ErrorKind::TimedOut, "HTTP/2 handshake timed out");
    let (send, upstream_conn) = tokio::time::timeout(
        CONNECT_TIMEOUT,
        h2::client::Builder::new()
            .enable_push(false)
            .initial_connection_window_size(CONNECTION_WINDOW)
            .max_header_list_size(MAX_HEADER_LIST)
            .handshake(upstream),
    )
    .await
    .map_err(|_| timed_out())?
    .map_err(io::Error::other)?;
    let mut upstream_done = AbortOnDrop(tokio::spawn(upstream_conn));
    let mut server = tokio::time::timeout(
        HANDSHAKE_TIMEOUT,
        h2::server::Builder::new()
            .initial_connection_window_size(CONNECTION_WINDOW)
            .max_concurrent_streams(MAX_STREAMS)
            .max_header_list_size(MAX_HEADER_LIST)
            .handshake(client),
    )
    .await
    .map_err(|_| timed_out())?
    .map_err(io::Error::other)?;
    // Set by a call that finds the upstream connection going away (the server's GOAWAY).
    let going_away = Arc::new(Notify::new());
    let idle = tokio::time::sleep(IDLE_TIMEOUT);
    tokio::pin!(idle);
    let mut calls = JoinSet::new();
    let mut closing = false;
    loop {
        tokio::select! {
            next = server.accept() => match next {
                Some(Ok((req, respond))) => {
                    calls.spawn(call(ctx.clone(), conn, req, respond, send.clone(), going_away.clone()));
                }
                Some(Err(e)) => return Err(io::Error::other(e)),
                None => return Ok(()),
            },
            Some(_) = calls.join_next(), if !calls.is_empty() => {
                if calls.is_empty() {
                    idle.as_mut().reset(tokio::time::Instant::now() + IDLE_TIMEOUT);
                }
            }
            // The server is closing its side (or has closed it), or the connection has had no
            // call for a long time: the client finishes its calls and opens a new connection
            // for the next ones.
            _ = going_away.notified(), if !closing => {
                closing = true;
                server.graceful_shutdown();
            }
            _ = &mut upstream_done.0, if !closing => {
                closing = true;
                server.graceful_shutdown();
            }
            _ = &mut idle, if !closing && calls.is_empty() => {
                closing = true;
                server.graceful_shutdown();
            }
        }
    }
}

/// Aborts the task when dropped.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn is_grpc(headers: &HeaderMap) -> bool {
    headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/grpc"))
}

fn grpc_status(headers: &HeaderMap) -> Option<&HeaderValue> {
    headers.get("grpc-status")
}

/// One call: decide, answer a denial, or forward both ways.
async fn call(
    ctx: Arc<ProxyContext>,
    conn: Conn,
    req: Request<RecvStream>,
    mut respond: SendResponse<Bytes>,
    upstream: h2::client::SendRequest<Bytes>,
    going_away: Arc<Notify>,
) {
    let started = Instant::now();
    let (parts, body) = req.into_parts();
    let request = decide::request_of(&parts);
    let policy = ctx.policy.load().unwrap_or_default();
    let decision = decide::decide(
        &policy,
        conn.client.ip(),
        conn.server.ip(),
        conn.server.port(),
        &request,
    );
    drop(policy);
    let grpc = is_grpc(&parts.headers);
    let flow_headers = flow_headers(&parts.headers, &ctx.enrichment.load().http_flow_headers);
    let method: Arc<str> = Arc::from(parts.method.as_str());
    let url: Arc<str> = Arc::from(
        format!(
            "http://{}{}",
            parts
                .uri
                .authority()
                .map_or_else(|| conn.server.to_string(), |a| a.to_string()),
            parts.uri.path_and_query().map_or("/", |p| p.as_str())
        )
        .as_str(),
    );
    let record = |kind, code, latency_ns, headers| HttpRecord {
        kind,
        protocol: "HTTP/2",
        code,
        latency_ns,
        method: method.clone(),
        url: url.clone(),
        headers,
    };

    if !decision.allowed {
        report(
            &ctx,
            conn,
            &decision,
            record(L7Kind::Request, 0, 0, flow_headers),
        );
        let (response, trailer) = if grpc {
            let r = Response::builder()
                .status(StatusCode::OK)
                .header(http::header::CONTENT_TYPE, "application/grpc")
                .header("grpc-status", GRPC_PERMISSION_DENIED)
                .header("grpc-message", DENIED_MESSAGE)
                .body(())
                .expect("static response");
            (r, true)
        } else {
            let r = Response::builder()
                .status(StatusCode::FORBIDDEN)
                .header(http::header::CONTENT_TYPE, "text/plain")
                .body(())
                .expect("static response");
            (r, false)
        };
        let code = u32::from(response.status().as_u16());
        match respond.send_response(response, trailer) {
            Ok(mut send) if !trailer => {
                let _ = send.send_data(Bytes::from_static(b"Access denied\r\n"), true);
            }
            _ => {}
        }
        // The request's body is not read: the client learns from the response.
        drop(body);
        let headers = if grpc {
            grpc_headers(GRPC_PERMISSION_DENIED, Some(DENIED_MESSAGE))
        } else {
            Vec::new()
        };
        report(
            &ctx,
            conn,
            &decision,
            record(
                L7Kind::Response,
                code,
                started.elapsed().as_nanos() as u64,
                headers,
            ),
        );
        return;
    }

    // A call the upstream connection cannot take (it is going away, or gone) is refused, which
    // gRPC clients retry, and the client's connection is shut down gracefully.
    let refuse = |respond: &mut SendResponse<Bytes>, e: &h2::Error| {
        tracing::debug!(error = %e, "upstream connection cannot take a call");
        going_away.notify_one();
        respond.send_reset(Reason::REFUSED_STREAM);
    };
    let mut upstream = match upstream.ready().await {
        Ok(u) => u,
        Err(e) => return refuse(&mut respond, &e),
    };
    let end = body.is_end_stream();
    let (response, mut request_body) =
        match upstream.send_request(Request::from_parts(parts, ()), end) {
            Ok(r) => r,
            Err(e) => return refuse(&mut respond, &e),
        };
    report(
        &ctx,
        conn,
        &decision,
        record(L7Kind::Request, 0, 0, flow_headers),
    );
    // The request's data and the response, at the same time, in this task. When the response
    // side ends, what is left of the request's data is not sent.
    let mut request_done = end;
    let answered = {
        let request_side = async {
            if let Err(e) = pump(body, &mut request_body).await {
                request_body.send_reset(e.reason().unwrap_or(Reason::CANCEL));
            }
        };
        let response_side = async {
            let response = tokio::select! {
                r = response => r,
                // The client gave up on the call.
                _ = poll_fn(|cx| respond.poll_reset(cx)) => return None,
            };
            let response = match response {
                Ok(r) => r,
                Err(e) if e.is_go_away() => {
                    refuse(&mut respond, &e);
                    return None;
                }
                Err(e) => {
                    respond.send_reset(e.reason().unwrap_or(Reason::INTERNAL_ERROR));
                    return None;
                }
            };
            let latency_ns = started.elapsed().as_nanos() as u64;
            let (rparts, rbody) = response.into_parts();
            let code = u32::from(rparts.status.as_u16());
            let mut status = grpc_status(&rparts.headers)
                .and_then(|v| v.to_str().ok())
                .map(|s| (s.to_string(), message(&rparts.headers)));
            let end = rbody.is_end_stream();
            match respond.send_response(Response::from_parts(rparts, ()), end) {
                Ok(mut send) if !end => match pump(rbody, &mut send).await {
                    Ok(Some(trailers)) => {
                        if let Some(s) = grpc_status(&trailers).and_then(|v| v.to_str().ok()) {
                            status = Some((s.to_string(), message(&trailers)));
                        }
                    }
                    Ok(None) => {}
                    Err(e) => send.send_reset(e.reason().unwrap_or(Reason::CANCEL)),
                },
                Ok(_) => {}
                Err(e) => tracing::debug!(error = %e, "cannot answer a call"),
            }
            Some((code, latency_ns, status))
        };
        tokio::pin!(request_side, response_side);
        loop {
            tokio::select! {
                () = &mut request_side, if !request_done => request_done = true,
                answered = &mut response_side => break answered,
            }
        }
    };
    if !request_done {
        // Cancelled by the client, or answered before the request's end: cancel it upstream.
        request_body.send_reset(Reason::CANCEL);
    }
    if let Some((code, latency_ns, status)) = answered {
        let headers = status
            .map(|(s, m)| grpc_headers(&s, m.as_deref()))
            .unwrap_or_default();
        report(
            &ctx,
            conn,
            &decision,
            record(L7Kind::Response, code, latency_ns, headers),
        );
    }
}

/// The request's headers named by `--http-flow-headers` (`names`, lower-case as h2's); values
/// that are not text are shown lossily.
fn flow_headers(headers: &HeaderMap, names: &[String]) -> Vec<(String, String)> {
    if names.is_empty() {
        return Vec::new();
    }
    headers
        .iter()
        .filter(|(name, _)| names.iter().any(|n| n == name.as_str()))
        .map(|(name, value)| {
            (
                name.as_str().to_string(),
                String::from_utf8_lossy(value.as_bytes()).into_owned(),
            )
        })
        .collect()
}

fn message(headers: &HeaderMap) -> Option<String> {
    headers
        .get("grpc-message")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

fn grpc_headers(status: &str, message: Option<&str>) -> Vec<(String, String)> {
    let mut h = vec![("grpc-status".to_string(), status.to_string())];
    if let Some(m) = message {
        h.push(("grpc-message".to_string(), m.to_string()));
    }
    h
}

/// Copies a stream's data and trailers, sending only as much as the receiver's window allows
/// and releasing the sender's window as data goes out. Returns the trailers; an error when
/// either side resets the stream (the receiver's reason when it was the receiver).
async fn pump(
    mut from: RecvStream,
    to: &mut SendStream<Bytes>,
) -> Result<Option<HeaderMap>, h2::Error> {
    loop {
        let next = tokio::select! {
            next = from.data() => next,
            reset = poll_fn(|cx| to.poll_reset(cx)) => {
                return Err(reset.map_or_else(|e| e, h2::Error::from));
            }
        };
        let Some(chunk) = next else {
            break;
        };
        let mut chunk = chunk?;
        let len = chunk.len();
        while !chunk.is_empty() {
            to.reserve_capacity(chunk.len());
            let cap = match poll_fn(|cx| to.poll_capacity(cx)).await {
                Some(cap) => cap?,
                None => return Err(h2::Error::from(Reason::CANCEL)),
            };
            let piece = chunk.split_to(cap.min(chunk.len()));
            to.send_data(piece, false)?;
        }
        from.flow_control().release_capacity(len)?;
    }
    let trailers = tokio::select! {
        t = from.trailers() => t?,
        reset = poll_fn(|cx| to.poll_reset(cx)) => {
            return Err(reset.map_or_else(|e| e, h2::Error::from));
        }
    };
    match &trailers {
        Some(t) => to.send_trailers(t.clone())?,
        None => to.send_data(Bytes::new(), true)?,
    }
    Ok(trailers)
}

fn addr_bytes(ip: IpAddr) -> [u8; 16] {
    match ip {
        IpAddr::V4(a) => {
            let mut b = [0u8; 16];
            b[..4].copy_from_slice(&a.octets());
            b
        }
        IpAddr::V6(a) => a.octets(),
    }
}

/// Stores the L7 flow of a request (client → server; its verdict and the policy behind it) or a
/// response (server → client; forwarded, no policy), at the deciding endpoint.
fn report(ctx: &ProxyContext, conn: Conn, d: &CallDecision, record: HttpRecord) {
    let enrich = ctx.enrichment.load();
    let response = record.kind == L7Kind::Response;
    let (src, dst, src_id, dst_id) = if response {
        (conn.server, conn.client, d.dst_identity, d.src_identity)
    } else {
        (conn.client, conn.server, d.src_identity, d.dst_identity)
    };
    let mut flags = if conn.client.is_ipv6() {
        abi::EVF_IPV6
    } else {
        0
    };
    if response {
        flags |= abi::EVF_REPLY;
    }
    let point = d.point;
    let ev = FlowEvent {
        r#type: abi::EVENT_L7,
        version: abi::EVENT_VERSION,
        obs_point: abi::obs_point::TO_PROXY,
        flags,
        direction: match point.map(|p| p.direction) {
            Some(Direction::Egress) => abi::DIR_EGRESS,
            _ => abi::DIR_INGRESS,
        },
        protocol: 6,
        // A response reaches the client, the proxy's own denial included (as the datapath's
        // 403 for HTTP/1.x); the request carries the verdict.
        verdict: if d.allowed || response {
            abi::VERDICT_ALLOWED
        } else {
            abi::VERDICT_DENIED
        },
        drop_reason: if d.allowed || response {
            0
        } else if d.l4_deny_rule {
            abi::drop_reason::POLICY_DENY
        } else {
            abi::drop_reason::POLICY_DENIED
        },
        ifindex: point.map_or(0, |p| p.ifindex),
        ep_id: point.map_or(0, |p| p.ep_id),
        src_identity: src_id,
        dst_identity: dst_id,
        rule_set: if response { 0 } else { d.l4_rule_set },
        count: 1,
        saddr: addr_bytes(src.ip()),
        daddr: addr_bytes(dst.ip()),
        sport: src.port(),
        dport: dst.port(),
        ..FlowEvent::default()
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64);
    let mut flow: StoredFlow = enrich.enrich(ev, now);
    if !d.l4_denied && !response {
        let set = enrich.http_sets.get(&d.l7_set);
        flow.policies = match (d.allowed, d.rule) {
            (true, Some(rule)) => set.and_then(|s| s.rules.get(rule).cloned()),
            (false, _) => set.map(|s| s.policies.clone()),
            (true, None) => None::<Arc<[PolicyMeta]>>,
        };
    }
    flow.l7 = Some(record);
    ctx.store.push_batch(&mut vec![flow]);
}
