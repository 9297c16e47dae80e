//! The agent's standalone state directory for a lab: `cluster.yaml` and one file per endpoint
//! (`weir_policy::cluster`).

use std::collections::BTreeMap;
use std::path::Path;

use weir_policy::cluster::{ClusterSpec, EndpointSpec, NamedPort, NamespaceSpec, NodeSpec};

use crate::error::LabError;
use crate::plan::{Plan, pod_cidrs};

/// `cluster.yaml` of a lab.
pub(crate) fn cluster_spec(plan: &Plan) -> ClusterSpec {
    ClusterSpec {
        name: plan.cluster_name.clone(),
        pod_cidrs: pod_cidrs().to_vec(),
        nodes: plan
            .nodes
            .iter()
            .map(|node| NodeSpec {
                name: node.name.clone(),
                ips: node.ips(),
                labels: node.labels.clone(),
            })
            .collect(),
        namespaces: plan
            .namespaces()
            .into_iter()
            .map(|(name, labels)| NamespaceSpec { name, labels })
            .collect(),
    }
}

/// `endpoints/<namespace>_<name>.yaml` of every endpoint: (file name, spec).
pub(crate) fn endpoint_specs(plan: &Plan) -> Vec<(String, EndpointSpec)> {
    plan.endpoints
        .iter()
        .map(|ep| {
            let named_ports: BTreeMap<String, NamedPort> = ep
                .servers
                .iter()
                .map(|server| {
                    let port = NamedPort {
                        port: server.port,
                        protocol: server.protocol().as_str().to_string(),
                    };
                    (server.name.clone(), port)
                })
                .collect();
            let spec = EndpointSpec {
                name: ep.name.clone(),
                namespace: ep.namespace.clone(),
                node: ep.node.clone(),
                labels: ep.labels.clone(),
                service_account: ep.service_account.clone(),
                ips: vec![ep.ipv4.into(), ep.ipv6.into()],
                interface: ep.interface.clone(),
                netns: Some(ep.netns.clone()),
                named_ports,
                workload: ep.workload.clone(),
            };
            (ep.state_file_name(), spec)
        })
        .collect()
}

/// Writes `<dir>/cluster.yaml` and `<dir>/endpoints/*.yaml`.
pub(crate) fn write_state_dir(plan: &Plan, dir: &Path) -> Result<(), LabError> {
    let endpoints_dir = dir.join("endpoints");
    std::fs::create_dir_all(&endpoints_dir)
        .map_err(|e| LabError::io("create", &endpoints_dir, e))?;
    write_yaml(&dir.join("cluster.yaml"), &cluster_spec(plan))?;
    for (file, spec) in endpoint_specs(plan) {
        write_yaml(&endpoints_dir.join(file), &spec)?;
    }
    Ok(())
}

fn write_yaml<T: serde::Serialize>(path: &Path, value: &T) -> Result<(), LabError> {
    let text = serde_yaml::to_string(value).map_err(|e| LabError::Record {
        path: path.to_path_buf(),
        message: format!("cannot serialize: {e}"),
    })?;
    let header = "# Written by weir-lab; removed with the lab.\n";
    std::fs::write(path, format!("{header}{text}")).map_err(|e| LabError::io("write", path, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::LabConfig;
    use weir_policy::cluster::ClusterState;

    #[test]
    fn state_dir_loads_back_with_the_policy_crate() {
        let plan = Plan::new(&LabConfig::with_prefix("wt")).unwrap();
        let dir = tempfile::tempdir().unwrap();
        write_state_dir(&plan, dir.path()).unwrap();
        let state = ClusterState::load_dir(dir.path()).unwrap();

        assert_eq!(state.cluster.name, "default");
        assert_eq!(
            state
                .cluster
                .pod_cidrs
                .iter()
                .map(|c| c.to_string())
                .collect::<Vec<_>>(),
            ["10.200.0.0/16", "fd00:200::/32"]
        );
        let node = state.node("wt-node1").unwrap();
        assert_eq!(
            node.ips.iter().map(|ip| ip.to_string()).collect::<Vec<_>>(),
            [
                "10.200.0.1",
                "fd00:200::1",
                "198.51.100.1",
                "2001:db8:100::1"
            ]
        );
        assert_eq!(
            state.namespace_labels("kube-system")["kubernetes.io/metadata.name"],
            "kube-system"
        );
        assert_eq!(state.endpoints.len(), 10);

        let users = state.endpoint("default", "users-0").unwrap();
        assert_eq!(users.node, "wt-node1");
        assert_eq!(users.interface, "lxc02");
        assert_eq!(users.netns.as_deref(), Some("wt-default-users-0"));
        assert_eq!(users.labels["app"], "users");
        assert_eq!(users.named_ports["http"].port, 80);
        assert_eq!(users.named_ports["http"].protocol, "TCP");
        assert_eq!(users.service_account.as_deref(), Some("default"));
        assert_eq!(users.workload.as_ref().unwrap().name, "users");
        assert_eq!(
            state
                .endpoint_by_ip("fd00:200:1::12".parse().unwrap())
                .unwrap()
                .name,
            "users-0"
        );
        // The catalog's second server is its second named port.
        let catalog = state.endpoint("default", "catalog-0").unwrap();
        let ports: Vec<(&str, u16, &str)> = catalog
            .named_ports
            .iter()
            .map(|(name, p)| (name.as_str(), p.port, p.protocol.as_str()))
            .collect();
        assert_eq!(ports, [("grpc", 50051, "TCP"), ("http", 80, "TCP")]);
        let dns = state.endpoint("kube-system", "coredns-0").unwrap();
        assert_eq!(dns.labels["k8s-app"], "kube-dns");
        assert_eq!(dns.service_account.as_deref(), Some("coredns"));
        assert!(
            dir.path()
                .join("endpoints/production_api-server-0.yaml")
                .is_file()
        );
    }
}
