//! The `weir` binary against a real weir-agent on a lab: the demo's path, asserted.
//! Privileged: runs under `CI=true` (and fails loudly without root, BPF or namespaces);
//! elsewhere it skips when not root.

use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use weir_lab::{AgentProcess, Lab, LabConfig};

const WEIR: &str = env!("CARGO_BIN_EXE_weir");

const POLICY: &str = r#"
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
"#;

/// weir-agent is built next to weir by `cargo test --workspace` (same target directory).
fn agent_binary() -> PathBuf {
    let path = PathBuf::from(WEIR).with_file_name("weir-agent");
    assert!(
        path.is_file(),
        "{} is missing: build it first (cargo test --workspace builds every binary)",
        path.display()
    );
    path
}

fn weir(server: &str, args: &[&str]) -> Output {
    let out = Command::new(WEIR)
        .args(args)
        .env("WEIR_SERVER", server)
        .output()
        .expect("run weir");
    assert!(
        out.status.success(),
        "weir {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    out
}

fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).unwrap()
}

/// A lab with a running agent enforcing `policy` (named `name`), and the agent's server address.
fn lab_with_policy(tag: &str, name: &str, policy: &str) -> (Lab, AgentProcess, String) {
    let lab = Lab::up(LabConfig::with_prefix(format!(
        "{tag}{}",
        std::process::id() % 10_000
    )))
    .unwrap();
    std::fs::write(lab.policy_dir().join(format!("{name}.yaml")), policy).unwrap();
    let mut agent = lab
        .spawn_agent(
            "node1",
            agent_binary(),
            &["--listen-address", "none", "--poll-interval", "200ms"],
        )
        .unwrap();
    agent.wait_ready().unwrap();
    let server = format!("unix://{}", agent.socket_path().display());
    // Wait until the policy is enforced.
    let start = Instant::now();
    while !stdout(&weir(&server, &["policy", "get"])).contains(name) {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "policy {name} never applied"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    (lab, agent, server)
}

#[test]
fn weir_observe_shows_what_the_kernel_forwarded_and_dropped() {
    if !weir_lab::privileged("weir_observe_shows_what_the_kernel_forwarded_and_dropped") {
        return;
    }
    let (lab, _agent, server) = lab_with_policy("wc", "users-ingress", POLICY);
    let users = lab.endpoint("users-0").unwrap().ipv4;
    let url = format!("http://{users}/api/v1/users/1");
    assert_eq!(
        lab.http_request("frontend-0", "GET", &url, Duration::from_secs(5))
            .unwrap()
            .status,
        200
    );
    assert!(
        lab.http_request("billing-0", "GET", &url, Duration::from_secs(2))
            .is_err()
    );

    // The drop, in Hubble's compact format; only drops with --verdict DROPPED.
    let start = Instant::now();
    let drops = loop {
        let out = stdout(&weir(
            &server,
            &["observe", "--verdict", "DROPPED", "--last", "100"],
        ));
        if out.contains("default/billing-0") {
            break out;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no drop observed:\n{out}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let lines: Vec<&str> = drops.lines().collect();
    assert!(
        lines
            .iter()
            .all(|l| l.contains("DROPPED") || l.contains("DENIED")),
        "{drops}"
    );
    let drop = lines
        .iter()
        .find(|l| l.contains("Policy denied DROPPED"))
        .unwrap_or_else(|| panic!("no drop line in:\n{drops}"));
    // "Nov 23 17:30:01.123: default/billing-0:41234 (ID:12345) -> default/users-0:80 (ID:23456) Policy denied DROPPED (TCP Flags: SYN)"
    let (time, rest) = drop.split_once(": ").unwrap();
    assert_eq!(time.len(), "Nov 23 17:30:01.123".len(), "{drop}");
    let fields: Vec<&str> = rest.split(' ').collect();
    assert!(fields[0].starts_with("default/billing-0:"), "{drop}");
    assert!(
        fields[1].starts_with("(ID:") && fields[1].ends_with(')'),
        "{drop}"
    );
    assert_eq!(fields[2], "->", "{drop}");
    assert_eq!(fields[3], "default/users-0:80", "{drop}");
    assert!(
        rest.ends_with("Policy denied DROPPED (TCP Flags: SYN)"),
        "{drop}"
    );

    // The allowed connection: forwarded to the endpoint, with the reply.
    let all = stdout(&weir(
        &server,
        &[
            "observe",
            "--from-pod",
            "default/frontend-0",
            "--last",
            "100",
        ],
    ));
    assert!(
        all.lines().any(|l| l.contains("-> default/users-0:80")
            && l.contains("to-endpoint FORWARDED (TCP Flags: SYN)")),
        "{all}"
    );
    let replies = stdout(&weir(
        &server,
        &["observe", "--to-pod", "default/frontend-0", "--last", "100"],
    ));
    assert!(
        replies
            .lines()
            .any(|l| l.contains("<- default/users-0:80") && l.contains("(TCP Flags: SYN, ACK)")),
        "{replies}"
    );
    // Policy names.
    let verdicts = stdout(&weir(
        &server,
        &[
            "observe",
            "-t",
            "policy-verdict",
            "--print-policy-names",
            "--to-pod",
            "default/users-0",
        ],
    ));
    assert!(
        verdicts.contains(
            "policy-verdict:L3-L4 INGRESS ALLOWED BY users-ingress (CiliumNetworkPolicy)"
        ),
        "{verdicts}"
    );
    assert!(
        verdicts
            .contains("policy-verdict:none INGRESS DENIED BY users-ingress (CiliumNetworkPolicy)"),
        "{verdicts}"
    );

    // JSON is protojson with Hubble's names.
    let json = stdout(&weir(
        &server,
        &[
            "observe",
            "--verdict",
            "DROPPED",
            "-o",
            "json",
            "--last",
            "1",
        ],
    ));
    let v: serde_json::Value = serde_json::from_str(json.lines().next().unwrap()).unwrap();
    assert_eq!(v["flow"]["verdict"], "DROPPED", "{json}");
    assert!(v["flow"]["IP"]["source"].is_string(), "{json}");
    assert!(
        v["node_name"].as_str().unwrap().ends_with("-node1"),
        "{json}"
    );

    let status = stdout(&weir(&server, &["status"]));
    assert!(
        status.starts_with(&format!("Healthcheck (via {server}): Ok")),
        "{status}"
    );
    assert!(status.contains("Current/Max Flows:"), "{status}");

    let trace = stdout(&weir(
        &server,
        &[
            "policy",
            "trace",
            "--src-endpoint",
            "billing-0",
            "--dst-endpoint",
            "users-0",
            "--dport",
            "80/TCP",
        ],
    ));
    assert!(trace.contains("Final verdict: DENIED"), "{trace}");
    assert!(trace.contains("POLICY_DENIED"), "{trace}");
}

const L7_POLICY: &str = r#"
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata:
  name: user-service-api-policy
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
          rules:
            http:
              - method: "GET"
                path: "/api/v1/users/?.*"
"#;

#[test]
fn weir_observe_shows_http_requests_the_kernel_allowed_and_denied() {
    if !weir_lab::privileged("weir_observe_shows_http_requests_the_kernel_allowed_and_denied") {
        return;
    }
    let (lab, _agent, server) = lab_with_policy("wl", "user-service-api-policy", L7_POLICY);
    let get = stdout(&weir(&server, &["policy", "get", "--endpoint", "users-0"]));
    assert!(
        get.contains("HTTP rules of the ALLOW for identity")
            && get.contains("GET      /api/v1/users/?.*")
            && get.contains("CiliumNetworkPolicy default/user-service-api-policy"),
        "{get}"
    );

    // curl, naming the service as the Host.
    let users = lab.endpoint("users-0").unwrap().ipv4;
    let curl = |method: &str, path: &str| -> String {
        let out = lab
            .command("frontend-0", "curl")
            .unwrap()
            .args([
                "-sS",
                "--max-time",
                "10",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
            ])
            .args([
                "--connect-to",
                &format!("users:80:{users}:80"),
                "-X",
                method,
            ])
            .arg(format!("http://users{path}"))
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert_eq!(curl("GET", "/api/v1/users/7"), "200");
    assert_eq!(curl("DELETE", "/api/v1/users/123"), "403");

    let start = Instant::now();
    let out = loop {
        let out = stdout(&weir(
            &server,
            &["observe", "-t", "l7", "--http-method", "DELETE"],
        ));
        if out.lines().count() >= 2 {
            break out;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no L7 flows:\n{out}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    // "Dec  5 08:46:02.005: default/frontend-0:51418 (ID:15183931) -> default/users-0:80 (ID:5483793) http-request DROPPED (HTTP/1.1 DELETE http://users/api/v1/users/123)"
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    let request = lines[0].split_once(": ").unwrap().1;
    let fields: Vec<&str> = request.split(' ').collect();
    assert!(fields[0].starts_with("default/frontend-0:"), "{request}");
    assert!(fields[1].starts_with("(ID:"), "{request}");
    assert_eq!(fields[2..4], ["->", "default/users-0:80"], "{request}");
    assert!(
        request.ends_with("http-request DROPPED (HTTP/1.1 DELETE http://users/api/v1/users/123)"),
        "{request}"
    );
    let response = lines[1].split_once(": ").unwrap().1;
    assert!(response.contains(" <- default/users-0:80 "), "{response}");
    assert!(
        response.contains("http-response FORWARDED (HTTP/1.1 403 ")
            && response.ends_with("ms (DELETE http://users/api/v1/users/123))"),
        "{response}"
    );

    // --http-status selects responses; combined with the verdict filter.
    let denied = stdout(&weir(
        &server,
        &["observe", "-t", "l7", "--verdict", "DROPPED"],
    ));
    assert_eq!(denied.lines().count(), 1, "{denied}");
    let ok = stdout(&weir(
        &server,
        &[
            "observe",
            "--http-status",
            "200",
            "--http-path",
            "/api/v1/users/\\d+",
        ],
    ));
    assert!(
        ok.lines().count() == 1
            && ok.contains("http-response FORWARDED (HTTP/1.1 200 ")
            && ok.contains("(GET http://users/api/v1/users/7))"),
        "{ok}"
    );
    // JSON names the policy that denied the request.
    let json = stdout(&weir(
        &server,
        &["observe", "-t", "l7", "--verdict", "DROPPED", "-o", "json"],
    ));
    let v: serde_json::Value = serde_json::from_str(json.lines().next().unwrap()).unwrap();
    assert_eq!(
        v["flow"]["ingress_denied_by"][0]["name"], "user-service-api-policy",
        "{json}"
    );
    assert_eq!(v["flow"]["l7"]["http"]["method"], "DELETE", "{json}");
}
