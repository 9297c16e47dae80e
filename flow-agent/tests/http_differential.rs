//! The kernel's HTTP matcher must agree with the policy crate's reference: generated rule sets
//! and requests (odd characters, percent-encoding, long paths, case, header whitespace,
//! framing headers) are sent through the real `to_container` program with BPF_PROG_TEST_RUN as
//! TCP connections (a SYN, then the requests pipelined and cut into segments at random places,
//! down to single bytes), and every request the kernel reports is compared with what
//! `RequestStream` and `HttpRuleSet::matching_rule` say: allowed by which rule, or denied and
//! why, and the request line, Host and captured header values (`--http-flow-headers`, a few
//! names drawn per case) the flow will show. Any difference fails the test with
//! the case's seed, the connection's bytes and its segments.
//!
//! `WEIR_HTTP_DIFF_CASES` (default 300, 100 requests each) and `WEIR_HTTP_DIFF_SEED` (first
//! seed) tune it. Privileged: needs root for BPF and a network namespace.

mod common;

use std::net::IpAddr;

use aya::maps::{MapData, RingBuf};
use common::Netns;
use weir_flow_agent::datapath::{Datapath, DatapathOptions, Hook, LocalEndpoint, MapWriter};
use weir_flow_agent::testrun::{self, TC_ACT_OK, TC_ACT_SHOT};
use weir_policy::compiled::CompiledPolicy;
use weir_policy::http::{HttpRequest, HttpRuleSet, Invalid, RequestStream, build_tables};
use weir_policy::testgen::{encode_request, random_http_case};
use weir_policy::{ClusterState, Options, PolicySet};
use weir_probes::abi::{self, CtKey, Event, L7Event};

const CLUSTER: &str = "{name: diff, podCIDRs: [10.0.0.0/16], nodes: [{name: n1, ips: [192.168.1.1]}], namespaces: [{name: default}]}";
const CLIENT: &str = "{name: client-0, namespace: default, node: n1, labels: {app: client}, ips: [10.0.1.1], interface: v1}";
const SERVER: &str = "{name: server-0, namespace: default, node: n1, labels: {app: server}, ips: [10.0.1.2], interface: v0}";

/// The server's ingress on port 80 carries HTTP rule set 1, which each case replaces.
const POLICY: &str = r#"
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata:
  name: http-diff
  namespace: default
spec:
  endpointSelector:
    matchLabels:
      app: server
  ingress:
    - fromEndpoints:
        - matchLabels:
            app: client
      toPorts:
        - ports:
            - port: "80"
              protocol: TCP
          rules:
            http:
              - method: GET
"#;

const TCP_SYN: u8 = 0x02;
const TCP_PSH_ACK: u8 = 0x18;
/// Largest payload per segment (a typical MSS).
const MSS: usize = 1460;

/// What is reported about one request.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Report {
    /// The allowing rule's index, or None when denied.
    rule: Option<u32>,
    /// Drop reason of a denied request.
    reason: u16,
    /// "method SP target" as captured (at most 255 bytes).
    line: Vec<u8>,
    method_len: u8,
    /// The Host value as captured (at most 64 bytes), for a request that parsed.
    host: Vec<u8>,
    /// Captured values of the flow headers (index in the case's list, trimmed value).
    headers: Vec<(usize, Vec<u8>)>,
}

/// splitmix64: the segmentation of each connection follows from the case's seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// Cuts `len` bytes into segments: whole (up to the MSS), at random places, or byte by byte.
fn segments(rng: &mut Rng, len: usize) -> Vec<(usize, usize)> {
    let mode = rng.below(4);
    let mut out = Vec::new();
    let mut at = 0;
    while at < len {
        let size = match mode {
            0 | 1 => MSS,
            2 => 1 + rng.below(64) as usize,
            _ => {
                if rng.below(3) == 0 {
                    1
                } else {
                    1 + rng.below(MSS as u64) as usize
                }
            }
        };
        let end = (at + size).min(len);
        out.push((at, end));
        at = end;
    }
    out
}

/// A request's header lines: (name, raw value).
type RawHeaders = Vec<(Vec<u8>, Vec<u8>)>;

/// Each header line of an encoded request head as (name, value from its first non-OWS byte to
/// the line's end): what the datapath captures of a value.
fn raw_headers(head: &[u8]) -> RawHeaders {
    let end = head
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(head.len(), |p| p + 2);
    head[..end]
        .split(|&b| b == b'\n')
        .skip(1)
        .filter_map(|line| {
            let line = line.strip_suffix(b"\r")?;
            let colon = line.iter().position(|&b| b == b':')?;
            let value = &line[colon + 1..];
            let lead = value
                .iter()
                .take_while(|&&b| b == b' ' || b == b'\t')
                .count();
            Some((line[..colon].to_vec(), value[lead..].to_vec()))
        })
        .collect()
}

/// The values of `flow` headers a request reports, given its raw header lines: a mark byte,
/// the value and an end byte each, in a buffer of `abi::HTTP_HDRS_CAP` bytes; a value whose end
/// does not fit is left out, and trailing OWS is trimmed.
fn captured(raw: &RawHeaders, flow: &[String]) -> Vec<(usize, Vec<u8>)> {
    let cap = abi::HTTP_HDRS_CAP;
    let mut len = 0;
    let mut out = Vec::new();
    for (name, value) in raw {
        let Some(index) = flow
            .iter()
            .position(|f| f.as_bytes().eq_ignore_ascii_case(name))
        else {
            continue;
        };
        if len >= cap {
            continue;
        }
        len += 1;
        let fit = value.len().min(cap - len);
        len += fit;
        if fit < value.len() || len >= cap {
            continue;
        }
        len += 1;
        let keep = value.len()
            - value
                .iter()
                .rev()
                .take_while(|&&b| b == b' ' || b == b'\t')
                .count();
        out.push((index, value[..keep].to_vec()));
    }
    out
}

/// The reference: what the datapath must report for a connection carrying `bytes`, the
/// requests in `raw` (each one's raw header lines) with `flow` headers captured.
fn expected(set: &HttpRuleSet, bytes: &[u8], raw: &[RawHeaders], flow: &[String]) -> Vec<Report> {
    let mut stream = RequestStream::new();
    let mut out = Vec::new();
    let mut parsed: Vec<HttpRequest> = Vec::new();
    let error = match stream.feed(bytes) {
        Ok(reqs) => {
            parsed.extend(reqs.into_iter().map(|(r, _)| r));
            stream.feed(&[]).err()
        }
        Err(e) => Some(e),
    };
    for (i, req) in parsed.iter().enumerate() {
        let mut line = req.method.clone();
        line.push(b' ');
        line.extend_from_slice(&req.target);
        line.truncate(255);
        let host = req
            .headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(b"host"))
            .map(|(_, v)| v[..v.len().min(abi::HTTP_HOST_CAP)].to_vec())
            .unwrap_or_default();
        let rule = set.matching_rule(req).map(|i| i as u32);
        out.push(Report {
            rule,
            reason: if rule.is_some() { 0 } else { 133 },
            line,
            method_len: req.method.len() as u8,
            host,
            headers: raw.get(i).map(|r| captured(r, flow)).unwrap_or_default(),
        });
        if rule.is_none() {
            return out;
        }
    }
    if let Some(e) = error {
        out.push(Report {
            rule: None,
            reason: match e {
                Invalid::Unsupported => 180,
                Invalid::Malformed | Invalid::TooLong => 134,
            },
            line: Vec::new(),
            method_len: 0,
            host: Vec::new(),
            headers: Vec::new(),
        });
    }
    out
}

fn report(ev: &L7Event) -> Report {
    let denied = ev.flow.verdict == abi::VERDICT_DENIED;
    let parsed = !denied || ev.flow.drop_reason == 133;
    Report {
        rule: (!denied).then_some(ev.rule),
        reason: if denied { ev.flow.drop_reason } else { 0 },
        // A request that did not parse has no line or Host to compare.
        line: if parsed {
            ev.line().to_vec()
        } else {
            Vec::new()
        },
        method_len: if parsed { ev.method_len } else { 0 },
        host: if parsed {
            ev.host().to_vec()
        } else {
            Vec::new()
        },
        headers: if parsed {
            ev.captured_headers()
                .into_iter()
                .map(|(i, v)| (i, v.to_vec()))
                .collect()
        } else {
            Vec::new()
        },
    }
}

struct Harness {
    dp: Datapath,
    writer: MapWriter,
    events: RingBuf<MapData>,
    server_if: u32,
    client: IpAddr,
    server: IpAddr,
    sport: u16,
}

impl Harness {
    fn drain(&mut self) -> Vec<L7Event> {
        self.drain_all()
            .into_iter()
            .filter(|ev| ev.l7_type == abi::L7_REQUEST)
            .collect()
    }

    /// Every L7 event queued, requests and responses.
    fn drain_all(&mut self) -> Vec<L7Event> {
        let mut out = Vec::new();
        while let Some(item) = self.events.next() {
            if let Event::L7(ev) = Event::decode(&item).expect("decodable event") {
                out.push(*ev);
            }
        }
        out
    }

    /// A segment on the current connection, from the client (the server's `to_container`) or
    /// from the server (its `from_container`); returns the program's verdict.
    fn segment(&mut self, from_client: bool, flags: u8, seq: u32, ack: u32, payload: &[u8]) -> u32 {
        let (src, dst, sport, dport, hook) = if from_client {
            (self.client, self.server, self.sport, 80, Hook::ToContainer)
        } else {
            (
                self.server,
                self.client,
                80,
                self.sport,
                Hook::FromContainer,
            )
        };
        let frame = testrun::tcp_segment(src, dst, sport, dport, flags, seq, ack, payload);
        let prog = self.dp.program(hook).unwrap();
        testrun::run(prog, &frame, self.server_if, 1).unwrap().0
    }

    /// A segment the server sends.
    fn send_reply(&mut self, flags: u8, seq: u32, ack: u32, payload: &[u8]) -> u32 {
        self.segment(false, flags, seq, ack, payload)
    }

    /// A segment the client sends with an explicit acknowledgment number.
    fn send_acking(&mut self, flags: u8, seq: u32, ack: u32, payload: &[u8]) -> u32 {
        self.segment(true, flags, seq, ack, payload)
    }

    fn send(&mut self, flags: u8, seq: u32, payload: &[u8]) -> u32 {
        self.segment(true, flags, seq, 1, payload)
    }

    /// One connection: SYN, then `bytes` in `cuts`. Returns the kernel's request reports.
    fn connection(&mut self, bytes: &[u8], cuts: &[(usize, usize)], isn: u32) -> Vec<Report> {
        let segments: Vec<(u8, u32, &[u8])> = cuts
            .iter()
            .map(|&(a, b)| {
                let seq = isn.wrapping_add(1).wrapping_add(a as u32);
                (TCP_PSH_ACK, seq, &bytes[a..b])
            })
            .collect();
        self.exchange(isn, &segments)
    }

    /// A SYN with `isn`, then `segments` (flags, sequence number, payload), on the next ports;
    /// returns the kernel's request reports and forgets the connection.
    fn exchange(&mut self, isn: u32, segments: &[(u8, u32, &[u8])]) -> Vec<Report> {
        self.raw_exchange(isn, segments)
            .iter()
            .map(report)
            .collect()
    }

    /// `exchange`, returning the request events themselves.
    fn raw_exchange(&mut self, isn: u32, segments: &[(u8, u32, &[u8])]) -> Vec<L7Event> {
        // Eight ports in turn: a connection reuses the ports of one a few before it, as clients'
        // ephemeral ports do, and must start from a clean parser state.
        self.sport = 1024 + (self.sport + 1) % 8;
        self.drain();
        assert_eq!(
            self.send(TCP_SYN, isn, &[]),
            TC_ACT_OK,
            "the SYN is allowed"
        );
        for &(flags, seq, payload) in segments {
            self.send(flags, seq, payload);
        }
        let reports = self.drain();
        self.forget();
        reports
    }

    /// Removes the current connection's CT entry (its ports come round again).
    fn forget(&mut self) {
        let key = self.ct_key();
        let _ = self.writer.ct().remove(&key);
    }

    /// The CT key of the current connection (the server's ingress).
    fn ct_key(&self) -> CtKey {
        let mut key = CtKey {
            sport: self.sport,
            dport: 80,
            protocol: 6,
            direction: abi::DIR_INGRESS,
            family: 4,
            ifindex: self.server_if,
            ..Default::default()
        };
        if let (IpAddr::V4(c), IpAddr::V4(s)) = (self.client, self.server) {
            key.saddr[..4].copy_from_slice(&c.octets());
            key.daddr[..4].copy_from_slice(&s.octets());
        }
        key
    }

    /// The current connection's CT entry.
    fn ct_entry(&mut self) -> Result<abi::CtEntry, String> {
        let key = self.ct_key();
        self.writer
            .ct()
            .get(&key, 0)
            .map_err(|e| format!("CT entry of port {}: {e}", self.sport))
    }
}

fn show(bytes: &[u8]) -> String {
    bytes.escape_ascii().to_string()
}

fn check_case(
    h: &mut Harness,
    base: &CompiledPolicy,
    local: &[LocalEndpoint<'_>],
    seed: u64,
) -> Result<(usize, usize), String> {
    let (set, requests) = random_http_case(seed);
    if set.is_grpc() {
        // Only gRPC paths: the agent's L7 proxy enforces these, not the kernel's parser
        // (e2e's grpc_rules_apply_per_call_through_the_agents_proxy).
        return Ok((0, 0));
    }
    // A few of the requests' header names (Host among them at times) as flow headers.
    let mut pick = Rng(seed ^ 0x5eed_f10e);
    let mut names: Vec<String> = requests
        .iter()
        .flat_map(|r| &r.headers)
        .map(|(n, _)| String::from_utf8_lossy(n).to_ascii_lowercase())
        .chain(["host".to_string()])
        .collect();
    names.sort();
    names.dedup();
    let mut flow = Vec::new();
    for _ in 0..pick.below(5) {
        let name = names[pick.below(names.len() as u64) as usize].clone();
        if !flow.contains(&name) {
            flow.push(name);
        }
    }
    if !enforce(h, base, local, &set, &flow).map_err(|e| format!("seed {seed}: {e}"))? {
        flow.clear();
    }
    let mut rng = Rng(seed);
    let mut checked = 0;
    let mut captured = 0;
    let mut rest: &[HttpRequest] = &requests;
    let mut conn = 0;
    while !rest.is_empty() {
        let n = (1 + rng.below(4) as usize).min(rest.len());
        let (these, later) = rest.split_at(n);
        rest = later;
        let encoded: Vec<Vec<u8>> = these.iter().map(encode_request).collect();
        let raw: Vec<_> = encoded.iter().map(|e| raw_headers(e)).collect();
        let bytes: Vec<u8> = encoded.concat();
        let cuts = segments(&mut rng, bytes.len());
        let isn = rng.next() as u32;
        let want = expected(&set, &bytes, &raw, &flow);
        let got = h.connection(&bytes, &cuts, isn);
        if got != want {
            let rules: Vec<String> = set.rules.iter().map(|r| format!("{:?}", r.rule)).collect();
            return Err(format!(
                "seed {seed} connection {conn}: kernel reported\n{got:#?}\nthe reference expects\n{want:#?}\nrules:\n{}\nflow headers: {flow:?}\nbytes: \"{}\"\nsegments: {cuts:?}",
                rules.join("\n"),
                show(&bytes)
            ));
        }
        checked += want.len();
        captured += want.iter().filter(|r| !r.headers.is_empty()).count();
        conn += 1;
    }
    Ok((checked, captured))
}

/// A rule set of one rule, as the test's policy's.
fn one_rule(rule: weir_policy::http::HttpMatch) -> HttpRuleSet {
    HttpRuleSet {
        rules: vec![weir_policy::http::HttpRuleEntry {
            policy: weir_policy::compiled::PolicyRef {
                kind: "CiliumNetworkPolicy".into(),
                namespace: "default".into(),
                name: "http-diff".into(),
            },
            location: "spec.ingress[0].toPorts[0].rules.http[0]".into(),
            rule,
        }],
    }
}

/// The rule set of one rule allowing GET.
fn get_only() -> HttpRuleSet {
    one_rule(weir_policy::http::HttpMatch {
        method: Some("GET".into()),
        ..Default::default()
    })
}

/// Enforces `set` as the server's port-80 rule set, with `flow` headers captured; returns
/// whether they fit its tables.
fn enforce(
    h: &mut Harness,
    base: &CompiledPolicy,
    local: &[LocalEndpoint<'_>],
    set: &HttpRuleSet,
    flow: &[String],
) -> Result<bool, String> {
    let mut compiled = base.clone();
    let tables = build_tables(set, flow).map_err(|e| format!("tables: {e}"))?;
    let captured = tables.flow_headers;
    compiled.http_rule_sets.insert(1, set.clone());
    compiled.http_tables.insert(1, tables);
    h.writer
        .apply(&compiled, local)
        .map_err(|e| format!("apply: {e}"))?;
    Ok(captured)
}

/// Segments full of the smallest fields: every byte changes the parser's field, so these take
/// the most steps a segment can need; they must be parsed, not refused for the step budget.
fn check_dense_segments(
    h: &mut Harness,
    base: &CompiledPolicy,
    local: &[LocalEndpoint<'_>],
) -> Result<usize, String> {
    let set = get_only();
    let apply = |h: &mut Harness, flow: &[String]| {
        let captured = enforce(h, base, local, &set, flow)?;
        assert!(captured || flow.is_empty());
        Ok::<_, String>(())
    };
    let mut checked = 0;
    let flow = |names: &[&str]| names.iter().map(|n| n.to_string()).collect::<Vec<_>>();
    let one = b"GET / HTTP/1.1\r\nb:c\r\n\r\n";
    let truncating = format!(
        "GET / HTTP/1.1\r\nX-A:  {} \r\nX-B: {}\r\nx-a: c\r\n\r\n",
        "a".repeat(100),
        "b".repeat(40)
    )
    .into_bytes();
    // The buffer's arithmetic, spelled out: 1 + 101 + 1 bytes for the first value (its
    // trailing space included), then the second's mark and 24 of its 40 bytes fill the 128;
    // the third does not start.
    let raw = [raw_headers(&truncating)];
    let want = expected(&set, &truncating, &raw, &flow(&["x-b", "x-a"]));
    assert_eq!(want[0].headers, vec![(1, b"a".repeat(100))]);
    let cases: [(Vec<u8>, Vec<String>, Vec<RawHeaders>); 3] = [
        // One head of 280 header lines of 5 bytes, every value captured until the buffer
        // is full.
        {
            let head = [
                b"GET / HTTP/1.1\r\n".to_vec(),
                b"a:b\r\n".repeat(280),
                b"\r\n".to_vec(),
            ]
            .concat();
            let raw = vec![raw_headers(&head)];
            (head, flow(&["a"]), raw)
        },
        // 70 pipelined one-letter requests.
        (one.repeat(70), flow(&["b"]), vec![raw_headers(one); 70]),
        // A value that fits, one cut off by the end of the buffer, one after it.
        (truncating.clone(), flow(&["x-b", "x-a"]), raw.to_vec()),
    ];
    for (bytes, flow, raw) in cases {
        apply(h, &flow)?;
        let cuts = vec![(0, bytes.len().min(MSS))];
        let bytes = bytes[..cuts[0].1].to_vec();
        let want = expected(&set, &bytes, &raw, &flow);
        let got = h.connection(&bytes, &cuts, 7);
        if got != want || want.iter().any(|r| r.rule.is_none()) {
            return Err(format!(
                "dense segment \"{}\": kernel reported\n{got:#?}\nthe reference expects\n{want:#?}",
                show(&bytes)
            ));
        }
        checked += want.len();
    }
    // A value with the capture's own marks in it fails the request (control bytes), and the
    // refused request's event carries none of them: no forged header under another name.
    apply(h, &flow(&["x-a", "x-b"]))?;
    let forged: &[u8] = b"GET / HTTP/1.1\r\nX-A: a\x1f\x11forged\x1f\r\n\r\n";
    let events = h.raw_exchange(3000, &[(TCP_PSH_ACK, 3001, forged)]);
    let [ev] = events.as_slice() else {
        return Err(format!(
            "one event expected for the forged value, got {events:?}"
        ));
    };
    let captured = ev.hdrs();
    if ev.flow.drop_reason != 134
        || captured != [abi::HTTP_HDR_MARK, b'a', b'f', b'o', b'r', b'g', b'e', b'd']
        || !ev.captured_headers().is_empty()
    {
        return Err(format!(
            "forged value: drop reason {}, captured \"{}\", decoded {:?}",
            ev.flow.drop_reason,
            show(captured),
            ev.captured_headers()
        ));
    }
    apply(h, &[])?;
    checked += 1;

    // Data on a SYN (TCP Fast Open) is refused: it would reach the server before the parser.
    h.sport = 1024 + (h.sport + 1) % 8;
    h.drain();
    let verdict = h.send(TCP_SYN, 7000, b"DELETE / HTTP/1.1\r\n\r\n");
    let events = h.drain();
    h.forget();
    if verdict != TC_ACT_SHOT || !events.is_empty() {
        return Err(format!(
            "a SYN with a request: verdict {verdict}, request events {events:?}"
        ));
    }
    checked += 1;

    // A SYN inside an established connection (here far ahead of it) must not move where parsing
    // resumes: the request after it is still parsed and denied, not passed as already seen.
    let request: &[u8] = b"DELETE / HTTP/1.1\r\n\r\n";
    let got = h.exchange(
        1000,
        &[(TCP_SYN, 900_000, &[]), (TCP_PSH_ACK, 1001, request)],
    );
    let want = expected(&set, request, &[], &[]);
    if got != want || want.len() != 1 || want[0].rule.is_some() {
        return Err(format!(
            "a SYN inside the connection: kernel reported\n{got:#?}\nthe reference expects\n{want:#?}"
        ));
    }
    Ok(checked + 1)
}

/// A connection's HTTP state is in the slot of `weir_http_conn` its CT entry names, and only
/// while the slot names the connection as its owner: the state carries over a policy change
/// (the CT entry is replaced), a connection pointed at another's slot finds no state (its
/// request is refused and the other connection's state is untouched), and with every slot
/// taken by a live connection a new connection still gets one.
fn check_slots(
    h: &mut Harness,
    base: &CompiledPolicy,
    local: &[LocalEndpoint<'_>],
) -> Result<usize, String> {
    let set = get_only();
    enforce(h, base, local, &set, &[])?;
    let get: &[u8] = b"GET / HTTP/1.1\r\n\r\n";
    let len = get.len() as u32;
    let (a, b) = (3000, 3001);
    h.drain();
    // A request on a connection: (allowed, its number on the connection).
    let request = |h: &mut Harness, sport: u16, k: u32| {
        h.sport = sport;
        h.send(TCP_PSH_ACK, 101 + k * len, get);
        h.drain()
            .iter()
            .map(|e| (e.flow.verdict == abi::VERDICT_ALLOWED, e.number))
            .collect::<Vec<_>>()
    };
    // The records name the server's endpoint and both identities, as the CT entry recorded them.
    let identity = |name: &str| {
        base.endpoints
            .iter()
            .find(|e| e.name == name)
            .unwrap()
            .identity
    };
    let server_ep = local
        .iter()
        .find(|l| l.policy.name == "server-0")
        .unwrap()
        .ep_id;
    let parties = (server_ep, identity("client-0"), identity("server-0"));
    for sport in [a, b] {
        h.sport = sport;
        h.send(TCP_SYN, 100, &[]);
        h.send(TCP_PSH_ACK, 101, get);
        let got: Vec<_> = h
            .drain()
            .iter()
            .map(|e| {
                let f = &e.flow;
                (
                    f.verdict == abi::VERDICT_ALLOWED,
                    e.number,
                    (f.ep_id, f.src_identity, f.dst_identity),
                )
            })
            .collect();
        if got != [(true, 0, parties)] {
            return Err(format!(
                "first request on port {sport}: {got:?} (allowed, number 0, endpoint and identities {parties:?} expected)"
            ));
        }
    }
    // A policy change: A's CT entry is replaced when its next packet is decided again.
    enforce(h, base, local, &set, &[])?;
    let got = request(h, a, 1);
    if got != [(true, 1)] {
        return Err(format!(
            "after a policy change, A's second request: {got:?} (its state must carry over)"
        ));
    }
    // A pointed at B's slot: B owns it, so A has no state.
    h.sport = b;
    let b_slot = h.ct_entry()?.http_slot;
    h.sport = a;
    let mut entry = h.ct_entry()?;
    if b_slot == 0 || entry.http_slot == 0 || entry.http_slot == b_slot {
        return Err(format!(
            "slots: A {}, B {b_slot}: both must have their own",
            entry.http_slot
        ));
    }
    entry.http_slot = b_slot;
    let key = h.ct_key();
    h.writer
        .ct()
        .insert(key, entry, 0)
        .map_err(|e| format!("CT entry of A: {e}"))?;
    let got = request(h, a, 2);
    let entry = h.ct_entry()?;
    if !got.is_empty() || entry.l7_flags & abi::CT_L7_DENIED == 0 {
        return Err(format!(
            "A on B's slot: request events {got:?}, l7_flags {:#x} (refused with no state expected)",
            entry.l7_flags
        ));
    }
    let got = request(h, b, 1);
    if got != [(true, 1)] {
        return Err(format!("B after A was refused: {got:?}"));
    }
    for sport in [a, b] {
        h.sport = sport;
        h.forget();
    }
    // Every slot taken by an established connection (a SYN-ACK seen: expiring in hours).
    let ports = 10_000..10_000 + abi::HTTP_SLOTS as u16 + 64;
    for sport in ports.clone() {
        h.sport = sport;
        h.send(TCP_SYN, 100, &[]);
        h.send_reply(0x12, 900_000, 101, &[]);
    }
    h.drain_all();
    h.sport = 40_000;
    h.send(TCP_SYN, 100, &[]);
    let got = request(h, 40_000, 0);
    h.forget();
    for sport in ports {
        h.sport = sport;
        h.forget();
    }
    if got != [(true, 0)] {
        return Err(format!(
            "a request on a new connection with every slot taken: {got:?}"
        ));
    }
    Ok(5)
}

/// A request whose body turns out malformed in a later segment is refused with a record that
/// names it (its line and Host, kept with the connection's state, not taken from the per-CPU
/// copy another connection used meanwhile), and the request that follows a complete one on the
/// next segment is reported with its own line, nothing of the one before.
fn check_body_records(
    h: &mut Harness,
    base: &CompiledPolicy,
    local: &[LocalEndpoint<'_>],
) -> Result<usize, String> {
    enforce(h, base, local, &get_only(), &[])?;
    h.drain();
    let lines = |events: &[L7Event]| {
        events
            .iter()
            .map(|e| {
                let f = &e.flow;
                let line = String::from_utf8_lossy(e.line()).into_owned();
                let host = String::from_utf8_lossy(e.host()).into_owned();
                (f.verdict == abi::VERDICT_ALLOWED, f.drop_reason, line, host)
            })
            .collect::<Vec<_>>()
    };
    let first: &[u8] = b"GET /first HTTP/1.1\r\nHost: one\r\n\r\n";
    let chunked: &[u8] =
        b"GET /chunked HTTP/1.1\r\nHost: two\r\nTransfer-Encoding: chunked\r\n\r\n";
    h.sport = 3100;
    h.send(TCP_SYN, 100, &[]);
    let second = 101 + first.len() as u32;
    h.send(TCP_PSH_ACK, 101, first);
    h.send(TCP_PSH_ACK, second, chunked);
    let head = lines(&h.drain());
    // Another connection's request in between, through the same per-CPU copy of the state.
    h.sport = 3101;
    h.send(TCP_SYN, 100, &[]);
    h.send(
        TCP_PSH_ACK,
        101,
        b"GET /other HTTP/1.1\r\nHost: three\r\n\r\n",
    );
    h.forget();
    h.drain();
    h.sport = 3100;
    h.send(TCP_PSH_ACK, second + chunked.len() as u32, b"zz\r\n");
    let body = lines(&h.drain());
    h.forget();
    let expect = |allowed, reason, line: &str, host: &str| {
        (allowed, reason, line.to_string(), host.to_string())
    };
    let want_head = [
        expect(true, 0, "GET /first", "one"),
        expect(true, 0, "GET /chunked", "two"),
    ];
    if head != want_head {
        return Err(format!(
            "two requests in two segments: {head:?}, expected {want_head:?}"
        ));
    }
    let want_body = [expect(false, 134, "GET /chunked", "two")];
    if body != want_body {
        return Err(format!(
            "a malformed chunk in the next segment: {body:?}, expected {want_body:?}"
        ));
    }
    Ok(3)
}

/// One step of a keep-alive connection: the client's segment, or the server's.
enum Step<'a> {
    Client(&'a [u8]),
    Server(&'a [u8]),
}

/// Response tracking on one keep-alive connection: every final response is reported once, with
/// its request's number and its status, whatever its framing (Content-Length across segments,
/// chunked, HEAD, 204, a 100 Continue first) and wherever it is cut; a response to the only
/// request outstanding is skipped after its status line, pipelined requests' responses are
/// followed through their heads and bodies.
fn check_responses(
    h: &mut Harness,
    base: &CompiledPolicy,
    local: &[LocalEndpoint<'_>],
) -> Result<usize, String> {
    let set = one_rule(weir_policy::http::HttpMatch::default());
    enforce(h, base, local, &set, &[])?;

    let body = vec![b'x'; 5000];
    let long_head = b"HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n".to_vec();
    let long = [long_head, body].concat();
    let chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n";
    let ok2 = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
    let both = [
        &ok2[..],
        &b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"[..],
    ]
    .concat();
    let steps: Vec<Step<'_>> = vec![
        // 0: a 5 000-byte body in four segments.
        Step::Client(b"GET /a HTTP/1.1\r\nHost: s\r\n\r\n"),
        Step::Server(&long[..1460]),
        Step::Server(&long[1460..2920]),
        Step::Server(&long[2920..4380]),
        Step::Server(&long[4380..]),
        // 1: chunked.
        Step::Client(b"GET /b HTTP/1.1\r\n\r\n"),
        Step::Server(chunked),
        // 2: HEAD: a Content-Length and no body.
        Step::Client(b"HEAD /c HTTP/1.1\r\n\r\n"),
        Step::Server(b"HTTP/1.1 200 OK\r\nContent-Length: 123\r\n\r\n"),
        // 3: 100 Continue, the body, then the final response.
        Step::Client(b"POST /d HTTP/1.1\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n"),
        Step::Server(b"HTTP/1.1 100 Continue\r\n\r\n"),
        Step::Client(b"data"),
        Step::Server(b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n"),
        // 4: 204, its status line cut in two.
        Step::Client(b"GET /e HTTP/1.1\r\n\r\n"),
        Step::Server(b"HTT"),
        Step::Server(b"P/1.1 204 No Content\r\n\r\n"),
        // 5 and 6: pipelined, both responses in one segment.
        Step::Client(b"GET /f HTTP/1.1\r\n\r\nGET /g HTTP/1.1\r\n\r\n"),
        Step::Server(&both),
        // 7: back to one at a time.
        Step::Client(b"GET /h HTTP/1.1\r\n\r\n"),
        Step::Server(ok2),
    ];
    let (cisn, sisn) = (5000u32, 900_000u32);
    h.sport = 1024 + (h.sport + 1) % 8;
    h.drain_all();
    h.send(TCP_SYN, cisn, &[]);
    h.send_reply(0x12, sisn, cisn + 1, &[]);
    let (mut c, mut s) = (cisn + 1, sisn + 1);
    for step in &steps {
        match step {
            Step::Client(bytes) => {
                h.send_acking(TCP_PSH_ACK, c, s, bytes);
                c = c.wrapping_add(bytes.len() as u32);
            }
            Step::Server(bytes) => {
                h.send_reply(TCP_PSH_ACK, s, c, bytes);
                s = s.wrapping_add(bytes.len() as u32);
            }
        }
    }
    let events = h.drain_all();
    let responses: Vec<(u32, u16)> = events
        .iter()
        .filter(|e| e.l7_type == abi::L7_RESPONSE)
        .map(|e| (e.number, e.status))
        .collect();
    let want = vec![
        (0, 200),
        (1, 200),
        (2, 200),
        (3, 201),
        (4, 204),
        (5, 200),
        (6, 404),
        (7, 200),
    ];
    let requests = events
        .iter()
        .filter(|e| e.l7_type == abi::L7_REQUEST && e.flow.verdict == abi::VERDICT_ALLOWED)
        .count();
    if responses != want || requests != 8 {
        return Err(format!(
            "responses: kernel reported {responses:?}, expected {want:?}; {requests} requests allowed"
        ));
    }
    Ok(responses.len())
}

#[test]
fn kernel_http_matching_agrees_with_the_reference() {
    if !weir_lab::privileged("kernel_http_matching_agrees_with_the_reference") {
        return;
    }
    let cases: u64 = std::env::var("WEIR_HTTP_DIFF_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    let first: u64 = std::env::var("WEIR_HTTP_DIFF_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    let state = ClusterState::from_sources(
        Some(("cluster.yaml", CLUSTER)),
        [("server-0.yaml", SERVER), ("client-0.yaml", CLIENT)],
    )
    .unwrap();
    let policies = PolicySet::parse_str("diff.yaml", POLICY).unwrap();
    let options = Options {
        local_node: "n1".into(),
        ..Options::default()
    };
    let base = weir_policy::compile(&state, &policies, &options).unwrap();
    let ns = Netns::new("whttp", 2, true);
    let name = ns.0.clone();
    let result = std::thread::spawn(move || {
        common::enter(&name);
        let mut dp = Datapath::load(&DatapathOptions::default()).expect("load the datapath");
        let writer = dp.take_writer().unwrap();
        let events = dp.take_events().unwrap();
        let ifindex = |name: &str| nix::net::if_::if_nametoindex(name).unwrap();
        let ips: Vec<Vec<IpAddr>> = base
            .endpoints
            .iter()
            .map(|e| state.endpoint(&e.namespace, &e.name).unwrap().ips.clone())
            .collect();
        let local: Vec<LocalEndpoint<'_>> = base
            .endpoints
            .iter()
            .enumerate()
            .map(|(i, policy)| LocalEndpoint {
                ifindex: ifindex(if policy.name == "server-0" {
                    "v0"
                } else {
                    "v1"
                }),
                ep_id: i as u32 + 1,
                ips: &ips[i],
                policy,
            })
            .collect();
        let mut h = Harness {
            dp,
            writer,
            events,
            server_if: ifindex("v0"),
            client: "10.0.1.1".parse().unwrap(),
            server: "10.0.1.2".parse().unwrap(),
            sport: 1024,
        };
        let (mut reports, mut captured) = (0, 0);
        for seed in first..first + cases {
            let (r, c) = check_case(&mut h, &base, &local, seed)?;
            reports += r;
            captured += c;
        }
        reports += check_dense_segments(&mut h, &base, &local)?;
        reports += check_responses(&mut h, &base, &local)?;
        reports += check_slots(&mut h, &base, &local)?;
        reports += check_body_records(&mut h, &base, &local)?;
        Ok::<_, String>((reports, captured))
    })
    .join()
    .expect("differential thread panicked");
    drop(ns);
    match result {
        Ok((reports, captured)) => {
            eprintln!(
                "{cases} cases: kernel and reference agree on {reports} request reports \
                 ({captured} with captured header values)"
            );
            assert!(
                reports > cases as usize * 20,
                "too few requests compared: {reports}"
            );
            assert!(
                captured > cases as usize,
                "too few requests with captured header values: {captured}"
            );
        }
        Err(mismatch) => panic!("{mismatch}"),
    }
}
