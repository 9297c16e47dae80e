//! Datapath and agent benchmarks (not tests): run as root with
//! `cargo bench -p weir-flow-agent --bench datapath`. Results go to docs/performance.md.
//!
//! 1. BPF_PROG_TEST_RUN cost per packet of the endpoint program (`to_container`) for an
//!    established packet, a new allowed connection and a new denied one, next to an empty TC
//!    program in the same run.
//! 2. The cost of an HTTP request segment on a connection with HTTP rules (allowed, denied, a
//!    long path), next to the empty program, and the kernel's floors under the denial and the
//!    long path (a packet cloned, each byte read: `bpf_empty.c`).
//! 3. The agent's event pipeline on one core: ring buffer → decode → enrich → flow store, for
//!    trace events and for HTTP records.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aya::programs::SchedClassifier;
use weir_flow_agent::datapath::{Datapath, DatapathOptions, Hook, LocalEndpoint, Timing};
use weir_flow_agent::flows::{
    Enrichment, EnrichmentHandle, NodeMeta, PeerMeta, PolicyMeta, StoredFlow,
};
use weir_flow_agent::l7::{HttpJoin, HttpSetMeta};
use weir_flow_agent::monitor::{self, Clock, MonitorStats};
use weir_flow_agent::store::FlowStore;
use weir_flow_agent::testrun::{self, Packet, TC_ACT_OK, TC_ACT_SHOT};
use weir_policy::compiled::{
    CompiledPolicy, DirectionPolicy, EndpointPolicy, IpcacheEntry, MatchType, PolicyEntry,
    PolicyRef,
};
use weir_policy::http::{HttpMatch, HttpRuleEntry, HttpRuleSet, build_tables};

const USERS: &str = "10.200.1.11";
const FRONTEND: &str = "10.200.1.10";
const BILLING: &str = "10.200.1.12";
const ID_USERS: u32 = 30_001;
const ID_FRONTEND: u32 = 30_002;
const ID_BILLING: u32 = 30_003;
const REPEAT: u32 = 1_000_000;
const NEW_CONNECTIONS: u32 = 50_000;
/// users' port with HTTP rules.
const HTTP_PORT: u16 = 8080;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// users-0 on ifindex 1 (test runs default to the loopback device): ingress on port 80 from
/// frontend is allowed, everything else is denied by default.
fn policy() -> CompiledPolicy {
    let host = |a: &str, identity| IpcacheEntry {
        prefix: format!("{a}/32").parse().unwrap(),
        identity,
    };
    CompiledPolicy {
        endpoints: vec![EndpointPolicy {
            namespace: "default".into(),
            name: "users-0".into(),
            interface: "lo".into(),
            identity: ID_USERS,
            ingress: DirectionPolicy {
                enforced: true,
                selecting: 1,
                entries: vec![
                    PolicyEntry {
                        identity: ID_FRONTEND,
                        protocol: 6,
                        port: 80,
                        port_prefix_len: 16,
                        deny: false,
                        audit: false,
                        l7_rules: 0,
                        match_type: MatchType::L3L4,
                        rule_set: 1,
                    },
                    PolicyEntry {
                        identity: ID_FRONTEND,
                        protocol: 6,
                        port: HTTP_PORT,
                        port_prefix_len: 16,
                        deny: false,
                        audit: false,
                        l7_rules: 1,
                        match_type: MatchType::L3L4,
                        rule_set: 1,
                    },
                ],
            },
            egress: DirectionPolicy::default(),
        }],
        ipcache: vec![
            host(USERS, ID_USERS),
            host(FRONTEND, ID_FRONTEND),
            host(BILLING, ID_BILLING),
            IpcacheEntry {
                prefix: "0.0.0.0/0".parse().unwrap(),
                identity: 2,
            },
        ],
        rule_sets: [(
            1,
            vec![PolicyRef {
                kind: "CiliumNetworkPolicy".into(),
                namespace: "default".into(),
                name: "users".into(),
            }],
        )]
        .into(),
        http_rule_sets: [(1, http_rules())].into(),
        http_tables: [(1, build_tables(&http_rules(), &[]).unwrap())].into(),
        ..Default::default()
    }
}

/// users' HTTP rules on `HTTP_PORT`: the seeds' "frontend may only GET /api/v1/users/?.*".
fn http_rules() -> HttpRuleSet {
    HttpRuleSet {
        rules: vec![HttpRuleEntry {
            policy: PolicyRef {
                kind: "CiliumNetworkPolicy".into(),
                namespace: "default".into(),
                name: "users".into(),
            },
            location: "spec.ingress[0].toPorts[0].rules.http[0]".into(),
            rule: HttpMatch {
                method: Some("GET".into()),
                path: Some("/api/v1/users/?.*".into()),
                ..Default::default()
            },
        }],
    }
}

fn load(timing: Timing) -> (Datapath, CompiledPolicy) {
    let mut dp = Datapath::load(&DatapathOptions {
        timing,
        ..DatapathOptions::default()
    })
    .expect("load the datapath (run as root)");
    let compiled = policy();
    let mut writer = dp.take_writer().unwrap();
    let ips = [ip(USERS)];
    writer
        .apply(
            &compiled,
            &[LocalEndpoint {
                ifindex: 1,
                ep_id: 1,
                ips: &ips,
                policy: &compiled.endpoints[0],
            }],
        )
        .unwrap();
    (dp, compiled)
}

fn ns_per_run(prog: &mut SchedClassifier, frame: &[u8], expect: u32) -> f64 {
    let (ret, d) = testrun::run(prog, frame, 0, REPEAT).unwrap();
    assert_eq!(ret, expect, "unexpected verdict");
    d.as_nanos() as f64
}

/// Moves the benchmark into a network namespace of its own, gone when it exits, with only its
/// loopback device up: test runs use the namespace's loopback, and the 403 that a denied
/// request's run sends (to the client's address) must end in this namespace's stack, never in
/// the host's, which may forward it.
fn own_netns() {
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET)
        .expect("a network namespace for the benchmark (CAP_SYS_ADMIN)");
    let up = std::process::Command::new("ip")
        .args(["link", "set", "lo", "up"])
        .status()
        .expect("run ip (iproute2)");
    assert!(up.success(), "ip link set lo up: {up}");
}

fn main() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("the datapath benchmark needs root (BPF_PROG_TEST_RUN)");
        std::process::exit(1);
    }
    own_netns();
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    println!(
        "kernel {} , {} runs per measurement\n",
        kernel.trim(),
        REPEAT
    );

    // The empty program: the floor of what BPF_PROG_TEST_RUN costs.
    let mut empty = aya::Ebpf::load(weir_probes::BPF_EMPTY).unwrap();
    let pass: &mut SchedClassifier = empty.program_mut("pass").unwrap().try_into().unwrap();
    pass.load().unwrap();

    // WEIR_BENCH=l7 runs only the HTTP part.
    if std::env::var("WEIR_BENCH").as_deref() == Ok("l7") {
        l7_decision(pass);
        agent_http_pipeline();
        return;
    }

    let (mut dp, _) = load(Timing::default());
    let syn = Packet::tcp(ip(FRONTEND), ip(USERS), 40_000, 80, 0x02).bytes();
    let ack = Packet::tcp(ip(FRONTEND), ip(USERS), 40_000, 80, 0x10).bytes();
    let denied = Packet::tcp(ip(BILLING), ip(USERS), 40_001, 80, 0x02).bytes();

    let mut events = Drain(dp.take_events().unwrap());
    let mut rows = Vec::new();
    for round in 0..3 {
        let empty_ns = ns_per_run(pass, &syn, TC_ACT_OK);
        let prog = dp.program(Hook::ToContainer).unwrap();
        // Established: the first SYN creates the connection, then ACKs follow its entry.
        testrun::run(prog, &syn, 0, 1).unwrap();
        let est_ns = ns_per_run(prog, &ack, TC_ACT_OK);
        // New and denied: evaluated every time (denied connections keep no state); after the
        // first, drop events are aggregated.
        let denied_ns = ns_per_run(prog, &denied, TC_ACT_SHOT);
        // New and allowed: one run per connection, each with a fresh source port; compared
        // with single runs of the empty program.
        let (mut new_total, mut empty_single) = (Duration::ZERO, Duration::ZERO);
        for i in 0..NEW_CONNECTIONS {
            let sport = 1024 + ((round * NEW_CONNECTIONS + i) % 60_000) as u16;
            let frame = Packet::tcp(ip(FRONTEND), ip(USERS), sport, 80, 0x02).bytes();
            let prog = dp.program(Hook::ToContainer).unwrap();
            let (ret, d) = testrun::run(prog, &frame, 0, 1).unwrap();
            assert_eq!(ret, TC_ACT_OK);
            new_total += d;
            empty_single += testrun::run(pass, &frame, 0, 1).unwrap().1;
            if i % 20_000 == 0 {
                events.drain();
            }
        }
        events.drain();
        let new_ns = new_total.as_nanos() as f64 / f64::from(NEW_CONNECTIONS);
        let empty1_ns = empty_single.as_nanos() as f64 / f64::from(NEW_CONNECTIONS);
        rows.push((empty_ns, est_ns, denied_ns, empty1_ns, new_ns));
    }
    println!(
        "| round | empty (ns) | established (ns) | ratio | new denied (ns) | ratio | empty, single runs (ns) | new allowed, single runs (ns) | ratio |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for (i, (e, est, den, e1, new)) in rows.iter().enumerate() {
        println!(
            "| {} | {e:.1} | {est:.1} | {:.2}× | {den:.1} | {:.2}× | {e1:.1} | {new:.1} | {:.2}× |",
            i + 1,
            est / e,
            den / e,
            new / e1
        );
    }
    // A node device (from_netdev, on --devices): what every packet arriving from another node
    // or the world pays. A packet to a local endpoint's port that the L7 proxy does not
    // police (ipcache lookups of both addresses, the endpoint's ingress entry), and one to an
    // address that is no local endpoint (one ipcache lookup).
    let outside = ip("198.51.100.10");
    let to_endpoint = Packet::tcp(outside, ip(USERS), 40_002, 80, 0x10).bytes();
    let elsewhere = Packet::tcp(outside, ip("198.51.100.20"), 40_002, 80, 0x10).bytes();
    println!("\nNode device, from_netdev ({REPEAT} runs per measurement):");
    println!("| packet | empty (ns) | from_netdev (ns) | ratio |");
    println!("|---|---|---|---|");
    for (name, frame) in [
        ("to a local endpoint, port not proxied", &to_endpoint),
        ("to an address that is no local endpoint", &elsewhere),
    ] {
        let e = ns_per_run(pass, frame, TC_ACT_OK);
        let prog = dp.program(Hook::FromNetdev).unwrap();
        // Left to the next program (TC_ACT_UNSPEC, TCX_NEXT).
        let n = ns_per_run(prog, frame, u32::MAX);
        println!("| {name} | {e:.1} | {n:.1} | {:.2}× |", n / e);
    }
    events.drain();

    for hook in Hook::ALL {
        let info = dp.program(hook).unwrap().info().unwrap();
        println!(
            "\n{}: {} verified instructions",
            hook.program(),
            info.verified_instruction_count().unwrap_or(0)
        );
    }

    l7_decision(pass);
    agent_pipeline();
    agent_http_pipeline();
}

/// What the HTTP datapath adds: one request segment on a fresh connection (its SYN ran just
/// before, untimed), as single runs next to single runs of the empty program on the same frame.
fn l7_decision(pass: &mut SchedClassifier) {
    let (mut dp, _) = load(Timing::default());
    let mut events = Drain(dp.take_events().unwrap());
    let request = |method: &str, path: &str| {
        format!(
            "{method} {path} HTTP/1.1\r\nHost: users\r\nUser-Agent: curl/7.88.1\r\nAccept: */*\r\n\r\n"
        )
        .into_bytes()
    };
    let long_path = format!("/api/v1/users/{}", "a".repeat(1000));
    let cases: [(&str, u16, Vec<u8>); 5] = [
        (
            "data, no HTTP rules (port 80)",
            80,
            request("GET", "/api/v1/users/123"),
        ),
        (
            "GET allowed, no headers",
            HTTP_PORT,
            b"GET /api/v1/users/1 HTTP/1.1\r\n\r\n".to_vec(),
        ),
        (
            "GET allowed",
            HTTP_PORT,
            request("GET", "/api/v1/users/123"),
        ),
        (
            "DELETE denied (403 + RST)",
            HTTP_PORT,
            request("DELETE", "/api/v1/users/123"),
        ),
        (
            "GET, 1 KB path, allowed",
            HTTP_PORT,
            request("GET", &long_path),
        ),
    ];
    println!("\nHTTP request segment, single runs ({NEW_CONNECTIONS} connections per case):");
    println!("| case | request bytes | empty (ns) | weir (ns) | ratio |");
    println!("|---|---|---|---|---|");
    // WEIR_BENCH_CASE=<text> keeps the cases whose name contains it (for profiling one).
    let only = std::env::var("WEIR_BENCH_CASE").unwrap_or_default();
    for (round, (name, port, payload)) in cases.iter().enumerate() {
        if !name.contains(only.as_str()) {
            continue;
        }
        let (mut weir, mut empty) = (Duration::ZERO, Duration::ZERO);
        for i in 0..NEW_CONNECTIONS {
            let sport = 1024 + ((round as u32 * NEW_CONNECTIONS + i) % 60_000) as u16;
            let (client, server) = (ip(FRONTEND), ip(USERS));
            let syn = testrun::tcp_segment(client, server, sport, *port, 0x02, 1000, 0, &[]);
            let data = testrun::tcp_segment(client, server, sport, *port, 0x18, 1001, 1, payload);
            let prog = dp.program(Hook::ToContainer).unwrap();
            assert_eq!(testrun::run(prog, &syn, 0, 1).unwrap().0, TC_ACT_OK);
            let (ret, d) = testrun::run(prog, &data, 0, 1).unwrap();
            // A denied request's segment leaves as the RST to the server (TC_ACT_OK).
            assert_eq!(ret, TC_ACT_OK, "{name}");
            weir += d;
            empty += testrun::run(pass, &data, 0, 1).unwrap().1;
            if i % 5_000 == 0 {
                events.drain();
            }
        }
        events.drain();
        l7_row(name, payload.len(), weir, empty);
    }
    let payload = |case: &str| &cases.iter().find(|c| c.0.starts_with(case)).unwrap().2;
    floors(payload("DELETE denied"), payload("GET, 1 KB path"), &only);
    if !"response".contains(only.as_str()) {
        return;
    }
    // The response: nginx's head for curl's GET, leaving users (from_container) on a connection
    // whose handshake passed and whose request was parsed and allowed.
    let request = request("GET", "/api/v1/users/123");
    let response = NGINX_RESPONSE;
    let (mut weir, mut empty) = (Duration::ZERO, Duration::ZERO);
    for i in 0..NEW_CONNECTIONS {
        let sport = 1024 + ((5 * NEW_CONNECTIONS + i) % 60_000) as u16;
        handshake(&mut dp, sport);
        let (data, reply) = http_exchange(sport, 1001, 1, &request, response);
        let prog = dp.program(Hook::ToContainer).unwrap();
        assert_eq!(testrun::run(prog, &data, 0, 1).unwrap().0, TC_ACT_OK);
        let prog = dp.program(Hook::FromContainer).unwrap();
        let (ret, d) = testrun::run(prog, &reply, 0, 1).unwrap();
        assert_eq!(ret, TC_ACT_OK, "response");
        weir += d;
        empty += testrun::run(pass, &reply, 0, 1).unwrap().1;
        if i % 5_000 == 0 {
            events.drain();
        }
    }
    events.drain();
    l7_row(
        "response to GET allowed (nginx's head)",
        response.len(),
        weir,
        empty,
    );
}

/// A row of the L7 table: the totals of NEW_CONNECTIONS single runs, per run, and their ratio.
fn l7_row(case: &str, bytes: usize, weir: Duration, empty: Duration) {
    let per = |d: Duration| d.as_nanos() as f64 / f64::from(NEW_CONNECTIONS);
    println!(
        "| {case} | {bytes} | {:.1} | {:.1} | {:.2}× |",
        per(empty),
        per(weir),
        per(weir) / per(empty)
    );
}

/// The kernel's floors under two of the cases, as rows of the same table: cloning the denied
/// request's segment into its device's ingress (the helper a denial's answer costs, with no
/// parse, decision or rewrite), and loading each byte of the 1 KB path's request (the segment's
/// payload) once (what any matcher that reads byte by byte must do at least).
fn floors(denied: &[u8], long: &[u8], only: &str) {
    let mut floor = aya::Ebpf::load(weir_probes::BPF_EMPTY).unwrap();
    for name in ["pass", "clone_ingress", "read_bytes"] {
        let p: &mut SchedClassifier = floor.program_mut(name).unwrap().try_into().unwrap();
        p.load().unwrap();
    }
    let cases = [
        (
            "clone_ingress",
            "floor: the denied segment cloned to ingress",
            denied,
        ),
        (
            "read_bytes",
            "floor: each byte of the 1 KB path's request read",
            long,
        ),
    ];
    for (name, what, payload) in cases {
        if !what.contains(only) {
            continue;
        }
        let (client, server) = (ip(FRONTEND), ip(USERS));
        let frame = testrun::tcp_segment(client, server, 1024, HTTP_PORT, 0x18, 1001, 1, payload);
        let (mut cost, mut empty) = (Duration::ZERO, Duration::ZERO);
        for _ in 0..NEW_CONNECTIONS {
            let p: &mut SchedClassifier = floor.program_mut(name).unwrap().try_into().unwrap();
            let (ret, d) = testrun::run(p, &frame, 0, 1).unwrap();
            assert_eq!(ret, TC_ACT_OK, "{what}");
            cost += d;
            let pass: &mut SchedClassifier = floor.program_mut("pass").unwrap().try_into().unwrap();
            empty += testrun::run(pass, &frame, 0, 1).unwrap().1;
        }
        l7_row(what, payload.len(), cost, empty);
    }
}

/// HTTP records per second from ring buffer to stored flow: keep-alive connections (as wrk's),
/// each request and its response parsed by the datapath into two L7 records, then drained and
/// timed as in `agent_pipeline` (decoding, the request line into method and URL, the response
/// paired with its request, enrichment, the store).
fn agent_http_pipeline() {
    let (mut dp, compiled) = load(Timing::default());
    let mut ring = dp.take_events().unwrap();
    let mut agent = Agent::new(&compiled);

    const CONNECTIONS: u16 = 32;
    // 15 000 requests and responses per round: 5.4 MB of the 8 MB ring.
    const PER_CONNECTION: u32 = 15_000 / CONNECTIONS as u32;
    let request = b"GET /api/v1/users/1 HTTP/1.1\r\nHost: 10.200.1.11:8080\r\n\r\n";
    let response = NGINX_RESPONSE;
    let (req_len, resp_len) = (request.len() as u32, response.len() as u32);
    // Request k on connection c and its response.
    let exchange = |dp: &mut Datapath, k: u32, c: u16| {
        let (cseq, sseq) = (1001 + k * req_len, 1 + k * resp_len);
        let (data, reply) = http_exchange(42_000 + c, cseq, sseq, request, response);
        let prog = dp.program(Hook::ToContainer).unwrap();
        assert_eq!(testrun::run(prog, &data, 0, 1).unwrap().0, TC_ACT_OK);
        let prog = dp.program(Hook::FromContainer).unwrap();
        assert_eq!(testrun::run(prog, &reply, 0, 1).unwrap().0, TC_ACT_OK);
    };
    // Untimed: each connection's SYN and first exchange (which also report the connection and
    // its first reply as traces).
    for c in 0..CONNECTIONS {
        handshake(&mut dp, 42_000 + c);
        exchange(&mut dp, 0, c);
    }
    agent.drain(&mut ring);

    let (mut records, mut spent) = (0usize, Duration::ZERO);
    for round in 0..10 {
        for k in 0..PER_CONNECTION {
            for c in 0..CONNECTIONS {
                exchange(&mut dp, 1 + round * PER_CONNECTION + k, c);
            }
        }
        let (n, d) = agent.drain(&mut ring);
        records += n;
        spent += d;
    }
    let flows = agent.store.read_backward(u64::MAX, 2);
    assert_eq!(agent.stats.lost_events(), 0, "records were lost");
    assert!(
        flows.iter().any(|f| f.l7.is_some()),
        "the stored flows are HTTP flows"
    );
    println!(
        "agent pipeline, HTTP: {records} records in {:.1} ms on one thread = {:.0} ns per record (requests and their responses on {CONNECTIONS} keep-alive connections)",
        spent.as_secs_f64() * 1e3,
        spent.as_nanos() as f64 / records as f64
    );
}

/// The agent's side of the ring buffer, as its monitor thread runs it, knowing the benchmark's
/// endpoints and policy.
struct Agent {
    enrichment: EnrichmentHandle,
    store: FlowStore,
    stats: MonitorStats,
    batch: Vec<StoredFlow>,
    http: HttpJoin,
}

impl Agent {
    fn new(compiled: &CompiledPolicy) -> Agent {
        Agent {
            enrichment: bench_enrichment(compiled),
            store: FlowStore::new(65_535),
            stats: MonitorStats::default(),
            batch: Vec::new(),
            http: HttpJoin::new(),
        }
    }

    /// Turns every record in the ring into a stored flow; returns how many, and the time it took.
    fn drain(&mut self, ring: &mut aya::maps::RingBuf<aya::maps::MapData>) -> (usize, Duration) {
        let start = Instant::now();
        let n = monitor::drain(
            ring,
            &self.enrichment,
            &self.store,
            &self.stats,
            Clock::now(),
            &mut self.batch,
            &mut self.http,
        );
        (n, start.elapsed())
    }
}

/// What the agent knows of the benchmark's endpoints and policy.
fn bench_enrichment(compiled: &CompiledPolicy) -> EnrichmentHandle {
    let meta = |name: &str, identity| {
        Arc::new(PeerMeta {
            ep_id: 1,
            identity,
            cluster: "default".into(),
            namespace: "default".into(),
            pod_name: name.into(),
            labels: vec![
                format!("k8s:app={name}"),
                "k8s:io.kubernetes.pod.namespace=default".into(),
            ],
            workloads: vec![],
        })
    };
    let users = Arc::<[PolicyMeta]>::from(vec![PolicyMeta {
        kind: "CiliumNetworkPolicy".into(),
        namespace: "default".into(),
        name: compiled.rule_sets[&1][0].name.clone(),
        labels: vec![],
        revision: 1,
    }]);
    EnrichmentHandle::new(Enrichment {
        node: Arc::new(NodeMeta {
            name: "bench".into(),
            labels: vec![],
        }),
        by_ip: [
            (ip(USERS), meta("users-0", ID_USERS)),
            (ip(FRONTEND), meta("frontend-0", ID_FRONTEND)),
        ]
        .into_iter()
        .collect(),
        rule_sets: [(1, users.clone())].into_iter().collect(),
        http_sets: [(
            1,
            Arc::new(HttpSetMeta {
                rules: vec![users.clone()],
                policies: users,
            }),
        )]
        .into_iter()
        .collect(),
        ..Default::default()
    })
}

/// nginx's answer to a GET (`return 200 "ok\n"`), head and body.
const NGINX_RESPONSE: &[u8] = b"HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Sat, 05 Dec 2026 09:00:00 GMT\r\nContent-Type: application/octet-stream\r\nContent-Length: 3\r\nConnection: keep-alive\r\n\r\nok\n";

/// A request from frontend's port `sport` to users' HTTP port at client sequence number `cseq`,
/// and the response at server sequence number `sseq` that acknowledges it.
fn http_exchange(
    sport: u16,
    cseq: u32,
    sseq: u32,
    request: &[u8],
    response: &[u8],
) -> (Vec<u8>, Vec<u8>) {
    let (client, server) = (ip(FRONTEND), ip(USERS));
    let data = testrun::tcp_segment(client, server, sport, HTTP_PORT, 0x18, cseq, sseq, request);
    let ack = cseq + request.len() as u32;
    let reply = testrun::tcp_segment(server, client, HTTP_PORT, sport, 0x18, sseq, ack, response);
    (data, reply)
}

/// frontend's SYN from `sport` to users' HTTP port (sequence number 1000) through users'
/// `to_container`, and users' SYN-ACK through its `from_container`: a connection whose parser
/// state follows both directions.
fn handshake(dp: &mut Datapath, sport: u16) {
    let (client, server) = (ip(FRONTEND), ip(USERS));
    let syn = testrun::tcp_segment(client, server, sport, HTTP_PORT, 0x02, 1000, 0, &[]);
    let syn_ack = testrun::tcp_segment(server, client, HTTP_PORT, sport, 0x12, 0, 1001, &[]);
    let prog = dp.program(Hook::ToContainer).unwrap();
    assert_eq!(testrun::run(prog, &syn, 0, 1).unwrap().0, TC_ACT_OK);
    let prog = dp.program(Hook::FromContainer).unwrap();
    assert_eq!(testrun::run(prog, &syn_ack, 0, 1).unwrap().0, TC_ACT_OK);
}

/// Drains and discards the ring buffer so single-run measurements never hit a full buffer.
struct Drain(aya::maps::RingBuf<aya::maps::MapData>);

impl Drain {
    fn drain(&mut self) {
        while self.0.next().is_some() {}
    }
}

/// Events per second from the ring buffer to stored flows, on the calling thread.
fn agent_pipeline() {
    // Every packet produces a trace: no aggregation.
    let (mut dp, compiled) = load(Timing {
        trace_interval: Duration::ZERO,
        ..Timing::default()
    });
    let mut ring = dp.take_events().unwrap();
    let ack = Packet::tcp(ip(FRONTEND), ip(USERS), 41_000, 80, 0x10).bytes();
    let syn = Packet::tcp(ip(FRONTEND), ip(USERS), 41_000, 80, 0x02).bytes();
    let prog = dp.program(Hook::ToContainer).unwrap();
    testrun::run(prog, &syn, 0, 1).unwrap();

    let mut agent = Agent::new(&compiled);
    agent.drain(&mut ring);

    const PER_ROUND: u32 = 60_000;
    let (mut events, mut spent) = (0usize, Duration::ZERO);
    for _ in 0..20 {
        let prog = dp.program(Hook::ToContainer).unwrap();
        testrun::run(prog, &ack, 0, PER_ROUND).unwrap();
        let (n, d) = agent.drain(&mut ring);
        events += n;
        spent += d;
    }
    println!(
        "\nagent pipeline: {events} events in {:.1} ms on one thread = {:.2} M events/s (ring buffer → decode → enrich → store)",
        spent.as_secs_f64() * 1e3,
        events as f64 / spent.as_secs_f64() / 1e6
    );
}
