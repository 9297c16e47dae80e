//! End-to-end: the real agent binary enforcing policy on a lab of network namespaces, with real
//! traffic, and flows read back over its gRPC API. Privileged: under `CI=true` these run and
//! fail loudly when root, BPF or network namespaces are missing; elsewhere they skip when not
//! root.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::{Duration, Instant};

use tokio::runtime::Runtime;
use tonic::transport::{Channel, Endpoint, Uri};
use weir_lab::{AgentProcess, Lab, LabConfig, NodeDef, Signal};
use weir_proto::flow::{self, Flow, FlowFilter};
use weir_proto::observer::{
    GetFlowsRequest, ServerStatusRequest, get_flows_response::ResponseTypes,
    observer_client::ObserverClient,
};
use weir_proto::weir::{GetPolicyRequest, GetPolicyResponse, agent_client::AgentClient};

const AGENT: &str = env!("CARGO_BIN_EXE_weir-agent");
const SHORT: Duration = Duration::from_secs(2);
const HTTP: Duration = Duration::from_secs(5);
const WAIT: Duration = Duration::from_secs(30);

const USERS_POLICY: &str = r#"
apiVersion: cilium.io/v2
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
            - port: "80"
              protocol: TCP
---
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata:
  name: reco-egress-lockdown
  namespace: default
spec:
  endpointSelector:
    matchLabels:
      app: reco
  egress:
    - toEndpoints:
        - matchLabels:
            "k8s:io.kubernetes.pod.namespace": kube-system
            "k8s:k8s-app": kube-dns
      toPorts:
        - ports:
            - port: "53"
              protocol: UDP
"#;

/// A lab with a running agent and clients for its API.
struct Setup {
    lab: Lab,
    agent: AgentProcess,
    rt: Runtime,
}

fn prefix(test: &str) -> String {
    format!("wa{}{}", test, std::process::id() % 10_000)
}

impl Setup {
    fn new(test: &str, policies: &[(&str, &str)]) -> Setup {
        Setup::with_args(test, policies, &[])
    }

    /// A lab and an agent started with `args` besides the usual ones.
    fn with_args(test: &str, policies: &[(&str, &str)], args: &[&str]) -> Setup {
        Setup::from_config(LabConfig::with_prefix(prefix(test)), policies, args)
    }

    /// A lab of `config` and the agent of its first node.
    fn from_config(config: LabConfig, policies: &[(&str, &str)], args: &[&str]) -> Setup {
        let lab = Lab::up(config).expect("lab up");
        for (name, text) in policies {
            std::fs::write(lab.policy_dir().join(name), text).unwrap();
        }
        let mut argv = vec!["--listen-address", "none", "--poll-interval", "200ms"];
        argv.extend_from_slice(args);
        let mut agent = lab
            .spawn_agent("node1", AGENT, &argv)
            .expect("start weir-agent");
        agent
            .wait_ready()
            .unwrap_or_else(|e| panic!("agent not ready: {e}\n{}", agent_log(&agent)));
        let setup = Setup {
            lab,
            agent,
            rt: Runtime::new().unwrap(),
        };
        setup.wait_policy(|p| p.revision > 0 && p.endpoints.iter().all(|e| e.attached));
        setup
    }

    fn channel(&self) -> Channel {
        let path = self.agent.socket_path().to_path_buf();
        self.rt.block_on(async move {
            Endpoint::from_static("http://weir.invalid")
                .connect_with_connector(tower::service_fn(move |_: Uri| {
                    let path = path.clone();
                    async move {
                        let stream = tokio::net::UnixStream::connect(path).await?;
                        Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(stream))
                    }
                }))
                .await
                .expect("connect to the agent's socket")
        })
    }

    fn policy(&self) -> GetPolicyResponse {
        let mut client = AgentClient::new(self.channel());
        self.rt
            .block_on(client.get_policy(GetPolicyRequest {}))
            .expect("GetPolicy")
            .into_inner()
    }

    /// Polls GetPolicy until `done` holds.
    fn wait_policy(&self, done: impl Fn(&GetPolicyResponse) -> bool) -> GetPolicyResponse {
        let start = Instant::now();
        loop {
            let p = self.policy();
            if done(&p) {
                return p;
            }
            assert!(
                start.elapsed() < WAIT,
                "policy state never became as expected: {p:#?}\nagent log:\n{}",
                agent_log(&self.agent)
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn flows(&self, filter: FlowFilter) -> Vec<Flow> {
        let mut client = ObserverClient::new(self.channel());
        self.rt.block_on(async {
            let mut stream = client
                .get_flows(GetFlowsRequest {
                    number: 65_535,
                    whitelist: vec![filter],
                    ..Default::default()
                })
                .await
                .expect("GetFlows")
                .into_inner();
            let mut out = Vec::new();
            while let Some(r) = stream.message().await.expect("flow stream") {
                if let Some(ResponseTypes::Flow(f)) = r.response_types {
                    out.push(f);
                }
            }
            out
        })
    }

    /// ServerStatus `num_lost_events`: events lost in the kernel or that did not decode.
    fn agent_lost_events(&self) -> u64 {
        let mut client = ObserverClient::new(self.channel());
        self.rt
            .block_on(client.server_status(ServerStatusRequest {}))
            .expect("ServerStatus")
            .into_inner()
            .num_lost_events
    }

    /// Polls GetFlows until a flow matching `filter` satisfies `pred`; returns it.
    fn wait_flow(&self, what: &str, filter: FlowFilter, pred: impl Fn(&Flow) -> bool) -> Flow {
        let start = Instant::now();
        loop {
            let flows = self.flows(filter.clone());
            if let Some(f) = flows.iter().find(|f| pred(f)) {
                return f.clone();
            }
            assert!(
                start.elapsed() < WAIT,
                "no flow {what}; flows matching the filter:\n{}\nagent log:\n{}",
                flows
                    .iter()
                    .map(|f| format!("{f:?}"))
                    .collect::<Vec<_>>()
                    .join("\n"),
                agent_log(&self.agent)
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn identity(&self, name: &str) -> u32 {
        self.policy()
            .endpoints
            .iter()
            .find(|e| e.name == name)
            .unwrap_or_else(|| panic!("endpoint {name} not in GetPolicy"))
            .identity
    }

    fn addr(&self, endpoint: &str, port: u16, v6: bool) -> SocketAddr {
        let ep = self.lab.endpoint(endpoint).unwrap();
        let ip: IpAddr = if v6 { ep.ipv6.into() } else { ep.ipv4.into() };
        SocketAddr::new(ip, port)
    }

    /// HTTP GET from one place to an endpoint's server; the status or the error.
    fn get(
        &self,
        from: &str,
        to: &str,
        port: u16,
        v6: bool,
    ) -> Result<u16, weir_lab::TrafficError> {
        let url = format!("http://{}/api/v1/users", self.addr(to, port, v6));
        self.lab
            .http_request(from, "GET", &url, HTTP)
            .map(|r| r.status)
    }

    fn assert_blocked(&self, from: &str, to: &str, port: u16, v6: bool) {
        let err = self
            .lab
            .tcp_connect(from, self.addr(to, port, v6), SHORT)
            .map(|_| ())
            .expect_err(&format!("{from} -> {to}:{port} must be dropped"));
        assert!(
            err.is_timeout(),
            "{from} -> {to}:{port}: expected a silent drop (timeout), got {err}"
        );
    }
}

fn agent_log(agent: &AgentProcess) -> String {
    std::fs::read_to_string(agent.log_path()).unwrap_or_default()
}

fn pod(p: &str) -> FlowFilter {
    FlowFilter {
        source_pod: vec![p.to_string()],
        ..Default::default()
    }
}

fn names(policies: &[flow::Policy]) -> Vec<&str> {
    policies.iter().map(|p| p.name.as_str()).collect()
}

fn dport(f: &Flow) -> u32 {
    match f.l4.as_ref().and_then(|l| l.protocol.as_ref()) {
        Some(flow::layer4::Protocol::Tcp(t)) => t.destination_port,
        Some(flow::layer4::Protocol::Udp(u)) => u.destination_port,
        _ => 0,
    }
}

fn write_policy(dir: &Path, name: &str, text: &str) {
    // Write then rename, as an operator's tooling would, so the agent never reads half a file.
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(tmp, dir.join(name)).unwrap();
}

#[test]
fn enforces_policy_and_reports_flows_with_their_policies() {
    if !weir_lab::privileged("enforces_policy_and_reports_flows_with_their_policies") {
        return;
    }
    let s = Setup::new("e", &[("policies.yaml", USERS_POLICY)]);

    // Allowed, over IPv4 and IPv6.
    assert_eq!(s.get("frontend-0", "users-0", 80, false).unwrap(), 200);
    assert_eq!(s.get("frontend-0", "users-0", 80, true).unwrap(), 200);
    // Not selected by any policy: open.
    assert_eq!(s.get("frontend-0", "catalog-0", 80, false).unwrap(), 200);
    // Denied at users' ingress: billing, the world, and ICMP from frontend.
    s.assert_blocked("billing-0", "users-0", 80, false);
    s.assert_blocked("billing-0", "users-0", 80, true);
    s.assert_blocked("world", "users-0", 80, false);
    let users_v4 = s.lab.endpoint("users-0").unwrap().ipv4;
    assert!(
        s.lab.ping("frontend-0", users_v4.into(), SHORT).is_err(),
        "ICMP to users must be dropped"
    );
    // Denied at reco's egress (default deny, only DNS allowed).
    s.assert_blocked("reco-0", "catalog-0", 80, false);
    // The node itself may reach its endpoints (allow-localhost).
    assert_eq!(s.get("node1", "users-0", 80, false).unwrap(), 200);

    // The users server saw frontend's and the node's requests and nothing from billing or the world.
    let peers: Vec<String> = s
        .lab
        .server_requests("users-0", 80)
        .unwrap()
        .into_iter()
        .map(|r| r.peer)
        .collect();
    let billing = s.lab.endpoint("billing-0").unwrap();
    assert!(
        !peers
            .iter()
            .any(|p| p == &billing.ipv4.to_string() || p == &billing.ipv6.to_string()),
        "{peers:?}"
    );
    assert!(
        !peers.iter().any(|p| p == &weir_lab::WORLD_V4.to_string()),
        "{peers:?}"
    );
    assert!(
        peers
            .iter()
            .any(|p| p == &s.lab.endpoint("frontend-0").unwrap().ipv4.to_string()),
        "{peers:?}"
    );

    let (id_billing, id_users, id_frontend) = (
        s.identity("billing-0"),
        s.identity("users-0"),
        s.identity("frontend-0"),
    );

    // The drop, as Hubble would show it.
    let drop = s.wait_flow("billing -> users dropped", pod("default/billing-0"), |f| {
        f.verdict() == flow::Verdict::Dropped
            && f.event_type.as_ref().is_some_and(|e| e.r#type == 1)
            && dport(f) == 80
    });
    assert_eq!(drop.drop_reason_desc(), flow::DropReason::PolicyDenied);
    assert_eq!(drop.traffic_direction(), flow::TrafficDirection::Ingress);
    assert_eq!(names(&drop.ingress_denied_by), vec!["users-ingress"]);
    let (src, dst) = (
        drop.source.as_ref().unwrap(),
        drop.destination.as_ref().unwrap(),
    );
    assert_eq!(
        (src.namespace.as_str(), src.pod_name.as_str(), src.identity),
        ("default", "billing-0", id_billing)
    );
    assert_eq!((dst.pod_name.as_str(), dst.identity), ("users-0", id_users));
    assert!(
        src.labels.contains(&"k8s:app=billing".to_string()),
        "{:?}",
        src.labels
    );
    assert_eq!(drop.is_reply.as_ref().map(|b| b.value), Some(false));
    assert_eq!(drop.summary, "TCP Flags: SYN");
    assert_eq!(drop.node_name, format!("{}-node1", s.lab.prefix()));

    // The allowed connection: policy verdict, the forwarded SYN and the reply.
    let verdict = s.wait_flow(
        "frontend -> users policy verdict",
        pod("default/frontend-0"),
        |f| {
            f.event_type.as_ref().is_some_and(|e| e.r#type == 5)
                && f.destination
                    .as_ref()
                    .is_some_and(|d| d.pod_name == "users-0")
        },
    );
    assert_eq!(verdict.verdict(), flow::Verdict::Forwarded);
    assert_eq!(names(&verdict.ingress_allowed_by), vec!["users-ingress"]);
    assert_eq!(verdict.policy_match_type, 2, "L3-L4");
    let fwd = s.wait_flow(
        "frontend -> users forwarded",
        pod("default/frontend-0"),
        |f| {
            f.event_type.as_ref().is_some_and(|e| e.r#type == 4)
                && f.destination
                    .as_ref()
                    .is_some_and(|d| d.pod_name == "users-0")
                && f.is_reply.as_ref().is_some_and(|r| !r.value)
        },
    );
    assert_eq!(fwd.source.as_ref().unwrap().identity, id_frontend);
    assert_eq!(
        fwd.trace_observation_point(),
        flow::TraceObservationPoint::ToEndpoint
    );
    assert_eq!(names(&fwd.ingress_allowed_by), vec!["users-ingress"]);
    s.wait_flow("users -> frontend reply", pod("default/users-0"), |f| {
        f.verdict() == flow::Verdict::Forwarded
            && f.is_reply.as_ref().is_some_and(|r| r.value)
            && f.destination
                .as_ref()
                .is_some_and(|d| d.pod_name == "frontend-0")
    });

    // Egress default deny, attributed to the policy that selects reco.
    let egress = s.wait_flow("reco -> catalog dropped", pod("default/reco-0"), |f| {
        f.verdict() == flow::Verdict::Dropped
            && f.event_type.as_ref().is_some_and(|e| e.r#type == 1)
    });
    assert_eq!(egress.traffic_direction(), flow::TrafficDirection::Egress);
    assert_eq!(
        names(&egress.egress_denied_by),
        vec!["reco-egress-lockdown"]
    );
    assert_eq!(egress.destination.as_ref().unwrap().pod_name, "catalog-0");

    // IPv6 link-local control traffic (neighbour and multicast listener discovery) of the
    // endpoints passes unreported: nothing legitimate in the lab is dropped as spoofed.
    let spoofed: Vec<Flow> = s
        .flows(FlowFilter::default())
        .into_iter()
        .filter(|f| f.drop_reason_desc() == flow::DropReason::InvalidSourceIp)
        .collect();
    assert!(
        spoofed.is_empty(),
        "unexpected invalid-source drops: {spoofed:#?}"
    );

    // The world, by its reserved identity.
    let world = s.wait_flow(
        "world -> users dropped",
        FlowFilter {
            source_ip: vec![weir_lab::WORLD_V4.to_string()],
            ..Default::default()
        },
        |f| f.verdict() == flow::Verdict::Dropped,
    );
    let src = world.source.as_ref().unwrap();
    assert_eq!(src.identity, 2);
    assert_eq!(src.labels, vec!["reserved:world".to_string()]);
}

#[test]
fn a_killed_agent_leaves_the_datapath_enforcing_and_a_restarted_one_reports_again() {
    if !weir_lab::privileged("a_killed_agent_leaves_the_datapath_enforcing") {
        return;
    }
    let mut s = Setup::new("k", &[("policies.yaml", USERS_POLICY)]);
    assert_eq!(s.get("frontend-0", "users-0", 80, false).unwrap(), 200);
    s.assert_blocked("billing-0", "users-0", 80, false);

    // Kill the agent while traffic flows; its pinned programs and maps stay in the kernel.
    let killed_at = now_ns();
    s.agent.kill(Signal::SIGKILL).unwrap();
    s.agent
        .wait_exit(Duration::from_secs(10))
        .expect("agent did not die");
    for _ in 0..3 {
        assert_eq!(
            s.get("frontend-0", "users-0", 80, false).unwrap(),
            200,
            "allowed traffic must still pass"
        );
        s.assert_blocked("billing-0", "users-0", 80, false);
        s.assert_blocked("reco-0", "catalog-0", 80, false);
    }
    let restarted_at = now_ns();
    s.agent.restart().expect("restart the agent");
    s.agent.wait_ready().unwrap();
    s.wait_policy(|p| p.revision > 0 && p.endpoints.iter().all(|e| e.attached));

    // The new agent adopted the links: enforcement is unchanged and flows are reported again.
    assert_eq!(s.get("frontend-0", "users-0", 80, false).unwrap(), 200);
    s.assert_blocked("billing-0", "users-0", 80, false);
    let drop = s.wait_flow(
        "billing -> users dropped after restart",
        pod("default/billing-0"),
        |f| f.verdict() == flow::Verdict::Dropped && dport(f) == 80,
    );
    assert_eq!(names(&drop.ingress_denied_by), vec!["users-ingress"]);
    s.wait_flow(
        "frontend -> users forwarded after restart",
        pod("default/frontend-0"),
        |f| {
            f.verdict() == flow::Verdict::Forwarded
                && f.destination
                    .as_ref()
                    .is_some_and(|d| d.pod_name == "users-0")
        },
    );
    // Drops that happened while no agent ran waited in the pinned ring buffer.
    s.wait_flow(
        "billing -> users dropped while the agent was down",
        pod("default/billing-0"),
        |f| {
            let t = f
                .time
                .as_ref()
                .map(|t| t.seconds * 1_000_000_000 + i64::from(t.nanos))
                .unwrap_or(0);
            f.verdict() == flow::Verdict::Dropped && t > killed_at && t < restarted_at
        },
    );
    let log = agent_log(&s.agent);
    assert!(
        log.contains("adopted from a previous agent"),
        "the restarted agent must adopt the pinned links:\n{log}"
    );
}

#[test]
fn a_restarted_agent_detaches_devices_no_longer_configured() {
    if !weir_lab::privileged("a_restarted_agent_detaches_devices_no_longer_configured") {
        return;
    }
    // The lab's first node has one device, its world uplink ext0 (`--devices ext0`).
    let mut s = Setup::new("dv", &[]);
    let node = s.lab.node("node1").unwrap().name.clone();
    let links = Path::new("/sys/fs/bpf/weir").join(node).join("links");
    let device_pins = || -> Vec<std::path::PathBuf> {
        let mut pins: Vec<_> = std::fs::read_dir(&links)
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with("netdev-"))
            .map(|e| e.path())
            .collect();
        pins.sort();
        pins
    };
    let pins = device_pins();
    assert_eq!(pins.len(), 1, "one pinned from_netdev link: {pins:?}");
    let shown = std::process::Command::new("bpftool")
        .args(["link", "show", "pinned"])
        .arg(&pins[0])
        .output()
        .unwrap();
    let shown = String::from_utf8_lossy(&shown.stdout);
    let link_id = shown
        .split(':')
        .next()
        .and_then(|id| id.trim().parse::<u32>().ok())
        .unwrap_or_else(|| panic!("no link id in bpftool's output: {shown}"));

    // The node loses its device: the new agent removes the old one's link there.
    s.agent.restart_without("--devices").unwrap();
    s.agent.wait_ready().unwrap();
    let start = Instant::now();
    while !device_pins().is_empty() {
        assert!(
            start.elapsed() < WAIT,
            "the pin of ext0's link stayed: {:?}\n{}",
            device_pins(),
            agent_log(&s.agent)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let gone = std::process::Command::new("bpftool")
        .args(["link", "show", "id", &link_id.to_string()])
        .output()
        .unwrap();
    assert!(
        !gone.status.success(),
        "link {link_id} (from_netdev on ext0) still exists: {}",
        String::from_utf8_lossy(&gone.stdout)
    );
    let log = agent_log(&s.agent);
    assert!(
        log.contains("detaching a device that is not configured"),
        "{log}"
    );
    // The endpoints' programs stay.
    s.wait_policy(|p| p.revision > 0 && p.endpoints.iter().all(|e| e.attached));
}

fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64
}

#[test]
fn a_rejected_policy_keeps_the_previous_one_enforced() {
    if !weir_lab::privileged("a_rejected_policy_keeps_the_previous_one_enforced") {
        return;
    }
    let s = Setup::new("r", &[("policies.yaml", USERS_POLICY)]);
    let before = s.policy().revision;
    let bad = USERS_POLICY.replace("- port: \"80\"", "- number: \"80\"");
    write_policy(&s.lab.policy_dir(), "policies.yaml", &bad);
    let p = s.wait_policy(|p| !p.last_error.is_empty());
    assert!(p.last_error.contains("policies.yaml"), "{}", p.last_error);
    assert!(
        p.last_error.contains("unknown field `number`"),
        "{}",
        p.last_error
    );
    assert_eq!(
        p.revision, before,
        "a rejected change must not bump the revision"
    );
    // Still enforced as before.
    assert_eq!(s.get("frontend-0", "users-0", 80, false).unwrap(), 200);
    s.assert_blocked("billing-0", "users-0", 80, false);

    // Fixing the file clears the error.
    write_policy(&s.lab.policy_dir(), "policies.yaml", USERS_POLICY);
    s.wait_policy(|p| p.last_error.is_empty());
}

const ECHO_POLICY: &str = r#"
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata:
  name: users-echo
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
            - port: "9000"
              protocol: TCP
"#;

#[test]
fn revoking_a_rule_cuts_established_connections() {
    if !weir_lab::privileged("revoking_a_rule_cuts_established_connections") {
        return;
    }
    use std::io::{Read, Write};
    let s = Setup::new("v", &[("echo.yaml", ECHO_POLICY)]);
    let listener = s
        .lab
        .tcp_listen("users-0", "0.0.0.0:9000".parse().unwrap())
        .unwrap();
    std::thread::spawn(move || {
        if let Ok((mut c, _)) = listener.accept() {
            let mut buf = [0u8; 64];
            while let Ok(n) = c.read(&mut buf) {
                if n == 0 || c.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    });
    let mut conn = s
        .lab
        .tcp_connect("frontend-0", s.addr("users-0", 9000, false), SHORT)
        .unwrap();
    conn.set_read_timeout(Some(SHORT)).unwrap();
    let mut buf = [0u8; 64];
    conn.write_all(b"ping").unwrap();
    assert_eq!(conn.read(&mut buf).unwrap(), 4, "echo before the change");

    let before = s.policy().revision;
    write_policy(
        &s.lab.policy_dir(),
        "echo.yaml",
        &ECHO_POLICY.replace("app: frontend", "app: inventory"),
    );
    s.wait_policy(|p| p.revision > before);

    // The established connection is decided again under the new policy: its data is dropped.
    conn.write_all(b"pong").unwrap();
    match conn.read(&mut buf) {
        Ok(n) => panic!("{n} bytes echoed on a revoked connection"),
        Err(e) => assert!(
            matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ),
            "expected the echo to be dropped, got {e}"
        ),
    }
    s.wait_flow(
        "established frontend -> users dropped after revocation",
        pod("default/frontend-0"),
        |f| f.verdict() == flow::Verdict::Dropped && dport(f) == 9000,
    );
}

/// The seeds' L7 policies, as the demo applies them: user-service-api-policy, api-l7-policy
/// (with its Content-Type header rule) and public-api-only.
const L7_POLICIES: &[(&str, &str)] = &[
    (
        "user-service-api-policy.yaml",
        include_str!("../../lab/demo/l7/user-service-api-policy.yaml"),
    ),
    (
        "api-l7-policy.yaml",
        include_str!("../../lab/demo/l7/api-l7-policy.yaml"),
    ),
    (
        "public-api-only.yaml",
        include_str!("../../lab/demo/l7/public-api-only.yaml"),
    ),
];

/// What curl saw of one transfer (`--next` starts another on the same connection).
#[derive(Debug)]
struct CurlResult {
    /// (status, connections opened) per transfer.
    transfers: Vec<(u16, u32)>,
    body: String,
    exit: i32,
    stderr: String,
}

/// Runs curl (a real HTTP client) in an endpoint's namespace.
fn curl(s: &Setup, from: &str, args: &[&str]) -> CurlResult {
    let mut cmd = s.lab.command(from, "curl").unwrap();
    cmd.args(["-sS", "--max-time", "10"]).args(args);
    let out = cmd.output().expect("run curl");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut transfers = Vec::new();
    let mut body = String::new();
    for line in stdout.split_inclusive('\n') {
        match line.trim_end().strip_prefix("@@curl ") {
            Some(rest) => {
                // The marker's own leading newline.
                body.pop();
                let (code, connects) = rest.split_once(' ').unwrap();
                transfers.push((code.parse().unwrap(), connects.parse().unwrap()));
            }
            None => body.push_str(line),
        }
    }
    CurlResult {
        transfers,
        body,
        exit: out.status.code().unwrap_or(-1),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

const CURL_W: &str = "\n@@curl %{http_code} %{num_connects}\n";

/// The status of one request.
fn status(s: &Setup, from: &str, args: &[&str]) -> u16 {
    let mut all = vec!["-w", CURL_W];
    all.extend_from_slice(args);
    let r = curl(s, from, &all);
    assert_eq!(r.exit, 0, "curl {args:?} from {from} failed: {}", r.stderr);
    r.transfers[0].0
}

/// TCP sockets in a namespace that talk to `peer` and are not in TIME-WAIT: a connection the
/// datapath ended must be gone on both sides, not left half-open or retransmitting.
fn live_sockets(s: &Setup, place: &str, peer: &str) -> Vec<String> {
    let out = s.lab.exec(place, &["ss", "-Htan"]).unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains(peer) && !l.starts_with("TIME-WAIT") && !l.starts_with("LISTEN"))
        .map(str::to_string)
        .collect()
}

/// (method, path) of the requests a server (place, port) saw from an endpoint, over IPv4 or IPv6.
fn requests_from(s: &Setup, server: (&str, u16), from: &str) -> Vec<(String, String)> {
    let ep = s.lab.endpoint(from).unwrap();
    let addrs = [ep.ipv4.to_string(), ep.ipv6.to_string()];
    s.lab
        .server_requests(server.0, server.1)
        .unwrap()
        .into_iter()
        .filter(|r| addrs.contains(&r.peer))
        .map(|r| (r.method, r.path))
        .collect()
}

/// Waits until neither side keeps a socket (other than TIME-WAIT) to the other: (place, the
/// peer's address) of the server, then of the client.
fn assert_all_closed(s: &Setup, server: (&str, &str), client: (&str, &str)) {
    let start = Instant::now();
    loop {
        let on_server = live_sockets(s, server.0, server.1);
        let on_client = live_sockets(s, client.0, client.1);
        if on_server.is_empty() && on_client.is_empty() {
            return;
        }
        assert!(
            start.elapsed() < WAIT,
            "connections left open:\nserver: {on_server:#?}\nclient: {on_client:#?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn http_of(f: &Flow) -> &flow::Http {
    match f.l7.as_ref().and_then(|l| l.record.as_ref()) {
        Some(flow::layer7::Record::Http(h)) => h,
        other => panic!("not an HTTP flow: {other:?}"),
    }
}

fn l7_filter(pod_from: &str, method: &str) -> FlowFilter {
    FlowFilter {
        source_pod: vec![pod_from.to_string()],
        event_type: vec![flow::EventTypeFilter {
            r#type: 129,
            ..Default::default()
        }],
        http_method: vec![method.to_string()],
        ..Default::default()
    }
}

#[test]
fn http_rules_allow_by_method_path_and_header_and_answer_denials_with_403() {
    if !weir_lab::privileged("http_rules_allow_by_method_path_and_header_and_answer_denials") {
        return;
    }
    let s = Setup::with_args(
        "h",
        L7_POLICIES,
        &["--http-flow-headers", "Content-Type,x-request-id"],
    );
    let users = s.addr("users-0", 80, false);
    let users6 = s.addr("users-0", 80, true);
    let api = s.addr("api-server-0", 8080, false);
    // Requests name the service as the Host, as in a cluster.
    let to_users = format!("users:80:{}:80", users.ip());
    let via = |args: &[&str]| -> Vec<String> {
        let mut v = vec!["--connect-to".to_string(), to_users.clone()];
        v.extend(args.iter().map(|a| a.to_string()));
        v
    };
    let users_status = |from: &str, args: &[&str]| {
        let v = via(args);
        status(&s, from, &v.iter().map(String::as_str).collect::<Vec<_>>())
    };

    // frontend may GET /api/v1/users/?.*, over IPv4 and IPv6; nothing else.
    assert_eq!(
        users_status("frontend-0", &["http://users/api/v1/users/123"]),
        200
    );
    assert_eq!(
        users_status("frontend-0", &["http://users/api/v1/users"]),
        200
    );
    assert_eq!(
        status(
            &s,
            "frontend-0",
            &["-w", CURL_W, &format!("http://{users6}/api/v1/users/9")]
        ),
        200
    );
    let denied = curl(
        &s,
        "frontend-0",
        &via(&[
            "-w",
            CURL_W,
            "-X",
            "DELETE",
            "http://users/api/v1/users/123",
        ])
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>(),
    );
    assert_eq!((denied.exit, denied.transfers[0].0), (0, 403), "{denied:?}");
    assert_eq!(denied.body, "Access denied\r\n");
    assert_eq!(
        users_status(
            "frontend-0",
            &["-X", "POST", "-d", "{}", "http://users/api/v1/payments"]
        ),
        403
    );
    // billing may only POST /api/v1/payments.
    assert_eq!(
        users_status(
            "billing-0",
            &["-X", "POST", "-d", "{}", "http://users/api/v1/payments"]
        ),
        200
    );
    assert_eq!(
        users_status("billing-0", &["http://users/api/v1/users/1"]),
        403
    );

    // Keep-alive: two allowed requests, then a denied one on the same connection; the next
    // request opens a new connection and is served.
    let ka = curl(
        &s,
        "frontend-0",
        &via(&[
            "-o",
            "/dev/null",
            "-w",
            CURL_W,
            "http://users/api/v1/users/1",
            "http://users/api/v1/users/2",
            "--next",
            "--connect-to",
            &to_users,
            "-o",
            "/dev/null",
            "-w",
            CURL_W,
            "-X",
            "DELETE",
            "http://users/api/v1/users/3",
            "--next",
            "--connect-to",
            &to_users,
            "-o",
            "/dev/null",
            "-w",
            CURL_W,
            "http://users/api/v1/users/4",
        ])
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>(),
    );
    assert_eq!(ka.exit, 0, "{ka:?}");
    assert_eq!(
        ka.transfers,
        vec![(200, 1), (200, 0), (403, 0), (200, 1)],
        "{ka:?}"
    );

    // A denied upload: the 403 comes back while the body is still being sent, and no socket of
    // the upload is left behind on either side (checked below).
    let upload = std::env::temp_dir().join(format!("weir-e2e-upload-{}", std::process::id()));
    std::fs::write(&upload, vec![b'x'; 512 * 1024]).unwrap();
    let put = curl(
        &s,
        "frontend-0",
        &via(&[
            "-o",
            "/dev/null",
            "-w",
            CURL_W,
            "-X",
            "PUT",
            // Send the body at once, without waiting for a 100 Continue.
            "-H",
            "Expect:",
            "--data-binary",
            &format!("@{}", upload.display()),
            "http://users/api/v1/users/7",
        ])
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>(),
    );
    let _ = std::fs::remove_file(&upload);
    assert_eq!(put.transfers.first().map(|t| t.0), Some(403), "{put:?}");

    // The client's next connection from the same port after a denial is decided afresh.
    let port = "40100";
    assert_eq!(
        users_status(
            "frontend-0",
            &[
                "--local-port",
                port,
                "-X",
                "DELETE",
                "http://users/api/v1/users/5"
            ]
        ),
        403
    );
    assert_eq!(
        users_status(
            "frontend-0",
            &["--local-port", port, "http://users/api/v1/users/5"]
        ),
        200
    );

    // api-l7-policy: GET under /api/v1/, POST /api/v1/orders only as JSON.
    let api_url = |path: &str| format!("http://{api}{path}");
    assert_eq!(
        status(
            &s,
            "web-frontend-0",
            &["-w", CURL_W, &api_url("/api/v1/products/7")]
        ),
        200
    );
    let order = api_url("/api/v1/orders");
    let json = [
        "-H",
        "Content-Type: application/json",
        "-H",
        "X-Request-Id:  r-42 ",
        "-d",
        r#"{"item":1}"#,
    ];
    let mut args = vec!["-w", CURL_W];
    args.extend_from_slice(&json);
    args.push(&order);
    assert_eq!(status(&s, "web-frontend-0", &args), 200);
    // curl's -d alone sends application/x-www-form-urlencoded.
    assert_eq!(
        status(
            &s,
            "web-frontend-0",
            &["-w", CURL_W, "-d", "item=1", &order]
        ),
        403
    );
    let mut args = vec!["-w", CURL_W, "-X", "PUT"];
    args.extend_from_slice(&json);
    args.push(&order);
    assert_eq!(status(&s, "web-frontend-0", &args), 403);
    assert_eq!(
        status(&s, "web-frontend-0", &["-w", CURL_W, &api_url("/healthz")]),
        403
    );

    // public-api-only: env=prod clients may GET /public; others do not even connect.
    let service = s.addr("service-0", 80, false);
    let public = |path: &str| format!("http://{service}{path}");
    assert_eq!(
        status(&s, "frontend-0", &["-w", CURL_W, &public("/public")]),
        200
    );
    assert_eq!(
        status(&s, "frontend-0", &["-w", CURL_W, &public("/private")]),
        403
    );
    assert_eq!(
        status(
            &s,
            "frontend-0",
            &["-w", CURL_W, "-X", "POST", &public("/public")]
        ),
        403
    );
    s.assert_blocked("billing-0", "service-0", 80, false);

    // The servers never saw a denied request.
    let seen: Vec<(String, String, String)> = s
        .lab
        .server_requests("users-0", 80)
        .unwrap()
        .into_iter()
        .map(|r| (r.peer, r.method, r.path))
        .collect();
    let frontend = s.lab.endpoint("frontend-0").unwrap().ipv4.to_string();
    let billing = s.lab.endpoint("billing-0").unwrap().ipv4.to_string();
    for (peer, method, path) in &seen {
        let allowed = (peer == &frontend && method == "GET" && path.starts_with("/api/v1/users"))
            || (peer == &billing && method == "POST" && path == "/api/v1/payments")
            || (peer != &frontend && peer != &billing);
        assert!(
            allowed,
            "users served a denied request: {peer} {method} {path}"
        );
    }
    assert!(
        seen.iter()
            .any(|(_, m, p)| m == "GET" && p == "/api/v1/users/4"),
        "{seen:?}"
    );
    assert_eq!(
        requests_from(&s, ("api-server-0", 8080), "web-frontend-0"),
        vec![
            ("GET".to_string(), "/api/v1/products/7".to_string()),
            ("POST".to_string(), "/api/v1/orders".to_string()),
        ]
    );

    // Denied connections are closed on both sides: nothing half-open on the server, nothing
    // retransmitting on the client.
    assert_all_closed(
        &s,
        ("users-0", &frontend),
        ("frontend-0", &users.ip().to_string()),
    );

    // L7 flows over the Observer API, selected with Hubble's HTTP filters.
    let req = s.wait_flow(
        "frontend DELETE dropped",
        l7_filter("default/frontend-0", "DELETE"),
        |f| http_of(f).url == "http://users/api/v1/users/123",
    );
    assert_eq!(req.r#type(), flow::FlowType::L7);
    assert_eq!(req.verdict(), flow::Verdict::Dropped);
    assert_eq!(req.drop_reason_desc(), flow::DropReason::PolicyDenied);
    assert_eq!(req.l7.as_ref().unwrap().r#type(), flow::L7FlowType::Request);
    assert_eq!(req.summary, "HTTP/1.1 DELETE http://users/api/v1/users/123");
    assert_eq!(http_of(&req).protocol, "HTTP/1.1");
    assert_eq!(
        names(&req.ingress_denied_by),
        vec!["user-service-api-policy"]
    );
    assert_eq!(req.is_reply.as_ref().map(|b| b.value), Some(false));
    assert_eq!(req.destination.as_ref().unwrap().pod_name, "users-0");
    assert_eq!(req.traffic_direction(), flow::TrafficDirection::Ingress);

    let answer = s.wait_flow(
        "the 403 frontend received",
        FlowFilter {
            source_pod: vec!["default/users-0".into()],
            http_status_code: vec!["403".into()],
            http_method: vec!["DELETE".into()],
            ..Default::default()
        },
        |f| http_of(f).url == "http://users/api/v1/users/123",
    );
    let l7 = answer.l7.as_ref().unwrap();
    assert_eq!(l7.r#type(), flow::L7FlowType::Response);
    assert_eq!(http_of(&answer).code, 403);
    assert_eq!(http_of(&answer).url, "http://users/api/v1/users/123");
    assert_eq!(answer.verdict(), flow::Verdict::Forwarded);
    assert_eq!(answer.is_reply.as_ref().map(|b| b.value), Some(true));
    assert_eq!(answer.destination.as_ref().unwrap().pod_name, "frontend-0");

    let allowed = s.wait_flow(
        "frontend GET forwarded",
        l7_filter("default/frontend-0", "GET"),
        |f| http_of(f).url == "http://users/api/v1/users/123",
    );
    assert_eq!(allowed.verdict(), flow::Verdict::Forwarded);
    assert_eq!(
        names(&allowed.ingress_allowed_by),
        vec!["user-service-api-policy"]
    );
    let ok = s.wait_flow(
        "the 200 to frontend's GET",
        FlowFilter {
            source_pod: vec!["default/users-0".into()],
            http_status_code: vec!["2+".into()],
            http_path: vec!["^/api/v1/users/123$".into()],
            ..Default::default()
        },
        |_| true,
    );
    assert!(ok.l7.as_ref().unwrap().latency_ns > 0, "{ok:?}");
    assert!(
        ok.summary.starts_with("HTTP/1.1 200 ")
            && ok
                .summary
                .ends_with("ms (GET http://users/api/v1/users/123)"),
        "{}",
        ok.summary
    );
    let order = s.wait_flow(
        "web-frontend's JSON order forwarded",
        l7_filter("production/web-frontend-0", "POST"),
        |f| f.verdict() == flow::Verdict::Forwarded,
    );
    assert_eq!(names(&order.ingress_allowed_by), vec!["api-l7-policy"]);
    // --http-flow-headers: the values of the named request headers, in the request's order,
    // trimmed; Hubble's --http-header filter selects on them.
    let headers = |f: &Flow| -> Vec<(String, String)> {
        http_of(f)
            .headers
            .iter()
            .map(|h| (h.key.clone(), h.value.clone()))
            .collect()
    };
    assert_eq!(
        headers(&order),
        [
            ("content-type".to_string(), "application/json".to_string()),
            ("x-request-id".to_string(), "r-42".to_string()),
        ]
    );
    let form = s.wait_flow(
        "web-frontend's form order dropped",
        FlowFilter {
            http_header: vec![flow::HttpHeader {
                key: "content-type".into(),
                value: "application/x-www-form-urlencoded".into(),
            }],
            ..l7_filter("production/web-frontend-0", "POST")
        },
        |f| f.verdict() == flow::Verdict::Dropped,
    );
    assert_eq!(names(&form.ingress_denied_by), vec!["api-l7-policy"]);
    assert_eq!(
        headers(&form),
        [(
            "content-type".to_string(),
            "application/x-www-form-urlencoded".to_string()
        )]
    );
    // Headers not named are not reported (curl's User-Agent and Accept here).
    assert!(headers(&allowed).is_empty(), "{allowed:?}");
    assert_eq!(
        s.agent_lost_events(),
        0,
        "every L7 event decodes into a flow"
    );
}

/// reco may only GET the catalog's products: an egress HTTP rule, enforced at reco's own hook.
const EGRESS_L7_POLICY: &str = r#"
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata:
  name: reco-catalog-read-only
  namespace: default
spec:
  endpointSelector:
    matchLabels:
      app: reco
  egress:
    - toEndpoints:
        - matchLabels:
            app: catalog
      toPorts:
        - ports:
            - port: "80"
              protocol: TCP
          rules:
            http:
              - method: GET
                path: "/products(/.*)?"
"#;

#[test]
fn egress_http_rules_answer_at_the_clients_hook() {
    if !weir_lab::privileged("egress_http_rules_answer_at_the_clients_hook") {
        return;
    }
    let s = Setup::new("g", &[("reco.yaml", EGRESS_L7_POLICY)]);
    let catalog = s.addr("catalog-0", 80, false);
    let url = |path: &str| format!("http://{catalog}{path}");
    assert_eq!(
        status(&s, "reco-0", &["-w", CURL_W, &url("/products/7")]),
        200
    );
    let denied = curl(
        &s,
        "reco-0",
        &["-w", CURL_W, "-X", "DELETE", &url("/products/7")],
    );
    assert_eq!((denied.exit, denied.transfers[0].0), (0, 403), "{denied:?}");
    assert_eq!(denied.body, "Access denied\r\n");
    assert_eq!(status(&s, "reco-0", &["-w", CURL_W, &url("/admin")]), 403);
    // Over IPv6 too.
    let catalog6 = s.addr("catalog-0", 80, true);
    assert_eq!(
        status(
            &s,
            "reco-0",
            &["-w", CURL_W, &format!("http://{catalog6}/products")]
        ),
        200
    );

    // The catalog never saw the denied requests; nothing is left open on either side.
    let reco = s.lab.endpoint("reco-0").unwrap();
    assert_eq!(
        requests_from(&s, ("catalog-0", 80), "reco-0"),
        vec![
            ("GET".to_string(), "/products/7".to_string()),
            ("GET".to_string(), "/products".to_string()),
        ]
    );
    assert_all_closed(
        &s,
        ("catalog-0", &reco.ipv4.to_string()),
        ("reco-0", &catalog.ip().to_string()),
    );

    // The flows: decided at reco's egress, named after the egress policy.
    let req = s.wait_flow(
        "reco DELETE dropped at egress",
        l7_filter("default/reco-0", "DELETE"),
        |f| f.verdict() == flow::Verdict::Dropped,
    );
    assert_eq!(req.traffic_direction(), flow::TrafficDirection::Egress);
    assert_eq!(names(&req.egress_denied_by), vec!["reco-catalog-read-only"]);
    assert_eq!(req.destination.as_ref().unwrap().pod_name, "catalog-0");
    let ok = s.wait_flow(
        "reco GET forwarded at egress",
        l7_filter("default/reco-0", "GET"),
        |f| f.verdict() == flow::Verdict::Forwarded,
    );
    assert_eq!(names(&ok.egress_allowed_by), vec!["reco-catalog-read-only"]);
    s.wait_flow(
        "the 403 reco received",
        FlowFilter {
            destination_pod: vec!["default/reco-0".into()],
            http_status_code: vec!["403".into()],
            ..Default::default()
        },
        |f| f.is_reply.as_ref().is_some_and(|r| r.value),
    );
}

#[test]
fn a_connection_older_than_its_http_rules_is_reset() {
    if !weir_lab::privileged("a_connection_older_than_its_http_rules_is_reset") {
        return;
    }
    use std::io::{Read, Write};
    let s = Setup::new("o", &[("users.yaml", USERS_POLICY)]);
    let mut conn = s
        .lab
        .tcp_connect("frontend-0", s.addr("users-0", 80, false), SHORT)
        .unwrap();
    conn.set_read_timeout(Some(HTTP)).unwrap();
    let request = b"GET /api/v1/users/1 HTTP/1.1\r\nHost: users\r\n\r\n";
    conn.write_all(request).unwrap();
    // The whole response (head and body may come in separate segments).
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let complete = |got: &[u8]| {
        let text = String::from_utf8_lossy(got);
        let Some((head, body)) = text.split_once("\r\n\r\n") else {
            return false;
        };
        let len = head
            .lines()
            .find_map(|l| l.strip_prefix("Content-Length: "))
            .and_then(|v| v.trim().parse::<usize>().ok());
        len.is_some_and(|len| body.len() >= len)
    };
    while !complete(&got) {
        let n = conn.read(&mut buf).unwrap();
        assert!(
            n > 0,
            "the server closed: {}",
            String::from_utf8_lossy(&got)
        );
        got.extend_from_slice(&buf[..n]);
    }
    assert!(
        got.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&got)
    );

    // HTTP rules now apply to users:80. Where this connection's next request starts is
    // unknown to the datapath: it is reset rather than let through unparsed.
    let before = s.policy().revision;
    write_policy(
        &s.lab.policy_dir(),
        "users.yaml",
        include_str!("../../lab/demo/l7/user-service-api-policy.yaml"),
    );
    s.wait_policy(|p| p.revision > before);
    conn.write_all(b"DELETE /api/v1/users/1 HTTP/1.1\r\nHost: users\r\n\r\n")
        .unwrap();
    match conn.read(&mut buf) {
        Ok(0) => {}
        Ok(n) => panic!(
            "the old connection was answered: {}",
            String::from_utf8_lossy(&buf[..n])
        ),
        Err(e) => assert_eq!(
            e.kind(),
            std::io::ErrorKind::ConnectionReset,
            "expected a reset, got {e}"
        ),
    }
    let deletes = s
        .lab
        .server_requests("users-0", 80)
        .unwrap()
        .into_iter()
        .filter(|r| r.method == "DELETE")
        .count();
    assert_eq!(deletes, 0, "the server saw the DELETE");
    // A new connection is decided under the rules.
    assert_eq!(s.get("frontend-0", "users-0", 80, false).unwrap(), 200);
}

const CATALOG_GRPC_POLICY: &str = include_str!("../../lab/demo/l7/catalog-grpc-policy.yaml");
const GET_PRODUCT: &str = "/com.example.catalog.ProductService/GetProduct";
const UPDATE_STOCK: &str = "/com.example.catalog.ProductService/UpdateStock";

/// (rpc, status) of each call the catalog client made.
fn outcomes(calls: &[weir_lab::CatalogCall]) -> Vec<(&str, &str)> {
    calls
        .iter()
        .map(|c| (c.rpc.as_str(), c.status.as_str()))
        .collect()
}

/// The calls catalog-0's gRPC server received from `from`: (method path, client port).
fn calls_from(s: &Setup, from: &str) -> Vec<(String, u16)> {
    let ep = s.lab.endpoint(from).unwrap();
    let addrs = [ep.ipv4.to_string(), ep.ipv6.to_string()];
    s.lab
        .grpc_calls("catalog-0", 50051)
        .unwrap()
        .into_iter()
        .filter(|c| addrs.contains(&c.peer))
        .map(|c| (c.method, c.peer_port))
        .collect()
}

/// Makes `before` then `after` (the catalog client's call lists) from `from` to `addr` on one
/// client connection, and runs `between` once the server has seen `before`'s first call: the
/// way to change something under an open connection. Returns every call's outcome.
fn across(
    lab: &Lab,
    from: &str,
    addr: SocketAddr,
    (before, after): (&str, &str),
    between: impl FnOnce(),
) -> Vec<weir_lab::CatalogCall> {
    static CUES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = CUES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let cue = lab.run_dir().join(format!("cue-{n}"));
    let calls = format!("{before},wait:{},{after}", cue.display());
    let seen = lab.grpc_calls("catalog-0", addr.port()).unwrap().len();
    std::thread::scope(|scope| {
        let client = scope.spawn(|| lab.catalog_calls(from, addr, &calls, HTTP));
        let start = Instant::now();
        while lab.grpc_calls("catalog-0", addr.port()).unwrap().len() <= seen {
            assert!(
                start.elapsed() < WAIT,
                "{from}'s first call ({before}) never reached the server"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        between();
        std::fs::write(&cue, b"").unwrap();
        client.join().unwrap().unwrap()
    })
}

/// The first call went through; the connection was then reset: grpcio reports UNAVAILABLE, or
/// makes the call again on a new connection when it knows the call was not sent (not
/// DEADLINE_EXCEEDED, which a connection left to retransmit into drops would give).
fn assert_reset_between(got: &[weir_lab::CatalogCall]) {
    assert_eq!(outcomes(got)[0], ("GetProduct", "OK"), "{got:?}");
    assert!(
        ["UNAVAILABLE", "OK"].contains(&got[1].status.as_str()),
        "{got:?}"
    );
}

/// Replaces a policy file and waits until the agent applied it.
fn replace_policy(s: &Setup, name: &str, text: &str) {
    let revision = s.policy().revision;
    write_policy(&s.lab.policy_dir(), name, text);
    s.wait_policy(|p| p.revision > revision);
}

/// Restarts the agent and checks that reco's calls are decided again: GetProduct allowed,
/// UpdateStock denied.
fn restart_and_check_served(s: &mut Setup, catalog: SocketAddr) {
    s.agent.restart().expect("restart the agent");
    s.agent.wait_ready().unwrap();
    s.wait_policy(|p| p.revision > 0 && p.endpoints.iter().all(|e| e.attached));
    let got = s
        .lab
        .catalog_calls("reco-0", catalog, "get:3,update:3", HTTP)
        .unwrap();
    assert_eq!(
        outcomes(&got),
        [("GetProduct", "OK"), ("UpdateStock", "PERMISSION_DENIED")]
    );
}

fn grpc_status_of(f: &Flow) -> Option<&str> {
    http_of(f)
        .headers
        .iter()
        .find(|h| h.key == "grpc-status")
        .map(|h| h.value.as_str())
}

#[test]
fn grpc_rules_apply_per_call_through_the_agents_proxy() {
    if !weir_lab::privileged("grpc_rules_apply_per_call_through_the_agents_proxy") {
        return;
    }
    let mut s = Setup::with_args(
        "p",
        &[("catalog-grpc-policy.yaml", CATALOG_GRPC_POLICY)],
        &["--http-flow-headers", "content-type,x-not-sent"],
    );
    let catalog = s.addr("catalog-0", 50051, false);
    let call = |from: &str, addr: SocketAddr, calls: &str| {
        s.lab
            .catalog_calls(from, addr, calls, HTTP)
            .unwrap_or_else(|e| panic!("{from} -> {addr} {calls}: {e}"))
    };

    // reco may call GetProduct only: on one connection, the denied call in the middle does not
    // disturb the calls around it.
    let got = call("reco-0", catalog, "get:1,update:1:-1,get:1");
    assert_eq!(
        outcomes(&got),
        [
            ("GetProduct", "OK"),
            ("UpdateStock", "PERMISSION_DENIED"),
            ("GetProduct", "OK")
        ],
        "{got:?}"
    );
    assert_eq!(
        got[1].reply,
        serde_json::json!({"details": "Access denied by policy"})
    );
    assert_eq!(got[0].reply["stock"], 12);
    // inventory may call UpdateStock only.
    let got = call("inventory-0", catalog, "update:1:-2,get:1");
    assert_eq!(
        outcomes(&got),
        [("UpdateStock", "OK"), ("GetProduct", "PERMISSION_DENIED")],
        "{got:?}"
    );
    assert_eq!(got[0].reply, serde_json::json!({"id": 1, "stock": 10}));
    // Over IPv6 too.
    let got = call("reco-0", s.addr("catalog-0", 50051, true), "get:2,update:2");
    assert_eq!(
        outcomes(&got),
        [("GetProduct", "OK"), ("UpdateStock", "PERMISSION_DENIED")]
    );

    // The server saw only the allowed calls, from the clients' own addresses (the proxy's
    // upstream is transparent), the calls of one client connection on one connection.
    let reco = calls_from(&s, "reco-0");
    assert_eq!(
        reco.iter().map(|c| c.0.as_str()).collect::<Vec<_>>(),
        [GET_PRODUCT, GET_PRODUCT, GET_PRODUCT],
        "{reco:?}"
    );
    assert_eq!(reco[0].1, reco[1].1, "one connection upstream: {reco:?}");
    let inventory = calls_from(&s, "inventory-0");
    assert_eq!(
        inventory.iter().map(|c| c.0.as_str()).collect::<Vec<_>>(),
        [UPDATE_STOCK]
    );

    // A client that is allowed no call at all is dropped at L3/L4 as before.
    s.assert_blocked("frontend-0", "catalog-0", 50051, false);
    // HTTP/1.x on the gRPC port gets the proxy's 403.
    assert_eq!(
        status(&s, "reco-0", &["-w", CURL_W, &format!("http://{catalog}/")]),
        403
    );

    // The flows: a request and a response per call, decided at catalog's ingress.
    let grpc_filter = |from: &str, path: &str| FlowFilter {
        source_pod: vec![from.to_string()],
        http_path: vec![path.to_string()],
        ..Default::default()
    };
    let denied = s.wait_flow(
        "reco's UpdateStock dropped",
        grpc_filter("default/reco-0", UPDATE_STOCK),
        |f| f.verdict() == flow::Verdict::Dropped,
    );
    assert_eq!(denied.traffic_direction(), flow::TrafficDirection::Ingress);
    assert_eq!(
        names(&denied.ingress_denied_by),
        vec!["catalog-grpc-policy"]
    );
    assert_eq!(denied.destination.as_ref().unwrap().pod_name, "catalog-0");
    assert_eq!(
        denied.source.as_ref().unwrap().identity,
        s.identity("reco-0")
    );
    let http = http_of(&denied);
    assert_eq!(
        (http.method.as_str(), http.protocol.as_str()),
        ("POST", "HTTP/2")
    );
    assert_eq!(http.url, format!("http://{catalog}{UPDATE_STOCK}"));
    assert_eq!(
        denied.summary,
        format!("HTTP/2 POST http://{catalog}{UPDATE_STOCK}")
    );
    // --http-flow-headers, from the call's HEADERS frame.
    assert_eq!(
        http.headers
            .iter()
            .map(|h| (h.key.as_str(), h.value.as_str()))
            .collect::<Vec<_>>(),
        [("content-type", "application/grpc")]
    );
    let allowed = s.wait_flow(
        "reco's GetProduct forwarded",
        grpc_filter("default/reco-0", GET_PRODUCT),
        |f| f.verdict() == flow::Verdict::Forwarded,
    );
    assert_eq!(
        names(&allowed.ingress_allowed_by),
        vec!["catalog-grpc-policy"]
    );
    // Responses carry the call's grpc-status.
    let response = |path: &str, grpc_status: &'static str| {
        s.wait_flow(
            &format!("a {path} response with grpc-status {grpc_status}"),
            FlowFilter {
                destination_pod: vec!["default/reco-0".into()],
                http_path: vec![path.to_string()],
                ..Default::default()
            },
            move |f| grpc_status_of(f) == Some(grpc_status),
        )
    };
    // The denial reached the client: a forwarded response, as the datapath's 403.
    let r = response(UPDATE_STOCK, "7");
    assert_eq!(r.verdict(), flow::Verdict::Forwarded);
    assert_eq!(http_of(&r).code, 200);
    assert!(r.summary.ends_with(" grpc-status 7"), "{}", r.summary);
    assert!(r.is_reply.as_ref().is_some_and(|v| v.value));
    let r = response(GET_PRODUCT, "0");
    assert_eq!(r.verdict(), flow::Verdict::Forwarded);
    assert!(r.l7.as_ref().unwrap().latency_ns > 0);

    // The client's hook reports the hand-over (Hubble's to-proxy observation point).
    s.wait_flow(
        "reco's connection handed to the proxy",
        pod("default/reco-0"),
        |f| {
            f.trace_observation_point() == flow::TraceObservationPoint::ToProxy && dport(f) == 50051
        },
    );

    // Fail closed: with the agent killed, its listener is gone: a connection open at that
    // moment ends, a new one is dropped, and no call reaches the server. A restarted agent
    // serves again.
    let (lab, agent) = (&s.lab, &mut s.agent);
    let got = across(lab, "reco-0", catalog, ("get:3", "get:3"), || {
        agent.kill(Signal::SIGKILL).unwrap();
        agent
            .wait_exit(Duration::from_secs(10))
            .expect("agent did not die");
    });
    assert_eq!(got[0].status, "OK", "{got:?}");
    assert_ne!(got[1].status, "OK", "{got:?}");
    let got = call("reco-0", catalog, "get:3");
    assert_ne!(got[0].status, "OK", "{got:?}");
    assert_eq!(calls_from(&s, "reco-0").len(), 4, "no call may pass");
    restart_and_check_served(&mut s, catalog);

    // A proxied connection outlives its CT entries (evicted, or collected after a long
    // silence): each hook that misses recognises it by the proxy socket holding its tuple.
    let got = across(
        &s.lab,
        "reco-0",
        catalog,
        ("get:2", "get:2,update:2"),
        || {
            let forgotten = forget_connections(&s, 50051);
            assert!(
                forgotten >= 2,
                "the client's and the server's entries: {forgotten}"
            );
        },
    );
    assert_eq!(
        outcomes(&got),
        [
            ("GetProduct", "OK"),
            ("GetProduct", "OK"),
            ("UpdateStock", "PERMISSION_DENIED")
        ],
        "{got:?}\nagent log:\n{}",
        agent_log(&s.agent)
    );
}

/// Deletes node1's CT entries of TCP connections to `port` (what eviction or garbage
/// collection does); returns how many.
fn forget_connections(s: &Setup, port: u16) -> usize {
    use aya::maps::{HashMap, Map, MapData};
    use weir_probes::abi::{self, CtEntry, CtKey};

    let node = s.lab.node("node1").unwrap();
    let path = Path::new(weir_lab::DEFAULT_BPFFS_ROOT)
        .join(&node.name)
        .join(format!("v{}", abi::ABI_VERSION))
        .join("maps")
        .join(weir_probes::maps::CT);
    let data = MapData::from_pin(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut ct: HashMap<_, CtKey, CtEntry> = HashMap::try_from(Map::LruHashMap(data)).unwrap();
    let keys: Vec<CtKey> = ct
        .keys()
        .filter_map(Result::ok)
        .filter(|k| k.protocol == 6 && k.dport == port)
        .collect();
    for k in &keys {
        ct.remove(k).unwrap();
    }
    keys.len()
}

const EGRESS_GRPC_POLICY: &str = r#"
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata:
  name: reco-catalog-reads
  namespace: default
spec:
  endpointSelector:
    matchLabels:
      app: reco
  egress:
    - toEndpoints:
        - matchLabels:
            app: catalog
      toPorts:
        - ports:
            - port: "50051"
              protocol: TCP
          rules:
            http:
              - method: POST
                path: "/com.example.catalog.ProductService/Get.*"
"#;

/// gRPC rules in the client's egress policy, with no policy on the server: the client's hook
/// hands the connection to the proxy, and the server's replies find their way back to it.
/// gRPC rules at a server's ingress apply to clients on other nodes too: the server's node
/// hands their connections to its proxy at the device they arrive on (`from_netdev`).
#[test]
fn grpc_clients_on_another_node_go_through_the_servers_proxy() {
    if !weir_lab::privileged("grpc_clients_on_another_node_go_through_the_servers_proxy") {
        return;
    }
    let mut config = LabConfig::with_prefix(prefix("x"));
    config.nodes.push(NodeDef::new(2));
    for ep in &mut config.endpoints {
        if ep.name == "reco-0" {
            ep.node = 2;
        }
    }
    let mut s = Setup::from_config(
        config,
        &[("catalog-grpc-policy.yaml", CATALOG_GRPC_POLICY)],
        &[],
    );
    // Without early demux, a packet reaches the proxy's socket only by the datapath's mark for
    // local delivery (with it, the stack finds an established socket by its tuple first).
    let out = s
        .lab
        .exec("node1", &["sysctl", "-qw", "net.ipv4.tcp_early_demux=0"])
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let mut node2 = s
        .lab
        .spawn_agent(
            "node2",
            AGENT,
            &["--listen-address", "none", "--poll-interval", "200ms"],
        )
        .expect("start node2's weir-agent");
    node2
        .wait_ready()
        .unwrap_or_else(|e| panic!("node2's agent not ready: {e}\n{}", agent_log(&node2)));
    let call = |addr: SocketAddr, calls: &str| {
        s.lab
            .catalog_calls("reco-0", addr, calls, HTTP)
            .unwrap_or_else(|e| {
                panic!(
                    "reco-0 -> {addr} {calls}: {e}\nnode1's agent:\n{}\nnode2's agent:\n{}",
                    agent_log(&s.agent),
                    agent_log(&node2)
                )
            })
    };
    for v6 in [false, true] {
        let got = call(s.addr("catalog-0", 50051, v6), "get:1,update:1:-1,get:2");
        assert_eq!(
            outcomes(&got),
            [
                ("GetProduct", "OK"),
                ("UpdateStock", "PERMISSION_DENIED"),
                ("GetProduct", "OK")
            ],
            "{got:?}"
        );
    }
    // The server saw the allowed calls only, from reco's own addresses.
    let reco = calls_from(&s, "reco-0");
    assert_eq!(
        reco.iter().map(|c| c.0.as_str()).collect::<Vec<_>>(),
        [GET_PRODUCT; 4],
        "{reco:?}"
    );

    // node1's agent decided the calls at catalog's ingress and saw the hand-over at its link
    // to node2.
    let denied = s.wait_flow(
        "reco's UpdateStock dropped at catalog",
        FlowFilter {
            source_pod: vec!["default/reco-0".into()],
            http_path: vec![UPDATE_STOCK.into()],
            ..Default::default()
        },
        |f| f.verdict() == flow::Verdict::Dropped,
    );
    assert_eq!(
        names(&denied.ingress_denied_by),
        vec!["catalog-grpc-policy"]
    );
    assert_eq!(denied.destination.as_ref().unwrap().pod_name, "catalog-0");
    assert_eq!(denied.source.as_ref().unwrap().pod_name, "reco-0");
    let handover = s.wait_flow(
        "reco's connection handed to node1's proxy",
        FlowFilter {
            source_pod: vec!["default/reco-0".into()],
            event_type: vec![flow::EventTypeFilter {
                r#type: 4,
                ..Default::default()
            }],
            ..Default::default()
        },
        |f| f.trace_observation_point() == flow::TraceObservationPoint::ToProxy,
    );
    assert_eq!(handover.destination.as_ref().unwrap().pod_name, "catalog-0");
    assert_eq!(s.agent_lost_events(), 0);

    // Fail closed: with node1's agent gone, its device's hook finds no proxy listener and drops
    // the SYN; a restarted agent adopts the device's link and serves again.
    s.agent.kill(Signal::SIGKILL).unwrap();
    s.agent
        .wait_exit(Duration::from_secs(10))
        .expect("agent did not die");
    let catalog = s.addr("catalog-0", 50051, false);
    let got = s
        .lab
        .catalog_calls("reco-0", catalog, "get:3", HTTP)
        .expect("the client reports the failure");
    assert_ne!(got[0].status, "OK", "{got:?}");
    assert_eq!(calls_from(&s, "reco-0").len(), 4, "no call may pass");
    restart_and_check_served(&mut s, catalog);

    // A connection handed over at the device stays with the proxy when its port's rules stop
    // being gRPC rules (replaced by an L4 allow): its next call is decided by the new policy,
    // rather than its packets reaching the server behind the proxy's back (and stalling).
    let got = across(&s.lab, "reco-0", catalog, ("get:1", "update:1:-1"), || {
        replace_policy(&s, "catalog-grpc-policy.yaml", CATALOG_L4_POLICY)
    });
    assert_eq!(
        outcomes(&got),
        [("GetProduct", "OK"), ("UpdateStock", "OK")],
        "{got:?}"
    );
    // Both on the proxy's one upstream connection: the client did not have to reconnect.
    let reco = calls_from(&s, "reco-0");
    let last: Vec<_> = reco.iter().rev().take(2).collect();
    assert_eq!(
        (last[1].0.as_str(), last[0].0.as_str()),
        (GET_PRODUCT, UPDATE_STOCK),
        "{reco:?}"
    );
    assert_eq!(last[0].1, last[1].1, "one connection: {reco:?}");

    // The other way round: a direct connection (opened under the L4 allow) when gRPC rules
    // return is reset at the device, as a local client's is at its own hook, so the client
    // learns at once instead of retransmitting into drops.
    let seen_before = calls_from(&s, "reco-0").len();
    let got = across(&s.lab, "reco-0", catalog, ("get:1", "get:2"), || {
        replace_policy(&s, "catalog-grpc-policy.yaml", CATALOG_GRPC_POLICY)
    });
    assert_reset_between(&got);
    let seen = calls_from(&s, "reco-0");
    let old = seen[seen_before].1;
    assert!(
        seen[seen_before + 1..].iter().all(|c| c.1 != old),
        "a call passed on the old connection: {seen:?}"
    );
}

#[test]
fn egress_grpc_rules_go_through_the_proxy_too() {
    if !weir_lab::privileged("egress_grpc_rules_go_through_the_proxy_too") {
        return;
    }
    let s = Setup::new("q", &[("reco.yaml", EGRESS_GRPC_POLICY)]);
    for v6 in [false, true] {
        let catalog = s.addr("catalog-0", 50051, v6);
        let got = s
            .lab
            .catalog_calls("reco-0", catalog, "get:1,update:1,get:2", HTTP)
            .unwrap();
        assert_eq!(
            outcomes(&got),
            [
                ("GetProduct", "OK"),
                ("UpdateStock", "PERMISSION_DENIED"),
                ("GetProduct", "OK")
            ],
            "{catalog}: {got:?}"
        );
    }
    // inventory has no policy: its calls go straight to the server.
    let got = s
        .lab
        .catalog_calls(
            "inventory-0",
            s.addr("catalog-0", 50051, false),
            "update:1:-1",
            HTTP,
        )
        .unwrap();
    assert_eq!(outcomes(&got), [("UpdateStock", "OK")]);
    assert_eq!(
        calls_from(&s, "reco-0")
            .iter()
            .map(|c| c.0.as_str())
            .collect::<Vec<_>>(),
        [GET_PRODUCT, GET_PRODUCT, GET_PRODUCT, GET_PRODUCT]
    );

    let denied = s.wait_flow(
        "reco's UpdateStock dropped at its egress",
        FlowFilter {
            source_pod: vec!["default/reco-0".into()],
            http_path: vec![UPDATE_STOCK.into()],
            ..Default::default()
        },
        |f| f.verdict() == flow::Verdict::Dropped,
    );
    assert_eq!(denied.traffic_direction(), flow::TrafficDirection::Egress);
    assert_eq!(names(&denied.egress_denied_by), vec!["reco-catalog-reads"]);
}

const CATALOG_L4_POLICY: &str = r#"
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata:
  name: catalog-grpc-policy
  namespace: default
spec:
  endpointSelector:
    matchLabels:
      app: catalog
  ingress:
    - fromEndpoints:
        - matchLabels:
            app: reco
      toPorts:
        - ports:
            - port: "50051"
              protocol: TCP
"#;

/// A gRPC connection opened while the port had no L7 rules cannot be handed to the proxy
/// mid-stream once gRPC rules apply: it is reset, and the client's next connection goes
/// through the proxy.
#[test]
fn a_connection_older_than_its_grpc_rules_is_reset() {
    if !weir_lab::privileged("a_connection_older_than_its_grpc_rules_is_reset") {
        return;
    }
    let s = Setup::new("r", &[("catalog.yaml", CATALOG_L4_POLICY)]);
    let catalog = s.addr("catalog-0", 50051, false);
    // The first call goes over a direct connection; then the rules become gRPC rules.
    let got = across(&s.lab, "reco-0", catalog, ("get:1", "get:2"), || {
        replace_policy(&s, "catalog.yaml", CATALOG_GRPC_POLICY)
    });
    assert_reset_between(&got);
    // A new connection goes through the proxy and is decided by the rules. (A new client: the
    // old channel may still be backing off after the reset.)
    let got = s
        .lab
        .catalog_calls("reco-0", catalog, "update:1,get:3", HTTP)
        .unwrap();
    assert_eq!(
        outcomes(&got),
        [("UpdateStock", "PERMISSION_DENIED"), ("GetProduct", "OK")]
    );
    // Nothing more reached the server on the old connection.
    let seen = calls_from(&s, "reco-0");
    assert!(
        seen[1..].iter().all(|c| c.1 != seen[0].1),
        "a call passed on the old connection: {seen:?}"
    );
    assert!(seen.iter().all(|c| c.0 == GET_PRODUCT), "{seen:?}");
}
