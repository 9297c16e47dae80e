//! The agent's gRPC API without a kernel: a flow store filled with realistic flows (drops,
//! traces and their replies, policy verdicts; IPv4 and IPv6; TCP, UDP, ICMP; several pods and
//! namespaces), served by `Api::serve_unix` on a socket in a temporary directory and queried by
//! real tonic clients the way the hubble CLI and Hubble Relay query an agent.
//!
//! Every flow response is checked to carry this node's name and the flow's own time; flows are
//! identified by their UUID (the converter's instance is fixed) and compared by name.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::transport::{Channel, Endpoint, Uri};
use tonic::{Code, Status, Streaming};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
use weir_flow_agent::apply::{EndpointRuntime, PolicyStatus, SourceFile};
use weir_flow_agent::convert::Converter;
use weir_flow_agent::flows::{NodeMeta, PeerMeta, PolicyMeta, StoredFlow};
use weir_flow_agent::monitor::MonitorStats;
use weir_flow_agent::server::{Api, HEALTH_SERVICE, ServeError};
use weir_flow_agent::store::FlowStore;
use weir_policy::{ClusterState, Options, PolicySet};
use weir_probes::abi::{self, FlowEvent, drop_reason, obs_point, trace_reason};
use weir_proto::flow::{self, Flow, FlowFilter, Verdict, layer4::Protocol};
use weir_proto::google::protobuf::{BoolValue, FieldMask, Timestamp};
use weir_proto::observer::{
    GetAgentEventsRequest, GetDebugEventsRequest, GetFlowsRequest, GetFlowsResponse,
    GetNamespacesRequest, GetNodesRequest, ServerStatusRequest, get_flows_response::ResponseTypes,
    observer_client::ObserverClient,
};
use weir_proto::peer::{ChangeNotificationType, NotifyRequest, peer_client::PeerClient};
use weir_proto::relay::NodeState;
use weir_proto::weir::{GetPolicyRequest, agent_client::AgentClient};

const NODE: &str = "lab-node1";
const NODE_ADDRESS: &str = "192.168.50.11";
const CLUSTER: &str = "lab";
/// Fixed, so flow UUIDs are known: `Converter { instance }.uuid(seq)`.
const INSTANCE: u64 = 0x5eed_0000_1234_abcd;
/// How long a streamed message or a server may take before a test gives up.
const WAIT: Duration = Duration::from_secs(10);
const SEC: i64 = 1_000_000_000;
const VERSION: &str = env!("CARGO_PKG_VERSION");

// ---- Fixture: pods, policies and flows as the monitor would store them ------------------

fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64
}

fn ts(ns: i64) -> Timestamp {
    Timestamp {
        seconds: ns.div_euclid(SEC),
        nanos: ns.rem_euclid(SEC) as i32,
    }
}

fn ts_ns(t: &Timestamp) -> i64 {
    t.seconds * SEC + i64::from(t.nanos)
}

/// A local or remote pod, with the labels the apply loop gives it.
struct Pod {
    meta: Arc<PeerMeta>,
    /// Host-side interface (index, name) of a local endpoint.
    interface: Option<(u32, &'static str)>,
}

fn pod(
    cluster: &str,
    namespace: &str,
    name: &str,
    app: &str,
    identity: u32,
    local: Option<(u32, u32, &'static str)>,
) -> Pod {
    let mut labels = vec![
        format!("k8s:app={app}"),
        format!("k8s:io.cilium.k8s.policy.cluster={cluster}"),
        format!("k8s:io.cilium.k8s.policy.serviceaccount={app}"),
        format!("k8s:io.kubernetes.pod.namespace={namespace}"),
    ];
    labels.sort();
    Pod {
        meta: Arc::new(PeerMeta {
            ep_id: local.map_or(0, |(ep_id, _, _)| ep_id),
            identity,
            cluster: cluster.into(),
            namespace: namespace.into(),
            pod_name: name.into(),
            labels,
            workloads: vec![(app.into(), "Deployment".into())],
        }),
        interface: local.map(|(_, ifindex, name)| (ifindex, name)),
    }
}

fn world() -> Pod {
    Pod {
        meta: Arc::new(PeerMeta {
            identity: 2,
            labels: vec!["reserved:world".into()],
            ..Default::default()
        }),
        interface: None,
    }
}

fn policy(name: &str, namespace: &str) -> Arc<[PolicyMeta]> {
    Arc::from(vec![PolicyMeta {
        kind: "CiliumNetworkPolicy".into(),
        namespace: namespace.into(),
        name: name.into(),
        labels: vec![
            "k8s:io.cilium.k8s.policy.derived-from=CiliumNetworkPolicy".into(),
            format!("k8s:io.cilium.k8s.policy.name={name}"),
            format!("k8s:io.cilium.k8s.policy.namespace={namespace}"),
            "k8s:io.cilium.k8s.policy.source=file".into(),
        ],
        revision: 4,
    }])
}

/// The pods of the fixture's cluster.
struct Pods {
    frontend: Pod,
    users: Pod,
    billing: Pod,
    reco: Pod,
    coredns: Pod,
    cron: Pod,
    db: Pod,
    world: Pod,
}

fn pods() -> Pods {
    Pods {
        frontend: pod(
            CLUSTER,
            "default",
            "frontend-7c9d4",
            "frontend",
            47129,
            Some((311, 12, "lxc1f0e2d3c4b5a")),
        ),
        users: pod(
            CLUSTER,
            "default",
            "users-0",
            "users",
            31822,
            Some((412, 14, "lxc5e1a9c2b7d40")),
        ),
        billing: pod(CLUSTER, "default", "billing-5f8b9", "billing", 52051, None),
        reco: pod(
            CLUSTER,
            "prod",
            "reco-0",
            "reco",
            60544,
            Some((518, 17, "lxc9a8b7c6d5e4f")),
        ),
        coredns: pod(
            CLUSTER,
            "kube-system",
            "coredns-6d4b",
            "coredns",
            18113,
            None,
        ),
        cron: pod(
            CLUSTER,
            "legacy",
            "cron-28990",
            "cron",
            9071,
            Some((721, 22, "lxc7e6d5c4b3a29")),
        ),
        db: pod(
            CLUSTER,
            "legacy",
            "db-0",
            "db",
            9099,
            Some((720, 21, "lxc0d1b2a3c4d5e")),
        ),
        world: world(),
    }
}

/// A flow being built: the kernel event and what enrichment attaches to it.
struct F {
    ev: FlowEvent,
    src: Arc<PeerMeta>,
    dst: Arc<PeerMeta>,
    interface: Option<Arc<str>>,
    policies: Option<Arc<[PolicyMeta]>>,
}

impl F {
    fn new(ty: u8, src: (&Pod, &str), dst: (&Pod, &str)) -> F {
        let mut ev = FlowEvent {
            r#type: ty,
            version: abi::EVENT_VERSION,
            src_identity: src.0.meta.identity,
            dst_identity: dst.0.meta.identity,
            count: 1,
            pkt_len: 74,
            ..Default::default()
        };
        match (src.1.parse().unwrap(), dst.1.parse().unwrap()) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                ev.saddr[..4].copy_from_slice(&s.octets());
                ev.daddr[..4].copy_from_slice(&d.octets());
            }
            (IpAddr::V6(s), IpAddr::V6(d)) => {
                ev.flags |= abi::EVF_IPV6;
                ev.saddr = s.octets();
                ev.daddr = d.octets();
            }
            other => panic!("mixed address families {other:?}"),
        }
        F {
            ev,
            src: src.0.meta.clone(),
            dst: dst.0.meta.clone(),
            interface: None,
            policies: None,
        }
    }

    fn tcp(mut self, sport: u16, dport: u16, flags: u8) -> F {
        self.ev.protocol = 6;
        (self.ev.sport, self.ev.dport, self.ev.tcp_flags) = (sport, dport, flags);
        self
    }

    fn udp(mut self, sport: u16, dport: u16) -> F {
        self.ev.protocol = 17;
        (self.ev.sport, self.ev.dport) = (sport, dport);
        self
    }

    fn icmp(mut self, icmp_type: u8) -> F {
        self.ev.protocol = if self.ev.flags & abi::EVF_IPV6 != 0 {
            58
        } else {
            1
        };
        self.ev.icmp_type = icmp_type;
        self
    }

    /// Seen on `at`'s interface; `ingress` is the endpoint's direction.
    fn at(mut self, at: &Pod, ingress: bool) -> F {
        let (ifindex, name) = at.interface.expect("observed at a local endpoint");
        self.ev.ifindex = ifindex;
        self.ev.ep_id = at.meta.ep_id;
        self.ev.direction = if ingress {
            abi::DIR_INGRESS
        } else {
            abi::DIR_EGRESS
        };
        self.interface = Some(Arc::from(name));
        self
    }

    fn trace(mut self, point: u8, reason: u8) -> F {
        (self.ev.obs_point, self.ev.trace_reason) = (point, reason);
        if reason == trace_reason::REPLY {
            self.ev.flags |= abi::EVF_REPLY;
        }
        self
    }

    fn dropped(mut self, reason: u16) -> F {
        self.ev.drop_reason = reason;
        self
    }

    fn verdict(mut self, verdict: u8, match_type: u8) -> F {
        (self.ev.verdict, self.ev.match_type) = (verdict, match_type);
        self
    }

    fn audit(mut self) -> F {
        self.ev.flags |= abi::EVF_AUDIT;
        self
    }

    fn by(mut self, rule_set: u32, policies: &Arc<[PolicyMeta]>) -> F {
        self.ev.rule_set = rule_set;
        self.policies = Some(policies.clone());
        self
    }

    fn stored(self, time_unix_ns: i64) -> StoredFlow {
        StoredFlow {
            seq: 0,
            time_unix_ns,
            event: self.ev,
            src: Some(self.src),
            dst: Some(self.dst),
            interface: self.interface,
            policies: self.policies,
            node: Arc::new(NodeMeta {
                name: NODE.into(),
                labels: node_labels(),
            }),
            l7: None,
        }
    }
}

fn node_labels() -> Vec<String> {
    vec!["kubernetes.io/hostname=lab-node1".to_string()]
}

const SYN: u8 = 0x02;
const ACK: u8 = 0x10;
const FIN: u8 = 0x01;

/// A flow with the name assertions use for it.
struct Named(String, StoredFlow);

fn named(name: &str, flow: StoredFlow) -> Named {
    Named(name.to_string(), flow)
}

/// The flows of the main fixture, oldest first: two from two hours ago, then one a second
/// from `base`, half an hour ago. `base` is a whole second; every flow has the same fraction.
fn fixture(base: i64) -> Vec<Named> {
    let p = pods();
    let users_ingress = policy("users-ingress", "default");
    let reco_lockdown = policy("reco-egress-lockdown", "prod");
    let frontend_audit = policy("frontend-egress", "default");
    let old = base - 90 * 60 * SEC + 123_456_789;
    let t = |i: i64| base + i * SEC + 123_456_789;
    let (frontend, users, billing) = (
        (&p.frontend, "10.244.1.15"),
        (&p.users, "10.244.1.23"),
        (&p.billing, "10.244.2.31"),
    );
    let reco6 = (&p.reco, "fd00:10:244:1::40");
    let (users6, coredns4, coredns6) = (
        (&p.users, "fd00:10:244:1::23"),
        (&p.coredns, "10.244.2.10"),
        (&p.coredns, "fd00:10:244:2::10"),
    );
    let (cron, db) = ((&p.cron, "10.244.1.77"), (&p.db, "10.244.1.78"));
    use abi::{EVENT_DROP as DROP, EVENT_POLICY_VERDICT as VERDICT, EVENT_TRACE as TRACE};
    use obs_point::{FROM_ENDPOINT, TO_ENDPOINT, TO_STACK};
    use trace_reason::{ESTABLISHED, NEW, REPLY};
    vec![
        named(
            "cron>db syn",
            F::new(TRACE, cron, db)
                .tcp(40022, 5432, SYN)
                .at(&p.db, true)
                .trace(TO_ENDPOINT, NEW)
                .stored(old),
        ),
        named(
            "db>cron syn-ack",
            F::new(TRACE, db, cron)
                .tcp(5432, 40022, SYN | ACK)
                .at(&p.db, false)
                .trace(FROM_ENDPOINT, REPLY)
                .stored(old + SEC),
        ),
        named(
            "frontend>users:80 allowed",
            F::new(VERDICT, frontend, users)
                .tcp(41234, 80, SYN)
                .at(&p.users, true)
                .verdict(abi::VERDICT_ALLOWED, 2)
                .by(0x1a2b, &users_ingress)
                .stored(t(0)),
        ),
        named(
            "frontend>users:80 syn",
            F::new(TRACE, frontend, users)
                .tcp(41234, 80, SYN)
                .at(&p.users, true)
                .trace(TO_ENDPOINT, NEW)
                .stored(t(1)),
        ),
        named(
            "users>frontend syn-ack",
            F::new(TRACE, users, frontend)
                .tcp(80, 41234, SYN | ACK)
                .at(&p.users, false)
                .trace(FROM_ENDPOINT, REPLY)
                .stored(t(2)),
        ),
        named(
            "billing>users:80 denied",
            F::new(DROP, billing, users)
                .tcp(38110, 80, SYN)
                .at(&p.users, true)
                .dropped(drop_reason::POLICY_DENIED)
                .by(0x1a2b, &users_ingress)
                .stored(t(3)),
        ),
        named(
            "reco>world:443 denied v6",
            F::new(VERDICT, reco6, (&p.world, "2001:db8::7"))
                .udp(50123, 443)
                .at(&p.reco, false)
                .verdict(abi::VERDICT_DENIED, 1)
                .by(0x3c4d, &reco_lockdown)
                .stored(t(4)),
        ),
        named(
            "reco>world:443 dropped v6",
            F::new(DROP, reco6, (&p.world, "2001:db8::7"))
                .udp(50123, 443)
                .at(&p.reco, false)
                .dropped(drop_reason::POLICY_DENY)
                .by(0x3c4d, &reco_lockdown)
                .stored(t(5)),
        ),
        named(
            "reco>coredns:53 v6",
            F::new(TRACE, reco6, coredns6)
                .udp(50124, 53)
                .at(&p.reco, false)
                .trace(FROM_ENDPOINT, NEW)
                .stored(t(6)),
        ),
        named(
            "coredns>reco v6 reply",
            F::new(TRACE, coredns6, reco6)
                .udp(53, 50124)
                .at(&p.reco, true)
                .trace(TO_ENDPOINT, REPLY)
                .stored(t(7)),
        ),
        named(
            "frontend>users echo",
            F::new(TRACE, frontend, users)
                .icmp(8)
                .at(&p.users, true)
                .trace(TO_ENDPOINT, NEW)
                .stored(t(8)),
        ),
        named(
            "users>frontend echo-reply",
            F::new(TRACE, users, frontend)
                .icmp(0)
                .at(&p.users, false)
                .trace(FROM_ENDPOINT, REPLY)
                .stored(t(9)),
        ),
        named(
            "reco>users echo denied v6",
            F::new(DROP, reco6, users6)
                .icmp(128)
                .at(&p.users, true)
                .dropped(drop_reason::POLICY_DENIED)
                .by(0x1a2b, &users_ingress)
                .stored(t(10)),
        ),
        named(
            "world>users invalid",
            F::new(DROP, (&p.world, "198.51.100.7"), users)
                .tcp(61000, 80, SYN | FIN)
                .at(&p.users, true)
                .dropped(drop_reason::INVALID_PACKET)
                .stored(t(11)),
        ),
        named(
            "frontend>coredns:53 audit",
            F::new(VERDICT, frontend, coredns4)
                .udp(53321, 53)
                .at(&p.frontend, false)
                .verdict(abi::VERDICT_DENIED, 0)
                .audit()
                .by(0x5e6f, &frontend_audit)
                .stored(t(12)),
        ),
        named(
            "frontend>coredns:53",
            F::new(TRACE, frontend, coredns4)
                .udp(53321, 53)
                .at(&p.frontend, false)
                .trace(FROM_ENDPOINT, NEW)
                .stored(t(13)),
        ),
        named(
            "users>world:443 fin",
            F::new(TRACE, users, (&p.world, "203.0.113.5"))
                .tcp(52000, 443, FIN | ACK)
                .at(&p.users, false)
                .trace(TO_STACK, ESTABLISHED)
                .stored(t(14)),
        ),
    ]
}

/// A reply from `users` to `frontend` at `time`, for pushes during a test.
fn later_reply(time: i64) -> StoredFlow {
    let p = pods();
    F::new(
        abi::EVENT_TRACE,
        (&p.users, "10.244.1.23"),
        (&p.frontend, "10.244.1.15"),
    )
    .tcp(80, 41234, ACK)
    .at(&p.users, false)
    .trace(obs_point::FROM_ENDPOINT, trace_reason::REPLY)
    .stored(time)
}

/// A drop of a flow from `billing` to `users` at `time`, for pushes during a test.
fn later_drop(time: i64) -> StoredFlow {
    let p = pods();
    F::new(
        abi::EVENT_DROP,
        (&p.billing, "10.244.2.31"),
        (&p.users, "10.244.1.23"),
    )
    .tcp(38111, 80, SYN)
    .at(&p.users, true)
    .dropped(drop_reason::POLICY_DENIED)
    .stored(time)
}

// ---- Harness: a served store and clients ----------------------------------------------------

/// An agent API served on a unix socket in a temporary directory, and a channel to it.
struct Agent {
    channel: Channel,
    store: Arc<FlowStore>,
    stats: Arc<MonitorStats>,
    socket: PathBuf,
    /// Name and time of every flow pushed, by sequence number.
    pushed: Vec<(String, i64)>,
    shutdown: oneshot::Sender<()>,
    server: JoinHandle<Result<(), ServeError>>,
    _dir: tempfile::TempDir,
}

async fn connect(socket: &Path) -> Channel {
    let path = socket.to_path_buf();
    Endpoint::from_static("http://weir.invalid")
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let path = path.clone();
            async move {
                let stream = tokio::net::UnixStream::connect(path).await?;
                Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(stream))
            }
        }))
        .await
        .expect("connect to the API socket")
}

impl Agent {
    /// Serves an empty store of `capacity` flows.
    async fn start(capacity: usize) -> Agent {
        Agent::start_with(capacity, PolicyStatus::default(), |_| {}).await
    }

    /// Serves the main fixture (capacity 64); returns the agent and the fixture's base time.
    async fn with_fixture() -> (Agent, i64) {
        let base = (now_ns() / SEC - 30 * 60) * SEC;
        let mut agent = Agent::start(64).await;
        agent.push(fixture(base));
        (agent, base)
    }

    async fn start_with(
        capacity: usize,
        status: PolicyStatus,
        prepare: impl FnOnce(&Path),
    ) -> Agent {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("run/weir/hubble.sock");
        prepare(&socket);
        let api = Api {
            store: Arc::new(FlowStore::new(capacity)),
            stats: Arc::new(MonitorStats::default()),
            status: Arc::new(RwLock::new(status)),
            converter: Converter { instance: INSTANCE },
            node_name: NODE.into(),
            node_address: NODE_ADDRESS.into(),
        };
        let (shutdown, stop) = oneshot::channel::<()>();
        let server = {
            let api = api.clone();
            let socket = socket.clone();
            tokio::spawn(async move {
                api.serve_unix(&socket, async {
                    let _ = stop.await;
                })
                .await
            })
        };
        // The socket file appears when the listener is bound (and accepting).
        let deadline = tokio::time::Instant::now() + WAIT;
        while !std::fs::metadata(&socket).is_ok_and(|m| {
            use std::os::unix::fs::FileTypeExt;
            m.file_type().is_socket()
        }) {
            assert!(!server.is_finished(), "server stopped: {:?}", server.await);
            assert!(
                tokio::time::Instant::now() < deadline,
                "{} never became a socket",
                socket.display()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Agent {
            channel: connect(&socket).await,
            store: api.store,
            stats: api.stats,
            socket,
            pushed: Vec::new(),
            shutdown,
            server,
            _dir: dir,
        }
    }

    /// Pushes `flows` into the store in one batch, as the monitor does.
    fn push(&mut self, flows: Vec<Named>) {
        let mut batch = Vec::with_capacity(flows.len());
        for Named(name, flow) in flows {
            self.pushed.push((name, flow.time_unix_ns));
            batch.push(flow);
        }
        self.store.push_batch(&mut batch);
    }

    fn time_of(&self, name: &str) -> Timestamp {
        let (_, t) = self
            .pushed
            .iter()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("no flow named {name:?}"));
        ts(*t)
    }

    fn observer(&self) -> ObserverClient<Channel> {
        ObserverClient::new(self.channel.clone())
    }

    /// The response as a name: the flow's name, or `lost <SOURCE> <n>`. Checks what every
    /// response carries: this node's name, and for flows the flow's own time.
    fn describe(&self, r: &GetFlowsResponse) -> String {
        assert_eq!(r.node_name, NODE, "node_name of {r:?}");
        match &r.response_types {
            Some(ResponseTypes::Flow(f)) => {
                let converter = Converter { instance: INSTANCE };
                let seq = (0..self.pushed.len() as u64)
                    .find(|seq| converter.uuid(*seq) == f.uuid)
                    .unwrap_or_else(|| panic!("flow with unknown uuid: {f:?}"));
                let (name, time) = &self.pushed[seq as usize];
                assert_eq!(r.time, Some(ts(*time)), "response time of {name}");
                assert_eq!(f.time, Some(ts(*time)), "flow time of {name}");
                name.clone()
            }
            Some(ResponseTypes::LostEvents(l)) => {
                assert!(r.time.is_some(), "lost event without time: {r:?}");
                format!("lost {} {}", l.source().as_str_name(), l.num_events_lost)
            }
            other => panic!("unexpected response {other:?}"),
        }
    }

    /// Every response of a request that ends by itself.
    async fn responses(&self, req: GetFlowsRequest) -> Vec<GetFlowsResponse> {
        let mut stream = self
            .observer()
            .get_flows(req)
            .await
            .expect("GetFlows")
            .into_inner();
        let mut out = Vec::new();
        loop {
            match tokio::time::timeout(WAIT, stream.message()).await {
                Ok(Ok(Some(r))) => out.push(r),
                Ok(Ok(None)) => return out,
                Ok(Err(status)) => panic!("GetFlows stream failed: {status}"),
                Err(_) => panic!("GetFlows did not end; got {} responses", out.len()),
            }
        }
    }

    /// The names of the flows a request returns, in order.
    async fn flows(&self, req: GetFlowsRequest) -> Vec<String> {
        let responses = self.responses(req).await;
        responses.iter().map(|r| self.describe(r)).collect()
    }

    async fn flows_error(&self, req: GetFlowsRequest) -> Status {
        match self.observer().get_flows(req).await {
            Ok(_) => panic!("GetFlows was accepted"),
            Err(status) => status,
        }
    }

    async fn follow(&self, req: GetFlowsRequest) -> Streaming<GetFlowsResponse> {
        assert!(req.follow);
        self.observer()
            .get_flows(req)
            .await
            .expect("GetFlows")
            .into_inner()
    }

    /// A follower that is surely in its follow loop: it has returned a flow from its history
    /// and then one pushed after it started, so its start position and the kernel's lost count
    /// it compares with are taken. The two flows are at `time` and 1 ns later.
    async fn following(&mut self, time: i64) -> Streaming<GetFlowsResponse> {
        self.push(vec![named("history", later_reply(time))]);
        let mut stream = self
            .follow(GetFlowsRequest {
                number: 1,
                follow: true,
                ..Default::default()
            })
            .await;
        assert_eq!(self.next(&mut stream).await, "history");
        self.push(vec![named("marker", later_reply(time + 1))]);
        assert_eq!(self.next(&mut stream).await, "marker");
        stream
    }

    async fn next_response(&self, stream: &mut Streaming<GetFlowsResponse>) -> GetFlowsResponse {
        match tokio::time::timeout(WAIT, stream.message()).await {
            Ok(Ok(Some(r))) => r,
            Ok(Ok(None)) => panic!("the follow stream ended"),
            Ok(Err(status)) => panic!("the follow stream failed: {status}"),
            Err(_) => panic!("nothing arrived within {WAIT:?}"),
        }
    }

    async fn next(&self, stream: &mut Streaming<GetFlowsResponse>) -> String {
        let r = self.next_response(stream).await;
        self.describe(&r)
    }

    async fn next_n(&self, stream: &mut Streaming<GetFlowsResponse>, n: usize) -> Vec<String> {
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            out.push(self.next(stream).await);
        }
        out
    }

    async fn status(&self) -> weir_proto::observer::ServerStatusResponse {
        self.observer()
            .server_status(ServerStatusRequest {})
            .await
            .expect("ServerStatus")
            .into_inner()
    }

    /// Stops serving and waits for the server to return.
    async fn stop(self) -> PathBuf {
        drop(self.channel);
        let _ = self.shutdown.send(());
        tokio::time::timeout(WAIT, self.server)
            .await
            .expect("the server stops")
            .expect("server task")
            .expect("serve_unix");
        self.socket
    }
}

fn all() -> GetFlowsRequest {
    GetFlowsRequest {
        number: u64::MAX,
        ..Default::default()
    }
}

fn verdict(v: Verdict) -> FlowFilter {
    FlowFilter {
        verdict: vec![v as i32],
        ..Default::default()
    }
}

const FIXTURE: [&str; 17] = [
    "cron>db syn",
    "db>cron syn-ack",
    "frontend>users:80 allowed",
    "frontend>users:80 syn",
    "users>frontend syn-ack",
    "billing>users:80 denied",
    "reco>world:443 denied v6",
    "reco>world:443 dropped v6",
    "reco>coredns:53 v6",
    "coredns>reco v6 reply",
    "frontend>users echo",
    "users>frontend echo-reply",
    "reco>users echo denied v6",
    "world>users invalid",
    "frontend>coredns:53 audit",
    "frontend>coredns:53",
    "users>world:443 fin",
];

// ---- GetFlows: what a stored flow looks like on the wire -------------------------------------

/// One line per flow with what `hubble observe` shows of it.
fn essentials(f: &Flow) -> String {
    let peer = |e: &Option<flow::Endpoint>, ip: &str, port: Option<u32>| {
        let e = e.as_ref().unwrap();
        let who = if e.pod_name.is_empty() {
            e.labels.join(",")
        } else {
            format!("{}/{}", e.namespace, e.pod_name)
        };
        match port {
            Some(p) => format!("{who}({ip}:{p})"),
            None => format!("{who}({ip})"),
        }
    };
    let ports = match f.l4.as_ref().and_then(|l| l.protocol.as_ref()) {
        Some(Protocol::Tcp(t)) => (Some(t.source_port), Some(t.destination_port)),
        Some(Protocol::Udp(u)) => (Some(u.source_port), Some(u.destination_port)),
        _ => (None, None),
    };
    let ip = f.ip.as_ref().unwrap();
    format!(
        "{} {} {} {} -> {} [{}] is_reply={:?}",
        f.verdict().as_str_name(),
        f.traffic_direction().as_str_name(),
        ip.ip_version().as_str_name(),
        peer(&f.source, &ip.source, ports.0),
        peer(&f.destination, &ip.destination, ports.1),
        f.summary,
        f.is_reply.map(|b| b.value),
    )
}

#[tokio::test]
async fn stored_flows_are_served_as_hubble_flows() {
    let (agent, _) = Agent::with_fixture().await;
    let responses = agent.responses(all()).await;
    let names: Vec<String> = responses.iter().map(|r| agent.describe(r)).collect();
    assert_eq!(names, FIXTURE);
    let lines: Vec<String> = responses
        .iter()
        .map(|r| match &r.response_types {
            Some(ResponseTypes::Flow(f)) => essentials(f),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        lines,
        [
            "FORWARDED INGRESS IPv4 legacy/cron-28990(10.244.1.77:40022) -> legacy/db-0(10.244.1.78:5432) [TCP Flags: SYN] is_reply=Some(false)",
            "FORWARDED EGRESS IPv4 legacy/db-0(10.244.1.78:5432) -> legacy/cron-28990(10.244.1.77:40022) [TCP Flags: SYN, ACK] is_reply=Some(true)",
            "FORWARDED INGRESS IPv4 default/frontend-7c9d4(10.244.1.15:41234) -> default/users-0(10.244.1.23:80) [TCP Flags: SYN] is_reply=Some(false)",
            "FORWARDED INGRESS IPv4 default/frontend-7c9d4(10.244.1.15:41234) -> default/users-0(10.244.1.23:80) [TCP Flags: SYN] is_reply=Some(false)",
            "FORWARDED EGRESS IPv4 default/users-0(10.244.1.23:80) -> default/frontend-7c9d4(10.244.1.15:41234) [TCP Flags: SYN, ACK] is_reply=Some(true)",
            "DROPPED INGRESS IPv4 default/billing-5f8b9(10.244.2.31:38110) -> default/users-0(10.244.1.23:80) [TCP Flags: SYN] is_reply=Some(false)",
            "DROPPED EGRESS IPv6 prod/reco-0(fd00:10:244:1::40:50123) -> reserved:world(2001:db8::7:443) [UDP] is_reply=Some(false)",
            "DROPPED EGRESS IPv6 prod/reco-0(fd00:10:244:1::40:50123) -> reserved:world(2001:db8::7:443) [UDP] is_reply=Some(false)",
            "FORWARDED EGRESS IPv6 prod/reco-0(fd00:10:244:1::40:50124) -> kube-system/coredns-6d4b(fd00:10:244:2::10:53) [UDP] is_reply=Some(false)",
            "FORWARDED INGRESS IPv6 kube-system/coredns-6d4b(fd00:10:244:2::10:53) -> prod/reco-0(fd00:10:244:1::40:50124) [UDP] is_reply=Some(true)",
            "FORWARDED INGRESS IPv4 default/frontend-7c9d4(10.244.1.15) -> default/users-0(10.244.1.23) [ICMPv4 EchoRequest] is_reply=Some(false)",
            "FORWARDED EGRESS IPv4 default/users-0(10.244.1.23) -> default/frontend-7c9d4(10.244.1.15) [ICMPv4 EchoReply] is_reply=Some(true)",
            "DROPPED INGRESS IPv6 prod/reco-0(fd00:10:244:1::40) -> default/users-0(fd00:10:244:1::23) [ICMPv6 EchoRequest] is_reply=Some(false)",
            "DROPPED INGRESS IPv4 reserved:world(198.51.100.7:61000) -> default/users-0(10.244.1.23:80) [TCP Flags: SYN, FIN] is_reply=None",
            "AUDIT EGRESS IPv4 default/frontend-7c9d4(10.244.1.15:53321) -> kube-system/coredns-6d4b(10.244.2.10:53) [UDP] is_reply=Some(false)",
            "FORWARDED EGRESS IPv4 default/frontend-7c9d4(10.244.1.15:53321) -> kube-system/coredns-6d4b(10.244.2.10:53) [UDP] is_reply=Some(false)",
            "FORWARDED EGRESS IPv4 default/users-0(10.244.1.23:52000) -> reserved:world(203.0.113.5:443) [TCP Flags: ACK, FIN] is_reply=Some(false)",
        ]
    );
}

#[tokio::test]
async fn a_policy_drop_carries_every_field_hubble_shows() {
    let (agent, _) = Agent::with_fixture().await;
    let responses = agent
        .responses(GetFlowsRequest {
            number: 1,
            first: true,
            whitelist: vec![verdict(Verdict::Dropped)],
            ..Default::default()
        })
        .await;
    let [r] = responses.as_slice() else {
        panic!("{responses:?}")
    };
    let Some(ResponseTypes::Flow(got)) = &r.response_types else {
        panic!("{r:?}")
    };
    let p = pods();
    let endpoint = |pod: &Pod| flow::Endpoint {
        id: pod.meta.ep_id,
        identity: pod.meta.identity,
        cluster_name: CLUSTER.into(),
        namespace: pod.meta.namespace.clone(),
        labels: pod.meta.labels.clone(),
        pod_name: pod.meta.pod_name.clone(),
        workloads: vec![flow::Workload {
            name: pod.meta.workloads[0].0.clone(),
            kind: "Deployment".into(),
        }],
    };
    let expected = Flow {
        time: Some(agent.time_of("billing>users:80 denied")),
        uuid: Converter { instance: INSTANCE }.uuid(5),
        emitter: Some(flow::Emitter {
            name: "weir".into(),
            version: VERSION.into(),
        }),
        verdict: Verdict::Dropped as i32,
        drop_reason: 133,
        drop_reason_desc: flow::DropReason::PolicyDenied as i32,
        ip: Some(flow::Ip {
            source: "10.244.2.31".into(),
            destination: "10.244.1.23".into(),
            ip_version: flow::IpVersion::IPv4 as i32,
            ..Default::default()
        }),
        l4: Some(flow::Layer4 {
            protocol: Some(Protocol::Tcp(flow::Tcp {
                source_port: 38110,
                destination_port: 80,
                flags: Some(flow::TcpFlags {
                    syn: true,
                    ..Default::default()
                }),
            })),
        }),
        source: Some(endpoint(&p.billing)),
        destination: Some(endpoint(&p.users)),
        r#type: flow::FlowType::L3L4 as i32,
        node_name: NODE.into(),
        node_labels: node_labels(),
        event_type: Some(flow::CiliumEventType {
            r#type: 1,
            sub_type: 133,
        }),
        traffic_direction: flow::TrafficDirection::Ingress as i32,
        is_reply: Some(BoolValue { value: false }),
        interface: Some(flow::NetworkInterface {
            index: 14,
            name: "lxc5e1a9c2b7d40".into(),
        }),
        summary: "TCP Flags: SYN".into(),
        ingress_denied_by: vec![flow::Policy {
            name: "users-ingress".into(),
            namespace: "default".into(),
            labels: policy("users-ingress", "default")[0].labels.clone(),
            revision: 4,
            kind: "CiliumNetworkPolicy".into(),
        }],
        ..Default::default()
    };
    assert_eq!(*got, expected);
}

// ---- GetFlows: number, first, since, until --------------------------------------------------

#[tokio::test]
async fn number_returns_the_last_n_flows_oldest_first() {
    let (agent, _) = Agent::with_fixture().await;
    let last = |number| GetFlowsRequest {
        number,
        ..Default::default()
    };
    assert_eq!(
        agent.flows(last(3)).await,
        [
            "frontend>coredns:53 audit",
            "frontend>coredns:53",
            "users>world:443 fin"
        ]
    );
    assert_eq!(agent.flows(last(1)).await, ["users>world:443 fin"]);
    // More than stored, or `--all` (the largest number): everything.
    assert_eq!(agent.flows(last(100)).await, FIXTURE);
    assert_eq!(agent.flows(all()).await, FIXTURE);
    // No number, no time range, no follow: Hubble returns the whole ring.
    assert_eq!(agent.flows(last(0)).await, FIXTURE);
}

#[tokio::test]
async fn first_returns_the_oldest_n_flows() {
    let (agent, _) = Agent::with_fixture().await;
    let first = |number| GetFlowsRequest {
        number,
        first: true,
        ..Default::default()
    };
    assert_eq!(
        agent.flows(first(3)).await,
        [
            "cron>db syn",
            "db>cron syn-ack",
            "frontend>users:80 allowed"
        ]
    );
    assert_eq!(agent.flows(first(100)).await, FIXTURE);
    assert_eq!(agent.flows(first(0)).await, FIXTURE);
}

#[tokio::test]
async fn since_and_until_select_an_inclusive_time_window() {
    let (agent, _) = Agent::with_fixture().await;
    let t = |name| Some(agent.time_of(name));
    let window = |since, until, number, first| GetFlowsRequest {
        number,
        first,
        since,
        until,
        ..Default::default()
    };
    // `since` alone: from the flow at exactly that time to the newest.
    assert_eq!(
        agent
            .flows(window(t("reco>users echo denied v6"), None, 0, false))
            .await,
        [
            "reco>users echo denied v6",
            "world>users invalid",
            "frontend>coredns:53 audit",
            "frontend>coredns:53",
            "users>world:443 fin",
        ]
    );
    // One nanosecond later excludes that flow.
    let mut later = agent.time_of("reco>users echo denied v6");
    later.nanos += 1;
    assert_eq!(
        agent
            .flows(window(Some(later), None, 0, false))
            .await
            .first()
            .map(String::as_str),
        Some("world>users invalid")
    );
    // `until` alone: from the oldest to the flow at exactly that time.
    assert_eq!(
        agent
            .flows(window(None, t("frontend>users:80 allowed"), 0, false))
            .await,
        [
            "cron>db syn",
            "db>cron syn-ack",
            "frontend>users:80 allowed"
        ]
    );
    // Both.
    assert_eq!(
        agent
            .flows(window(
                t("frontend>users:80 syn"),
                t("reco>world:443 denied v6"),
                0,
                false
            ))
            .await,
        [
            "frontend>users:80 syn",
            "users>frontend syn-ack",
            "billing>users:80 denied",
            "reco>world:443 denied v6",
        ]
    );
    // An empty window.
    let empty_since = Some(ts(ts_ns(&agent.time_of("users>world:443 fin")) + 1));
    assert!(
        agent
            .flows(window(empty_since, None, 0, false))
            .await
            .is_empty()
    );
}

#[tokio::test]
async fn number_within_a_time_window() {
    let (agent, _) = Agent::with_fixture().await;
    let t = |name| Some(agent.time_of(name));
    let req = |since, until, number, first| GetFlowsRequest {
        number,
        first,
        since,
        until,
        ..Default::default()
    };
    // Hubble: `since` takes precedence over `number`: the flows start at `since` and `number`
    // limits how many follow, with or without `first`.
    let since = t("reco>users echo denied v6");
    let expected = ["reco>users echo denied v6", "world>users invalid"];
    assert_eq!(agent.flows(req(since, None, 2, false)).await, expected);
    assert_eq!(agent.flows(req(since, None, 2, true)).await, expected);
    assert_eq!(
        agent
            .flows(req(
                t("frontend>users:80 syn"),
                t("reco>world:443 denied v6"),
                2,
                false
            ))
            .await,
        ["frontend>users:80 syn", "users>frontend syn-ack"]
    );
    // `first` with `until`: the oldest N up to `until`.
    assert_eq!(
        agent
            .flows(req(None, t("users>frontend syn-ack"), 2, true))
            .await,
        ["cron>db syn", "db>cron syn-ack"]
    );
    // `until` with `number` (no `since`): the last N at or before `until`.
    assert_eq!(
        agent
            .flows(req(None, t("users>frontend syn-ack"), 2, false))
            .await,
        ["frontend>users:80 syn", "users>frontend syn-ack"]
    );
}

// ---- GetFlows: filters ------------------------------------------------------------------------

#[tokio::test]
async fn whitelist_and_blacklist_select_exactly_the_matching_flows() {
    let (agent, _) = Agent::with_fixture().await;
    let filtered = |whitelist: Vec<FlowFilter>, blacklist: Vec<FlowFilter>| GetFlowsRequest {
        number: u64::MAX,
        whitelist,
        blacklist,
        ..Default::default()
    };
    let dropped = [
        "billing>users:80 denied",
        "reco>world:443 denied v6",
        "reco>world:443 dropped v6",
        "reco>users echo denied v6",
        "world>users invalid",
    ];
    // --verdict DROPPED: drop events and denied policy verdicts, not the audited one.
    assert_eq!(
        agent
            .flows(filtered(vec![verdict(Verdict::Dropped)], vec![]))
            .await,
        dropped
    );
    assert_eq!(
        agent
            .flows(filtered(vec![verdict(Verdict::Audit)], vec![]))
            .await,
        ["frontend>coredns:53 audit"]
    );
    // --from-pod default/frontend: a pod name prefix in a namespace.
    let from_frontend = FlowFilter {
        source_pod: vec!["default/frontend".into()],
        ..Default::default()
    };
    assert_eq!(
        agent.flows(filtered(vec![from_frontend], vec![])).await,
        [
            "frontend>users:80 allowed",
            "frontend>users:80 syn",
            "frontend>users echo",
            "frontend>coredns:53 audit",
            "frontend>coredns:53",
        ]
    );
    // --not --namespace kube-system: the two filters of --namespace go to the blacklist.
    let kube_system = vec![
        FlowFilter {
            source_pod: vec!["kube-system/".into()],
            ..Default::default()
        },
        FlowFilter {
            destination_pod: vec!["kube-system/".into()],
            ..Default::default()
        },
    ];
    let without: Vec<&str> = FIXTURE
        .iter()
        .copied()
        .filter(|n| !n.contains("coredns"))
        .collect();
    assert_eq!(
        agent.flows(filtered(vec![], kube_system.clone())).await,
        without
    );
    // Whitelist minus blacklist: IPv4 drops.
    let ipv6 = FlowFilter {
        ip_version: vec![flow::IpVersion::IPv6 as i32],
        ..Default::default()
    };
    assert_eq!(
        agent
            .flows(filtered(vec![verdict(Verdict::Dropped)], vec![ipv6]))
            .await,
        ["billing>users:80 denied", "world>users invalid"]
    );
    // Several whitelist filters: any may match. Within one filter every field must match.
    let icmp_replies = FlowFilter {
        protocol: vec!["icmp".into()],
        reply: vec![true],
        ..Default::default()
    };
    assert_eq!(
        agent
            .flows(filtered(
                vec![icmp_replies, verdict(Verdict::Audit)],
                vec![]
            ))
            .await,
        ["users>frontend echo-reply", "frontend>coredns:53 audit"]
    );
    // `number` counts matching flows only, last or first.
    let drops = |number, first| GetFlowsRequest {
        number,
        first,
        whitelist: vec![verdict(Verdict::Dropped)],
        ..Default::default()
    };
    assert_eq!(agent.flows(drops(2, false)).await, dropped[3..]);
    assert_eq!(agent.flows(drops(2, true)).await, dropped[..2]);
}

#[tokio::test]
async fn invalid_requests_are_rejected_as_invalid_arguments_naming_the_problem() {
    let (agent, _) = Agent::with_fixture().await;
    let status = agent
        .flows_error(GetFlowsRequest {
            first: true,
            follow: true,
            ..Default::default()
        })
        .await;
    assert_eq!(
        (status.code(), status.message()),
        (
            Code::InvalidArgument,
            "first cannot be combined with follow"
        )
    );

    let status = agent
        .flows_error(GetFlowsRequest {
            number: 20,
            blacklist: vec![
                verdict(Verdict::Dropped),
                FlowFilter {
                    destination_ip: vec!["10.244.0.0/16".into(), "10.244.1.0/33".into()],
                    ..Default::default()
                },
            ],
            ..Default::default()
        })
        .await;
    assert_eq!(
        (status.code(), status.message()),
        (
            Code::InvalidArgument,
            "blacklist[1].destination_ip: invalid CIDR \"10.244.1.0/33\""
        )
    );

    let status = agent
        .flows_error(GetFlowsRequest {
            number: 20,
            field_mask: Some(FieldMask {
                paths: vec!["source.pod_name".into(), "source.podname".into()],
            }),
            ..Default::default()
        })
        .await;
    assert_eq!(
        (status.code(), status.message()),
        (
            Code::InvalidArgument,
            "invalid field mask path `source.podname`: `source` has no field `podname`"
        )
    );
}

// ---- GetFlows: field mask ---------------------------------------------------------------------

/// The mask the hubble CLI sends by default for compact, dict and table output.
const HUBBLE_DEFAULT_MASK: [&str; 20] = [
    "time",
    "verdict",
    "ethernet",
    "IP",
    "l4",
    "source.identity",
    "source.namespace",
    "source.pod_name",
    "destination.identity",
    "destination.namespace",
    "destination.pod_name",
    "Type",
    "node_name",
    "l7",
    "event_type",
    "source_service",
    "destination_service",
    "is_reply",
    "Summary",
    "ip_trace_id",
];

#[tokio::test]
async fn a_field_mask_returns_only_the_masked_fields() {
    let (agent, _) = Agent::with_fixture().await;
    let req = |mask: Option<FieldMask>| GetFlowsRequest {
        number: 1,
        whitelist: vec![FlowFilter {
            protocol: vec!["icmp".into()],
            reply: vec![true],
            ..Default::default()
        }],
        field_mask: mask,
        ..Default::default()
    };
    let only_flow = |mut responses: Vec<GetFlowsResponse>| {
        assert_eq!(responses.len(), 1, "{responses:?}");
        let r = responses.remove(0);
        assert_eq!(r.node_name, NODE);
        match r.response_types {
            Some(ResponseTypes::Flow(f)) => (r.time, f),
            other => panic!("{other:?}"),
        }
    };
    let (_, full) = only_flow(agent.responses(req(None)).await);
    let (time, masked) = only_flow(
        agent
            .responses(req(Some(FieldMask {
                paths: HUBBLE_DEFAULT_MASK.iter().map(|p| p.to_string()).collect(),
            })))
            .await,
    );
    let time_of_flow = agent.time_of("users>frontend echo-reply");
    assert_eq!(time, Some(time_of_flow));
    let endpoint = |e: &Option<flow::Endpoint>| {
        let e = e.clone().unwrap();
        Some(flow::Endpoint {
            identity: e.identity,
            namespace: e.namespace,
            pod_name: e.pod_name,
            ..Default::default()
        })
    };
    let expected = Flow {
        time: full.time,
        verdict: full.verdict,
        ethernet: full.ethernet.clone(),
        ip: full.ip.clone(),
        l4: full.l4.clone(),
        source: endpoint(&full.source),
        destination: endpoint(&full.destination),
        r#type: full.r#type,
        node_name: full.node_name.clone(),
        l7: full.l7.clone(),
        event_type: full.event_type,
        source_service: full.source_service.clone(),
        destination_service: full.destination_service.clone(),
        is_reply: full.is_reply,
        summary: full.summary.clone(),
        ip_trace_id: full.ip_trace_id,
        ..Default::default()
    };
    assert_eq!(masked, expected);
    // What the mask removed was there.
    assert!(!full.uuid.is_empty() && full.interface.is_some() && !full.node_labels.is_empty());
    assert_eq!(full.source.as_ref().unwrap().cluster_name, CLUSTER);
    assert_eq!(full.summary, "ICMPv4 EchoReply");

    // A mask without `time` still leaves the response's time: the relay sorts on it.
    let (time, masked) = only_flow(
        agent
            .responses(req(Some(FieldMask {
                paths: vec!["Summary".into()],
            })))
            .await,
    );
    assert_eq!(time, Some(time_of_flow));
    assert_eq!(
        masked,
        Flow {
            summary: "ICMPv4 EchoReply".into(),
            ..Default::default()
        }
    );
}

// ---- GetFlows: follow -------------------------------------------------------------------------

#[tokio::test]
async fn follow_returns_history_then_new_flows_as_they_are_stored() {
    let (mut agent, base) = Agent::with_fixture().await;
    let mut stream = agent
        .follow(GetFlowsRequest {
            number: 2,
            follow: true,
            ..Default::default()
        })
        .await;
    assert_eq!(
        agent.next_n(&mut stream, 2).await,
        ["frontend>coredns:53", "users>world:443 fin"]
    );
    let t = base + 20 * SEC;
    agent.push(vec![named("new 1", later_reply(t))]);
    assert_eq!(agent.next(&mut stream).await, "new 1");
    agent.push(vec![
        named("new 2", later_reply(t + SEC)),
        named("new 3", later_reply(t + 2 * SEC)),
    ]);
    agent.push(vec![named("new 4", later_reply(t + 3 * SEC))]);
    assert_eq!(
        agent.next_n(&mut stream, 3).await,
        ["new 2", "new 3", "new 4"]
    );

    // Filters apply to history and to new flows: the drop arriving first proves the
    // forwarded flow pushed before it was filtered out.
    let mut drops = agent
        .follow(GetFlowsRequest {
            number: 1,
            follow: true,
            whitelist: vec![verdict(Verdict::Dropped)],
            ..Default::default()
        })
        .await;
    assert_eq!(agent.next(&mut drops).await, "world>users invalid");
    agent.push(vec![
        named("new 5", later_reply(t + 4 * SEC)),
        named("new drop 6", later_drop(t + 5 * SEC)),
    ]);
    assert_eq!(agent.next(&mut drops).await, "new drop 6");
    assert_eq!(agent.next_n(&mut stream, 2).await, ["new 5", "new drop 6"]);
}

#[tokio::test]
async fn follow_since_returns_every_flow_since_then_ignoring_number() {
    let (mut agent, base) = Agent::with_fixture().await;
    let mut stream = agent
        .follow(GetFlowsRequest {
            number: 1,
            follow: true,
            since: Some(agent.time_of("frontend>coredns:53 audit")),
            ..Default::default()
        })
        .await;
    assert_eq!(
        agent.next_n(&mut stream, 3).await,
        [
            "frontend>coredns:53 audit",
            "frontend>coredns:53",
            "users>world:443 fin"
        ]
    );
    agent.push(vec![named("new", later_reply(base + 20 * SEC))]);
    assert_eq!(agent.next(&mut stream).await, "new");
}

#[tokio::test]
async fn a_follower_overtaken_by_the_ring_gets_the_exact_number_of_lost_flows() {
    let mut agent = Agent::start(8).await;
    let base = now_ns();
    let mut stream = agent.following(base).await;
    // 20 flows into a ring of 8 before the follower reads again: 12 are overwritten.
    let before = now_ns();
    agent.push(
        (0..20)
            .map(|i| named(&format!("burst {i}"), later_reply(base + (i + 1) * SEC)))
            .collect(),
    );
    let lost = agent.next_response(&mut stream).await;
    let after = now_ns();
    assert_eq!(agent.describe(&lost), "lost HUBBLE_RING_BUFFER 12");
    let Some(ResponseTypes::LostEvents(event)) = &lost.response_types else {
        unreachable!()
    };
    let when = ts_ns(lost.time.as_ref().unwrap());
    assert!((before..=after).contains(&when), "lost event time {when}");
    assert_eq!(
        (event.cpu, event.first, event.last),
        (None, lost.time, lost.time)
    );
    let expected: Vec<String> = (12..20).map(|i| format!("burst {i}")).collect();
    assert_eq!(agent.next_n(&mut stream, 8).await, expected);

    let status = agent.status().await;
    assert_eq!(
        (status.num_flows, status.max_flows, status.seen_flows),
        (8, 8, 22)
    );
}

#[tokio::test]
async fn events_the_kernel_lost_during_a_follow_are_reported_with_their_number() {
    let mut agent = Agent::start(64).await;
    agent.stats.kernel_lost.store(5, Ordering::Relaxed);
    agent.stats.decode_errors.store(2, Ordering::Relaxed);
    let base = now_ns();
    let mut stream = agent.following(base).await;
    // Losses from before the request are not reported to it; the rise since is.
    agent.stats.kernel_lost.store(12, Ordering::Relaxed);
    assert_eq!(
        agent.next(&mut stream).await,
        "lost PERF_EVENT_RING_BUFFER 7"
    );
    agent.push(vec![named("after", later_reply(base + SEC))]);
    assert_eq!(agent.next(&mut stream).await, "after");
    // ServerStatus counts every event that never became a flow.
    assert_eq!(agent.status().await.num_lost_events, 12 + 2);
}

// ---- ServerStatus, GetNodes, GetNamespaces ---------------------------------------------------

#[tokio::test]
async fn server_status_reports_the_store() {
    let agent = Agent::start(64).await;
    let empty = agent.status().await;
    assert_eq!(
        (empty.num_flows, empty.max_flows, empty.seen_flows),
        (0, 64, 0)
    );
    assert_eq!(empty.flows_rate, 0.0);

    let (agent, _) = Agent::with_fixture().await;
    let response = agent
        .observer()
        .server_status(ServerStatusRequest {})
        .await
        .unwrap();
    assert_eq!(
        response
            .metadata()
            .get("hubble-server-version")
            .map(|v| v.to_str().unwrap()),
        Some(VERSION)
    );
    let s = response.into_inner();
    assert_eq!((s.num_flows, s.max_flows, s.seen_flows), (17, 64, 17));
    assert!(s.flows_rate > 0.0, "flows_rate {}", s.flows_rate);
    assert!(s.uptime_ns > 0);
    assert_eq!(s.version, VERSION);
    assert_eq!(s.num_lost_events, 0);
    // An agent leaves the relay's fields unset.
    assert_eq!(
        (s.num_connected_nodes, s.num_unavailable_nodes),
        (None, None)
    );
    assert!(s.unavailable_nodes.is_empty());
}

#[tokio::test]
async fn get_nodes_reports_this_node_connected_with_its_flow_counts() {
    let (agent, _) = Agent::with_fixture().await;
    let response = agent
        .observer()
        .get_nodes(GetNodesRequest {})
        .await
        .unwrap();
    assert_eq!(
        response
            .metadata()
            .get("hubble-server-version")
            .map(|v| v.to_str().unwrap()),
        Some(VERSION)
    );
    let nodes = response.into_inner().nodes;
    let [node] = nodes.as_slice() else {
        panic!("{nodes:?}")
    };
    assert!(node.uptime_ns > 0);
    assert_eq!(
        *node,
        weir_proto::observer::Node {
            name: NODE.into(),
            version: VERSION.into(),
            address: NODE_ADDRESS.into(),
            state: NodeState::NodeConnected as i32,
            tls: None,
            uptime_ns: node.uptime_ns,
            num_flows: 17,
            max_flows: 64,
            seen_flows: 17,
        }
    );
}

async fn namespaces(agent: &Agent) -> Vec<(String, String)> {
    agent
        .observer()
        .get_namespaces(GetNamespacesRequest {})
        .await
        .expect("GetNamespaces")
        .into_inner()
        .namespaces
        .into_iter()
        .map(|n| (n.cluster, n.namespace))
        .collect()
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(c, n)| (c.to_string(), n.to_string()))
        .collect()
}

#[tokio::test]
async fn get_namespaces_lists_namespaces_with_flows_in_the_last_hour() {
    let (agent, _) = Agent::with_fixture().await;
    // `legacy` only has flows from two hours ago; the world has no namespace.
    assert_eq!(
        namespaces(&agent).await,
        pairs(&[
            (CLUSTER, "default"),
            (CLUSTER, "kube-system"),
            (CLUSTER, "prod")
        ])
    );
}

#[tokio::test]
async fn get_namespaces_sorts_by_cluster_then_namespace_without_duplicates() {
    let mut agent = Agent::start(64).await;
    let now = now_ns();
    let east_web = pod("east", "web", "web-0", "web", 70001, Some((5, 30, "lxc0")));
    let east_db = pod("east", "db", "db-0", "db", 70002, None);
    let west_api = pod("west", "api", "api-0", "api", 70003, None);
    let flow = |src: &Pod, dst: &Pod, t: i64| {
        F::new(abi::EVENT_TRACE, (src, "10.1.0.1"), (dst, "10.1.0.2"))
            .tcp(40000, 80, SYN)
            .at(&east_web, src.meta.ep_id == 0)
            .trace(obs_point::TO_ENDPOINT, trace_reason::NEW)
            .stored(t)
    };
    agent.push(vec![
        named("west>east", flow(&west_api, &east_web, now - 3 * SEC)),
        named("east>east", flow(&east_web, &east_db, now - 2 * SEC)),
        named("west>east again", flow(&west_api, &east_web, now - SEC)),
    ]);
    assert_eq!(
        namespaces(&agent).await,
        pairs(&[("east", "db"), ("east", "web"), ("west", "api")])
    );
}

// ---- Peer, health, unimplemented RPCs, headers -----------------------------------------------

#[tokio::test]
async fn peer_notify_announces_this_node_and_stays_open() {
    let agent = Agent::start(64).await;
    let mut stream = PeerClient::new(agent.channel.clone())
        .notify(NotifyRequest {})
        .await
        .expect("Notify")
        .into_inner();
    let first = tokio::time::timeout(WAIT, stream.message())
        .await
        .expect("a first notification")
        .expect("Notify stream")
        .expect("not the end of the stream");
    assert_eq!(first.name, NODE);
    assert_eq!(first.address, NODE_ADDRESS);
    assert_eq!(first.r#type(), ChangeNotificationType::PeerAdded);
    assert_eq!(first.tls, None);
    // A relay treats the end of the stream as the peer service going away: nothing follows.
    assert!(
        tokio::time::timeout(Duration::from_millis(300), stream.message())
            .await
            .is_err(),
        "the Notify stream sent more or ended"
    );
}

#[tokio::test]
async fn health_reports_the_observer_serving() {
    let agent = Agent::start(64).await;
    let mut health = HealthClient::new(agent.channel.clone());
    let check = |service: &str| HealthCheckRequest {
        service: service.into(),
    };
    assert_eq!(HEALTH_SERVICE, "hubble.server.Observer");
    let r = health.check(check(HEALTH_SERVICE)).await.unwrap();
    assert_eq!(r.into_inner().status(), ServingStatus::Serving);
    let r = health.check(check("")).await.unwrap();
    assert_eq!(r.into_inner().status(), ServingStatus::Serving);
    let err = health.check(check("hubble.relay.Nope")).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
}

#[tokio::test]
async fn agent_and_debug_events_are_unimplemented() {
    let agent = Agent::start(64).await;
    let err = agent
        .observer()
        .get_agent_events(GetAgentEventsRequest::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unimplemented);
    let err = agent
        .observer()
        .get_debug_events(GetDebugEventsRequest::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unimplemented);
}

#[tokio::test]
async fn get_flows_answers_with_the_server_version_header() {
    let (agent, _) = Agent::with_fixture().await;
    let response = agent.observer().get_flows(all()).await.unwrap();
    assert_eq!(
        response
            .metadata()
            .get("hubble-server-version")
            .map(|v| v.to_str().unwrap()),
        Some(VERSION)
    );
}

#[tokio::test]
async fn serve_unix_replaces_a_stale_socket_file_and_removes_it_on_shutdown() {
    let agent = Agent::start_with(8, PolicyStatus::default(), |socket| {
        std::fs::create_dir_all(socket.parent().unwrap()).unwrap();
        std::fs::write(socket, "left over by a killed agent").unwrap();
    })
    .await;
    assert_eq!(agent.status().await.max_flows, 8);
    let socket = agent.stop().await;
    assert!(!socket.exists(), "{} still exists", socket.display());
}

// ---- weir.Agent/GetPolicy ---------------------------------------------------------------------

const CLUSTER_YAML: &str = "
name: lab
podCIDRs: [10.244.0.0/16, 'fd00:10:244::/48']
nodes:
  - {name: lab-node1, ips: [192.168.50.11]}
  - {name: lab-node2, ips: [192.168.50.12]}
namespaces:
  - {name: default}
";

const ENDPOINTS: [(&str, &str); 3] = [
    (
        "/etc/weir/state/endpoints/users-0.yaml",
        "{name: users-0, namespace: default, node: lab-node1, labels: {app: users}, ips: [10.244.1.23, 'fd00:10:244:1::23'], interface: lxc5e1a9c2b7d40}",
    ),
    (
        "/etc/weir/state/endpoints/frontend.yaml",
        "{name: frontend-7c9d4, namespace: default, node: lab-node1, labels: {app: frontend}, ips: [10.244.1.15], interface: lxc1f0e2d3c4b5a}",
    ),
    (
        "/etc/weir/state/endpoints/billing.yaml",
        "{name: billing-5f8b9, namespace: default, node: lab-node2, labels: {app: billing}, ips: [10.244.2.31], interface: lxc77}",
    ),
];

const POLICY: &str = r#"apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata:
  name: users-ingress
  namespace: default
spec:
  endpointSelector:
    matchLabels:
      app: users
  ingress:
    - fromEndpoints:
        - matchLabels:
            app: frontend
      toPorts:
        - ports:
            - port: "8080"
              endPort: 8087
              protocol: TCP
        - ports:
            - port: "80"
              protocol: TCP
          rules:
            http:
              - method: GET
                path: /users
  ingressDeny:
    - fromEndpoints:
        - matchLabels:
            app: billing
"#;

fn policy_status() -> PolicyStatus {
    let state = ClusterState::from_sources(
        Some(("/etc/weir/state/cluster.yaml", CLUSTER_YAML)),
        ENDPOINTS,
    )
    .expect("state");
    let set = PolicySet::parse_str("/etc/weir/policies/users.yaml", POLICY).expect("policy");
    let compiled = weir_policy::compile(
        &state,
        &set,
        &Options {
            local_node: NODE.into(),
            allow_localhost: true,
            http_flow_headers: Vec::new(),
        },
    )
    .expect("compile");
    let at = |secs| UNIX_EPOCH + Duration::from_secs(secs);
    PolicyStatus {
        revision: 4,
        policy_gen: 9,
        applied_at: Some(at(1_795_455_000)),
        policy_dir: "/etc/weir/policies".into(),
        state_dir: "/etc/weir/state".into(),
        policy_files: vec![SourceFile {
            path: "/etc/weir/policies/users.yaml".into(),
            content: POLICY.into(),
        }],
        state_files: std::iter::once(("/etc/weir/state/cluster.yaml", CLUSTER_YAML))
            .chain(ENDPOINTS)
            .map(|(path, content)| SourceFile {
                path: path.into(),
                content: content.into(),
            })
            .collect(),
        compiled,
        endpoints: vec![
            EndpointRuntime {
                namespace: "default".into(),
                name: "users-0".into(),
                interface: "lxc5e1a9c2b7d40".into(),
                ifindex: 14,
                ep_id: 412,
                ips: vec!["10.244.1.23".parse().unwrap(), "fd00:10:244:1::23".parse().unwrap()],
            },
            // Its interface does not exist (yet): not attached.
            EndpointRuntime {
                namespace: "default".into(),
                name: "frontend-7c9d4".into(),
                interface: "lxc1f0e2d3c4b5a".into(),
                ifindex: 0,
                ep_id: 311,
                ips: vec!["10.244.1.15".parse().unwrap()],
            },
        ],
        last_error: Some((
            at(1_795_455_060),
            "/etc/weir/policies/broken.yaml: document 1: spec.ingress[0].toPorts[0].ports[0].port: \
             invalid port \"http-alt\""
                .into(),
        )),
    }
}

#[tokio::test]
async fn get_policy_reports_what_is_enforced() {
    let status = policy_status();
    let compiled = status.compiled.clone();
    let agent = Agent::start_with(8, status, |_| {}).await;
    let p = AgentClient::new(agent.channel.clone())
        .get_policy(GetPolicyRequest {})
        .await
        .expect("GetPolicy")
        .into_inner();

    assert_eq!((p.revision, p.policy_generation), (4, 9));
    assert_eq!(p.applied_at, Some(ts(1_795_455_000 * SEC)));
    assert_eq!(p.node_name, NODE);
    assert_eq!(
        (p.policy_dir.as_str(), p.state_dir.as_str()),
        ("/etc/weir/policies", "/etc/weir/state")
    );
    let files = |list: &[weir_proto::weir::SourceFile]| -> Vec<(String, String)> {
        list.iter()
            .map(|f| (f.path.clone(), f.content.clone()))
            .collect()
    };
    assert_eq!(
        files(&p.policy_files),
        pairs(&[("/etc/weir/policies/users.yaml", POLICY)])
    );
    assert_eq!(
        files(&p.state_files),
        pairs(&[
            ("/etc/weir/state/cluster.yaml", CLUSTER_YAML),
            ENDPOINTS[0],
            ENDPOINTS[1],
            ENDPOINTS[2]
        ])
    );
    assert_eq!(
        p.last_error,
        "/etc/weir/policies/broken.yaml: document 1: spec.ingress[0].toPorts[0].ports[0].port: \
         invalid port \"http-alt\""
    );
    assert_eq!(p.last_error_time, Some(ts(1_795_455_060 * SEC)));

    // Endpoints of this node only, sorted by namespace and name.
    let who = |identity: u32| -> String {
        let labels = compiled
            .identities
            .get(&identity)
            .cloned()
            .unwrap_or_default();
        labels
            .iter()
            .find_map(|l| l.strip_prefix("k8s:app="))
            .map(str::to_string)
            .unwrap_or_else(|| match identity {
                0 => "any".into(),
                _ => labels.join(","),
            })
    };
    let endpoints: Vec<_> = p
        .endpoints
        .iter()
        .map(|e| {
            (
                e.name.as_str(),
                e.namespace.as_str(),
                e.endpoint_id,
                who(e.identity),
                e.interface.as_str(),
                e.attached,
                e.ips.join(","),
            )
        })
        .collect();
    assert_eq!(
        endpoints,
        [
            (
                "frontend-7c9d4",
                "default",
                311,
                "frontend".to_string(),
                "lxc1f0e2d3c4b5a",
                false,
                "10.244.1.15".to_string()
            ),
            (
                "users-0",
                "default",
                412,
                "users".to_string(),
                "lxc5e1a9c2b7d40",
                true,
                "10.244.1.23,fd00:10:244:1::23".to_string()
            ),
        ]
    );
    let users = &p.endpoints[1];
    assert_eq!(
        users.labels,
        [
            "k8s:app=users",
            "k8s:io.cilium.k8s.namespace.labels.kubernetes.io/metadata.name=default",
            "k8s:io.cilium.k8s.policy.cluster=lab",
            "k8s:io.kubernetes.pod.namespace=default",
        ]
    );

    let policy_names = |list: &[flow::Policy]| -> Vec<String> {
        list.iter()
            .map(|p| format!("{} {}/{} rev {}", p.kind, p.namespace, p.name, p.revision))
            .collect()
    };
    let users_ingress = "CiliumNetworkPolicy default/users-ingress rev 4";
    let ingress = users.ingress.as_ref().unwrap();
    assert!(ingress.enforced);
    assert_eq!(policy_names(&ingress.selected_by), [users_ingress]);
    let mut rules: Vec<_> = ingress
        .rules
        .iter()
        .map(|r| {
            assert_eq!(
                r.identity_labels,
                compiled
                    .identities
                    .get(&r.identity)
                    .cloned()
                    .unwrap_or_default()
            );
            (
                who(r.identity),
                r.protocol.as_str(),
                r.ports.as_str(),
                r.deny,
                r.audit,
                r.match_type.as_str(),
                policy_names(&r.policies),
            )
        })
        .collect();
    // Entries are ordered by identity number, which is a hash: compare them sorted by name.
    rules.sort();
    let by = vec![users_ingress.to_string()];
    assert_eq!(
        rules,
        [
            (
                "billing".into(),
                "ANY",
                "",
                true,
                false,
                "L3-Only",
                by.clone()
            ),
            (
                "frontend".into(),
                "TCP",
                "80",
                false,
                false,
                "L3-L4",
                by.clone()
            ),
            (
                "frontend".into(),
                "TCP",
                "8080-8087",
                false,
                false,
                "L3-L4",
                by.clone()
            ),
            (
                "reserved:host".into(),
                "ANY",
                "",
                false,
                false,
                "L3-Only",
                vec![]
            ),
        ]
    );
    let egress = users.egress.as_ref().unwrap();
    assert!(!egress.enforced && egress.selected_by.is_empty() && egress.rules.is_empty());

    let notices: Vec<_> = p
        .notices
        .iter()
        .map(|n| {
            (
                policy_names(n.policy.as_slice()),
                n.location.as_str(),
                n.message.as_str(),
            )
        })
        .collect();
    // The policy's HTTP rules are enforced by the datapath now: nothing is reported as not
    // enforced.
    assert!(notices.is_empty(), "{notices:?}");
}
