//! HTTP events of the datapath → stored L7 flows.
//!
//! The kernel reports a request with its request line and Host, a response with its status and
//! latency only: the response's method and URL come from its request, which [`HttpJoin`]
//! remembers per connection and request number until the response arrives. The 403 the datapath
//! answers a denied request with passes the datapath like any response and is reported as the
//! response to that request.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::sync::Arc;

use weir_probes::abi::{self, DecodeError, FlowEvent, L7Event};

use crate::flows::{Enrichment, FastMap, PolicyMeta, StoredFlow, event_addr};

/// Requests remembered while their response is outstanding (oldest forgotten first).
const MAX_PENDING: usize = 65_536;

/// The L7 part of a stored flow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpRecord {
    pub kind: L7Kind,
    /// "HTTP/1.0", "HTTP/1.1" or (the L7 proxy) "HTTP/2".
    pub protocol: &'static str,
    /// Response status (0 for requests).
    pub code: u32,
    /// Responses: nanoseconds from the request to its response.
    pub latency_ns: u64,
    /// Empty when the response's request is unknown (its event was lost, or the agent started
    /// after it). Shared with the request's record.
    pub method: Arc<str>,
    pub url: Arc<str>,
    /// Headers reported with the record: a request's headers named by `--http-flow-headers`
    /// (the values the datapath or the proxy captured), a gRPC response's `grpc-status` and
    /// `grpc-message`.
    pub headers: Vec<(String, String)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum L7Kind {
    Request,
    Response,
}

/// What the kernel's HTTP rule sets mean, for naming the policy behind an L7 verdict.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HttpSetMeta {
    /// The policy of each rule, by its index in the set.
    pub rules: Vec<Arc<[PolicyMeta]>>,
    /// Every policy with rules in the set, once each, in rule order.
    pub policies: Arc<[PolicyMeta]>,
}

/// (ifindex, client address, server address, client port, server port, request number)
type ConnKey = (u32, [u8; 16], [u8; 16], u16, u16, u32);

/// Slots of [`Strings`] (a power of two).
const STRING_SLOTS: usize = 1024;

/// Recently built methods and URLs, so that requests repeating one share it instead of
/// allocating it again: a direct-mapped cache (a string's hash picks its slot; a newer string
/// with the same slot replaces it).
#[derive(Debug)]
struct Strings {
    slots: Vec<Option<Arc<str>>>,
    hasher: foldhash::fast::FixedState,
}

impl Default for Strings {
    fn default() -> Strings {
        Strings {
            slots: vec![None; STRING_SLOTS],
            hasher: foldhash::fast::FixedState::default(),
        }
    }
}

impl Strings {
    fn get(&mut self, s: &str) -> Arc<str> {
        use std::hash::BuildHasher as _;
        let slot = &mut self.slots[self.hasher.hash_one(s) as usize & (STRING_SLOTS - 1)];
        match slot {
            Some(shared) if **shared == *s => shared.clone(),
            _ => slot.insert(Arc::from(s)).clone(),
        }
    }
}

/// The method and URL of requests whose response has not been seen yet.
#[derive(Debug, Default)]
pub struct HttpJoin {
    pending: FastMap<ConnKey, (Arc<str>, Arc<str>)>,
    order: VecDeque<ConnKey>,
    /// Where a URL is put together before it is shared.
    url: String,
    strings: Strings,
    /// The record being decoded (reused: a request record is 576 bytes).
    event: Option<Box<L7Event>>,
}

impl HttpJoin {
    pub fn new() -> HttpJoin {
        HttpJoin::default()
    }

    /// Requests awaiting their response.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Decodes an L7 ring-buffer record and appends its flow to `out`; `time` converts the
    /// event's boot time to Unix nanoseconds.
    pub fn record(
        &mut self,
        bytes: &[u8],
        enrich: &Enrichment,
        time: impl FnOnce(u64) -> i64,
        out: &mut Vec<StoredFlow>,
    ) -> Result<(), DecodeError> {
        let mut ev = self
            .event
            .take()
            .unwrap_or_else(|| Box::new(L7Event::zeroed()));
        let decoded = ev.decode_from(bytes);
        if decoded.is_ok() {
            let t = time(ev.flow.ts_boot_ns);
            self.flows(&ev, enrich, t, out);
        }
        self.event = Some(ev);
        decoded
    }

    /// The flow of one L7 event, appended to `out`.
    pub fn flows(
        &mut self,
        ev: &L7Event,
        enrich: &Enrichment,
        time_unix_ns: i64,
        out: &mut Vec<StoredFlow>,
    ) {
        let protocol = if ev.version == 0 {
            "HTTP/1.0"
        } else {
            "HTTP/1.1"
        };
        let f = &ev.flow;
        let set = enrich.http_sets.get(&ev.l7_set);
        if ev.l7_type == abi::L7_RESPONSE {
            let key = (f.ifindex, f.daddr, f.saddr, f.dport, f.sport, ev.number);
            let (method, url) = self.pending.remove(&key).unwrap_or_else(|| {
                let none = self.strings.get("");
                (none.clone(), none)
            });
            let record = HttpRecord {
                kind: L7Kind::Response,
                protocol,
                code: u32::from(ev.status),
                latency_ns: ev.latency_ns,
                method,
                url,
                headers: Vec::new(),
            };
            out.push(l7_flow(enrich, f, time_unix_ns, record, None));
            return;
        }
        let (method, url) = request_target(ev, &mut self.url, &mut self.strings);
        let denied = f.verdict == abi::VERDICT_DENIED;
        let policies = if denied {
            set.map(|s| s.policies.clone())
        } else {
            set.and_then(|s| s.rules.get(ev.rule as usize).cloned())
        };
        // A denied request's response is the 403 the datapath answered with, which passes the
        // datapath as the connection's response (status 0: reset instead, no response).
        if !denied || ev.status != 0 {
            let key = (f.ifindex, f.saddr, f.daddr, f.sport, f.dport, ev.number);
            while self.pending.len() >= MAX_PENDING {
                let Some(old) = self.order.pop_front() else {
                    break;
                };
                self.pending.remove(&old);
            }
            if self
                .pending
                .insert(key, (method.clone(), url.clone()))
                .is_none()
            {
                self.order.push_back(key);
            }
            // Keys of answered requests linger in `order` until evicted; keep it bounded.
            if self.order.len() > 2 * MAX_PENDING {
                let pending = &self.pending;
                self.order.retain(|k| pending.contains_key(k));
            }
        }
        let headers = ev
            .captured_headers()
            .into_iter()
            .filter_map(|(i, value)| {
                let name = enrich.http_flow_headers.get(i)?;
                Some((name.clone(), String::from_utf8_lossy(value).into_owned()))
            })
            .collect();
        let record = HttpRecord {
            kind: L7Kind::Request,
            protocol,
            code: 0,
            latency_ns: 0,
            method,
            url,
            headers,
        };
        out.push(l7_flow(enrich, f, time_unix_ns, record, policies));
    }
}

/// The method and `http://host/path` URL of a request event (`buf` is scratch space). An
/// absolute-form target is the URL itself; without a Host header the server's address stands for
/// the host.
fn request_target(ev: &L7Event, buf: &mut String, strings: &mut Strings) -> (Arc<str>, Arc<str>) {
    let line = ev.line();
    let mlen = usize::from(ev.method_len).min(line.len());
    let method = strings.get(&String::from_utf8_lossy(&line[..mlen]));
    let target = String::from_utf8_lossy(line.get(mlen + 1..).unwrap_or_default());
    if target.starts_with("http://") || target.starts_with("https://") {
        return (method, strings.get(&target));
    }
    buf.clear();
    buf.push_str("http://");
    if ev.host_len > 0 {
        buf.push_str(&String::from_utf8_lossy(ev.host()));
    } else {
        let _ = match event_addr(&ev.flow, &ev.flow.daddr) {
            std::net::IpAddr::V4(a) => write!(buf, "{a}:{}", ev.flow.dport),
            std::net::IpAddr::V6(a) => write!(buf, "[{a}]:{}", ev.flow.dport),
        };
    }
    buf.push_str(&target);
    (method, strings.get(buf))
}

fn l7_flow(
    enrich: &Enrichment,
    f: &FlowEvent,
    time_unix_ns: i64,
    record: HttpRecord,
    policies: Option<Arc<[PolicyMeta]>>,
) -> StoredFlow {
    let mut flow = enrich.enrich(*f, time_unix_ns);
    flow.policies = policies;
    flow.l7 = Some(record);
    flow
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(name: &str) -> PolicyMeta {
        PolicyMeta {
            kind: "CiliumNetworkPolicy".into(),
            namespace: "default".into(),
            name: name.into(),
            labels: vec![],
            revision: 1,
        }
    }

    fn enrichment() -> Enrichment {
        let a: Arc<[PolicyMeta]> = vec![policy("a")].into();
        let b: Arc<[PolicyMeta]> = vec![policy("b")].into();
        Enrichment {
            http_sets: [(
                3,
                Arc::new(HttpSetMeta {
                    rules: vec![a.clone(), b.clone()],
                    policies: vec![policy("a"), policy("b")].into(),
                }),
            )]
            .into_iter()
            .collect(),
            ..Default::default()
        }
    }

    fn request(line: &str, host: &str, verdict: u8, status: u16, rule: u32) -> L7Event {
        let mut ev = L7Event {
            flow: FlowEvent {
                r#type: abi::EVENT_L7,
                version: abi::EVENT_VERSION,
                direction: abi::DIR_INGRESS,
                protocol: 6,
                verdict,
                drop_reason: if verdict == abi::VERDICT_DENIED {
                    133
                } else {
                    0
                },
                ifindex: 9,
                src_identity: 100,
                dst_identity: 200,
                sport: 41234,
                dport: 80,
                ..Default::default()
            },
            l7_type: abi::L7_REQUEST,
            version: 1,
            status,
            l7_set: 3,
            rule,
            number: 0,
            latency_ns: 0,
            line_len: 0,
            host_len: 0,
            method_len: line.find(' ').unwrap() as u8,
            hdrs_len: 0,
            reserved_0: [0; 2],
            data: [0; abi::L7_DATA_CAP],
        };
        ev.flow.saddr[..4].copy_from_slice(&[10, 200, 1, 12]);
        ev.flow.daddr[..4].copy_from_slice(&[10, 200, 1, 11]);
        ev.set_data(line.as_bytes(), host.as_bytes(), b"");
        ev
    }

    /// The flow part of a response to `f`: the other direction of the same connection.
    fn reversed(f: &FlowEvent) -> FlowEvent {
        FlowEvent {
            flags: f.flags | abi::EVF_REPLY,
            verdict: abi::VERDICT_ALLOWED,
            drop_reason: 0,
            src_identity: f.dst_identity,
            dst_identity: f.src_identity,
            saddr: f.daddr,
            daddr: f.saddr,
            sport: f.dport,
            dport: f.sport,
            tcp_flags: 0,
            ..*f
        }
    }

    fn response_to(req: &L7Event, status: u16, latency_ns: u64) -> L7Event {
        let mut ev = *req;
        ev.flow = reversed(&req.flow);
        ev.l7_type = abi::L7_RESPONSE;
        ev.status = status;
        ev.latency_ns = latency_ns;
        ev.rule = u32::MAX;
        ev.set_data(b"", b"", b"");
        ev
    }

    #[test]
    fn a_request_carries_the_captured_values_of_the_flow_headers() {
        let mut e = enrichment();
        e.http_flow_headers = vec!["content-type".to_string(), "x-request-id".to_string()].into();
        let mut req = request("POST /orders", "api", abi::VERDICT_ALLOWED, 0, 0);
        // x-request-id (trailing OWS trimmed), content-type, then two values left out.
        let mut hdrs = vec![abi::HTTP_HDR_MARK + 1];
        hdrs.extend_from_slice(b"r-42 \t");
        hdrs.push(abi::HTTP_HDR_END);
        hdrs.push(abi::HTTP_HDR_MARK);
        hdrs.extend_from_slice(b"application/json");
        hdrs.push(abi::HTTP_HDR_END);
        // A value with a byte no value may hold (the datapath never captures one) is dropped.
        hdrs.push(abi::HTTP_HDR_MARK);
        hdrs.extend_from_slice(b"a\x01b");
        hdrs.push(abi::HTTP_HDR_END);
        hdrs.push(abi::HTTP_HDR_MARK + 1);
        hdrs.extend_from_slice(b"cut");
        req.set_data(b"POST /orders", b"api", &hdrs);
        let mut out = Vec::new();
        HttpJoin::new().flows(&req, &e, 10, &mut out);
        assert_eq!(
            out[0].l7.as_ref().unwrap().headers,
            [
                ("x-request-id".to_string(), "r-42".to_string()),
                ("content-type".to_string(), "application/json".to_string()),
            ]
        );
    }

    #[test]
    fn a_response_takes_method_and_url_from_its_request() {
        let e = enrichment();
        let mut join = HttpJoin::new();
        let mut out = Vec::new();
        let req = request(
            "GET /api/v1/users/7?x=1",
            "users",
            abi::VERDICT_ALLOWED,
            0,
            1,
        );
        join.flows(&req, &e, 10, &mut out);
        assert_eq!(join.pending(), 1);
        join.flows(&response_to(&req, 200, 1_500_000), &e, 11, &mut out);
        assert_eq!(join.pending(), 0);
        let rec: Vec<_> = out.iter().map(|f| f.l7.as_ref().unwrap().clone()).collect();
        assert_eq!(
            rec[0],
            HttpRecord {
                kind: L7Kind::Request,
                protocol: "HTTP/1.1",
                code: 0,
                latency_ns: 0,
                method: "GET".into(),
                url: "http://users/api/v1/users/7?x=1".into(),
                headers: Vec::new(),
            }
        );
        assert_eq!(
            rec[1],
            HttpRecord {
                kind: L7Kind::Response,
                protocol: "HTTP/1.1",
                code: 200,
                latency_ns: 1_500_000,
                method: "GET".into(),
                url: "http://users/api/v1/users/7?x=1".into(),
                headers: Vec::new(),
            }
        );
        // The allowing rule's policy decides the request; the response names none.
        assert_eq!(out[0].policies.as_deref().unwrap()[0].name, "b");
        assert!(out[1].policies.is_none());
        assert_eq!(out[1].event.sport, 80);
    }

    #[test]
    fn an_answered_denial_pairs_with_the_403_and_a_reset_one_waits_for_nothing() {
        let e = enrichment();
        let mut join = HttpJoin::new();
        let mut out = Vec::new();
        let req = request(
            "DELETE /api/v1/users/123",
            "users",
            abi::VERDICT_DENIED,
            403,
            u32::MAX,
        );
        join.flows(&req, &e, 10, &mut out);
        assert_eq!(out.len(), 1);
        let names: Vec<_> = out[0]
            .policies
            .as_deref()
            .unwrap()
            .iter()
            .map(|p| p.name.as_str())
            .collect();
        assert_eq!(names, ["a", "b"]);
        join.flows(&response_to(&req, 403, 40_000), &e, 11, &mut out);
        let answer = out[1].l7.as_ref().unwrap();
        assert_eq!(
            (answer.kind, answer.code, &*answer.method),
            (L7Kind::Response, 403, "DELETE")
        );
        assert_eq!(join.pending(), 0);
        // Reset instead of answered: nothing to wait for.
        let mut reset = request("DELETE /x", "users", abi::VERDICT_DENIED, 0, u32::MAX);
        reset.number = 1;
        join.flows(&reset, &e, 12, &mut out);
        assert_eq!(join.pending(), 0);
    }

    #[test]
    fn urls_without_host_or_in_absolute_form() {
        let no_host = request("GET /a", "", abi::VERDICT_ALLOWED, 0, 0);
        let (mut buf, mut strings) = (String::new(), Strings::default());
        assert_eq!(
            request_target(&no_host, &mut buf, &mut strings),
            ("GET".into(), "http://10.200.1.11:80/a".into())
        );
        let absolute = request("GET http://x.example/b", "y", abi::VERDICT_ALLOWED, 0, 0);
        assert_eq!(
            &*request_target(&absolute, &mut buf, &mut strings).1,
            "http://x.example/b"
        );
    }

    #[test]
    fn repeated_methods_and_urls_are_shared_and_others_kept_apart() {
        let mut strings = Strings::default();
        let a = strings.get("http://users/api/v1/users/1");
        assert!(Arc::ptr_eq(&a, &strings.get("http://users/api/v1/users/1")));
        // More distinct strings than slots: each still reads back as itself.
        for i in 0..3 * STRING_SLOTS {
            let s = format!("/{i}");
            assert_eq!(&*strings.get(&s), s);
        }
        assert_eq!(&*strings.get("http://users/api/v1/users/1"), &*a);
    }

    #[test]
    fn records_decode_into_one_reused_event() {
        let e = enrichment();
        let mut join = HttpJoin::new();
        let mut out = Vec::new();
        let req = request("GET /api/v1/users/1", "users", abi::VERDICT_ALLOWED, 0, 0);
        join.record(&req.to_bytes(), &e, |t| t as i64 + 1, &mut out)
            .unwrap();
        // A response record is the header alone: nothing of the request decoded before it may
        // show through.
        let mut resp = response_to(&req, 200, 5_000);
        resp.flow.ts_boot_ns = 77;
        let resp = resp.to_bytes();
        assert_eq!(resp.len(), abi::L7_HEADER_LEN);
        join.record(&resp, &e, |t| t as i64 + 1, &mut out).unwrap();
        let next = request("DELETE /x", "", abi::VERDICT_DENIED, 0, u32::MAX);
        let err = join.record(&next.to_bytes()[..100], &e, |t| t as i64, &mut out);
        assert!(matches!(err, Err(DecodeError::Truncated { .. })), "{err:?}");
        assert_eq!(out.len(), 2);
        let (q, r) = (out[0].l7.as_ref().unwrap(), out[1].l7.as_ref().unwrap());
        assert_eq!(
            (q.kind, &*q.method, &*q.url),
            (L7Kind::Request, "GET", "http://users/api/v1/users/1")
        );
        assert_eq!(
            (r.kind, r.code, r.latency_ns),
            (L7Kind::Response, 200, 5_000)
        );
        assert!(Arc::ptr_eq(&q.url, &r.url));
        assert_eq!(out[1].time_unix_ns, 78);
    }

    #[test]
    fn unanswered_requests_are_forgotten_oldest_first() {
        let e = Enrichment::default();
        let mut join = HttpJoin::new();
        let mut out = Vec::new();
        let mut req = request("GET /", "h", abi::VERDICT_ALLOWED, 0, 0);
        for n in 0..(MAX_PENDING as u32 + 10) {
            req.number = n;
            join.flows(&req, &e, 0, &mut out);
            out.clear();
        }
        assert_eq!(join.pending(), MAX_PENDING);
        req.number = 0;
        join.flows(&response_to(&req, 200, 1), &e, 0, &mut out);
        assert_eq!(&*out[0].l7.as_ref().unwrap().method, "");
    }
}
