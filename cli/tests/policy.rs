//! `weir policy validate|get|trace`: the `weir` binary on the seed policies
//! (`policy/testdata`) and on a real in-process `weir.Agent` gRPC server
//! listening on a unix socket in a temporary directory.
//!
//! Outputs are compared with `tests/golden/policy/*.txt`; refresh them with
//! `WEIR_UPDATE_SNAPSHOTS=1 cargo test -p weir-cli --test policy`.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;

use tokio::net::UnixListener;
use tokio_stream::wrappers::UnixListenerStream;
use tonic::{Request, Response, Status};
use weir_proto::flow;
use weir_proto::google::protobuf::Timestamp;
use weir_proto::weir::agent_server::{Agent, AgentServer};
use weir_proto::weir::{
    DirectionPolicy, EndpointPolicy, GetPolicyRequest, GetPolicyResponse, Notice, PolicyRule,
    SourceFile,
};

/// The workspace root: commands run there so that paths in outputs are
/// relative and stable.
fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace root")
        .to_path_buf()
}

fn weir_command(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_weir"));
    cmd.args(args)
        .current_dir(workspace())
        .env_remove("WEIR_SERVER")
        .env("WEIR_LOG", "error");
    cmd
}

fn weir(args: &[&str]) -> Output {
    weir_command(args).output().expect("running weir")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec()).expect("utf-8 output")
}

/// Checks exit code 0, an empty stderr and stdout against a golden file.
fn golden(name: &str, out: &Output) {
    assert_eq!(out.status.code(), Some(0), "{name}: {out:?}");
    assert_eq!(text(&out.stderr), "", "{name}");
    if let Err(e) = common::check_snapshot("golden/policy", name, &text(&out.stdout)) {
        panic!("{e}");
    }
}

fn read_golden(name: &str) -> String {
    std::fs::read_to_string(common::golden_dir().join("policy").join(name)).expect("golden file")
}

/// Exit code, stdout and stderr.
fn result(out: &Output) -> (Option<i32>, String, String) {
    (out.status.code(), text(&out.stdout), text(&out.stderr))
}

const SEEDS: &str = "policy/testdata/seeds";
const HEADERS: &str = "policy/testdata/seeds/003_user_service_header_match.yaml";
const STATE: &str = "policy/testdata/seed-state";
const INVALID_USERS: &str = "policy/testdata/invalid/001_frontend_to_backend_users.yaml";
const OWN: &str = "cli/tests/testdata/policies";

const USERS_ERRORS: &str = "policy/testdata/invalid/001_frontend_to_backend_users.yaml:2:1: document 1 (CiliumNetworkPolicy default/frontend-to-backend-users), apiVersion: apiVersion `cilium.io/v1alpha1` is not supported: use `cilium.io/v2`\n\
    policy/testdata/invalid/001_frontend_to_backend_users.yaml:16:15: document 1 (CiliumNetworkPolicy default/frontend-to-backend-users), spec.ingress[0].toPorts[0].ports[0]: unknown field `number`: did you mean `port`? (expected one of `port`, `endPort`, `protocol`)\n";
const GRPC_ERROR: &str = "policy/testdata/invalid/001_grpc_rules.yaml:16:13: document 1 (CiliumNetworkPolicy default/user-service-grpc), spec.ingress[0].toPorts[0].rules: unknown field `grpc`: gRPC runs over HTTP/2, so write `http` rules with `method: POST` and `path: /package.Service/Method` (expected one of `http`, `kafka`, `dns`, `l7proto`, `l7`)\n";

// ---------------------------------------------------------------- validate

#[test]
fn validate_lists_policies_and_notices() {
    golden("validate-seeds.txt", &weir(&["policy", "validate", SEEDS]));
    golden(
        "validate-files.txt",
        &weir(&["policy", "validate", HEADERS, OWN]),
    );
}

#[test]
fn validate_prints_every_problem_exactly() {
    assert_eq!(
        result(&weir(&["policy", "validate", INVALID_USERS])),
        (
            Some(1),
            USERS_ERRORS.to_owned(),
            "Error: 2 problems found: the policies are rejected\n".to_owned()
        )
    );
    // A directory: every file, in name order; one bad file rejects the good ones too.
    assert_eq!(
        result(&weir(&[
            "policy",
            "validate",
            "policy/testdata/invalid",
            HEADERS
        ])),
        (
            Some(1),
            format!("{USERS_ERRORS}{GRPC_ERROR}"),
            "Error: 3 problems found: the policies are rejected\n".to_owned()
        )
    );
    assert_eq!(
        result(&weir(&["policy", "validate", "nope.yaml"])),
        (
            Some(1),
            "nope.yaml: No such file or directory (os error 2)\n".to_owned(),
            "Error: 1 problem found: the policies are rejected\n".to_owned()
        )
    );
}

#[test]
fn validate_json() {
    let out = weir(&["policy", "validate", "-o", "json", HEADERS]);
    assert_eq!(out.status.code(), Some(0));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(
        json,
        serde_json::json!({
            "valid": true,
            "files": [HEADERS],
            "policies": [{
                "kind": "CiliumNetworkPolicy", "namespace": "default",
                "name": "user-service-api-policy-headers", "file": HEADERS, "document": 1
            }],
            // Its HTTP rules are enforced: no notice.
            "notices": [],
            "errors": []
        })
    );

    let out = weir(&["policy", "validate", "-o", "json", INVALID_USERS]);
    assert_eq!(out.status.code(), Some(1));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let first = USERS_ERRORS.lines().next().unwrap();
    assert_eq!(json["valid"], false);
    assert_eq!(json["policies"], serde_json::json!([]));
    assert_eq!(json["errors"].as_array().unwrap().len(), 2);
    assert_eq!(
        json["errors"][0],
        serde_json::json!({
            "file": INVALID_USERS, "document": 1,
            "policy": "CiliumNetworkPolicy default/frontend-to-backend-users",
            "line": 2, "column": 1, "field": "apiVersion",
            "message": "apiVersion `cilium.io/v1alpha1` is not supported: use `cilium.io/v2`",
            "text": first
        })
    );
}

#[test]
fn validate_empty_inputs() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().to_str().unwrap();
    assert_eq!(
        result(&weir(&["policy", "validate", empty])),
        (
            Some(0),
            "No policy files found.\n".to_owned(),
            String::new()
        )
    );
    std::fs::write(dir.path().join("a.yaml"), "# nothing yet\n").unwrap();
    assert_eq!(
        result(&weir(&["policy", "validate", empty])),
        (
            Some(0),
            "No policies found in 1 file.\n".to_owned(),
            String::new()
        )
    );
    assert_eq!(weir(&["policy", "validate"]).status.code(), Some(64));
}

// ------------------------------------------------------------------- trace

/// The words of a command line (no argument here contains spaces).
fn words(line: &str) -> Vec<&str> {
    line.split_whitespace().collect()
}

/// `weir policy trace --policies <policies> --state <seed state> <flags>`.
fn trace_files(policies: &str, flags: &str) -> Output {
    let mut args = words("policy trace --state");
    args.extend([STATE, "--policies", policies]);
    args.extend(words(flags));
    weir(&args)
}

#[test]
fn trace_seed_scenarios() {
    let own = |f: &str| format!("{OWN}/{f}");
    let cases: Vec<(&str, String, &str)> = vec![
        // The user service accepts the frontend on 80 ...
        (
            "trace-frontend-users-80-allowed.txt",
            HEADERS.into(),
            "--src-endpoint frontend --dst-endpoint users --dport 80/TCP",
        ),
        // ... but not billing: default deny at the destination (POLICY_DENIED).
        (
            "trace-billing-users-80-denied.txt",
            HEADERS.into(),
            "--src-endpoint default/billing --dst-endpoint users --dport 80",
        ),
        (
            "trace-billing-users-80-denied.json",
            HEADERS.into(),
            "--src-endpoint billing --dst-endpoint users --dport 80 -o json",
        ),
        // A deny rule beats an allow rule (POLICY_DENY).
        (
            "trace-deny-rule.txt",
            own("deny-billing.yaml"),
            "--src-endpoint billing --dst-endpoint users --dport 80",
        ),
        // CIDR rules: the address gets its prefix's identity, labelled reserved:world.
        (
            "trace-cidr-world-allowed.txt",
            own("backend-cidr.yaml"),
            "--src-endpoint backend --dst-ip 104.198.1.1 --dport 443",
        ),
        (
            "trace-cidr-except-denied.txt",
            own("backend-cidr.yaml"),
            "--src-endpoint backend --dst-ip 104.198.14.52 --dport 443",
        ),
        // The host entity, without allow-localhost: only the rule allows it.
        (
            "trace-entity-host.txt",
            own("catalog-host.yaml"),
            "--src-labels reserved:host --dst-endpoint catalog --dport 8080 --allow-localhost=false",
        ),
        // Another node's address is remote-node at catalog's node: denied.
        (
            "trace-remote-node-denied.txt",
            own("catalog-host.yaml"),
            "--src-ip 192.168.10.2 --dst-endpoint catalog --dport 8080",
        ),
        // The cluster-wide default deny: both enforcement points deny.
        (
            "trace-clusterwide-default-deny.txt",
            SEEDS.into(),
            "--src-endpoint reco --dst-endpoint users --dport 80",
        ),
        // DNS is allowed at egress, but coredns only accepts its host.
        (
            "trace-clusterwide-dns.txt",
            SEEDS.into(),
            "--src-endpoint alliance-0 --dst-endpoint kube-system/coredns --dport 53/UDP",
        ),
        // Only the agent of node n1 enforces: frontend (on n2) is no enforcement point.
        (
            "trace-node.txt",
            SEEDS.into(),
            "--src-endpoint frontend --dst-endpoint users --dport 80 --node n1",
        ),
    ];
    for (name, policies, flags) in cases {
        golden(name, &trace_files(&policies, flags));
    }
}

#[test]
fn trace_labels_needs_no_state() {
    let mut args = words("policy trace --policies");
    args.push(HEADERS);
    args.extend(words(
        "--src-labels app=frontend --dst-labels app=users --dst-namespace default --dport 80",
    ));
    golden("trace-labels.txt", &weir(&args));
}

#[test]
fn trace_json_shape() {
    let out = trace_files(
        &format!("{OWN}/deny-billing.yaml"),
        "--src-endpoint billing --dst-endpoint users --dport 80 -o json",
    );
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let mut top: Vec<&String> = json.as_object().unwrap().keys().collect();
    top.sort();
    assert_eq!(
        top,
        [
            "destination",
            "egress",
            "ingress",
            "port",
            "protocol",
            "source",
            "verdict"
        ]
    );
    assert_eq!(json["verdict"], "DENIED");
    assert_eq!(json["protocol"], "TCP");
    assert_eq!(json["port"], 80);
    assert_eq!(
        json["source"],
        serde_json::json!({
            "endpoint": "default/billing",
            "node": "n2",
            "address": "10.10.0.24",
            "identity": json["source"]["identity"],
            "labels": [
                "k8s:app=billing",
                "k8s:io.cilium.k8s.namespace.labels.kubernetes.io/metadata.name=default",
                "k8s:io.cilium.k8s.policy.cluster=seeds",
                "k8s:io.kubernetes.pod.namespace=default"
            ]
        })
    );
    assert_eq!(
        json["ingress"],
        serde_json::json!({
            "enforced": true,
            "verdict": "DENIED",
            "reason": "deny-rule",
            "drop_reason": "POLICY_DENY",
            "drop_reason_code": 181,
            "remote_identity": json["source"]["identity"],
            "policies": [
                {"kind": "CiliumNetworkPolicy", "namespace": "default", "name": "users-from-default"}
            ]
        })
    );
    assert_eq!(
        json["egress"],
        serde_json::json!({
            "enforced": false,
            "verdict": "ALLOWED",
            "reason": "not-enforced",
            "drop_reason": null,
            "drop_reason_code": 0,
            "remote_identity": json["destination"]["identity"],
            "policies": []
        })
    );
}

#[test]
fn trace_exit_codes() {
    // Bad flags: 64, before anything is read.
    let usage = |line: &str| {
        let mut args = words("policy trace --policies");
        args.push(HEADERS);
        args.extend(words(line));
        let out = weir(&args);
        assert_eq!(out.status.code(), Some(64), "{line}: {out:?}");
        assert_eq!(text(&out.stdout), "", "{line}");
        text(&out.stderr)
    };
    let clap = |line: &str, needle: &str| {
        let err = usage(line);
        assert!(err.contains(needle), "{line}: {err}");
    };
    clap("--dst-labels app=users", "--src-labels");
    clap(
        "--src-labels app=a --src-ip 10.0.0.1 --dst-labels app=users",
        "cannot be used with",
    );
    clap(
        "--src-labels app=a --dst-labels app=users --dport 80/GRE",
        "unknown protocol `GRE`: use TCP, UDP, SCTP, ICMP or ICMPv6",
    );
    clap(
        "--src-ip 1.1.1.1 --dst-ip 2.2.2.2 --allow-localhost maybe",
        "--allow-localhost",
    );
    let out = weir(&words(
        "policy trace --state x --src-ip 1.1.1.1 --dst-ip 2.2.2.2",
    ));
    assert_eq!(out.status.code(), Some(64));
    assert!(text(&out.stderr).contains("--policies"), "{out:?}");
    for (line, message) in [
        (
            "--src-namespace x --src-ip 10.0.0.1 --dst-ip 10.0.0.2",
            "Error: --src-namespace applies to --src-labels\n",
        ),
        (
            "--src-endpoint frontend --dst-labels app=users",
            "Error: --src-endpoint needs the cluster state: pass --state DIR with --policies\n",
        ),
        (
            "--src-labels app=a --dst-labels =x",
            "Error: invalid --dst-labels: label `=x`: the key is empty\n",
        ),
        (
            "--src-labels reserved:world --src-namespace x --dst-ip 10.0.0.2",
            "Error: --src-namespace applies to pod labels, not to reserved: or cidr: labels\n",
        ),
    ] {
        assert_eq!(usage(line), message, "{line}");
    }
    assert_eq!(
        result(&trace_files(
            HEADERS,
            "--src-endpoint nope --dst-endpoint users"
        )),
        (
            Some(64),
            String::new(),
            "Error: no endpoint `nope` in the state directory\n".to_owned()
        )
    );
    assert_eq!(
        result(&trace_files(
            HEADERS,
            "--src-endpoint frontend --dst-endpoint users --node n9"
        )),
        (
            Some(64),
            String::new(),
            "Error: --node n9: no such node in the cluster state\n".to_owned()
        )
    );

    // Unreadable input: 1, with the policy crate's messages.
    assert_eq!(
        result(&trace_files(
            INVALID_USERS,
            "--src-ip 1.1.1.1 --dst-endpoint users"
        )),
        (Some(1), String::new(), format!("Error: {USERS_ERRORS}"))
    );
    let mut args = words("policy trace --state no/such/dir --src-ip 1.1.1.1 --dst-ip 2.2.2.2");
    args.extend(["--policies", HEADERS]);
    assert_eq!(
        result(&weir(&args)),
        (
            Some(1),
            String::new(),
            "Error: --state no/such/dir: not a directory\n".to_owned()
        )
    );
    assert_eq!(
        result(&trace_files(
            "no/such/policy.yaml",
            "--src-ip 1.1.1.1 --dst-ip 2.2.2.2"
        )),
        (
            Some(1),
            String::new(),
            "Error: no/such/policy.yaml: No such file or directory (os error 2)\n".to_owned()
        )
    );
}

// ----------------------------------------------------- against an agent

/// A `weir.Agent` that answers every GetPolicy with the same response.
#[derive(Clone)]
struct TestAgent(Arc<GetPolicyResponse>);

#[tonic::async_trait]
impl Agent for TestAgent {
    async fn get_policy(
        &self,
        _: Request<GetPolicyRequest>,
    ) -> Result<Response<GetPolicyResponse>, Status> {
        Ok(Response::new((*self.0).clone()))
    }
}

/// A running server; the socket lives in `dir`.
struct Server {
    _dir: tempfile::TempDir,
    socket: PathBuf,
}

impl Server {
    async fn start(res: GetPolicyResponse) -> Server {
        let dir = tempfile::tempdir().expect("temp dir");
        let socket = dir.path().join("hubble.sock");
        let listener = UnixListener::bind(&socket).expect("binding the test socket");
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(AgentServer::new(TestAgent(Arc::new(res))))
                .serve_with_incoming(UnixListenerStream::new(listener)),
        );
        Server { _dir: dir, socket }
    }

    /// Runs `weir <args> --server unix://<socket>` to completion.
    async fn weir(&self, args: &[&str]) -> Output {
        let mut cmd = weir_command(args);
        cmd.arg("--server")
            .arg(format!("unix://{}", self.socket.display()));
        tokio::task::spawn_blocking(move || cmd.output().expect("running weir"))
            .await
            .expect("joining")
    }
}

/// `file` of the workspace, reported as if it lived under `dir`.
fn source(dir: &str, rel: &str, file: &Path) -> SourceFile {
    SourceFile {
        path: format!("{dir}/{rel}"),
        content: std::fs::read_to_string(workspace().join(file)).expect("reading a test file"),
    }
}

/// What an agent applying `policies` and the seed state reports.
fn agent_files(policies: &[&str]) -> GetPolicyResponse {
    let mut policy_files: Vec<SourceFile> = policies
        .iter()
        .map(|p| {
            let name = Path::new(p).file_name().unwrap().to_str().unwrap();
            source("/etc/weir/policies", name, Path::new(p))
        })
        .collect();
    // The agent reports files of subdirectories too, but does not apply them.
    policy_files.push(SourceFile {
        path: "/etc/weir/policies/old/broken.yaml".into(),
        content: "not: a policy\n".into(),
    });
    let state = workspace().join(STATE);
    let mut state_files = vec![source(
        "/etc/weir/state",
        "cluster.yaml",
        &state.join("cluster.yaml"),
    )];
    let mut endpoints: Vec<PathBuf> = std::fs::read_dir(state.join("endpoints"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    endpoints.sort();
    for ep in endpoints {
        let name = ep.file_name().unwrap().to_str().unwrap().to_owned();
        state_files.push(source("/etc/weir/state", &format!("endpoints/{name}"), &ep));
    }
    GetPolicyResponse {
        revision: 7,
        policy_generation: 2,
        applied_at: Some(Timestamp {
            seconds: common::T0,
            nanos: 0,
        }),
        node_name: "n1".into(),
        policy_dir: "/etc/weir/policies".into(),
        state_dir: "/etc/weir/state".into(),
        policy_files,
        state_files,
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trace_replays_the_agents_files() {
    let server = Server::start(agent_files(&[HEADERS])).await;
    let out = server
        .weir(&words(
            "policy trace --src-endpoint frontend --dst-endpoint users --dport 80/TCP",
        ))
        .await;
    let expected = read_golden("trace-frontend-users-80-allowed.txt").replace(
        "Using 1 policy and 20 endpoints from the given files.",
        "Using 1 policy and 20 endpoints of the agent on n1 (revision 7).",
    );
    assert_eq!(result(&out), (Some(0), expected, String::new()));

    let out = server
        .weir(&words(
            "policy trace --src-endpoint billing --dst-endpoint users --dport 80 -o json",
        ))
        .await;
    assert_eq!(
        result(&out),
        (
            Some(0),
            read_golden("trace-billing-users-80-denied.json"),
            String::new()
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trace_reports_the_agents_bad_files() {
    let mut res = agent_files(&[HEADERS]);
    res.policy_files.push(source(
        "/etc/weir/policies",
        "001_frontend_to_backend_users.yaml",
        Path::new(INVALID_USERS),
    ));
    let server = Server::start(res).await;
    let out = server
        .weir(&words("policy trace --src-ip 1.1.1.1 --dst-endpoint users"))
        .await;
    let errors = USERS_ERRORS.replace("policy/testdata/invalid/", "/etc/weir/policies/");
    assert_eq!(
        result(&out),
        (
            Some(1),
            String::new(),
            format!("Error: the agent's policies do not parse here:\n{errors}")
        )
    );
}

#[test]
fn unreachable_agent_is_a_runtime_failure() {
    let dir = tempfile::tempdir().unwrap();
    let socket = format!("unix://{}/nope.sock", dir.path().display());
    for line in [
        "policy get",
        "policy trace --src-ip 1.1.1.1 --dst-ip 2.2.2.2",
    ] {
        let mut args = words(line);
        args.extend(["--server", &socket]);
        let out = weir(&args);
        assert_eq!(out.status.code(), Some(1), "{out:?}");
        assert!(
            text(&out.stderr).starts_with(&format!("Error: failed to connect to {socket}")),
            "{out:?}"
        );
    }
}

fn cnp(ns: &str, name: &str) -> flow::Policy {
    flow::Policy {
        name: name.into(),
        namespace: ns.into(),
        labels: Vec::new(),
        revision: 7,
        kind: "CiliumNetworkPolicy".into(),
    }
}

fn ccnp(name: &str) -> flow::Policy {
    flow::Policy {
        kind: "CiliumClusterwideNetworkPolicy".into(),
        ..cnp("", name)
    }
}

fn pod_labels(app: &str) -> Vec<String> {
    vec![
        format!("k8s:app={app}"),
        "k8s:io.cilium.k8s.namespace.labels.kubernetes.io/metadata.name=default".into(),
        "k8s:io.cilium.k8s.policy.cluster=lab".into(),
        "k8s:io.kubernetes.pod.namespace=default".into(),
    ]
}

/// What an agent on node1 of a lab could report.
fn canned() -> GetPolicyResponse {
    let users_policy = cnp("default", "user-service-api-policy");
    let deny_all = ccnp("default-deny-all");
    GetPolicyResponse {
        revision: 7,
        policy_generation: 2,
        applied_at: Some(Timestamp {
            seconds: common::T0,
            nanos: 123_000_000,
        }),
        node_name: "node1".into(),
        policy_dir: "/run/weir/lab/policies".into(),
        state_dir: "/run/weir/lab/state".into(),
        policy_files: vec![
            SourceFile {
                path: "/run/weir/lab/policies/users.yaml".into(),
                content: "# elided\n".into(),
            },
            SourceFile {
                path: "/run/weir/lab/policies/deny-all.yaml".into(),
                content: "# elided\n".into(),
            },
        ],
        state_files: vec![SourceFile {
            path: "/run/weir/lab/state/cluster.yaml".into(),
            content: "# elided\n".into(),
        }],
        endpoints: vec![
            EndpointPolicy {
                namespace: "default".into(),
                name: "frontend-0".into(),
                endpoint_id: 1,
                identity: 1_544_108,
                labels: pod_labels("frontend"),
                interface: "lab-fe0".into(),
                attached: false,
                ips: vec!["10.200.1.11".into(), "fd00:200::111".into()],
                ingress: Some(DirectionPolicy::default()),
                egress: Some(DirectionPolicy {
                    enforced: true,
                    selected_by: vec![deny_all.clone()],
                    rules: vec![
                        PolicyRule {
                            identity: 0,
                            identity_labels: Vec::new(),
                            protocol: "UDP".into(),
                            ports: "53".into(),
                            deny: false,
                            audit: false,
                            match_type: "L4-Only".into(),
                            policies: vec![deny_all.clone()],
                            http: Vec::new(),
                        },
                        PolicyRule {
                            identity: 16_777_217,
                            identity_labels: vec![
                                "cidr:203.0.113.0/24".into(),
                                "reserved:world".into(),
                            ],
                            protocol: "ANY".into(),
                            ports: String::new(),
                            deny: true,
                            audit: false,
                            match_type: "L3-Only".into(),
                            policies: vec![cnp("default", "no-test-net")],
                            http: Vec::new(),
                        },
                    ],
                }),
            },
            EndpointPolicy {
                namespace: "default".into(),
                name: "users-0".into(),
                endpoint_id: 2,
                identity: 11_452_418,
                labels: pod_labels("users"),
                interface: "lab-us0".into(),
                attached: true,
                ips: vec!["10.200.1.21".into()],
                ingress: Some(DirectionPolicy {
                    enforced: true,
                    selected_by: vec![deny_all.clone(), users_policy.clone()],
                    rules: vec![
                        PolicyRule {
                            identity: 1,
                            identity_labels: vec!["reserved:host".into()],
                            protocol: "ANY".into(),
                            ports: String::new(),
                            deny: false,
                            audit: false,
                            match_type: "L3-Only".into(),
                            policies: vec![deny_all.clone()],
                            http: Vec::new(),
                        },
                        PolicyRule {
                            identity: 1_544_108,
                            identity_labels: pod_labels("frontend"),
                            protocol: "TCP".into(),
                            ports: "80".into(),
                            deny: false,
                            audit: false,
                            match_type: "L3-L4".into(),
                            policies: vec![users_policy.clone()],
                            http: Vec::new(),
                        },
                    ],
                }),
                egress: Some(DirectionPolicy {
                    enforced: true,
                    selected_by: vec![deny_all.clone()],
                    rules: vec![PolicyRule {
                        identity: 0,
                        identity_labels: Vec::new(),
                        protocol: "UDP".into(),
                        ports: "53".into(),
                        deny: false,
                        audit: false,
                        match_type: "L4-Only".into(),
                        policies: vec![deny_all.clone()],
                        http: Vec::new(),
                    }],
                }),
            },
        ],
        notices: vec![
            Notice {
                policy: Some(users_policy),
                location: "spec.ingress[0].toPorts[0].rules.http".into(),
                message:
                    "HTTP rules on port 80/TCP are not enforced yet: the port is allowed at L4"
                        .into(),
            },
            Notice {
                policy: Some(cnp("kafka", "kafka-broker-policy")),
                location: "spec.ingress[0].toPorts[0].rules.kafka".into(),
                message:
                    "Kafka rules on port 9092/TCP are not enforced yet: the port is allowed at L4"
                        .into(),
            },
        ],
        last_error: "/run/weir/lab/policies/typo.yaml:2:1: document 1 (CiliumNetworkPolicy default/typo), apiVersion: apiVersion `cilium.io/v1alpha1` is not supported: use `cilium.io/v2`\n\
                     /run/weir/lab/policies/typo.yaml:9:7: document 1 (CiliumNetworkPolicy default/typo), spec.ingress[0].fromEntities[0]: unknown entity `World`: did you mean `world`?"
            .into(),
        last_error_time: Some(Timestamp {
            seconds: common::T0 + 60,
            nanos: 0,
        }),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_prints_what_is_enforced() {
    let server = Server::start(canned()).await;
    golden("get.txt", &server.weir(&["policy", "get"]).await);
    golden(
        "get-endpoint.txt",
        &server
            .weir(&["policy", "get", "--endpoint", "default/users-0"])
            .await,
    );
    let out = server
        .weir(&["policy", "get", "--endpoint", "frontend-0", "-o", "json"])
        .await;
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let parsed: GetPolicyResponse = serde_json::from_slice(&out.stdout).expect("protojson");
    let mut expected = canned();
    expected.endpoints.remove(1);
    expected.notices.clear();
    assert_eq!(parsed, expected);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        json["revision"], "7",
        "64-bit integers are strings in protojson"
    );
    assert_eq!(json["applied_at"], "2024-11-23T17:30:01.123Z");
    assert_eq!(
        json["endpoints"][0]["egress"]["selected_by"][0]["name"],
        "default-deny-all"
    );

    let out = server.weir(&["policy", "get", "-o", "json"]).await;
    let parsed: GetPolicyResponse = serde_json::from_slice(&out.stdout).expect("protojson");
    assert_eq!(parsed, canned());

    assert_eq!(
        result(
            &server
                .weir(&["policy", "get", "--endpoint", "kube-system/coredns"])
                .await
        ),
        (
            Some(1),
            String::new(),
            "Error: no endpoint kube-system/coredns is enforced on node node1\n".to_owned()
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_before_the_first_apply() {
    let server = Server::start(GetPolicyResponse {
        node_name: "node1".into(),
        policy_dir: "/p".into(),
        state_dir: "/s".into(),
        ..Default::default()
    })
    .await;
    assert_eq!(
        result(&server.weir(&["policy", "get"]).await),
        (
            Some(0),
            "Revision:    0\nNode:        node1\nApplied:     not yet\nPolicy dir:  /p (0 files)\nState dir:   /s (0 files)\n\nNo local endpoints.\n"
                .to_owned(),
            String::new()
        )
    );
}
