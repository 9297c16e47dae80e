//! What a lab is made of: its nodes, endpoints and servers. Everything else (names, addresses,
//! MACs, interfaces) is derived from this by [`crate::plan`].

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use weir_policy::cluster::Workload;

use crate::error::LabError;

/// Default lab prefix: the demo's lab is `weir-node1`, `weir-world`, `weir-default-users-0`…
pub const DEFAULT_PREFIX: &str = "weir";
/// Where labs keep their run directories (`<run-root>/<prefix>/`).
pub const DEFAULT_RUN_ROOT: &str = "/run/weir-lab";
/// Where the agents of a lab pin their BPF objects (`<bpffs-root>/<node-name>/`).
pub const DEFAULT_BPFFS_ROOT: &str = "/sys/fs/bpf/weir";

/// Most endpoints one node can hold: pods are `10.200.N.(10+i)` with `i` in `1..=244`.
pub const MAX_ENDPOINTS_PER_NODE: usize = 244;

/// A lab to build with [`crate::Lab::up`]. As a file (YAML/JSON, camelCase), every field is
/// optional and defaults to the default lab's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct LabConfig {
    /// Carried by every name the lab creates: network namespaces, node names, the run directory,
    /// the BPF pin directories. Lowercase letters, digits and `-`, at most 24 characters.
    pub prefix: String,
    /// The run directory is `<run_root>/<prefix>/`.
    pub run_root: PathBuf,
    /// The agents pin under `<bpffs_root>/<node-name>/`; `down` removes those directories.
    pub bpffs_root: PathBuf,
    /// `cluster.yaml`'s `name` (the `io.cilium.k8s.policy.cluster` label).
    pub cluster_name: String,
    /// Nodes; the first one is linked to the world. Default: node 1 only.
    pub nodes: Vec<NodeDef>,
    /// Endpoints (pods), in address order: the i-th endpoint of node N gets `10.200.N.(10+i)`.
    pub endpoints: Vec<EndpointDef>,
    /// Servers in the world namespace (default: the HTTP API server on :80).
    pub world_servers: Vec<ServerDef>,
    /// Extra labels per Kubernetes namespace, added to `kubernetes.io/metadata.name`.
    pub namespace_labels: BTreeMap<String, BTreeMap<String, String>>,
}

impl Default for LabConfig {
    fn default() -> Self {
        Self {
            prefix: DEFAULT_PREFIX.to_string(),
            run_root: PathBuf::from(DEFAULT_RUN_ROOT),
            bpffs_root: PathBuf::from(DEFAULT_BPFFS_ROOT),
            cluster_name: "default".to_string(),
            nodes: vec![NodeDef::new(1)],
            endpoints: default_endpoints(),
            world_servers: vec![ServerDef::http_api("world", 80)],
            namespace_labels: BTreeMap::new(),
        }
    }
}

impl LabConfig {
    /// The default lab with another prefix (what tests use).
    pub fn with_prefix(prefix: impl Into<String>) -> Self {
        Self {
            prefix: prefix.into(),
            ..Self::default()
        }
    }

    /// The run directory, `<run_root>/<prefix>`.
    pub fn run_dir(&self) -> PathBuf {
        self.run_root.join(&self.prefix)
    }

    /// Checks names, indices and ports; [`crate::Lab::up`] calls it first.
    pub fn validate(&self) -> Result<(), LabError> {
        let bad = |message: String| Err(LabError::Config(message));
        validate_prefix(&self.prefix)?;
        if self.nodes.is_empty() {
            return bad("`nodes` is empty: a lab needs at least one node".into());
        }
        let mut indices = BTreeSet::new();
        for node in &self.nodes {
            if node.index == 0 || node.index == 255 {
                return bad(format!("node index {} is out of range 1..=254", node.index));
            }
            if !indices.insert(node.index) {
                return bad(format!("node index {} is listed twice", node.index));
            }
        }
        let mut per_node: BTreeMap<u8, usize> = BTreeMap::new();
        let mut ids = BTreeSet::new();
        let mut netns = BTreeMap::new();
        for ep in &self.endpoints {
            let id = format!("{}/{}", ep.namespace, ep.name);
            validate_dns_label("endpoint namespace", &ep.namespace, &id)?;
            validate_dns_label("endpoint name", &ep.name, &id)?;
            if !ids.insert(id.clone()) {
                return bad(format!("endpoint {id} is listed twice"));
            }
            if let Some(other) = netns.insert(format!("{}-{}", ep.namespace, ep.name), id.clone()) {
                return bad(format!(
                    "endpoints {other} and {id} would share the network namespace name `{}-{}-{}`",
                    self.prefix, ep.namespace, ep.name
                ));
            }
            if !indices.contains(&ep.node) {
                return bad(format!(
                    "endpoint {id} is on node {}, which `nodes` does not list",
                    ep.node
                ));
            }
            let count = per_node.entry(ep.node).or_default();
            *count += 1;
            if *count > MAX_ENDPOINTS_PER_NODE {
                return bad(format!(
                    "node {} has more than {MAX_ENDPOINTS_PER_NODE} endpoints",
                    ep.node
                ));
            }
            validate_servers(&id, &ep.servers)?;
        }
        validate_servers("world", &self.world_servers)
    }
}

fn validate_prefix(prefix: &str) -> Result<(), LabError> {
    let ok = !prefix.is_empty()
        && prefix.len() <= 24
        && prefix.starts_with(|c: char| c.is_ascii_lowercase())
        && !prefix.ends_with('-')
        && prefix
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if ok {
        Ok(())
    } else {
        Err(LabError::Config(format!(
            "prefix `{prefix}` must be 1-24 characters of a-z, 0-9 and `-`, start with a letter and not end with `-`"
        )))
    }
}

fn validate_dns_label(what: &str, value: &str, id: &str) -> Result<(), LabError> {
    let ok = !value.is_empty()
        && value.len() <= 63
        && value.starts_with(|c: char| c.is_ascii_alphanumeric())
        && value.ends_with(|c: char| c.is_ascii_alphanumeric())
        && value
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if ok {
        Ok(())
    } else {
        Err(LabError::Config(format!(
            "{what} `{value}` of {id} is not a DNS label (a-z, 0-9, `-`, at most 63)"
        )))
    }
}

fn validate_servers(owner: &str, servers: &[ServerDef]) -> Result<(), LabError> {
    let mut names = BTreeSet::new();
    let mut ports = BTreeSet::new();
    for server in servers {
        validate_dns_label("server name", &server.name, owner)?;
        if !names.insert(server.name.as_str()) {
            return Err(LabError::Config(format!(
                "{owner} has two servers named `{}`",
                server.name
            )));
        }
        if server.port == 0 {
            return Err(LabError::Config(format!(
                "server `{}` of {owner} has port 0",
                server.name
            )));
        }
        if !ports.insert((server.protocol(), server.port)) {
            return Err(LabError::Config(format!(
                "{owner} has two servers on {}/{}",
                server.port,
                server.protocol().as_str()
            )));
        }
        if let ServerKind::Command { argv, .. } = &server.kind
            && argv.is_empty()
        {
            return Err(LabError::Config(format!(
                "server `{}` of {owner} has an empty `argv`",
                server.name
            )));
        }
    }
    Ok(())
}

/// A node of the lab: network namespace and node name `<prefix>-node<index>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NodeDef {
    /// 1..=254; the node's address is `10.200.0.<index>`, its pods `10.200.<index>.0/24`.
    pub index: u8,
    /// Node labels, added to `kubernetes.io/hostname` and `kubernetes.io/os`.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

impl NodeDef {
    pub fn new(index: u8) -> Self {
        Self {
            index,
            labels: BTreeMap::new(),
        }
    }
}

/// An endpoint (a pod) with its own network namespace, `<prefix>-<namespace>-<name>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EndpointDef {
    #[serde(default = "default_namespace")]
    pub namespace: String,
    pub name: String,
    /// Pod labels without source (`app: users`).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Index of the node the endpoint runs on (1 unless set).
    #[serde(default = "first_node")]
    pub node: u8,
    /// `default` unless set.
    #[serde(default = "default_service_account")]
    pub service_account: Option<String>,
    #[serde(default)]
    pub workload: Option<Workload>,
    /// Servers started in the endpoint's namespace; each is also a named port of the endpoint.
    #[serde(default)]
    pub servers: Vec<ServerDef>,
}

impl EndpointDef {
    /// An endpoint on node 1 with service account `default`, owned by a Deployment named after
    /// the endpoint without its ordinal (`users-0` → `users`).
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        let name = name.into();
        let workload = Workload {
            name: workload_name(&name).to_string(),
            kind: "Deployment".to_string(),
        };
        Self {
            namespace: namespace.into(),
            name,
            labels: BTreeMap::new(),
            node: 1,
            service_account: default_service_account(),
            workload: Some(workload),
            servers: Vec::new(),
        }
    }

    pub fn label(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.labels.insert(key.into(), value.into());
        self
    }

    pub fn on_node(mut self, index: u8) -> Self {
        self.node = index;
        self
    }

    pub fn service_account(mut self, name: impl Into<String>) -> Self {
        self.service_account = Some(name.into());
        self
    }

    pub fn server(mut self, server: ServerDef) -> Self {
        self.servers.push(server);
        self
    }
}

fn default_namespace() -> String {
    "default".to_string()
}

fn default_service_account() -> Option<String> {
    Some("default".to_string())
}

fn first_node() -> u8 {
    1
}

/// `users-0` → `users`; names without an ordinal stay as they are.
fn workload_name(name: &str) -> &str {
    match name.rsplit_once('-') {
        Some((base, ordinal))
            if !base.is_empty() && ordinal.chars().all(|c| c.is_ascii_digit()) =>
        {
            base
        }
        _ => name,
    }
}

/// A server process started by `up` inside an endpoint's (or the world's) namespace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServerDef {
    /// Named port in the endpoint's state file (`http`), and the server's file names.
    pub name: String,
    pub port: u16,
    pub kind: ServerKind,
}

/// What a server is; as a file: `{type: httpApi, service: users}`,
/// `{type: grpcCatalog, service: catalog}` or `{type: command, argv: [...], protocol: UDP}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "type", deny_unknown_fields)]
pub enum ServerKind {
    /// `lab/servers/http_api.py`: answers every method on every path with JSON naming
    /// `service`, the method and the path, and logs one JSON line per request.
    HttpApi { service: String },
    /// `lab/servers/catalog_grpc.py` (grpcio): the seeds' gRPC service
    /// `com.example.catalog.ProductService` (`GetProduct`, `UpdateStock`, from
    /// `lab/servers/catalog.proto`) over an in-memory catalog; logs one JSON line per call with
    /// its method path, caller and status code.
    GrpcCatalog { service: String },
    /// Any program. In `argv`, `{port}`, `{run_dir}`, `{log}` (the server's request log path),
    /// `{ipv4}` and `{ipv6}` (the place's addresses) are replaced. It is ready when its TCP port
    /// accepts connections, or, for UDP, when a socket is bound to its port.
    Command {
        argv: Vec<String>,
        protocol: Protocol,
    },
}

impl ServerDef {
    /// The HTTP API server, named port `http`.
    pub fn http_api(service: impl Into<String>, port: u16) -> Self {
        Self {
            name: "http".to_string(),
            port,
            kind: ServerKind::HttpApi {
                service: service.into(),
            },
        }
    }

    /// The gRPC catalog server, named port `grpc`.
    pub fn grpc_catalog(service: impl Into<String>, port: u16) -> Self {
        Self {
            name: "grpc".to_string(),
            port,
            kind: ServerKind::GrpcCatalog {
                service: service.into(),
            },
        }
    }

    /// Any program (see [`ServerKind::Command`]).
    pub fn command(
        name: impl Into<String>,
        protocol: Protocol,
        port: u16,
        argv: Vec<String>,
    ) -> Self {
        Self {
            name: name.into(),
            port,
            kind: ServerKind::Command { argv, protocol },
        }
    }

    pub fn protocol(&self) -> Protocol {
        match &self.kind {
            ServerKind::HttpApi { .. } | ServerKind::GrpcCatalog { .. } => Protocol::Tcp,
            ServerKind::Command { protocol, .. } => *protocol,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Protocol {
    Tcp,
    Udp,
}

impl Protocol {
    /// As Kubernetes spells it: `TCP`, `UDP`.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "TCP",
            Protocol::Udp => "UDP",
        }
    }
}

/// The scenario endpoints: the HTTP services of the seeds, the catalog's gRPC service, kube-dns,
/// the `production` namespace's API server and web frontend, and the public-api-only service.
pub fn default_endpoints() -> Vec<EndpointDef> {
    let app = |ns: &str, name: &str, app: &str| EndpointDef::new(ns, name).label("app", app);
    vec![
        app("default", "frontend-0", "frontend").label("env", "prod"),
        app("default", "users-0", "users").server(ServerDef::http_api("users", 80)),
        app("default", "billing-0", "billing").server(ServerDef::http_api("billing", 80)),
        // The seeds' catalog-grpc-policy: reco may call only GetProduct, inventory only
        // UpdateStock of `com.example.catalog.ProductService` on :50051.
        app("default", "catalog-0", "catalog")
            .server(ServerDef::http_api("catalog", 80))
            .server(ServerDef::grpc_catalog("catalog", 50051)),
        app("default", "reco-0", "reco"),
        app("default", "inventory-0", "inventory"),
        EndpointDef::new("kube-system", "coredns-0")
            .label("k8s-app", "kube-dns")
            .service_account("coredns"),
        app("production", "api-server-0", "api-server")
            .server(ServerDef::http_api("api-server", 8080)),
        app("production", "web-frontend-0", "web-frontend"),
        // The seeds' public-api-only: `app: service` serves /public to `env: prod` clients.
        app("default", "service-0", "service").server(ServerDef::http_api("service", 80)),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_config_is_valid() {
        LabConfig::default().validate().unwrap();
        LabConfig::with_prefix("wt1").validate().unwrap();
    }

    #[test]
    fn config_files_need_only_what_differs() {
        let c: LabConfig = serde_yaml::from_str(
            "prefix: demo\nendpoints:\n  - name: web-0\n    labels: {app: web}\n    servers:\n      - {name: http, port: 80, kind: {type: httpApi, service: web}}\n",
        )
        .unwrap();
        assert_eq!(c.prefix, "demo");
        assert_eq!(c.nodes, [NodeDef::new(1)]);
        assert_eq!(c.endpoints[0].namespace, "default");
        assert_eq!(c.endpoints[0].node, 1);
        assert_eq!(c.endpoints[0].service_account.as_deref(), Some("default"));
        assert_eq!(c.endpoints[0].servers[0], ServerDef::http_api("web", 80));
        c.validate().unwrap();
    }

    #[test]
    fn grpc_catalog_servers_in_files_and_in_the_default_lab() {
        let c: LabConfig = serde_yaml::from_str(
            "endpoints:\n  - name: shop-0\n    servers:\n      - {name: grpc, port: 50051, kind: {type: grpcCatalog, service: shop}}\n",
        )
        .unwrap();
        assert_eq!(
            c.endpoints[0].servers,
            [ServerDef::grpc_catalog("shop", 50051)]
        );
        assert_eq!(c.endpoints[0].servers[0].protocol(), Protocol::Tcp);
        c.validate().unwrap();

        let catalog = default_endpoints()
            .into_iter()
            .find(|e| e.name == "catalog-0")
            .unwrap();
        assert_eq!(
            catalog.servers,
            [
                ServerDef::http_api("catalog", 80),
                ServerDef::grpc_catalog("catalog", 50051)
            ]
        );
    }

    #[test]
    fn prefixes() {
        for good in ["weir", "w1", "wl-up-123", "abcdefghijklmnopqrstuvwx"] {
            validate_prefix(good).unwrap_or_else(|e| panic!("{good}: {e}"));
        }
        for bad in [
            "",
            "1abc",
            "Weir",
            "we/ir",
            "weir-",
            "a..b",
            "abcdefghijklmnopqrstuvwxy",
            "w_1",
        ] {
            assert!(validate_prefix(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn workload_names() {
        assert_eq!(workload_name("users-0"), "users");
        assert_eq!(workload_name("api-server-12"), "api-server");
        assert_eq!(workload_name("web"), "web");
        assert_eq!(workload_name("web-x"), "web-x");
    }

    #[test]
    fn rejects_bad_configs() {
        let check = |config: LabConfig, needle: &str| {
            let err = config.validate().unwrap_err().to_string();
            assert!(err.contains(needle), "{err} does not mention {needle}");
        };
        let mut c = LabConfig::default();
        c.nodes.clear();
        check(c, "`nodes` is empty");

        let mut c = LabConfig::default();
        c.nodes.push(NodeDef::new(1));
        check(c, "node index 1 is listed twice");

        let mut c = LabConfig::default();
        c.endpoints.push(EndpointDef::new("default", "users-0"));
        check(c, "endpoint default/users-0 is listed twice");

        let mut c = LabConfig::default();
        c.endpoints
            .push(EndpointDef::new("default", "x").on_node(2));
        check(c, "is on node 2, which `nodes` does not list");

        let with = |endpoints| LabConfig {
            endpoints,
            ..LabConfig::default()
        };
        let c = with(vec![
            EndpointDef::new("a-b", "c"),
            EndpointDef::new("a", "b-c"),
        ]);
        check(c, "would share the network namespace name `weir-a-b-c`");

        let c = with(vec![EndpointDef::new("default", "Users")]);
        check(
            c,
            "endpoint name `Users` of default/Users is not a DNS label",
        );

        let c = with(vec![
            EndpointDef::new("default", "a")
                .server(ServerDef::http_api("a", 80))
                .server(ServerDef::command(
                    "other",
                    Protocol::Tcp,
                    80,
                    vec!["x".into()],
                )),
        ]);
        check(c, "default/a has two servers on 80/TCP");

        let c = with(
            (0..=MAX_ENDPOINTS_PER_NODE)
                .map(|i| EndpointDef::new("default", format!("ep-{i}")))
                .collect(),
        );
        check(c, "node 1 has more than 244 endpoints");
    }
}
