//! [`Lab`]: a built lab, its accessors and traffic helpers, and removing labs.

use std::ffi::{OsStr, OsString};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use crate::agent::{AgentPaths, AgentProcess};
use crate::cmd::run;
use crate::config::{DEFAULT_RUN_ROOT, LabConfig, ServerDef};
use crate::error::{LabError, TrafficError};
use crate::http::{HttpRequest, HttpResponse, parse_url};
use crate::netns;
use crate::plan::{Endpoint, Node, Plan, World};
use crate::servers::{
    self, CatalogCall, GrpcCallRecord, Place, RequestRecord, RunningServer, ServerFiles,
};
use crate::state;
use crate::topology;
use crate::traffic::{self, Origin};

/// How long `up` waits for all servers to accept connections.
const SERVER_READY_TIMEOUT: Duration = Duration::from_secs(15);

/// A lab made of network namespaces. The value returned by [`Lab::up`] owns the lab: dropping it
/// (also while panicking) removes everything, as [`Lab::down`] does.
#[derive(Debug)]
pub struct Lab {
    plan: Plan,
    servers: Vec<RunningServer>,
    owner: bool,
    removed: bool,
}

impl Lab {
    /// Builds the lab: namespaces, links, addresses and routes; the state directory and the
    /// policy directory; then starts the servers and waits until they accept connections. On
    /// failure, removes whatever it built before returning the error.
    pub fn up(config: LabConfig) -> Result<Lab, LabError> {
        let plan = Plan::new(&config)?;
        check_free(&plan)?;
        tracing::info!(prefix = %plan.prefix, run_dir = %plan.run_dir.display(), "building lab");
        let mut lab = Lab {
            plan,
            servers: Vec::new(),
            owner: true,
            removed: false,
        };
        match lab.build() {
            Ok(()) => {
                tracing::info!(prefix = %lab.plan.prefix, "lab is up");
                Ok(lab)
            }
            Err(err) => {
                tracing::warn!(prefix = %lab.plan.prefix, error = %err, "building the lab failed, removing it");
                if let Err(cleanup) = lab.down() {
                    tracing::warn!(error = %cleanup, "cleanup after a failed up");
                }
                Err(err)
            }
        }
    }

    fn build(&mut self) -> Result<(), LabError> {
        let run_dir = self.plan.run_dir.clone();
        // Left over by a lab removed halfway (no lab.json, so no lab): start afresh.
        if run_dir.exists() {
            std::fs::remove_dir_all(&run_dir).map_err(|e| LabError::io("remove", &run_dir, e))?;
        }
        for dir in [
            run_dir.clone(),
            run_dir.join("bin"),
            run_dir.join("servers"),
        ] {
            std::fs::create_dir_all(&dir).map_err(|e| LabError::io("create", &dir, e))?;
        }
        // First, so that another process can remove a half-built lab.
        write_record(&self.plan)?;
        topology::build(&self.plan)?;
        state::write_state_dir(&self.plan, &self.state_dir())?;
        for dir in std::iter::once(self.policy_dir())
            .chain(self.plan.nodes.iter().map(|n| run_dir.join(&n.id)))
        {
            std::fs::create_dir_all(&dir).map_err(|e| LabError::io("create", &dir, e))?;
        }
        servers::write_bin_files(&run_dir)?;
        for (place, def) in self.server_places() {
            let server = servers::start(&run_dir, &place, &def)?;
            self.servers.push(server);
        }
        servers::wait_ready(&mut self.servers, SERVER_READY_TIMEOUT)
    }

    /// Every server of the plan with where it runs.
    fn server_places(&self) -> Vec<(Place, ServerDef)> {
        let mut list = Vec::new();
        let world = &self.plan.world;
        for def in &world.servers {
            list.push((world_place(world), def.clone()));
        }
        for ep in &self.plan.endpoints {
            for def in &ep.servers {
                list.push((endpoint_place(ep), def.clone()));
            }
        }
        list
    }

    /// Opens a lab built by another process (from its `lab.json`). The value does not own the
    /// lab: dropping it removes nothing.
    pub fn attach(prefix: &str) -> Result<Lab, LabError> {
        Lab::attach_at(Path::new(DEFAULT_RUN_ROOT), prefix)
    }

    /// [`Lab::attach`] with another run root.
    pub fn attach_at(run_root: &Path, prefix: &str) -> Result<Lab, LabError> {
        let plan = read_record(run_root, prefix)?;
        Ok(Lab {
            plan,
            servers: Vec::new(),
            owner: false,
            removed: false,
        })
    }

    /// Gives up ownership: the lab outlives this value (`weir lab up`). Returns the run
    /// directory; remove the lab later with [`crate::down`].
    pub fn persist(mut self) -> PathBuf {
        self.owner = false;
        // Dropping a `Child` leaves the process running.
        self.servers.clear();
        self.plan.run_dir.clone()
    }

    /// Stops every process the lab started (and any other process living in its namespaces),
    /// deletes its namespaces, the BPF pin directories of its nodes and its run directory.
    /// Idempotent; removes as much as it can and reports what it could not (and then tries again
    /// when called again or dropped).
    pub fn down(&mut self) -> Result<(), LabError> {
        if self.removed {
            return Ok(());
        }
        tracing::info!(prefix = %self.plan.prefix, "removing lab");
        let pids: Vec<_> = self
            .servers
            .iter_mut()
            .filter_map(|s| matches!(s.child.try_wait(), Ok(None)).then_some(s))
            .map(|s| s.pid())
            .collect();
        netns::terminate(&pids, Duration::from_secs(3));
        for server in &mut self.servers {
            servers::stop(server);
        }
        self.servers.clear();
        let failures = topology::teardown(&self.plan);
        if failures.is_empty() {
            self.removed = true;
            Ok(())
        } else {
            Err(LabError::Cleanup {
                prefix: self.plan.prefix.clone(),
                failures,
            })
        }
    }

    pub fn prefix(&self) -> &str {
        &self.plan.prefix
    }

    /// `<run-root>/<prefix>/`.
    pub fn run_dir(&self) -> &Path {
        &self.plan.run_dir
    }

    /// The agent's state directory, `<run-dir>/state/` (`cluster.yaml`, `endpoints/*.yaml`).
    pub fn state_dir(&self) -> PathBuf {
        self.plan.run_dir.join("state")
    }

    /// The agent's watched policy directory, `<run-dir>/policies/` (empty after `up`).
    pub fn policy_dir(&self) -> PathBuf {
        self.plan.run_dir.join("policies")
    }

    pub fn endpoints(&self) -> &[Endpoint] {
        &self.plan.endpoints
    }

    /// An endpoint by `namespace/name`, or by name alone when that is unambiguous.
    pub fn endpoint(&self, name: &str) -> Option<&Endpoint> {
        if let Some((ns, n)) = name.split_once('/') {
            return self
                .plan
                .endpoints
                .iter()
                .find(|e| e.namespace == ns && e.name == n);
        }
        let mut matches = self.plan.endpoints.iter().filter(|e| e.name == name);
        let first = matches.next()?;
        matches.next().is_none().then_some(first)
    }

    pub fn nodes(&self) -> &[Node] {
        &self.plan.nodes
    }

    /// A node by short name (`node1`) or name (`<prefix>-node1`).
    pub fn node(&self, name: &str) -> Option<&Node> {
        self.plan
            .nodes
            .iter()
            .find(|n| n.id == name || n.name == name)
    }

    pub fn world(&self) -> &World {
        &self.plan.world
    }

    /// Every network namespace of the lab.
    pub fn netns_names(&self) -> Vec<String> {
        self.plan.netns_names()
    }

    /// Where traffic can start: an endpoint (`users-0`, `default/users-0`), `world`, or a node
    /// (`node1`, `<prefix>-node1`). Returns (display name, network namespace).
    fn place(&self, place: &str) -> Result<(String, String), TrafficError> {
        if place == "world" {
            return Ok(("world".to_string(), self.plan.world.netns.clone()));
        }
        if let Some(node) = self.node(place) {
            return Ok((node.name.clone(), node.netns.clone()));
        }
        if let Some(ep) = self.endpoint(place) {
            return Ok((ep.id(), ep.netns.clone()));
        }
        let mut known: Vec<String> = self.plan.endpoints.iter().map(Endpoint::id).collect();
        known.push("world".to_string());
        known.extend(self.plan.nodes.iter().map(|n| n.id.clone()));
        Err(TrafficError::UnknownPlace {
            place: place.to_string(),
            known: known.join(", "),
        })
    }

    /// Runs `f` on a thread inside the place's network namespace (sockets it creates stay there).
    pub fn run_in<T: Send>(
        &self,
        place: &str,
        f: impl FnOnce() -> T + Send,
    ) -> Result<T, TrafficError> {
        let (display, ns) = self.place(place)?;
        netns::in_netns(&ns, f).map_err(|source| TrafficError::Netns {
            from: display,
            netns: ns,
            source,
        })
    }

    /// `ip netns exec <netns> <program>`, to add arguments to and run.
    pub fn command(&self, place: &str, program: impl AsRef<OsStr>) -> Result<Command, LabError> {
        let (_, ns) = self.place(place)?;
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &ns]).arg(program);
        Ok(cmd)
    }

    /// Runs `argv` inside the place and returns its output; a non-zero exit is an error with
    /// its stderr.
    pub fn exec<S: AsRef<OsStr>>(&self, place: &str, argv: &[S]) -> Result<Output, LabError> {
        let (program, args) = argv
            .split_first()
            .ok_or_else(|| LabError::Config("exec needs a program".to_string()))?;
        let mut cmd = self.command(place, program)?;
        cmd.args(args);
        run(&mut cmd)
    }

    /// Opens a TCP connection from a place; the stream can be used from any thread.
    pub fn tcp_connect(
        &self,
        from: &str,
        addr: SocketAddr,
        timeout: Duration,
    ) -> Result<TcpStream, TrafficError> {
        let (display, ns) = self.place(from)?;
        traffic::tcp_connect(&origin(&display, &ns), addr, timeout)
    }

    /// Listens on TCP inside a place (for tests that check what arrives).
    pub fn tcp_listen(&self, place: &str, addr: SocketAddr) -> Result<TcpListener, TrafficError> {
        let (display, ns) = self.place(place)?;
        traffic::tcp_listen(&origin(&display, &ns), addr)
    }

    /// Binds a UDP socket inside a place.
    pub fn udp_bind(&self, place: &str, addr: SocketAddr) -> Result<UdpSocket, TrafficError> {
        let (display, ns) = self.place(place)?;
        traffic::udp_bind(&origin(&display, &ns), addr)
    }

    /// Sends one datagram from a place and returns the first datagram that comes back.
    pub fn udp_roundtrip(
        &self,
        from: &str,
        addr: SocketAddr,
        payload: &[u8],
        timeout: Duration,
    ) -> Result<Vec<u8>, TrafficError> {
        let (display, ns) = self.place(from)?;
        traffic::udp_roundtrip(&origin(&display, &ns), addr, payload, timeout)
    }

    /// One HTTP/1.1 request (`Connection: close`) from a place. The URL's host is an IP literal
    /// or a place of the lab (`http://users-0/x` goes to its IPv4 address).
    pub fn http_request(
        &self,
        from: &str,
        method: &str,
        url: &str,
        timeout: Duration,
    ) -> Result<HttpResponse, TrafficError> {
        self.http(from, &HttpRequest::new(method, url), timeout)
    }

    /// [`http_request`](Self::http_request) with headers and a body.
    pub fn http(
        &self,
        from: &str,
        request: &HttpRequest,
        timeout: Duration,
    ) -> Result<HttpResponse, TrafficError> {
        let (display, ns) = self.place(from)?;
        let target = parse_url(&request.url, |name| self.address_of(name).map(IpAddr::V4))?;
        traffic::http(&origin(&display, &ns), request, &target, timeout)
    }

    /// One ICMP echo request from a place; returns the round-trip time.
    pub fn ping(
        &self,
        from: &str,
        addr: IpAddr,
        timeout: Duration,
    ) -> Result<Duration, TrafficError> {
        let (display, ns) = self.place(from)?;
        traffic::ping(&origin(&display, &ns), addr, timeout)
    }

    fn address_of(&self, name: &str) -> Option<std::net::Ipv4Addr> {
        if name == "world" {
            return Some(self.plan.world.ipv4);
        }
        if let Some(node) = self.node(name) {
            return Some(node.ipv4);
        }
        self.endpoint(name).map(|e| e.ipv4)
    }

    /// The files of the server listening on `port` in a place.
    fn server_files(&self, place: &str, port: u16) -> Result<ServerFiles, LabError> {
        let (label, servers) = if place == "world" {
            ("world".to_string(), &self.plan.world.servers)
        } else {
            let ep = self.endpoint(place).ok_or_else(|| LabError::Unknown {
                prefix: self.plan.prefix.clone(),
                kind: "endpoint",
                name: place.to_string(),
                known: self
                    .plan
                    .endpoints
                    .iter()
                    .map(Endpoint::id)
                    .collect::<Vec<_>>()
                    .join(", "),
            })?;
            (endpoint_place(ep).label, &ep.servers)
        };
        let server = servers
            .iter()
            .find(|s| s.port == port)
            .ok_or_else(|| LabError::Unknown {
                prefix: self.plan.prefix.clone(),
                kind: "server on port",
                name: format!("{place}:{port}"),
                known: servers
                    .iter()
                    .map(|s| s.port.to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
            })?;
        Ok(ServerFiles::new(&self.plan.run_dir, &label, &server.name))
    }

    /// Requests the HTTP API server on `place:port` has seen so far, oldest first.
    pub fn server_requests(&self, place: &str, port: u16) -> Result<Vec<RequestRecord>, LabError> {
        servers::read_requests(&self.server_files(place, port)?.requests)
    }

    /// Calls the gRPC catalog server on `place:port` has seen so far, oldest first.
    pub fn grpc_calls(&self, place: &str, port: u16) -> Result<Vec<GrpcCallRecord>, LabError> {
        servers::read_requests(&self.server_files(place, port)?.requests)
    }

    /// The gRPC catalog client, `<run-dir>/bin/catalog_client.py` (grpcio; run it with
    /// `python3` inside a place: `--target 10.200.1.14:50051 get --id 1`).
    pub fn catalog_client(&self) -> PathBuf {
        servers::bin_file(&self.plan.run_dir, "catalog_client.py")
    }

    /// Runs the gRPC catalog client in a place against `addr`: `calls` (`get:1,update:1:-2`,
    /// see the client's `--calls`) in order on one connection, each with `timeout`. One
    /// [`CatalogCall`] per call, whatever its status (a policy's rejection is a status, not an
    /// error); an error only when the client could not run.
    pub fn catalog_calls(
        &self,
        from: &str,
        addr: SocketAddr,
        calls: &str,
        timeout: Duration,
    ) -> Result<Vec<CatalogCall>, LabError> {
        let client = self.catalog_client();
        let output = self.exec(
            from,
            &[
                OsStr::new("python3"),
                client.as_os_str(),
                OsStr::new("--target"),
                OsStr::new(&addr.to_string()),
                OsStr::new("--timeout"),
                OsStr::new(&timeout.as_secs_f64().to_string()),
                OsStr::new("--calls"),
                OsStr::new(calls),
            ],
        )?;
        servers::parse_catalog_output(&client, &String::from_utf8_lossy(&output.stdout))
    }

    /// The stdout/stderr log of the server on `place:port`.
    pub fn server_log(&self, place: &str, port: u16) -> Result<PathBuf, LabError> {
        Ok(self.server_files(place, port)?.output)
    }

    /// Starts `weir-agent` on a node (`node1` or `<prefix>-node1`), inside the node's network
    /// namespace:
    ///
    /// ```text
    /// <agent_binary> --node-name <prefix>-node1 --state-dir <run>/state --policy-dir <run>/policies
    ///     --socket <run>/node1/hubble.sock --bpffs-dir <bpffs-root>/<prefix>-node1
    ///     --runtime-dir <run>/node1/ [--devices <ext0 on the first node,node<M> for every other node>]
    ///     <extra_args…>
    /// ```
    ///
    /// stdout and stderr go to `<run>/node1/agent.log`. Mounts bpffs on `/sys/fs/bpf` first if it
    /// is not mounted. Does not wait: call [`AgentProcess::wait_ready`].
    pub fn spawn_agent(
        &self,
        node: &str,
        agent_binary: impl AsRef<Path>,
        extra_args: &[&str],
    ) -> Result<AgentProcess, LabError> {
        let node = self.node(node).ok_or_else(|| LabError::Unknown {
            prefix: self.plan.prefix.clone(),
            kind: "node",
            name: node.to_string(),
            known: self
                .plan
                .nodes
                .iter()
                .map(|n| n.id.clone())
                .collect::<Vec<_>>()
                .join(", "),
        })?;
        let paths = AgentPaths::new(&self.plan.run_dir, &node.id);
        let mut runtime_dir = paths.runtime_dir.clone().into_os_string();
        runtime_dir.push("/");
        let mut argv: Vec<OsString> = vec![agent_binary.as_ref().into()];
        let pairs: [(&str, OsString); 6] = [
            ("--node-name", node.name.clone().into()),
            ("--state-dir", self.state_dir().into()),
            ("--policy-dir", self.policy_dir().into()),
            ("--socket", paths.socket.clone().into()),
            ("--bpffs-dir", self.plan.bpffs_dir(node).into()),
            ("--runtime-dir", runtime_dir),
        ];
        for (flag, value) in pairs {
            argv.push(flag.into());
            argv.push(value);
        }
        // The node's own devices (links to the other nodes, the world uplink): connections
        // arriving there for proxied ports of its endpoints go to its L7 proxy.
        let devices = self.plan.node_devices(node);
        if !devices.is_empty() {
            argv.push("--devices".into());
            argv.push(devices.join(",").into());
        }
        argv.extend(extra_args.iter().map(OsString::from));
        let run_root = self
            .plan
            .run_dir
            .parent()
            .unwrap_or(Path::new(DEFAULT_RUN_ROOT));
        AgentProcess::spawn(&node.name, &node.netns, run_root, paths, argv)
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if self.owner
            && let Err(e) = self.down()
        {
            // Never panic here: this also runs while a failing test unwinds.
            eprintln!("weir-lab: {e}");
        }
    }
}

fn origin<'a>(display: &'a str, netns: &'a str) -> Origin<'a> {
    Origin { display, netns }
}

fn endpoint_place(ep: &Endpoint) -> Place {
    Place {
        display: ep.id(),
        label: format!("{}_{}", ep.namespace, ep.name),
        netns: ep.netns.clone(),
        ipv4: ep.ipv4,
        ipv6: ep.ipv6,
    }
}

fn world_place(world: &World) -> Place {
    Place {
        display: "world".to_string(),
        label: "world".to_string(),
        netns: world.netns.clone(),
        ipv4: world.ipv4,
        ipv6: world.ipv6,
    }
}

/// A lab may be built only where nothing of it exists yet.
fn check_free(plan: &Plan) -> Result<(), LabError> {
    let record = plan.run_dir.join("lab.json");
    if record.exists() {
        return Err(LabError::Exists {
            prefix: plan.prefix.clone(),
            what: format!("{} exists", record.display()),
        });
    }
    if let Some(name) = plan.netns_names().into_iter().find(|n| netns::exists(n)) {
        return Err(LabError::Exists {
            prefix: plan.prefix.clone(),
            what: format!("network namespace {name} exists"),
        });
    }
    Ok(())
}

fn record_path(run_dir: &Path) -> PathBuf {
    run_dir.join("lab.json")
}

fn write_record(plan: &Plan) -> Result<(), LabError> {
    let path = record_path(&plan.run_dir);
    let text = serde_json::to_string_pretty(plan).map_err(|e| LabError::Record {
        path: path.clone(),
        message: e.to_string(),
    })?;
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, text + "\n").map_err(|e| LabError::io("write", &tmp, e))?;
    std::fs::rename(&tmp, &path).map_err(|e| LabError::io("rename", &tmp, e))
}

fn read_record(run_root: &Path, prefix: &str) -> Result<Plan, LabError> {
    LabConfig {
        prefix: prefix.to_string(),
        ..LabConfig::default()
    }
    .validate()?;
    let path = record_path(&run_root.join(prefix));
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(LabError::NotFound {
                prefix: prefix.to_string(),
                run_root: run_root.to_path_buf(),
            });
        }
        Err(e) => return Err(LabError::io("read", &path, e)),
    };
    let plan: Plan = serde_json::from_str(&text).map_err(|e| LabError::Record {
        path: path.clone(),
        message: e.to_string(),
    })?;
    if plan.prefix != prefix {
        return Err(LabError::Record {
            path,
            message: format!("is the record of lab `{}`, not `{prefix}`", plan.prefix),
        });
    }
    Ok(plan)
}

/// Removes the lab `prefix` under the default run root, from any process (`weir lab down`).
pub fn down(prefix: &str) -> Result<(), LabError> {
    down_at(Path::new(DEFAULT_RUN_ROOT), prefix)
}

/// [`down`] under another run root. Without a `lab.json` (a lab interrupted before writing it,
/// or already removed), removes what the default lab with this prefix would have created, if
/// any of it exists; a lab that does not exist at all is not an error.
pub fn down_at(run_root: &Path, prefix: &str) -> Result<(), LabError> {
    let mut failures = Vec::new();
    let plan = match read_record(run_root, prefix) {
        Ok(plan) => plan,
        Err(err @ (LabError::NotFound { .. } | LabError::Record { .. } | LabError::Io { .. })) => {
            if !matches!(err, LabError::NotFound { .. }) {
                failures.push(err.to_string());
            }
            Plan::new(&LabConfig {
                prefix: prefix.to_string(),
                run_root: run_root.to_path_buf(),
                ..LabConfig::default()
            })?
        }
        Err(err) => return Err(err),
    };
    tracing::info!(%prefix, "removing lab");
    failures.extend(topology::teardown(&plan));
    if failures.is_empty() {
        Ok(())
    } else {
        Err(LabError::Cleanup {
            prefix: prefix.to_string(),
            failures,
        })
    }
}

/// Removes every lab found under the default run root; returns their prefixes.
pub fn down_all() -> Result<Vec<String>, LabError> {
    down_all_at(Path::new(DEFAULT_RUN_ROOT))
}

/// [`down_all`] under another run root.
pub fn down_all_at(run_root: &Path) -> Result<Vec<String>, LabError> {
    let entries = match std::fs::read_dir(run_root) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(LabError::io("read", run_root, e)),
    };
    let mut prefixes: Vec<String> = entries
        .flatten()
        .filter(|e| e.path().is_dir())
        .filter_map(|e| e.file_name().to_str().map(str::to_string))
        .filter(|name| LabConfig::with_prefix(name.clone()).validate().is_ok())
        .collect();
    prefixes.sort();
    let mut failures = Vec::new();
    for prefix in &prefixes {
        if let Err(e) = down_at(run_root, prefix) {
            failures.push(e.to_string());
        }
    }
    if failures.is_empty() {
        Ok(prefixes)
    } else {
        Err(LabError::Cleanup {
            prefix: format!("{}/*", run_root.display()),
            failures,
        })
    }
}
