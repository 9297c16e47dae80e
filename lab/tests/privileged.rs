//! Privileged tests: each builds its own lab with a unique prefix and removes it, also when it
//! panics. They skip (or fail under `CI=true`) where root, netns or BPF are missing.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, SocketAddr};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use weir_lab::{EndpointDef, Lab, LabConfig, LabError, NodeDef, Protocol, ServerDef, Signal};
use weir_policy::cluster::ClusterState;

const T: Duration = Duration::from_secs(5);

/// A prefix unique to this test and this run.
fn prefix(tag: &str) -> String {
    format!("wl{tag}{}", std::process::id())
}

/// Network namespaces whose name starts with `<prefix>-`.
fn namespaces_of(prefix: &str) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir("/run/netns")
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| e.file_name().to_str().map(str::to_string))
                .filter(|n| n.starts_with(&format!("{prefix}-")))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

fn assert_gone(prefix: &str) {
    assert_eq!(
        namespaces_of(prefix),
        Vec::<String>::new(),
        "namespaces of {prefix} remain"
    );
    let run_dir = Path::new(weir_lab::DEFAULT_RUN_ROOT).join(prefix);
    assert!(!run_dir.exists(), "{} remains", run_dir.display());
}

/// The host's interfaces, to check that a lab never adds one.
fn host_links() -> Vec<String> {
    let out = Command::new("ip")
        .args(["-o", "link", "show"])
        .output()
        .unwrap();
    let mut names: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            l.split(':')
                .nth(1)
                .map(|n| n.trim().split('@').next().unwrap().to_string())
        })
        .collect();
    names.sort();
    names
}

/// Whether a process runs (exists and is not a zombie waiting for its parent).
fn running(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|stat| {
            !matches!(
                stat.rsplit_once(')').unwrap().1.split_whitespace().next(),
                Some("Z" | "X")
            )
        })
        .unwrap_or(false)
}

fn same_netns(pid: u32, netns: &str) -> bool {
    let a = std::fs::metadata(format!("/proc/{pid}/ns/net")).unwrap();
    let b = std::fs::metadata(Path::new("/run/netns").join(netns)).unwrap();
    (a.dev(), a.ino()) == (b.dev(), b.ino())
}

#[test]
fn up_builds_everything_and_down_removes_it() {
    if !weir_lab::privileged("up_builds_everything_and_down_removes_it") {
        return;
    }
    let prefix = prefix("up");
    let links_before = host_links();
    let mut lab = Lab::up(LabConfig::with_prefix(&prefix)).expect("lab up");
    assert_eq!(
        host_links(),
        links_before,
        "the lab changed the host's interfaces"
    );

    let expected: Vec<String> = [
        "node1",
        "world",
        "default-frontend-0",
        "default-users-0",
        "default-billing-0",
        "default-catalog-0",
        "default-reco-0",
        "default-inventory-0",
        "kube-system-coredns-0",
        "production-api-server-0",
        "production-web-frontend-0",
        "default-service-0",
    ]
    .iter()
    .map(|n| format!("{prefix}-{n}"))
    .collect();
    let mut sorted = expected.clone();
    sorted.sort();
    assert_eq!(namespaces_of(&prefix), sorted);
    assert_eq!(lab.netns_names(), expected);

    // Interfaces, addresses and routes.
    let node = lab.node("node1").unwrap().clone();
    let show = |args: &[&str]| {
        let out = lab.exec(&node.name, args).unwrap();
        String::from_utf8(out.stdout).unwrap()
    };
    let links = show(&["ip", "-o", "link", "show"]);
    for dev in ["cluster0", "ext0", "lxc01", "lxc09"] {
        assert!(
            links.contains(&format!(": {dev}")),
            "{dev} missing in:\n{links}"
        );
    }
    assert!(
        links.contains("link/ether 06:00:0a:c8:01:0c"),
        "lxc02's MAC:\n{links}"
    );
    let routes = show(&["ip", "route", "show"]);
    assert!(routes.contains("10.200.1.12 dev lxc02"), "{routes}");
    assert!(
        routes.contains("default via 198.51.100.10 dev ext0"),
        "{routes}"
    );
    let routes6 = show(&["ip", "-6", "route", "show"]);
    assert!(routes6.contains("fd00:200:1::12 dev lxc02"), "{routes6}");
    assert_eq!(show(&["cat", "/proc/sys/net/ipv4/ip_forward"]).trim(), "1");

    let users = lab.endpoint("users-0").unwrap().clone();
    assert_eq!(users.ipv4.to_string(), "10.200.1.12");
    assert_eq!(users.netns, format!("{prefix}-default-users-0"));
    let addrs = String::from_utf8(
        lab.exec("users-0", &["ip", "-o", "addr", "show", "dev", "eth0"])
            .unwrap()
            .stdout,
    )
    .unwrap();
    assert!(
        addrs.contains("10.200.1.12/32") && addrs.contains("fd00:200:1::12/128"),
        "{addrs}"
    );
    let neigh = String::from_utf8(
        lab.exec("users-0", &["ip", "neigh", "show"])
            .unwrap()
            .stdout,
    )
    .unwrap();
    assert!(
        neigh.contains("169.254.1.1 dev eth0 lladdr 06:00:0a:c8:01:0c PERMANENT"),
        "{neigh}"
    );

    // The state directory loads with the policy crate; the policy directory exists.
    let state = ClusterState::load_dir(&lab.state_dir()).expect("state dir loads");
    assert_eq!(state.endpoints.len(), 10);
    assert_eq!(
        state.endpoint("default", "users-0").unwrap().interface,
        "lxc02"
    );
    let catalog_ports = &state.endpoint("default", "catalog-0").unwrap().named_ports;
    assert_eq!(
        (catalog_ports.len(), catalog_ports["grpc"].port),
        (2, 50051)
    );
    assert_eq!(state.cluster.nodes[0].name, format!("{prefix}-node1"));
    assert!(lab.policy_dir().is_dir());
    let run_dir = lab.run_dir().to_path_buf();
    assert_eq!(run_dir, Path::new("/run/weir-lab").join(&prefix));
    assert!(run_dir.join("lab.json").is_file());

    // The servers are daemons in their own session, living in their endpoint's namespace.
    let pid_file = run_dir.join("servers/default_users-0.http.pid");
    let pid: u32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(same_netns(pid, &users.netns));
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .collect();
    assert_eq!(
        fields[3],
        pid.to_string(),
        "server is not a session leader: {stat}"
    );

    // Another process's view of the lab.
    let attached = Lab::attach(&prefix).unwrap();
    assert_eq!(attached.endpoint("default/users-0"), Some(&users));
    drop(attached);
    assert_eq!(
        namespaces_of(&prefix).len(),
        12,
        "dropping an attached lab removed it"
    );

    lab.down().expect("down");
    assert_gone(&prefix);
    assert!(!running(pid), "server {pid} survived down");
    lab.down().expect("second down is a no-op");
    weir_lab::down(&prefix).expect("down of a removed lab is a no-op");
    assert_eq!(host_links(), links_before);
}

#[test]
fn traffic_flows_between_endpoints_and_the_world() {
    if !weir_lab::privileged("traffic_flows_between_endpoints_and_the_world") {
        return;
    }
    let prefix = prefix("tr");
    let lab = Lab::up(LabConfig::with_prefix(&prefix)).expect("lab up");
    let frontend = lab.endpoint("frontend-0").unwrap().clone();
    let users = lab.endpoint("users-0").unwrap().clone();
    let world = lab.world().clone();

    // frontend -> users:80 over IPv4 and IPv6, answered by the Python server.
    for url in [
        format!("http://{}/api/v1/users/7?x=1", users.ipv4),
        format!("http://[{}]:80/api/v1/users/7?x=1", users.ipv6),
    ] {
        let r = lab
            .http_request("frontend-0", "GET", &url, T)
            .unwrap_or_else(|e| panic!("{url}: {e}"));
        assert_eq!(r.status, 200, "{url}: {}", r.text());
        let body = r.json().unwrap();
        assert_eq!(body["service"], "users");
        assert_eq!(body["method"], "GET");
        assert_eq!(body["path"], "/api/v1/users/7");
    }
    let seen = lab.server_requests("users-0", 80).unwrap();
    let peers: Vec<&str> = seen.iter().map(|r| r.peer.as_str()).collect();
    assert_eq!(
        peers,
        [frontend.ipv4.to_string(), frontend.ipv6.to_string()]
    );
    assert!(
        seen.iter()
            .all(|r| r.method == "GET" && r.path == "/api/v1/users/7" && r.query == "x=1")
    );

    // Any method, a body, a lab name as host.
    let r = lab
        .http(
            "frontend-0",
            &weir_lab::HttpRequest::new("DELETE", "http://users-0/api/v1/users/7")
                .header("Content-Type", "application/json")
                .body("{}"),
            T,
        )
        .unwrap();
    assert_eq!(
        (r.status, r.json().unwrap()["method"].as_str()),
        (200, Some("DELETE"))
    );
    assert_eq!(
        lab.server_requests("users-0", 80)
            .unwrap()
            .last()
            .unwrap()
            .body_bytes,
        2
    );
    let health = lab
        .http_request(
            "web-frontend-0",
            "GET",
            &format!(
                "http://[{}]:8080/healthz",
                lab.endpoint("api-server-0").unwrap().ipv6
            ),
            T,
        )
        .unwrap();
    assert_eq!(health.json().unwrap()["service"], "api-server");

    // Endpoints reach the world; the world reaches endpoints.
    for addr in [world.v4(80), world.v6(80)] {
        let url = format!("http://{addr}/out");
        let r = lab.http_request("frontend-0", "GET", &url, T).unwrap();
        assert_eq!(r.json().unwrap()["service"], "world", "{url}");
    }
    for addr in [users.v4(80), users.v6(80)] {
        let url = format!("http://{addr}/in");
        let r = lab.http_request("world", "POST", &url, T).unwrap();
        assert_eq!(
            r.json().unwrap()["peer"],
            world_peer(&addr, &world),
            "{url}"
        );
    }
    assert!(
        lab.server_requests("world", 80)
            .unwrap()
            .iter()
            .any(|r| r.peer == frontend.ipv4.to_string())
    );

    // Errors tell refused from timeout from unreachable.
    let err = lab.tcp_connect("frontend-0", users.v4(81), T).unwrap_err();
    assert!(err.is_refused(), "{err}");
    let err = lab
        .http_request(
            "frontend-0",
            "GET",
            &format!("http://[{}]:81/", users.ipv6),
            T,
        )
        .unwrap_err();
    assert!(err.is_refused(), "{err}");
    let err = lab
        .tcp_connect("frontend-0", "10.200.1.250:80".parse().unwrap(), T)
        .unwrap_err();
    assert!(
        matches!(err, weir_lab::TrafficError::Unreachable { .. }),
        "{err}"
    );

    // A kept-open connection.
    let mut stream = lab.tcp_connect("billing-0", users.v4(80), T).unwrap();
    stream
        .write_all(b"GET /kept HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");

    // UDP: an echo socket bound inside users-0; silence is a timeout.
    let echo = lab.udp_bind("users-0", "[::]:7".parse().unwrap()).unwrap();
    let echo_thread = std::thread::spawn(move || {
        let mut buf = [0u8; 1500];
        for _ in 0..2 {
            let (n, peer) = echo.recv_from(&mut buf).unwrap();
            echo.send_to(&buf[..n], peer).unwrap();
        }
    });
    for addr in [users.v4(7), users.v6(7)] {
        assert_eq!(
            lab.udp_roundtrip("frontend-0", addr, b"hello", T).unwrap(),
            b"hello"
        );
    }
    echo_thread.join().unwrap();
    let silent = lab
        .udp_bind("users-0", "0.0.0.0:9".parse().unwrap())
        .unwrap();
    let err = lab
        .udp_roundtrip("frontend-0", users.v4(9), b"x", Duration::from_millis(300))
        .unwrap_err();
    assert!(err.is_timeout(), "{err}");
    drop(silent);
    let err = lab
        .udp_roundtrip("frontend-0", users.v4(10), b"x", T)
        .unwrap_err();
    assert!(err.is_refused(), "{err}");

    // A listener inside an endpoint sees who connects.
    let listener = lab
        .tcp_listen("catalog-0", "[::]:9000".parse().unwrap())
        .unwrap();
    let _client = lab
        .tcp_connect("reco-0", lab.endpoint("catalog-0").unwrap().v6(9000), T)
        .unwrap();
    let (_, peer) = listener.accept().unwrap();
    assert_eq!(peer.ip(), IpAddr::V6(lab.endpoint("reco-0").unwrap().ipv6));

    // Ping, both families, both directions.
    for (from, to) in [
        ("frontend-0", IpAddr::V4(users.ipv4)),
        ("frontend-0", IpAddr::V6(users.ipv6)),
        ("world", IpAddr::V4(frontend.ipv4)),
        ("world", IpAddr::V6(frontend.ipv6)),
        ("coredns-0", IpAddr::V4(world.ipv4)),
        ("node1", IpAddr::V6(frontend.ipv6)),
    ] {
        lab.ping(from, to, T)
            .unwrap_or_else(|e| panic!("ping {from} -> {to}: {e}"));
    }

    // Unknown places are named in the error.
    let err = lab
        .ping("nobody", IpAddr::V4(users.ipv4), T)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("unknown place `nobody`") && err.contains("default/users-0"),
        "{err}"
    );
}

/// The seeds' gRPC catalog (catalog-grpc-policy's service) on catalog-0:50051: the grpcio server
/// answers the grpcio client run from reco-0 and inventory-0 over IPv4 and IPv6, several calls
/// share one connection, and the server logs every call with its method path and caller.
#[test]
fn grpc_catalog_answers_reco_and_inventory() {
    if !weir_lab::privileged("grpc_catalog_answers_reco_and_inventory") {
        return;
    }
    const GET: &str = "/com.example.catalog.ProductService/GetProduct";
    const UPDATE: &str = "/com.example.catalog.ProductService/UpdateStock";
    let prefix = prefix("grpc");
    let lab = Lab::up(LabConfig::with_prefix(&prefix)).expect("lab up");
    let catalog = lab.endpoint("catalog-0").unwrap().clone();
    assert_eq!(
        lab.catalog_client(),
        lab.run_dir().join("bin/catalog_client.py")
    );
    assert!(lab.catalog_client().is_file());

    let summary = |calls: &[weir_lab::CatalogCall]| -> Vec<(String, String)> {
        calls
            .iter()
            .map(|c| (c.rpc.clone(), c.status.clone()))
            .collect()
    };
    let pair = |rpc: &str, status: &str| (rpc.to_string(), status.to_string());
    // What the server must log: (method path, caller, status).
    let mut expected: Vec<(&str, String, &str)> = Vec::new();
    let mut stock = 12;
    for addr in [catalog.v4(50051), catalog.v6(50051)] {
        for from in ["reco-0", "inventory-0"] {
            let ep = lab.endpoint(from).unwrap();
            let caller = match addr {
                SocketAddr::V4(_) => ep.ipv4.to_string(),
                SocketAddr::V6(_) => ep.ipv6.to_string(),
            };
            let call = |calls: &str| {
                lab.catalog_calls(from, addr, calls, T)
                    .unwrap_or_else(|e| panic!("{from} -> {addr} {calls}: {e}"))
            };

            let got = call("get:1");
            assert_eq!(
                summary(&got),
                [pair("GetProduct", "OK")],
                "{from} -> {addr}"
            );
            assert_eq!(
                got[0].reply,
                serde_json::json!({"id": 1, "name": "espresso machine", "priceCents": 24900, "stock": stock}),
                "{from} -> {addr}"
            );
            let got = call("update:1:-1");
            stock -= 1;
            assert_eq!(
                summary(&got),
                [pair("UpdateStock", "OK")],
                "{from} -> {addr}"
            );
            assert_eq!(got[0].reply, serde_json::json!({"id": 1, "stock": stock}));
            let got = call("get:99");
            assert_eq!(
                summary(&got),
                [pair("GetProduct", "NOT_FOUND")],
                "{from} -> {addr}"
            );
            assert_eq!(got[0].reply["details"], "no product with id 99");
            expected.extend([
                (GET, caller.clone(), "OK"),
                (UPDATE, caller.clone(), "OK"),
                (GET, caller, "NOT_FOUND"),
            ]);
        }
    }

    // Several calls on one channel, so one connection.
    let reco = lab.endpoint("reco-0").unwrap().clone();
    let got = lab
        .catalog_calls(
            "reco-0",
            catalog.v6(50051),
            "get:2,update:2:3,get:2,update:99",
            T,
        )
        .unwrap();
    assert_eq!(
        summary(&got),
        [
            pair("GetProduct", "OK"),
            pair("UpdateStock", "OK"),
            pair("GetProduct", "OK"),
            pair("UpdateStock", "NOT_FOUND")
        ]
    );
    assert_eq!(got[0].reply["stock"], 30);
    assert_eq!(got[1].reply, serde_json::json!({"id": 2, "stock": 33}));
    assert_eq!(got[2].reply["name"], "coffee grinder");
    assert_eq!(got[2].reply["stock"], 33);
    for (method, status) in [
        (GET, "OK"),
        (UPDATE, "OK"),
        (GET, "OK"),
        (UPDATE, "NOT_FOUND"),
    ] {
        expected.push((method, reco.ipv6.to_string(), status));
    }

    // The client by hand, as the docs show it.
    let client = lab.catalog_client();
    let out = lab
        .exec(
            "inventory-0",
            &[
                "python3",
                client.to_str().unwrap(),
                "--target",
                &catalog.v4(50051).to_string(),
                "update",
                "--id",
                "2",
                "--delta",
                "-3",
            ],
        )
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "UpdateStock OK {\"id\": 2, \"stock\": 30}\n"
    );
    let inventory = lab.endpoint("inventory-0").unwrap();
    expected.push((UPDATE, inventory.ipv4.to_string(), "OK"));

    let seen = lab.grpc_calls("catalog-0", 50051).unwrap();
    let logged: Vec<(&str, String, &str)> = seen
        .iter()
        .map(|r| (r.method.as_str(), r.peer.clone(), r.status.as_str()))
        .collect();
    assert_eq!(logged, expected);
    assert!(seen.iter().all(|r| r.service == "catalog"));
    assert_eq!(seen[1].request, serde_json::json!({"id": 1, "delta": -1}));
    // One client run, one connection: its calls share the client's port; runs do not.
    let batch = &seen[12..16];
    assert!(
        batch.iter().all(|r| r.peer_port == batch[0].peer_port),
        "{batch:?}"
    );
    assert_ne!(seen[0].peer_port, seen[1].peer_port);

    // The catalog's HTTP server still answers on :80.
    let r = lab
        .http_request("reco-0", "GET", &format!("http://{}/", catalog.v4(80)), T)
        .unwrap();
    assert_eq!(r.json().unwrap()["service"], "catalog");
}

/// The world's address as the server logs it, in the family of `to`.
fn world_peer(to: &SocketAddr, world: &weir_lab::World) -> String {
    match to {
        SocketAddr::V4(_) => world.ipv4.to_string(),
        SocketAddr::V6(_) => world.ipv6.to_string(),
    }
}

#[test]
fn two_nodes_route_to_each_other() {
    if !weir_lab::privileged("two_nodes_route_to_each_other") {
        return;
    }
    let prefix = prefix("n2");
    let mut config = LabConfig::with_prefix(&prefix);
    config.nodes.push(NodeDef::new(2));
    config.endpoints = vec![
        EndpointDef::new("default", "frontend-0").label("app", "frontend"),
        EndpointDef::new("default", "users-0")
            .label("app", "users")
            .on_node(2)
            .server(ServerDef::http_api("users", 80)),
    ];
    let lab = Lab::up(config).expect("lab up");
    let users = lab.endpoint("users-0").unwrap().clone();
    assert_eq!(users.node, format!("{prefix}-node2"));
    assert_eq!(users.ipv4.to_string(), "10.200.2.11");
    assert_eq!(users.ipv6.to_string(), "fd00:200:2::11");
    for from in ["frontend-0", "world"] {
        for addr in [users.v4(80), users.v6(80)] {
            let r = lab
                .http_request(from, "GET", &format!("http://{addr}/x"), T)
                .unwrap_or_else(|e| panic!("{from} -> {addr}: {e}"));
            assert_eq!(r.status, 200);
        }
    }
    let world = lab.world().clone();
    for addr in [world.v4(80), world.v6(80)] {
        lab.http_request("users-0", "GET", &format!("http://{addr}/"), T)
            .unwrap();
    }
    let node2 = lab.node("node2").unwrap().clone();
    for to in [IpAddr::V4(node2.ipv4), IpAddr::V6(node2.ipv6)] {
        lab.ping("node1", to, T)
            .unwrap_or_else(|e| panic!("node1 -> {to}: {e}"));
    }
    let state = ClusterState::load_dir(&lab.state_dir()).unwrap();
    assert_eq!(state.cluster.nodes.len(), 2);
    assert_eq!(
        state.endpoint("default", "users-0").unwrap().node,
        node2.name
    );
}

#[test]
fn a_panicking_test_leaves_nothing_behind() {
    if !weir_lab::privileged("a_panicking_test_leaves_nothing_behind") {
        return;
    }
    let prefix = prefix("pa");
    let inner = prefix.clone();
    let result = std::thread::spawn(move || {
        let mut config = LabConfig::with_prefix(&inner);
        config.endpoints.truncate(2);
        let lab = Lab::up(config).expect("lab up");
        assert_eq!(namespaces_of(&inner).len(), 4);
        let _ = lab.endpoint("users-0");
        panic!("deliberate panic with the lab up");
    })
    .join();
    assert!(result.is_err(), "the thread should have panicked");
    assert_gone(&prefix);
}

#[test]
fn a_failed_up_removes_what_it_built() {
    if !weir_lab::privileged("a_failed_up_removes_what_it_built") {
        return;
    }
    let prefix = prefix("fa");
    let mut config = LabConfig::with_prefix(&prefix);
    config.endpoints.truncate(2);
    config.endpoints[1] = config.endpoints[1].clone().server(ServerDef::command(
        "broken",
        Protocol::Tcp,
        9999,
        vec![
            "sh".into(),
            "-c".into(),
            "echo cannot start on {port} >&2; exit 7".into(),
        ],
    ));
    let err = Lab::up(config).unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, LabError::ServerNotReady { .. }), "{text}");
    assert!(
        text.contains("cannot start on 9999") && text.contains("exit status: 7"),
        "{text}"
    );
    assert_gone(&prefix);

    // A lab that already exists is left alone.
    let mut config = LabConfig::with_prefix(&prefix);
    config.endpoints.truncate(1);
    let lab = Lab::up(config.clone()).unwrap();
    let err = Lab::up(config).unwrap_err();
    assert!(matches!(err, LabError::Exists { .. }), "{err}");
    assert_eq!(namespaces_of(&prefix).len(), 3);
    drop(lab);
    assert_gone(&prefix);
}

/// Removes a lab when dropped: the cleanup of tests whose lab belongs to a child process.
struct DownOnDrop(String);

impl Drop for DownOnDrop {
    fn drop(&mut self) {
        let _ = weir_lab::down(&self.0);
    }
}

/// Not a test of its own: the child process of `a_killed_owner_is_cleaned_by_down`, which runs
/// this test binary with `WEIR_LAB_TEST_CHILD_PREFIX` set; without it this returns at once.
#[test]
fn child_holds_a_lab() {
    let Ok(prefix) = std::env::var("WEIR_LAB_TEST_CHILD_PREFIX") else {
        return;
    };
    let mut config = LabConfig::with_prefix(&prefix);
    config.endpoints.truncate(3);
    let lab = Lab::up(config).expect("child: lab up");
    println!("READY {}", lab.run_dir().display());
    std::io::stdout().flush().unwrap();
    std::thread::sleep(Duration::from_secs(120));
}

#[test]
fn a_killed_owner_is_cleaned_by_down() {
    if !weir_lab::privileged("a_killed_owner_is_cleaned_by_down") {
        return;
    }
    let prefix = prefix("ki");
    let _guard = DownOnDrop(prefix.clone());
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "child_holds_a_lab",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("WEIR_LAB_TEST_CHILD_PREFIX", &prefix)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    // libtest prints `test child_holds_a_lab ... ` before the test's own output, on one line.
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some((_, dir)) = line.split_once("READY ") {
                let _ = tx.send(PathBuf::from(dir.trim()));
            }
        }
    });
    let run_dir = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("the child did not report READY");
    let server_pid: u32 = std::fs::read_to_string(run_dir.join("servers/default_users-0.http.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(
        namespaces_of(&prefix).len(),
        5,
        "the lab should outlive its killed owner"
    );
    assert!(running(server_pid));

    weir_lab::down(&prefix).expect("down from another process");
    assert_gone(&prefix);
    assert!(!running(server_pid), "server {server_pid} survived");
    weir_lab::down(&prefix).expect("second down is a no-op");
}

/// A stand-in for weir-agent: records its command line and what it sees, then serves a unix
/// socket (replacing a stale one, as the agent must after a crash).
const FAKE_AGENT: &str = r#"
import os, socket, subprocess, sys, time
args = sys.argv[1:]
opt = {args[i]: args[i + 1] for i in range(0, len(args) - 1, 2) if args[i].startswith("--")}
os.makedirs(opt["--bpffs-dir"], exist_ok=True)
fs = subprocess.run(["stat", "-f", "-c", "%T", "/sys/fs/bpf"], capture_output=True, text=True).stdout.strip()
with open(os.path.join(opt["--runtime-dir"], "seen.txt"), "w") as f:
    f.write("\n".join(sys.argv) + "\n--\n" + fs + "\n")
time.sleep(0.2)
if os.path.exists(opt["--socket"]):
    os.unlink(opt["--socket"])
s = socket.socket(socket.AF_UNIX)
s.bind(opt["--socket"])
s.listen(8)
print("fake agent up", flush=True)
while True:
    conn, _ = s.accept()
    conn.close()
"#;

#[test]
fn spawn_agent_runs_in_the_node_namespace() {
    if !weir_lab::privileged("spawn_agent_runs_in_the_node_namespace") {
        return;
    }
    let prefix = prefix("ag");
    let mut config = LabConfig::with_prefix(&prefix);
    config.endpoints.truncate(1);
    config.world_servers.clear();
    let mut lab = Lab::up(config).expect("lab up");
    let script = lab.run_dir().join("fake-agent.py");
    std::fs::write(&script, format!("#!/usr/bin/env python3\n{FAKE_AGENT}")).unwrap();
    let mut perms = std::fs::metadata(&script).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
    std::fs::set_permissions(&script, perms).unwrap();

    let mut agent = lab
        .spawn_agent("node1", &script, &["--flow-buffer", "100"])
        .unwrap();
    agent.wait_ready().expect("fake agent ready");
    let run = lab.run_dir().to_path_buf();
    let node_name = format!("{prefix}-node1");
    let bpffs_dir = format!("/sys/fs/bpf/weir/{node_name}");
    let expected = [
        script.display().to_string(),
        "--node-name".into(),
        node_name.clone(),
        "--state-dir".into(),
        run.join("state").display().to_string(),
        "--policy-dir".into(),
        run.join("policies").display().to_string(),
        "--socket".into(),
        run.join("node1/hubble.sock").display().to_string(),
        "--bpffs-dir".into(),
        bpffs_dir.clone(),
        "--runtime-dir".into(),
        format!("{}/", run.join("node1").display()),
        // The node's own devices: its world uplink (the lab has no second node).
        "--devices".into(),
        "ext0".into(),
        "--flow-buffer".into(),
        "100".into(),
    ]
    .join("\n");
    let seen = std::fs::read_to_string(run.join("node1/seen.txt")).unwrap();
    assert_eq!(
        seen,
        format!("{expected}\n--\nbpf_fs\n"),
        "command line and view of /sys/fs/bpf"
    );
    assert_eq!(agent.socket_path(), run.join("node1/hubble.sock"));
    let pid = agent.pid().unwrap();
    assert!(
        same_netns(pid, &node_name),
        "the agent is not in the node's namespace"
    );
    assert!(Path::new(&bpffs_dir).is_dir());

    // Crash and restart.
    agent.kill(Signal::SIGKILL).unwrap();
    let status = agent.wait_exit(T).unwrap();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(9)
    );
    assert!(agent.wait_socket(Duration::from_millis(200)).is_err());
    agent.restart().unwrap();
    agent.wait_socket(T).expect("restarted agent ready");
    let second = agent.pid().unwrap();
    assert_ne!(second, pid);
    let log = std::fs::read_to_string(agent.log_path()).unwrap();
    assert_eq!(log.matches("fake agent up").count(), 2, "{log}");

    drop(agent);
    assert!(!running(second), "agent survived its drop");

    // An agent still running when the lab goes down is stopped with it.
    let mut agent = lab.spawn_agent(&node_name, &script, &[]).unwrap();
    agent.wait_ready().unwrap();
    let third = agent.pid().unwrap();
    lab.down().unwrap();
    assert!(!agent.is_running(), "agent {third} survived down");
    assert!(!Path::new(&bpffs_dir).exists(), "{bpffs_dir} survived down");
    assert_gone(&prefix);
}
