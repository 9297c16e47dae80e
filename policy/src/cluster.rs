//! The cluster as weir sees it in standalone mode: nodes, namespaces and endpoints.
//!
//! A *state directory* describes the whole cluster, the same on every node:
//!
//! ```text
//! <state-dir>/cluster.yaml              ClusterSpec: name, pod CIDRs, nodes, namespaces
//! <state-dir>/endpoints/*.yaml          one EndpointSpec per file (any file name ending in .yaml/.yml)
//! ```
//!
//! Every agent reads all of it: endpoints whose `node` is the agent's own node are enforced there;
//! the others only feed the ipcache, so a policy on one node recognises endpoints of another.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

/// `cluster.yaml`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClusterSpec {
    /// Cluster name, `default` unless set. Becomes the `io.cilium.k8s.policy.cluster` label.
    #[serde(default = "default_cluster_name")]
    pub name: String,
    /// Address ranges that belong to the cluster's pods. An address in them that is no known
    /// endpoint has the reserved identity `unmanaged`; addresses outside every known range are
    /// `world`.
    #[serde(default, rename = "podCIDRs")]
    pub pod_cidrs: Vec<IpNet>,
    #[serde(default)]
    pub nodes: Vec<NodeSpec>,
    #[serde(default)]
    pub namespaces: Vec<NamespaceSpec>,
}

fn default_cluster_name() -> String {
    "default".to_string()
}

impl Default for ClusterSpec {
    fn default() -> Self {
        Self {
            name: default_cluster_name(),
            pod_cidrs: Vec::new(),
            nodes: Vec::new(),
            namespaces: Vec::new(),
        }
    }
}

/// A node. Its addresses have the identity `host` on the node itself and `remote-node` elsewhere.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NodeSpec {
    pub name: String,
    #[serde(default)]
    pub ips: Vec<IpAddr>,
    /// Labels of the node (Hubble's `node_labels`).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// A namespace and its labels (`namespaceSelector` in Kubernetes NetworkPolicy, and the
/// `io.cilium.k8s.namespace.labels.*` endpoint labels).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NamespaceSpec {
    pub name: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// One endpoint (a pod): `endpoints/<anything>.yaml`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EndpointSpec {
    pub name: String,
    #[serde(default = "default_namespace")]
    pub namespace: String,
    /// The node the endpoint runs on.
    pub node: String,
    /// Pod labels, without source prefix (`app: frontend`); they become `k8s:` labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub service_account: Option<String>,
    pub ips: Vec<IpAddr>,
    /// Host-side interface of the endpoint's veth pair, in the node's network namespace.
    pub interface: String,
    /// Network namespace of the endpoint (informational; the lab uses it).
    #[serde(default)]
    pub netns: Option<String>,
    /// Container ports by name, for policies that name ports (`port: http`).
    #[serde(default)]
    pub named_ports: BTreeMap<String, NamedPort>,
    /// Owning workload, e.g. `{name: users, kind: Deployment}` (Hubble's `workloads`).
    #[serde(default)]
    pub workload: Option<Workload>,
}

fn default_namespace() -> String {
    "default".to_string()
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NamedPort {
    pub port: u16,
    #[serde(default = "default_protocol")]
    pub protocol: String,
}

fn default_protocol() -> String {
    "TCP".to_string()
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Workload {
    pub name: String,
    pub kind: String,
}

/// Everything a state directory holds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterState {
    pub cluster: ClusterSpec,
    pub endpoints: Vec<EndpointSpec>,
}

/// A state directory that could not be read, naming the file and what is wrong in it.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

impl ClusterState {
    /// Reads `<dir>/cluster.yaml` (optional: defaults apply when it is missing) and every
    /// `<dir>/endpoints/*.yaml`, in file-name order.
    pub fn load_dir(dir: &Path) -> Result<Self, StateError> {
        let cluster_path = dir.join("cluster.yaml");
        let cluster = match std::fs::read_to_string(&cluster_path) {
            Ok(text) => Some((cluster_path, text)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(source) => {
                return Err(StateError::Io {
                    path: cluster_path,
                    source,
                });
            }
        };
        let mut endpoints = Vec::new();
        for path in yaml_files(&dir.join("endpoints"))? {
            let text = std::fs::read_to_string(&path).map_err(|source| StateError::Io {
                path: path.clone(),
                source,
            })?;
            endpoints.push((path, text));
        }
        Self::from_sources(cluster, endpoints)
    }

    /// A state directory given as texts read elsewhere (e.g. the files an agent reports):
    /// `cluster` is the content of `cluster.yaml` (`None`: defaults apply), `endpoints` the
    /// endpoint files in the order `load_dir` would read them. Each text is paired with the
    /// path that errors name; the checks are those of [`ClusterState::load_dir`].
    pub fn from_sources<P: AsRef<Path>, T: AsRef<str>>(
        cluster: Option<(P, T)>,
        endpoints: impl IntoIterator<Item = (P, T)>,
    ) -> Result<Self, StateError> {
        let cluster = match cluster {
            Some((path, text)) => parse_yaml::<ClusterSpec>(path.as_ref(), text.as_ref())?,
            None => ClusterSpec::default(),
        };
        let mut parsed = Vec::new();
        for (path, text) in endpoints {
            let ep: EndpointSpec = parse_yaml(path.as_ref(), text.as_ref())?;
            parsed.push((path.as_ref().to_path_buf(), ep));
        }
        let state = ClusterState {
            cluster,
            endpoints: Vec::new(),
        };
        state.with_endpoints(parsed)
    }

    /// Validates endpoints (unique names, unique addresses, known nodes) and adds them.
    fn with_endpoints(
        mut self,
        endpoints: Vec<(PathBuf, EndpointSpec)>,
    ) -> Result<Self, StateError> {
        let mut names: BTreeMap<(String, String), PathBuf> = BTreeMap::new();
        let mut addrs: BTreeMap<IpAddr, PathBuf> = BTreeMap::new();
        for (path, ep) in endpoints {
            let invalid = |message: String| StateError::Invalid {
                path: path.clone(),
                message,
            };
            if ep.name.is_empty() {
                return Err(invalid("endpoint `name` is empty".into()));
            }
            if ep.ips.is_empty() {
                return Err(invalid(format!(
                    "endpoint {}/{} has no `ips`",
                    ep.namespace, ep.name
                )));
            }
            if !self.cluster.nodes.is_empty()
                && !self.cluster.nodes.iter().any(|n| n.name == ep.node)
            {
                return Err(invalid(format!(
                    "endpoint {}/{} is on node `{}`, which cluster.yaml does not list",
                    ep.namespace, ep.name, ep.node
                )));
            }
            if let Some(first) = names.insert((ep.namespace.clone(), ep.name.clone()), path.clone())
            {
                return Err(invalid(format!(
                    "endpoint {}/{} is also defined in {}",
                    ep.namespace,
                    ep.name,
                    first.display()
                )));
            }
            for ip in &ep.ips {
                if let Some(first) = addrs.insert(*ip, path.clone()) {
                    return Err(invalid(format!(
                        "address {ip} of endpoint {}/{} is also used in {}",
                        ep.namespace,
                        ep.name,
                        first.display()
                    )));
                }
            }
            self.endpoints.push(ep);
        }
        Ok(self)
    }

    /// The endpoint with this namespace and name.
    pub fn endpoint(&self, namespace: &str, name: &str) -> Option<&EndpointSpec> {
        self.endpoints
            .iter()
            .find(|e| e.namespace == namespace && e.name == name)
    }

    /// The endpoint that owns this address.
    pub fn endpoint_by_ip(&self, ip: IpAddr) -> Option<&EndpointSpec> {
        self.endpoints.iter().find(|e| e.ips.contains(&ip))
    }

    /// The node with this name.
    pub fn node(&self, name: &str) -> Option<&NodeSpec> {
        self.cluster.nodes.iter().find(|n| n.name == name)
    }

    /// Labels of a namespace (empty when the namespace is not listed).
    pub fn namespace_labels(&self, namespace: &str) -> BTreeMap<String, String> {
        self.cluster
            .namespaces
            .iter()
            .find(|n| n.name == namespace)
            .map(|n| n.labels.clone())
            .unwrap_or_default()
    }
}

impl fmt::Display for EndpointSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

fn parse_yaml<T: serde::de::DeserializeOwned>(path: &Path, text: &str) -> Result<T, StateError> {
    serde_yaml::from_str(text).map_err(|e| StateError::Parse {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

/// `*.yaml` and `*.yml` files of a directory in name order; a missing directory has none.
pub(crate) fn yaml_files(dir: &Path) -> Result<Vec<PathBuf>, StateError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(StateError::Io {
                path: dir.to_path_buf(),
                source,
            });
        }
    };
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| StateError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let path = entry.path();
        let is_yaml = matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("yaml") | Some("yml")
        );
        if is_yaml && path.is_file() {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, rel: &str, text: &str) {
        let path = dir.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    #[test]
    fn loads_cluster_and_endpoints() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "cluster.yaml",
            "name: lab\npodCIDRs: [10.200.0.0/16]\nnodes:\n  - name: n1\n    ips: [10.200.0.1]\n",
        );
        write(
            dir.path(),
            "endpoints/default_frontend-0.yaml",
            "name: frontend-0\nnode: n1\nlabels: {app: frontend}\nips: [10.200.1.11]\ninterface: lxc1\n",
        );
        let state = ClusterState::load_dir(dir.path()).unwrap();
        assert_eq!(state.cluster.name, "lab");
        let ep = state.endpoint("default", "frontend-0").unwrap();
        assert_eq!(ep.labels["app"], "frontend");
        assert_eq!(
            state
                .endpoint_by_ip("10.200.1.11".parse().unwrap())
                .unwrap()
                .name,
            "frontend-0"
        );
    }

    #[test]
    fn from_sources_reads_what_load_dir_reads() {
        let dir = tempfile::tempdir().unwrap();
        let cluster = "name: lab\nnodes:\n  - name: n1\n";
        let ep = "name: a\nnode: n1\nips: [10.0.0.1]\ninterface: lxc1\n";
        write(dir.path(), "cluster.yaml", cluster);
        write(dir.path(), "endpoints/a.yaml", ep);
        let loaded = ClusterState::load_dir(dir.path()).unwrap();
        let given = ClusterState::from_sources(
            Some(("s/cluster.yaml", cluster)),
            [("s/endpoints/a.yaml", ep)],
        )
        .unwrap();
        assert_eq!(given, loaded);
        assert_eq!(
            ClusterState::from_sources(None::<(&str, &str)>, []).unwrap(),
            ClusterState::default()
        );
        let err = ClusterState::from_sources(
            Some(("s/cluster.yaml", cluster)),
            [(
                "s/endpoints/b.yaml",
                "name: b\nnode: n2\nips: [10.0.0.2]\ninterface: lxc2\n",
            )],
        )
        .unwrap_err()
        .to_string();
        assert_eq!(
            err,
            "s/endpoints/b.yaml: endpoint default/b is on node `n2`, which cluster.yaml does not list"
        );
    }

    #[test]
    fn duplicate_address_names_both_files() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "endpoints/a.yaml",
            "name: a\nnode: n1\nips: [10.0.0.1]\ninterface: lxc1\n",
        );
        write(
            dir.path(),
            "endpoints/b.yaml",
            "name: b\nnode: n1\nips: [10.0.0.1]\ninterface: lxc2\n",
        );
        let err = ClusterState::load_dir(dir.path()).unwrap_err().to_string();
        assert!(err.contains("b.yaml"), "{err}");
        assert!(
            err.contains("address 10.0.0.1 of endpoint default/b is also used in"),
            "{err}"
        );
        assert!(err.contains("a.yaml"), "{err}");
    }

    #[test]
    fn unknown_field_is_an_error_with_position() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "endpoints/a.yaml",
            "name: a\nnode: n1\nips: [10.0.0.1]\ninterface: lxc1\nlabel: {}\n",
        );
        let err = ClusterState::load_dir(dir.path()).unwrap_err().to_string();
        assert!(err.contains("unknown field `label`"), "{err}");
        assert!(err.contains("line 5"), "{err}");
    }
}
