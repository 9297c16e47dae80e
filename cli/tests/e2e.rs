//! End to end: the `weir` binary against a real in-process gRPC server
//! (`observer.Observer` and `grpc.health.v1.Health`) listening on a unix
//! socket in a temporary directory.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::Stream;
use tokio::net::UnixListener;
use tokio_stream::wrappers::{ReceiverStream, UnixListenerStream};
use tonic::{Request, Response, Status};
use tonic_health::ServingStatus;
use weir_proto::filter::FlowFilters;
use weir_proto::observer::observer_server::{Observer, ObserverServer};
use weir_proto::observer::{
    GetAgentEventsRequest, GetAgentEventsResponse, GetDebugEventsRequest, GetDebugEventsResponse,
    GetFlowsRequest, GetFlowsResponse, GetNamespacesRequest, GetNamespacesResponse,
    GetNodesRequest, GetNodesResponse, Namespace, Node, ServerStatusRequest, ServerStatusResponse,
    Tls, get_flows_response::ResponseTypes,
};
use weir_proto::relay::NodeState;

type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

/// A small Observer: serves `stored` like a flow buffer (filters, first or
/// last N, time range) and, with `follow`, then `live` one by one.
#[derive(Clone, Default)]
struct TestObserver {
    stored: Vec<GetFlowsResponse>,
    live: Vec<GetFlowsResponse>,
    status: ServerStatusResponse,
    nodes: Vec<Node>,
    namespaces: Vec<Namespace>,
    requests: Arc<Mutex<Vec<GetFlowsRequest>>>,
}

fn selected(res: &GetFlowsResponse, req: &GetFlowsRequest, filters: &FlowFilters) -> bool {
    let t = res.time.map(|t| (t.seconds, t.nanos)).unwrap_or((0, 0));
    if req.since.is_some_and(|s| (s.seconds, s.nanos) > t)
        || req.until.is_some_and(|u| (u.seconds, u.nanos) < t)
    {
        return false;
    }
    match &res.response_types {
        Some(ResponseTypes::Flow(f)) => filters.matches(f),
        _ => req.whitelist.is_empty(),
    }
}

#[tonic::async_trait]
impl Observer for TestObserver {
    type GetFlowsStream = BoxStream<GetFlowsResponse>;
    type GetAgentEventsStream = BoxStream<GetAgentEventsResponse>;
    type GetDebugEventsStream = BoxStream<GetDebugEventsResponse>;

    async fn get_flows(
        &self,
        request: Request<GetFlowsRequest>,
    ) -> Result<Response<Self::GetFlowsStream>, Status> {
        let req = request.into_inner();
        self.requests.lock().unwrap().push(req.clone());
        let filters = FlowFilters::new(&req.whitelist, &req.blacklist)
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        let matching: Vec<GetFlowsResponse> = self
            .stored
            .iter()
            .filter(|r| selected(r, &req, &filters))
            .cloned()
            .collect();
        let n = usize::try_from(req.number).unwrap_or(usize::MAX);
        let history: Vec<GetFlowsResponse> = if req.first {
            matching.into_iter().take(n).collect()
        } else if req.follow && req.number == 0 && req.since.is_none() {
            Vec::new()
        } else if req.number == 0 {
            matching
        } else {
            let skip = matching.len().saturating_sub(n);
            matching.into_iter().skip(skip).collect()
        };
        let live: Vec<GetFlowsResponse> = if req.follow {
            self.live
                .iter()
                .filter(|r| selected(r, &req, &filters))
                .cloned()
                .collect()
        } else {
            Vec::new()
        };
        let (tx, rx) = tokio::sync::mpsc::channel(16);
        tokio::spawn(async move {
            for res in history {
                if tx.send(Ok(res)).await.is_err() {
                    return;
                }
            }
            if !req.follow {
                return;
            }
            for res in live {
                tokio::time::sleep(Duration::from_millis(50)).await;
                if tx.send(Ok(res)).await.is_err() {
                    return;
                }
            }
            // A followed stream stays open until the client goes away.
            tx.closed().await;
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn get_agent_events(
        &self,
        _: Request<GetAgentEventsRequest>,
    ) -> Result<Response<Self::GetAgentEventsStream>, Status> {
        Err(Status::unimplemented("agent events"))
    }

    async fn get_debug_events(
        &self,
        _: Request<GetDebugEventsRequest>,
    ) -> Result<Response<Self::GetDebugEventsStream>, Status> {
        Err(Status::unimplemented("debug events"))
    }

    async fn get_nodes(
        &self,
        _: Request<GetNodesRequest>,
    ) -> Result<Response<GetNodesResponse>, Status> {
        Ok(Response::new(GetNodesResponse {
            nodes: self.nodes.clone(),
        }))
    }

    async fn get_namespaces(
        &self,
        _: Request<GetNamespacesRequest>,
    ) -> Result<Response<GetNamespacesResponse>, Status> {
        Ok(Response::new(GetNamespacesResponse {
            namespaces: self.namespaces.clone(),
        }))
    }

    async fn server_status(
        &self,
        _: Request<ServerStatusRequest>,
    ) -> Result<Response<ServerStatusResponse>, Status> {
        Ok(Response::new(self.status.clone()))
    }
}

/// A running server; the socket lives in `dir`.
struct Server {
    _dir: tempfile::TempDir,
    socket: PathBuf,
    requests: Arc<Mutex<Vec<GetFlowsRequest>>>,
}

impl Server {
    async fn start(observer: TestObserver, health: ServingStatus) -> Server {
        let dir = tempfile::tempdir().expect("temp dir");
        let socket = dir.path().join("hubble.sock");
        let listener = UnixListener::bind(&socket).expect("binding the test socket");
        let (reporter, health_service) = tonic_health::server::health_reporter();
        reporter
            .set_service_status("hubble.server.Observer", health)
            .await;
        let requests = observer.requests.clone();
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(health_service)
                .add_service(ObserverServer::new(observer))
                .serve_with_incoming(UnixListenerStream::new(listener)),
        );
        Server {
            _dir: dir,
            socket,
            requests,
        }
    }

    fn server_flag(&self) -> String {
        format!("unix://{}", self.socket.display())
    }

    /// Runs `weir <args> --server <socket>` to completion.
    async fn weir(&self, args: &[&str]) -> Output {
        let mut cmd = weir_command(args);
        cmd.arg("--server").arg(self.server_flag());
        tokio::task::spawn_blocking(move || cmd.output().expect("running weir"))
            .await
            .expect("joining")
    }

    fn last_request(&self) -> GetFlowsRequest {
        self.requests
            .lock()
            .unwrap()
            .last()
            .cloned()
            .expect("a GetFlows request was received")
    }
}

fn weir_command(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_weir"));
    cmd.args(args)
        .env_remove("WEIR_SERVER")
        .env_remove("NO_COLOR")
        .env("WEIR_LOG", "error");
    cmd
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec()).expect("utf-8 output")
}

fn observer() -> TestObserver {
    TestObserver {
        stored: common::responses(),
        status: ServerStatusResponse {
            num_flows: 2031,
            max_flows: 4095,
            seen_flows: 2_348_885,
            uptime_ns: 301_515_181_665,
            version: "weir v0.1.0".into(),
            flows_rate: 23.456,
            num_lost_events: 7,
            ..Default::default()
        },
        ..Default::default()
    }
}

fn golden_part(name: &str) -> (String, String) {
    let golden = std::fs::read_to_string(common::golden_dir().join(name)).expect("golden file");
    let (out, err) = golden
        .split_once("--- stderr ---\n")
        .expect("golden has a stderr part");
    (out.to_owned(), err.to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn observe_default_prints_the_last_20_compact() {
    let server = Server::start(observer(), ServingStatus::Serving).await;
    let out = server.weir(&["observe", "--color", "never"]).await;
    assert!(out.status.success(), "{out:?}");
    let (stdout, stderr) = golden_part("compact.txt");
    assert_eq!(text(&out.stdout), stdout);
    assert_eq!(text(&out.stderr), stderr);

    let req = server.last_request();
    assert_eq!(req.number, 20);
    assert!(!req.follow && !req.first);
    assert!(req.whitelist.is_empty() && req.blacklist.is_empty());
    let mask = req.field_mask.expect("default field mask").paths;
    assert_eq!(mask, weir_cli::observe::request::DEFAULT_FIELD_MASK);

    // `observe flows` is the same command.
    let flows = server.weir(&["observe", "flows", "--color", "never"]).await;
    assert_eq!(flows.stdout, out.stdout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn observe_sends_filters_and_selectors() {
    let server = Server::start(observer(), ServingStatus::Serving).await;

    let out = server
        .weir(&[
            "observe",
            "--verdict",
            "DROPPED",
            "--not",
            "--to-namespace",
            "shop",
            "-o",
            "jsonpb",
        ])
        .await;
    assert!(out.status.success(), "{out:?}");
    let lines: Vec<GetFlowsResponse> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("jsonpb line"))
        .collect();
    let uuids: Vec<String> = lines
        .iter()
        .map(|r| match &r.response_types {
            Some(ResponseTypes::Flow(f)) => f.uuid.clone(),
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(
        uuids,
        [
            "0b5e6a1c-0000-4000-8000-000000000000",
            "0b5e6a1c-0000-4000-8000-000000000000",
            "0b5e6a1c-0000-4000-8000-000000000650",
        ]
    );
    let req = server.last_request();
    assert_eq!(req.whitelist.len(), 1);
    assert_eq!(req.whitelist[0].verdict, vec![2]);
    assert_eq!(req.blacklist.len(), 1);
    assert_eq!(req.blacklist[0].destination_pod, vec!["shop/".to_owned()]);
    assert_eq!(req.field_mask, None, "no default mask for json");

    let out = server
        .weir(&[
            "observe",
            "--first",
            "2",
            "-o",
            "jsonpb",
            "--field-mask",
            "time,verdict",
        ])
        .await;
    assert!(out.status.success(), "{out:?}");
    assert_eq!(text(&out.stdout).lines().count(), 2);
    let req = server.last_request();
    assert_eq!((req.first, req.number), (true, 2));
    assert_eq!(req.field_mask.unwrap().paths, ["time", "verdict"]);

    let out = server
        .weir(&[
            "observe",
            "--last",
            "3",
            "-t",
            "l7",
            "--http-method",
            "DELETE",
        ])
        .await;
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        text(&out.stdout),
        "Nov 23 17:30:01.773: default/frontend-7d9f:51202 (ID:34567) -> default/users-0:80 (ID:23456) \
         http-request DROPPED (HTTP/1.1 DELETE http://users.default.svc.cluster.local/v1/users/42)\n"
    );
    assert_eq!(server.last_request().number, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn observe_follow_streams_new_flows_until_stopped() {
    let mut obs = observer();
    let live: Vec<GetFlowsResponse> = common::flows()
        .into_iter()
        .filter(|(name, _)| name.starts_with("http-"))
        .map(|(_, f)| common::flow_response(f))
        .collect();
    obs.live = live;
    let server = Server::start(obs, ServingStatus::Serving).await;

    let mut cmd = weir_command(&[
        "observe",
        "-f",
        "--last",
        "1",
        "--protocol",
        "http",
        "--color",
        "never",
    ]);
    cmd.arg("--server")
        .arg(server.server_flag())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let lines = tokio::task::spawn_blocking(move || {
        let mut child = cmd.spawn().expect("spawning weir");
        let mut reader = BufReader::new(child.stdout.take().expect("piped stdout"));
        let mut lines = Vec::new();
        for _ in 0..4 {
            let mut line = String::new();
            if reader.read_line(&mut line).expect("reading weir's output") == 0 {
                break;
            }
            lines.push(line);
        }
        // Still running: a followed stream does not end by itself.
        let still_running = child.try_wait().expect("polling weir").is_none();
        child.kill().expect("stopping weir");
        child.wait().expect("reaping weir");
        (lines, still_running)
    })
    .await
    .expect("joining");
    let (lines, still_running) = lines;
    assert!(still_running);
    assert_eq!(lines.len(), 4, "{lines:?}");
    // One stored flow (--last 1), then the live ones.
    assert!(lines[0].contains("http-request DROPPED"), "{}", lines[0]);
    assert!(lines[1].contains("http-request FORWARDED"), "{}", lines[1]);
    assert!(
        lines[2].contains("<- default/users-0:80 (ID:23456) http-response FORWARDED"),
        "{}",
        lines[2]
    );
    assert!(lines[3].contains("http-request DROPPED"), "{}", lines[3]);
    let req = server.last_request();
    assert!(req.follow);
    assert_eq!(req.number, 1);
    assert_eq!(req.whitelist[0].protocol, vec!["http".to_owned()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_checks_health_then_prints_server_status() {
    let server = Server::start(observer(), ServingStatus::Serving).await;
    let out = server.weir(&["status"]).await;
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        text(&out.stdout),
        format!(
            "Healthcheck (via {}): Ok\nCurrent/Max Flows: 2,031/4,095 (49.60%)\nFlows/s: 23.46\nLost Events: 7\n",
            server.server_flag()
        )
    );
    let out = server.weir(&["status", "-o", "json"]).await;
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        text(&out.stdout),
        "{\"num_flows\":\"2031\",\"max_flows\":\"4095\",\"seen_flows\":\"2348885\",\"uptime_ns\":\"301515181665\",\
         \"version\":\"weir v0.1.0\",\"flows_rate\":23.456,\"num_lost_events\":\"7\"}\n"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_fails_when_not_serving() {
    let server = Server::start(observer(), ServingStatus::NotServing).await;
    let out = server.weir(&["status"]).await;
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_eq!(
        text(&out.stdout),
        format!(
            "Healthcheck (via {}): Unavailable: NOT_SERVING\n",
            server.server_flag()
        )
    );
    assert_eq!(text(&out.stderr), "Error: not healthy\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_nodes_and_namespaces() {
    let mut obs = observer();
    obs.nodes = vec![
        Node {
            name: "kind-worker2".into(),
            version: "weir v0.1.0".into(),
            address: "172.18.0.3:4244".into(),
            state: NodeState::NodeUnavailable as i32,
            ..Default::default()
        },
        Node {
            name: "kind-worker".into(),
            version: "weir v0.1.0".into(),
            address: "172.18.0.2:4244".into(),
            state: NodeState::NodeConnected as i32,
            tls: Some(Tls {
                enabled: false,
                server_name: String::new(),
            }),
            uptime_ns: 120_400_000_000,
            num_flows: 4095,
            max_flows: 4095,
            seen_flows: 12_040,
        },
    ];
    obs.namespaces = vec![
        Namespace {
            cluster: "default".into(),
            namespace: "default".into(),
        },
        Namespace {
            cluster: "default".into(),
            namespace: "kube-system".into(),
        },
    ];
    let server = Server::start(obs, ServingStatus::Serving).await;

    let out = server.weir(&["list", "nodes"]).await;
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        text(&out.stdout),
        "NAME           STATUS        AGE    FLOWS/S   CURRENT/MAX-FLOWS\n\
         kind-worker    Connected     2m0s   100.33    4095/4095 (100.00%)\n\
         kind-worker2   Unavailable   N/A    N/A       N/A\n"
    );
    let out = server.weir(&["list", "node", "-o", "wide"]).await;
    assert!(text(&out.stdout).starts_with(
        "NAME           STATUS        AGE    FLOWS/S   CURRENT/MAX-FLOWS     VERSION       ADDRESS           TLS\n\
         kind-worker    Connected     2m0s   100.33    4095/4095 (100.00%)   weir v0.1.0   172.18.0.2:4244   Disabled\n"
    ));
    let out = server.weir(&["list", "namespaces", "-o", "wide"]).await;
    assert_eq!(
        text(&out.stdout),
        "NAMESPACE     CLUSTER\ndefault       default\nkube-system   default\n"
    );
    let out = server.weir(&["list", "namespaces", "-o", "json"]).await;
    assert!(text(&out.stdout).starts_with(
        "[\n  {\n    \"cluster\": \"default\",\n    \"namespace\": \"default\"\n  },"
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_errors_and_unreachable_servers_exit_1() {
    let server = Server::start(observer(), ServingStatus::Serving).await;
    let out = server.weir(&["observe", "--from-ip", "10.0.0.300"]).await;
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_eq!(
        text(&out.stderr),
        "Error: rpc error: code = InvalidArgument desc = whitelist[0].source_ip: invalid IP address \"10.0.0.300\"\n"
    );

    let missing = Path::new("/nonexistent-weir-test/hubble.sock");
    let out = weir_command(&[
        "observe",
        "--server",
        &format!("unix://{}", missing.display()),
    ])
    .output()
    .expect("running weir");
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        text(&out.stderr)
            .starts_with("Error: failed to connect to unix:///nonexistent-weir-test/hubble.sock")
    );
}

#[test]
fn input_file_replays_saved_jsonpb() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("flows.json");
    let (jsonpb, _) = golden_part("jsonpb.txt");
    std::fs::write(&file, jsonpb).expect("writing flows");

    let out = weir_command(&[
        "observe",
        "--input-file",
        file.to_str().unwrap(),
        "--color",
        "never",
    ])
    .output()
    .expect("running weir");
    assert!(out.status.success(), "{out:?}");
    let (compact, _) = golden_part("compact.txt");
    assert_eq!(text(&out.stdout), compact);
    assert!(text(&out.stderr).contains("EVENTS LOST: HUBBLE_RING_BUFFER CPU(1) 3"));

    let out = weir_command(&[
        "observe",
        "--input-file",
        file.to_str().unwrap(),
        "--color",
        "never",
        "--to-pod",
        "shop/",
        "--last",
        "1",
    ])
    .output()
    .expect("running weir");
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        text(&out.stdout),
        "Nov 23 17:30:01.223: 203.0.113.7:51000 (world) -> shop/web-0:443 (ID:45678) \
         Policy denied by denylist DROPPED (TCP Flags: SYN)\n"
    );
    assert_eq!(
        text(&out.stderr),
        "",
        "lost events are not flows: filtered out"
    );
}
