//! Server processes: started daemonised (`setsid`, own session, pid file) inside a namespace
//! with `ip netns exec`, and waited for until they accept connections.

use std::fs::{File, OpenOptions};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

use crate::cmd::describe;
use crate::config::{Protocol, ServerDef, ServerKind};
use crate::error::LabError;
use crate::netns;

/// The HTTP API server, written to `<run-dir>/bin/http_api.py` at `up`.
pub(crate) const HTTP_API_PY: &str = include_str!("../servers/http_api.py");
/// The gRPC catalog service definition, server and client (grpcio), written to `<run-dir>/bin/`.
pub(crate) const CATALOG_PROTO: &str = include_str!("../servers/catalog.proto");
pub(crate) const CATALOG_GRPC_PY: &str = include_str!("../servers/catalog_grpc.py");
pub(crate) const CATALOG_CLIENT_PY: &str = include_str!("../servers/catalog_client.py");
pub(crate) const CATALOG_PROTO_PY: &str = include_str!("../servers/catalog_proto.py");

/// The files of `<run-dir>/bin/`: the servers' scripts and the clients tests and the demo run.
/// The catalog's scripts read `catalog.proto` and import `catalog_proto.py` from their own directory.
const BIN_FILES: &[(&str, &str)] = &[
    ("http_api.py", HTTP_API_PY),
    ("catalog.proto", CATALOG_PROTO),
    ("catalog_grpc.py", CATALOG_GRPC_PY),
    ("catalog_client.py", CATALOG_CLIENT_PY),
    ("catalog_proto.py", CATALOG_PROTO_PY),
];

/// Path of a file of `<run-dir>/bin/` (`http_api.py`, `catalog_client.py`, ...).
pub(crate) fn bin_file(run_dir: &Path, name: &str) -> PathBuf {
    run_dir.join("bin").join(name)
}

/// Writes the scripts into `<run-dir>/bin/` (which must exist).
pub(crate) fn write_bin_files(run_dir: &Path) -> Result<(), LabError> {
    for (name, text) in BIN_FILES {
        let path = bin_file(run_dir, name);
        std::fs::write(&path, text).map_err(|e| LabError::io("write", &path, e))?;
    }
    Ok(())
}

/// Where a server runs: the namespace, its addresses, and a file-name-safe label
/// (`default_users-0`, `world`).
#[derive(Debug, Clone)]
pub(crate) struct Place {
    pub display: String,
    pub label: String,
    pub netns: String,
    pub ipv4: Ipv4Addr,
    pub ipv6: Ipv6Addr,
}

/// The files of one server under `<run-dir>/servers/`.
#[derive(Debug, Clone)]
pub(crate) struct ServerFiles {
    pub pid: PathBuf,
    /// The server's stdout and stderr.
    pub output: PathBuf,
    /// One JSON line per request (HTTP API server; `{log}` for commands).
    pub requests: PathBuf,
}

impl ServerFiles {
    pub fn new(run_dir: &Path, place_label: &str, server: &str) -> Self {
        let dir = run_dir.join("servers");
        let stem = format!("{place_label}.{server}");
        Self {
            pid: dir.join(format!("{stem}.pid")),
            output: dir.join(format!("{stem}.log")),
            requests: dir.join(format!("{stem}.requests.jsonl")),
        }
    }
}

/// One line of an HTTP API server's request log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestRecord {
    pub service: String,
    pub method: String,
    pub path: String,
    #[serde(default)]
    pub query: String,
    /// Client address as the server saw it (IPv4-mapped addresses are shown as IPv4).
    pub peer: String,
    pub peer_port: u16,
    #[serde(default)]
    pub host: String,
    pub body_bytes: u64,
    pub status: u16,
    /// Seconds since the epoch.
    pub time: f64,
}

/// One line of the gRPC catalog server's request log: one call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GrpcCallRecord {
    pub service: String,
    /// The call's full method path, `/com.example.catalog.ProductService/GetProduct` (also for
    /// methods the service does not have, which get `UNIMPLEMENTED`).
    pub method: String,
    /// Client address as the server saw it (IPv4-mapped addresses are shown as IPv4).
    pub peer: String,
    /// The client's port: calls made on one connection share it.
    pub peer_port: u16,
    /// The request message as JSON (`{"id": 1}`, `{"id": 1, "delta": -2}`).
    #[serde(default)]
    pub request: serde_json::Value,
    /// The status code the call got, as grpc.StatusCode names it (`OK`, `NOT_FOUND`).
    pub status: String,
    /// Seconds since the epoch.
    pub time: f64,
}

/// One call made by the catalog client (`catalog_client.py`), from its output line
/// `GetProduct OK {"id": 1, ...}`.
#[derive(Debug, Clone, PartialEq)]
pub struct CatalogCall {
    /// `GetProduct` or `UpdateStock`.
    pub rpc: String,
    /// The status code name (`OK`, `NOT_FOUND`, `PERMISSION_DENIED`, `UNAVAILABLE`, ...).
    pub status: String,
    /// The reply message with every field by its JSON name (`priceCents`) when the status is
    /// `OK`; otherwise `{"details": "<grpc-message>"}`.
    pub reply: serde_json::Value,
}

impl CatalogCall {
    pub fn is_ok(&self) -> bool {
        self.status == "OK"
    }
}

/// Parses the catalog client's output, one [`CatalogCall`] per line; `source` names the
/// client in errors.
pub(crate) fn parse_catalog_output(
    source: &Path,
    text: &str,
) -> Result<Vec<CatalogCall>, LabError> {
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(n, line)| {
            let bad = |why: String| LabError::Record {
                path: source.to_path_buf(),
                message: format!("output line {} `{line}`: {why}", n + 1),
            };
            let mut parts = line.splitn(3, ' ');
            let (Some(rpc), Some(status), Some(json)) = (parts.next(), parts.next(), parts.next())
            else {
                return Err(bad("not `<rpc> <STATUS> <json>`".to_string()));
            };
            let reply = serde_json::from_str(json).map_err(|e| bad(e.to_string()))?;
            Ok(CatalogCall {
                rpc: rpc.to_string(),
                status: status.to_string(),
                reply,
            })
        })
        .collect()
}

/// Reads a request log; a missing file means no request yet.
pub(crate) fn read_requests<T: serde::de::DeserializeOwned>(
    path: &Path,
) -> Result<Vec<T>, LabError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => return Err(LabError::io("read", path, source)),
    };
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(n, line)| {
            serde_json::from_str(line).map_err(|e| LabError::Record {
                path: path.to_path_buf(),
                message: format!("line {}: {e}", n + 1),
            })
        })
        .collect()
}

/// A server this process started.
#[derive(Debug)]
pub(crate) struct RunningServer {
    pub place: Place,
    pub def: ServerDef,
    pub files: ServerFiles,
    pub child: Child,
}

impl RunningServer {
    pub fn pid(&self) -> Pid {
        Pid::from_raw(self.child.id() as i32)
    }

    fn describe(&self) -> String {
        format!(
            "{} ({}:{})",
            self.def.name, self.place.display, self.def.port
        )
    }
}

fn argv(run_dir: &Path, place: &Place, def: &ServerDef, files: &ServerFiles) -> Vec<String> {
    match &def.kind {
        ServerKind::HttpApi { service } => script_argv(run_dir, "http_api.py", service, def, files),
        ServerKind::GrpcCatalog { service } => {
            script_argv(run_dir, "catalog_grpc.py", service, def, files)
        }
        ServerKind::Command { argv, .. } => argv
            .iter()
            .map(|arg| {
                arg.replace("{port}", &def.port.to_string())
                    .replace("{run_dir}", &run_dir.display().to_string())
                    .replace("{log}", &files.requests.display().to_string())
                    .replace("{ipv4}", &place.ipv4.to_string())
                    .replace("{ipv6}", &place.ipv6.to_string())
            })
            .collect(),
    }
}

/// `python3 <run-dir>/bin/<script> --service S --port P --log L`.
fn script_argv(
    run_dir: &Path,
    script: &str,
    service: &str,
    def: &ServerDef,
    files: &ServerFiles,
) -> Vec<String> {
    vec![
        "python3".to_string(),
        bin_file(run_dir, script).display().to_string(),
        "--service".to_string(),
        service.to_string(),
        "--port".to_string(),
        def.port.to_string(),
        "--log".to_string(),
        files.requests.display().to_string(),
    ]
}

/// Starts a server as `setsid ip netns exec <netns> <argv>` (neither forks, so the child's pid is
/// the server's), output to its log file, and writes its pid file.
pub(crate) fn start(
    run_dir: &Path,
    place: &Place,
    def: &ServerDef,
) -> Result<RunningServer, LabError> {
    let files = ServerFiles::new(run_dir, &place.label, &def.name);
    let output = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&files.output)
        .map_err(|e| LabError::io("create", &files.output, e))?;
    let stderr = output
        .try_clone()
        .map_err(|e| LabError::io("open", &files.output, e))?;
    let mut cmd = Command::new("setsid");
    cmd.args(["ip", "netns", "exec", &place.netns])
        .args(argv(run_dir, place, def, &files))
        .current_dir(run_dir)
        .stdin(Stdio::null())
        .stdout(output)
        .stderr(stderr);
    let command = describe(&cmd);
    tracing::debug!(%command, "starting server");
    let child = cmd
        .spawn()
        .map_err(|source| LabError::Spawn { command, source })?;
    let server = RunningServer {
        place: place.clone(),
        def: def.clone(),
        files,
        child,
    };
    std::fs::write(&server.files.pid, format!("{}\n", server.child.id()))
        .map_err(|e| LabError::io("write", &server.files.pid, e))?;
    Ok(server)
}

/// Waits until every server accepts connections (TCP) or has bound its port (UDP).
pub(crate) fn wait_ready(servers: &mut [RunningServer], timeout: Duration) -> Result<(), LabError> {
    let start = Instant::now();
    for server in servers.iter_mut() {
        loop {
            if let Some(status) = server
                .child
                .try_wait()
                .map_err(|e| LabError::ServerNotReady {
                    place: server.place.display.clone(),
                    server: server.def.name.clone(),
                    waited: start.elapsed(),
                    detail: format!("cannot check the process: {e}"),
                })?
            {
                return Err(LabError::ServerNotReady {
                    place: server.place.display.clone(),
                    server: server.def.name.clone(),
                    waited: start.elapsed(),
                    detail: format!(
                        "it exited ({status}); its output ({}): {}",
                        server.files.output.display(),
                        tail(&server.files.output, 800)
                    ),
                });
            }
            if ready(server) {
                tracing::debug!(server = %server.describe(), "ready");
                break;
            }
            if start.elapsed() > timeout {
                return Err(LabError::ServerNotReady {
                    place: server.place.display.clone(),
                    server: server.def.name.clone(),
                    waited: start.elapsed(),
                    detail: format!(
                        "port {} does not answer; its output ({}): {}",
                        server.def.port,
                        server.files.output.display(),
                        tail(&server.files.output, 800)
                    ),
                });
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    Ok(())
}

fn ready(server: &RunningServer) -> bool {
    let port = server.def.port;
    let place = &server.place;
    let result = netns::in_netns(&place.netns, || {
        match (&server.def.kind, server.def.protocol()) {
            // The lab's own servers must answer on both families.
            (ServerKind::HttpApi { .. } | ServerKind::GrpcCatalog { .. }, _) => {
                accepts((Ipv4Addr::LOCALHOST, port).into())
                    && accepts((Ipv6Addr::LOCALHOST, port).into())
            }
            (_, Protocol::Tcp) => [
                IpAddr::from(Ipv4Addr::LOCALHOST),
                Ipv6Addr::LOCALHOST.into(),
                place.ipv4.into(),
                place.ipv6.into(),
            ]
            .into_iter()
            .any(|ip| accepts((ip, port).into())),
            (_, Protocol::Udp) => udp_bound(port),
        }
    });
    result.unwrap_or(false)
}

fn accepts(addr: SocketAddr) -> bool {
    TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
}

/// Whether a UDP socket of the current thread's namespace is bound to `port`.
fn udp_bound(port: u16) -> bool {
    ["udp", "udp6"].iter().any(|table| {
        std::fs::read_to_string(format!("/proc/thread-self/net/{table}"))
            .map(|text| {
                text.lines().skip(1).any(|line| {
                    line.split_whitespace()
                        .nth(1)
                        .and_then(|local| local.rsplit_once(':'))
                        .and_then(|(_, hex)| u16::from_str_radix(hex, 16).ok())
                        == Some(port)
                })
            })
            .unwrap_or(false)
    })
}

/// Stops a server this process started: SIGTERM, then SIGKILL, and reaps it.
pub(crate) fn stop(server: &mut RunningServer) {
    if matches!(server.child.try_wait(), Ok(None)) {
        netns::terminate(&[server.pid()], Duration::from_secs(3));
    }
    let _ = server.child.wait();
    let _ = std::fs::remove_file(&server.files.pid);
}

/// The last `max` bytes of a file, for error messages.
pub(crate) fn tail(path: &Path, max: usize) -> String {
    use std::io::{Read, Seek, SeekFrom};
    let Ok(mut file) = File::open(path) else {
        return "(no output)".to_string();
    };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = file.seek(SeekFrom::Start(len.saturating_sub(max as u64)));
    let mut buf = Vec::new();
    let _ = file.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf).trim().to_string();
    if text.is_empty() {
        "(no output)".to_string()
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::{HttpRequest, exchange, parse_url};
    use std::io::{BufRead, BufReader};

    /// The real server script on IPv6 loopback (no root, no namespace), driven by the client.
    #[test]
    fn http_api_server_answers_and_logs_every_request() {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("http_api.py");
        std::fs::write(&script, HTTP_API_PY).unwrap();
        let log = dir.path().join("requests.jsonl");
        let mut child = Command::new("python3")
            .arg(&script)
            .args([
                "--service",
                "users",
                "--bind",
                "::1",
                "--port",
                "0",
                "--log",
            ])
            .arg(&log)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3");
        let mut first = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut first)
            .unwrap();
        let port: u16 = first
            .trim()
            .strip_prefix("listening on ")
            .unwrap()
            .parse()
            .unwrap();
        let send = |request: HttpRequest| {
            let target = parse_url(&request.url, |_| None).unwrap();
            let mut stream = TcpStream::connect(target.addr).unwrap();
            let deadline = Instant::now() + Duration::from_secs(10);
            exchange(&mut stream, &request, &target, deadline).unwrap()
        };
        let base = format!("http://[::1]:{port}");

        let r = send(HttpRequest::new(
            "GET",
            format!("{base}/api/v1/users/7?x=1"),
        ));
        assert_eq!(r.status, 200);
        assert_eq!(r.header("content-type"), Some("application/json"));
        let body = r.json().unwrap();
        assert_eq!(body["service"], "users");
        assert_eq!(body["method"], "GET");
        assert_eq!(body["path"], "/api/v1/users/7");
        assert_eq!(body["query"], "x=1");
        assert_eq!(body["peer"], "::1");

        let r = send(HttpRequest::new("POST", format!("{base}/api/v1/payments")).body("{\"a\":1}"));
        assert_eq!(r.json().unwrap()["bodyBytes"], 7);
        let r = send(
            HttpRequest::new("PUT", format!("{base}/chunked"))
                .header("Transfer-Encoding", "chunked")
                .body("3\r\nabc\r\n0\r\n\r\n"),
        );
        assert_eq!(r.json().unwrap()["bodyBytes"], 3);
        assert_eq!(
            send(HttpRequest::new("FROB", format!("{base}/x")))
                .json()
                .unwrap()["method"],
            "FROB"
        );
        assert!(
            send(HttpRequest::new("HEAD", format!("{base}/x")))
                .body
                .is_empty()
        );
        assert_eq!(
            send(HttpRequest::new("GET", format!("{base}/healthz")))
                .json()
                .unwrap()["status"],
            "ok"
        );

        let seen: Vec<RequestRecord> = read_requests(&log).unwrap();
        let summary: Vec<(&str, &str)> = seen
            .iter()
            .map(|r| (r.method.as_str(), r.path.as_str()))
            .collect();
        assert_eq!(
            summary,
            [
                ("GET", "/api/v1/users/7"),
                ("POST", "/api/v1/payments"),
                ("PUT", "/chunked"),
                ("FROB", "/x"),
                ("HEAD", "/x"),
                ("GET", "/healthz")
            ]
        );
        assert!(
            seen.iter()
                .all(|r| r.peer == "::1" && r.service == "users" && r.status == 200)
        );
        assert_eq!(seen[1].body_bytes, 7);

        child.kill().unwrap();
        child.wait().unwrap();
    }

    /// Whether python3 has grpcio and grpcio-tools; without them (outside CI, where
    /// `scripts/deps.sh` installs them) the gRPC tests skip.
    fn grpcio_present(test: &str) -> bool {
        let ok = Command::new("python3")
            .args(["-c", "import grpc, grpc_tools"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            let what = "python3 lacks grpcio/grpcio-tools (scripts/deps.sh installs them)";
            assert!(
                !std::env::var("CI").is_ok_and(|v| v == "true"),
                "{test}: {what}"
            );
            eprintln!("skipping {test}: {what}");
        }
        ok
    }

    /// Kills the child when dropped, also while a test panics.
    struct KillOnDrop(Child);

    impl Drop for KillOnDrop {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    /// The real gRPC catalog server on IPv6 loopback (no root, no namespace), driven by the
    /// real client from the same bin directory the lab writes.
    #[test]
    fn grpc_catalog_server_answers_and_logs_every_call() {
        if !grpcio_present("grpc_catalog_server_answers_and_logs_every_call") {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("bin")).unwrap();
        write_bin_files(dir.path()).unwrap();
        let log = dir.path().join("requests.jsonl");
        let mut server = KillOnDrop(
            Command::new("python3")
                .arg(bin_file(dir.path(), "catalog_grpc.py"))
                .args([
                    "--service",
                    "catalog",
                    "--bind",
                    "::1",
                    "--port",
                    "0",
                    "--log",
                ])
                .arg(&log)
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .expect("python3"),
        );
        let mut first = String::new();
        BufReader::new(server.0.stdout.take().unwrap())
            .read_line(&mut first)
            .unwrap();
        let port: u16 = first
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("server said {first:?}"))
            .parse()
            .unwrap();
        let client = bin_file(dir.path(), "catalog_client.py");
        let run = |args: &[&str]| {
            let out = Command::new("python3")
                .arg(&client)
                .args(["--target", &format!("[::1]:{port}")])
                .args(args)
                .output()
                .unwrap();
            (
                out.status.code(),
                parse_catalog_output(&client, &String::from_utf8_lossy(&out.stdout)).unwrap(),
            )
        };

        let (code, calls) = run(&["get", "--id", "1"]);
        assert_eq!(code, Some(0));
        assert_eq!(calls.len(), 1);
        assert_eq!(
            (calls[0].rpc.as_str(), calls[0].status.as_str()),
            ("GetProduct", "OK")
        );
        assert_eq!(
            calls[0].reply,
            serde_json::json!({"id": 1, "name": "espresso machine", "priceCents": 24900, "stock": 12})
        );
        let (_, calls) = run(&["update", "--id", "1", "--delta", "-2"]);
        assert_eq!(calls[0].reply, serde_json::json!({"id": 1, "stock": 10}));

        let (code, calls) = run(&["--calls", "get:9,update:3:-1,update:2,get:1"]);
        assert_eq!(code, Some(0));
        let statuses: Vec<(&str, &str)> = calls
            .iter()
            .map(|c| (c.rpc.as_str(), c.status.as_str()))
            .collect();
        assert_eq!(
            statuses,
            [
                ("GetProduct", "NOT_FOUND"),
                ("UpdateStock", "FAILED_PRECONDITION"),
                ("UpdateStock", "OK"),
                ("GetProduct", "OK")
            ]
        );
        assert_eq!(calls[0].reply["details"], "no product with id 9");
        assert_eq!(calls[2].reply["stock"], 31);
        assert_eq!(calls[3].reply["stock"], 10);

        // Usage errors are the only failures.
        assert_eq!(run(&["get"]).0, Some(2));
        assert_eq!(run(&["--calls", "delete:1"]).0, Some(2));

        let seen: Vec<GrpcCallRecord> = read_requests(&log).unwrap();
        let summary: Vec<(&str, &str)> = seen
            .iter()
            .map(|r| (r.method.as_str(), r.status.as_str()))
            .collect();
        let path = |rpc| match rpc {
            "get" => "/com.example.catalog.ProductService/GetProduct",
            _ => "/com.example.catalog.ProductService/UpdateStock",
        };
        assert_eq!(
            summary,
            [
                (path("get"), "OK"),
                (path("update"), "OK"),
                (path("get"), "NOT_FOUND"),
                (path("update"), "FAILED_PRECONDITION"),
                (path("update"), "OK"),
                (path("get"), "OK"),
            ]
        );
        assert!(
            seen.iter()
                .all(|r| r.peer == "::1" && r.service == "catalog")
        );
        assert_eq!(seen[1].request, serde_json::json!({"id": 1, "delta": -2}));
        // The calls of one client run share a connection, so a client port.
        assert!(seen[2..].iter().all(|r| r.peer_port == seen[2].peer_port));
        assert_ne!(seen[0].peer_port, seen[2].peer_port);
    }

    #[test]
    fn catalog_client_output_parses_and_errors_name_the_line() {
        let client = Path::new("bin/catalog_client.py");
        let calls = parse_catalog_output(
            client,
            "GetProduct OK {\"id\": 1, \"name\": \"a b\"}\nUpdateStock PERMISSION_DENIED {\"details\": \"denied by policy\"}\n",
        )
        .unwrap();
        assert!(calls[0].is_ok());
        assert_eq!(calls[0].reply["name"], "a b");
        assert_eq!(
            (calls[1].rpc.as_str(), calls[1].status.as_str()),
            ("UpdateStock", "PERMISSION_DENIED")
        );
        assert_eq!(calls[1].reply["details"], "denied by policy");
        let err = parse_catalog_output(client, "GetProduct OK\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("catalog_client.py: output line 1 `GetProduct OK`"),
            "{err}"
        );
    }

    #[test]
    fn request_log_errors_name_the_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        assert!(
            read_requests::<RequestRecord>(&dir.path().join("none.jsonl"))
                .unwrap()
                .is_empty()
        );
        let path = dir.path().join("bad.jsonl");
        std::fs::write(&path, "\n{not json}\n").unwrap();
        let err = read_requests::<GrpcCallRecord>(&path)
            .unwrap_err()
            .to_string();
        assert!(err.contains("bad.jsonl: line 2:"), "{err}");
    }
}
