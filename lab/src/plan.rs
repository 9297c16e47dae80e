//! The address plan and the names: everything a lab creates, derived from its [`LabConfig`]
//! without touching the system (so it is unit-tested, and persisted as `lab.json`).
//!
//! | what | value |
//! |---|---|
//! | cluster pod CIDRs | `10.200.0.0/16`, `fd00:200::/32` |
//! | node N (on `cluster0`) | `10.200.0.N`, `fd00:200::N` |
//! | node N's pods | `10.200.N.0/24`, `fd00:200:N::/64` |
//! | i-th endpoint of node N (i from 1) | `10.200.N.(10+i)/32`, `fd00:200:N::(10+i)/128`, host side `lxc<ii>` |
//! | world link | node `ext0` `198.51.100.1/24` `2001:db8:100::1/64` ↔ world `eth0` `198.51.100.10/24` `2001:db8:100::10/64` |
//!
//! The IPv6 plan mirrors the IPv4 one group for octet: `10.200` ↔ `fd00:200` (/16 ↔ /32), the
//! node in the third octet ↔ the third group, and groups are written with the same digits as the
//! octet they mirror (`10.200.1.11` ↔ `fd00:200:1::11`). The IPv6 cluster range is a /32, not a
//! /48: `fd00:200::/48` would not contain the pods of node 1 and up (`fd00:200:1::/64`).

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use serde::{Deserialize, Serialize};
use weir_policy::cluster::Workload;

use crate::config::{LabConfig, ServerDef};
use crate::error::LabError;

/// Static IPv4 gateway of every endpoint (a permanent neighbour entry, never on the wire).
pub const GATEWAY_V4: Ipv4Addr = Ipv4Addr::new(169, 254, 1, 1);
/// IPv6 gateway of every endpoint, assigned to every host-side `lxc` interface.
pub const GATEWAY_V6: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1);
/// The world's address on the node–world link.
pub const WORLD_V4: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 10);
pub const WORLD_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x100, 0, 0, 0, 0, 0x10);
/// The first node's address on the node–world link (`ext0`).
pub const WORLD_GATEWAY_V4: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 1);
pub const WORLD_GATEWAY_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x100, 0, 0, 0, 0, 1);
/// Prefix length of the node–world link.
pub const WORLD_PREFIX_V4: u8 = 24;
pub const WORLD_PREFIX_V6: u8 = 64;

/// The cluster's pod CIDRs (`cluster.yaml`'s `podCIDRs`).
pub fn pod_cidrs() -> [IpNet; 2] {
    [
        IpNet::V4(Ipv4Net::new(Ipv4Addr::new(10, 200, 0, 0), 16).expect("valid prefix")),
        IpNet::V6(
            Ipv6Net::new(Ipv6Addr::new(0xfd00, 0x200, 0, 0, 0, 0, 0, 0), 32).expect("valid prefix"),
        ),
    ]
}

/// The IPv6 group written with the same digits as `n` (`11` → `0x11`).
pub(crate) fn mirror(n: u16) -> u16 {
    u16::from_str_radix(&n.to_string(), 16)
        .expect("a decimal number below 1000 is a valid hex group")
}

pub(crate) fn node_ipv4(node: u8) -> Ipv4Addr {
    Ipv4Addr::new(10, 200, 0, node)
}

pub(crate) fn node_ipv6(node: u8) -> Ipv6Addr {
    Ipv6Addr::new(0xfd00, 0x200, 0, 0, 0, 0, 0, mirror(node.into()))
}

pub(crate) fn pod_cidr_v4(node: u8) -> Ipv4Net {
    Ipv4Net::new(Ipv4Addr::new(10, 200, node, 0), 24).expect("valid prefix")
}

pub(crate) fn pod_cidr_v6(node: u8) -> Ipv6Net {
    Ipv6Net::new(
        Ipv6Addr::new(0xfd00, 0x200, mirror(node.into()), 0, 0, 0, 0, 0),
        64,
    )
    .expect("valid prefix")
}

/// Address of the `index`-th endpoint (from 1) of a node.
pub(crate) fn pod_ipv4(node: u8, index: u16) -> Ipv4Addr {
    let host = u8::try_from(10 + index).expect("at most 244 endpoints per node");
    Ipv4Addr::new(10, 200, node, host)
}

pub(crate) fn pod_ipv6(node: u8, index: u16) -> Ipv6Addr {
    Ipv6Addr::new(
        0xfd00,
        0x200,
        mirror(node.into()),
        0,
        0,
        0,
        0,
        mirror(10 + index),
    )
}

/// Node-side interface of an endpoint: `lxc01`, `lxc02`, … (`lxc100` and up past 99).
pub(crate) fn lxc_name(index: u16) -> String {
    format!("lxc{index:02}")
}

/// Node N's interface towards node M.
pub(crate) fn node_link_name(peer: u8) -> String {
    format!("node{peer}")
}

/// Node N's link-local address on its links to other nodes: `fe80::N`.
pub(crate) fn node_link_local(node: u8) -> Ipv6Addr {
    Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, mirror(node.into()))
}

/// A locally administered unicast MAC: `<first>:00:` followed by the four bytes of `ip`.
pub(crate) fn mac_for(first: u8, ip: Ipv4Addr) -> String {
    let [a, b, c, d] = ip.octets();
    format!("{first:02x}:00:{a:02x}:{b:02x}:{c:02x}:{d:02x}")
}

/// MAC of node `from`'s interface towards node `to`.
pub(crate) fn node_link_mac(from: u8, to: u8) -> String {
    format!("0e:00:0a:c8:{from:02x}:{to:02x}")
}

/// A node of a built lab.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Node {
    pub index: u8,
    /// Short name, `node<index>`: the node's directory in the run directory.
    pub id: String,
    /// `<prefix>-node<index>`: the node name given to the agent and written to `cluster.yaml`.
    pub name: String,
    /// Network namespace, the same as `name`.
    pub netns: String,
    /// On `cluster0`.
    pub ipv4: Ipv4Addr,
    pub ipv6: Ipv6Addr,
    pub pod_cidr_v4: Ipv4Net,
    pub pod_cidr_v6: Ipv6Net,
    pub labels: BTreeMap<String, String>,
    /// MAC of `cluster0`.
    pub mac: String,
    /// The node linked to the world (the first one): it holds `ext0` and routes for the others.
    pub world_gateway: bool,
}

impl Node {
    /// Every address of the node: `cluster0`'s, and `ext0`'s on the world gateway.
    pub fn ips(&self) -> Vec<std::net::IpAddr> {
        let mut ips = vec![self.ipv4.into(), self.ipv6.into()];
        if self.world_gateway {
            ips.push(WORLD_GATEWAY_V4.into());
            ips.push(WORLD_GATEWAY_V6.into());
        }
        ips
    }
}

/// An endpoint of a built lab.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Endpoint {
    pub namespace: String,
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub service_account: Option<String>,
    pub workload: Option<Workload>,
    /// Name of the node (`<prefix>-node1`).
    pub node: String,
    pub node_index: u8,
    /// Position among the node's endpoints, from 1.
    pub index: u16,
    /// `<prefix>-<namespace>-<name>`.
    pub netns: String,
    /// Host side of the veth, in the node's namespace (`lxc01`); the endpoint side is `eth0`.
    pub interface: String,
    /// MAC of the host side (the endpoint's IPv4 gateway resolves to it).
    pub host_mac: String,
    /// MAC of `eth0`.
    pub mac: String,
    pub ipv4: Ipv4Addr,
    pub ipv6: Ipv6Addr,
    pub servers: Vec<ServerDef>,
}

impl Endpoint {
    /// `namespace/name`.
    pub fn id(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    /// File name of its state file, `<namespace>_<name>.yaml`.
    pub fn state_file_name(&self) -> String {
        format!("{}_{}.yaml", self.namespace, self.name)
    }

    /// `ipv4:port`.
    pub fn v4(&self, port: u16) -> std::net::SocketAddr {
        (self.ipv4, port).into()
    }

    /// `[ipv6]:port`.
    pub fn v6(&self, port: u16) -> std::net::SocketAddr {
        (self.ipv6, port).into()
    }
}

/// The outside world: one namespace behind the first node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct World {
    /// `<prefix>-world`.
    pub netns: String,
    /// Name of the node it is linked to.
    pub node: String,
    /// On the world's `eth0`.
    pub ipv4: Ipv4Addr,
    pub ipv6: Ipv6Addr,
    pub mac: String,
    /// The node's side of the link, `ext0`.
    pub node_interface: String,
    pub node_ipv4: Ipv4Addr,
    pub node_ipv6: Ipv6Addr,
    pub node_mac: String,
    pub servers: Vec<ServerDef>,
}

impl World {
    pub fn v4(&self, port: u16) -> std::net::SocketAddr {
        (self.ipv4, port).into()
    }

    pub fn v6(&self, port: u16) -> std::net::SocketAddr {
        (self.ipv6, port).into()
    }
}

/// A lab's complete plan; persisted as `lab.json` so another process can find and remove it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Plan {
    pub prefix: String,
    pub run_dir: PathBuf,
    pub bpffs_root: PathBuf,
    pub cluster_name: String,
    pub nodes: Vec<Node>,
    pub world: World,
    pub endpoints: Vec<Endpoint>,
    pub namespace_labels: BTreeMap<String, BTreeMap<String, String>>,
}

impl Plan {
    pub fn new(config: &LabConfig) -> Result<Plan, LabError> {
        config.validate()?;
        let prefix = &config.prefix;
        let nodes: Vec<Node> = config
            .nodes
            .iter()
            .enumerate()
            .map(|(position, def)| {
                let name = format!("{prefix}-node{}", def.index);
                let mut labels = BTreeMap::from([
                    ("kubernetes.io/hostname".to_string(), name.clone()),
                    ("kubernetes.io/os".to_string(), "linux".to_string()),
                ]);
                labels.extend(def.labels.clone());
                Node {
                    index: def.index,
                    id: format!("node{}", def.index),
                    netns: name.clone(),
                    name,
                    ipv4: node_ipv4(def.index),
                    ipv6: node_ipv6(def.index),
                    pod_cidr_v4: pod_cidr_v4(def.index),
                    pod_cidr_v6: pod_cidr_v6(def.index),
                    labels,
                    mac: mac_for(0x02, node_ipv4(def.index)),
                    world_gateway: position == 0,
                }
            })
            .collect();
        let mut counters: BTreeMap<u8, u16> = BTreeMap::new();
        let endpoints = config
            .endpoints
            .iter()
            .map(|def| {
                let index = counters.entry(def.node).or_default();
                *index += 1;
                let index = *index;
                let node = nodes
                    .iter()
                    .find(|n| n.index == def.node)
                    .expect("validated: the endpoint's node exists");
                let ipv4 = pod_ipv4(def.node, index);
                Endpoint {
                    namespace: def.namespace.clone(),
                    name: def.name.clone(),
                    labels: def.labels.clone(),
                    service_account: def.service_account.clone(),
                    workload: def.workload.clone(),
                    node: node.name.clone(),
                    node_index: def.node,
                    index,
                    netns: format!("{prefix}-{}-{}", def.namespace, def.name),
                    interface: lxc_name(index),
                    host_mac: mac_for(0x06, ipv4),
                    mac: mac_for(0x02, ipv4),
                    ipv4,
                    ipv6: pod_ipv6(def.node, index),
                    servers: def.servers.clone(),
                }
            })
            .collect();
        let world = World {
            netns: format!("{prefix}-world"),
            node: nodes[0].name.clone(),
            ipv4: WORLD_V4,
            ipv6: WORLD_V6,
            mac: mac_for(0x02, WORLD_V4),
            node_interface: "ext0".to_string(),
            node_ipv4: WORLD_GATEWAY_V4,
            node_ipv6: WORLD_GATEWAY_V6,
            node_mac: mac_for(0x02, WORLD_GATEWAY_V4),
            servers: config.world_servers.clone(),
        };
        Ok(Plan {
            prefix: prefix.clone(),
            run_dir: config.run_dir(),
            bpffs_root: config.bpffs_root.clone(),
            cluster_name: config.cluster_name.clone(),
            nodes,
            world,
            endpoints,
            namespace_labels: config.namespace_labels.clone(),
        })
    }

    /// Every network namespace of the lab, in creation order.
    pub fn netns_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.nodes.iter().map(|n| n.netns.clone()).collect();
        names.push(self.world.netns.clone());
        names.extend(self.endpoints.iter().map(|e| e.netns.clone()));
        names
    }

    /// Node-to-node links (every pair, `a < b` by position in `nodes`).
    pub fn node_links(&self) -> Vec<(&Node, &Node)> {
        let mut links = Vec::new();
        for (i, a) in self.nodes.iter().enumerate() {
            for b in &self.nodes[i + 1..] {
                links.push((a, b));
            }
        }
        links
    }

    /// A node's own devices, as its agent's `--devices`: `ext0` on the world gateway, then its
    /// link to every other node.
    pub fn node_devices(&self, node: &Node) -> Vec<String> {
        let mut out = Vec::new();
        if node.world_gateway {
            out.push(self.world.node_interface.clone());
        }
        out.extend(
            self.nodes
                .iter()
                .filter(|n| n.index != node.index)
                .map(|n| node_link_name(n.index)),
        );
        out
    }

    pub fn node_by_name(&self, name: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.name == name)
    }

    /// Pin directory of a node's agent, `<bpffs_root>/<node-name>`.
    pub fn bpffs_dir(&self, node: &Node) -> PathBuf {
        self.bpffs_root.join(&node.name)
    }

    /// Kubernetes namespaces of the endpoints (and `default`), with their labels.
    pub fn namespaces(&self) -> BTreeMap<String, BTreeMap<String, String>> {
        let mut namespaces: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
        let names =
            std::iter::once("default").chain(self.endpoints.iter().map(|e| e.namespace.as_str()));
        for name in names {
            let labels = namespaces.entry(name.to_string()).or_default();
            labels.insert("kubernetes.io/metadata.name".to_string(), name.to_string());
            if let Some(extra) = self.namespace_labels.get(name) {
                labels.extend(extra.clone());
            }
        }
        namespaces
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{EndpointDef, NodeDef};

    fn ep<'a>(plan: &'a Plan, name: &str) -> &'a Endpoint {
        plan.endpoints.iter().find(|e| e.name == name).unwrap()
    }

    #[test]
    fn default_plan_addresses_and_names() {
        let plan = Plan::new(&LabConfig::with_prefix("wt")).unwrap();
        assert_eq!(plan.run_dir, PathBuf::from("/run/weir-lab/wt"));
        let node = &plan.nodes[0];
        assert_eq!(node.name, "wt-node1");
        assert_eq!(node.netns, "wt-node1");
        assert_eq!(node.id, "node1");
        assert_eq!(node.ipv4.to_string(), "10.200.0.1");
        assert_eq!(node.ipv6.to_string(), "fd00:200::1");
        assert_eq!(node.pod_cidr_v4.to_string(), "10.200.1.0/24");
        assert_eq!(node.pod_cidr_v6.to_string(), "fd00:200:1::/64");
        assert!(node.world_gateway);
        assert_eq!(node.labels["kubernetes.io/hostname"], "wt-node1");

        let frontend = ep(&plan, "frontend-0");
        assert_eq!(frontend.netns, "wt-default-frontend-0");
        assert_eq!(frontend.interface, "lxc01");
        assert_eq!(frontend.ipv4.to_string(), "10.200.1.11");
        assert_eq!(frontend.ipv6.to_string(), "fd00:200:1::11");
        assert_eq!(frontend.mac, "02:00:0a:c8:01:0b");
        assert_eq!(frontend.host_mac, "06:00:0a:c8:01:0b");
        assert_eq!(frontend.node, "wt-node1");

        let users = ep(&plan, "users-0");
        assert_eq!(users.interface, "lxc02");
        assert_eq!(users.ipv4.to_string(), "10.200.1.12");
        assert_eq!(users.v6(80).to_string(), "[fd00:200:1::12]:80");

        let coredns = ep(&plan, "coredns-0");
        assert_eq!(coredns.netns, "wt-kube-system-coredns-0");
        assert_eq!(coredns.id(), "kube-system/coredns-0");
        assert_eq!(coredns.state_file_name(), "kube-system_coredns-0.yaml");
        assert_eq!(coredns.labels["k8s-app"], "kube-dns");
        let api = ep(&plan, "api-server-0");
        assert_eq!(api.netns, "wt-production-api-server-0");
        assert_eq!(api.servers[0].port, 8080);

        assert_eq!(plan.world.netns, "wt-world");
        assert_eq!(plan.world.v4(80).to_string(), "198.51.100.10:80");
        assert_eq!(plan.world.ipv6.to_string(), "2001:db8:100::10");
        assert_eq!(plan.world.node_ipv6.to_string(), "2001:db8:100::1");
        assert_eq!(plan.world.node_mac, "02:00:c6:33:64:01");
        assert_eq!(plan.world.mac, "02:00:c6:33:64:0a");

        let names = plan.netns_names();
        assert_eq!(names.len(), 2 + 10);
        assert!(names.iter().all(|n| n.starts_with("wt-")), "{names:?}");
        let unique: std::collections::BTreeSet<_> = names.iter().collect();
        assert_eq!(unique.len(), names.len());
        assert_eq!(
            plan.namespaces().keys().collect::<Vec<_>>(),
            ["default", "kube-system", "production"]
        );
        assert_eq!(
            plan.namespaces()["production"]["kubernetes.io/metadata.name"],
            "production"
        );
        assert!(plan.node_links().is_empty());
    }

    #[test]
    fn every_address_and_mac_is_unique() {
        let plan = Plan::new(&LabConfig::default()).unwrap();
        let mut seen = std::collections::BTreeSet::new();
        for e in &plan.endpoints {
            assert!(seen.insert(e.ipv4.to_string()));
            assert!(seen.insert(e.ipv6.to_string()));
            assert!(seen.insert(e.mac.clone()));
            assert!(seen.insert(e.host_mac.clone()));
            assert!(seen.insert(e.interface.clone()));
            assert!(e.interface.len() <= 15);
            assert!(pod_cidrs()[0].contains(&std::net::IpAddr::V4(e.ipv4)));
            assert!(pod_cidrs()[1].contains(&std::net::IpAddr::V6(e.ipv6)));
        }
    }

    #[test]
    fn second_node_gets_its_own_ranges() {
        let mut config = LabConfig::with_prefix("wt");
        config.nodes.push(NodeDef::new(2));
        config.endpoints = vec![
            EndpointDef::new("default", "a"),
            EndpointDef::new("default", "b").on_node(2),
            EndpointDef::new("default", "c"),
        ];
        let plan = Plan::new(&config).unwrap();
        let n2 = plan.node_by_name("wt-node2").unwrap();
        assert_eq!(n2.ipv4.to_string(), "10.200.0.2");
        assert_eq!(n2.ipv6.to_string(), "fd00:200::2");
        assert_eq!(n2.pod_cidr_v4.to_string(), "10.200.2.0/24");
        assert!(!n2.world_gateway);
        assert_eq!(n2.ips().len(), 2);
        assert_eq!(plan.nodes[0].ips().len(), 4);
        let b = ep(&plan, "b");
        assert_eq!(
            (b.interface.as_str(), b.ipv4.to_string()),
            ("lxc01", "10.200.2.11".to_string())
        );
        assert_eq!(b.ipv6.to_string(), "fd00:200:2::11");
        let c = ep(&plan, "c");
        assert_eq!(
            (c.interface.as_str(), c.ipv4.to_string()),
            ("lxc02", "10.200.1.12".to_string())
        );
        let links = plan.node_links();
        assert_eq!(links.len(), 1);
        assert_eq!((links[0].0.index, links[0].1.index), (1, 2));
        assert_eq!(node_link_mac(1, 2), "0e:00:0a:c8:01:02");
        assert_eq!(node_link_local(2).to_string(), "fe80::2");
    }

    #[test]
    fn mirrored_ipv6_groups() {
        assert_eq!(mirror(11), 0x11);
        assert_eq!(mirror(254), 0x254);
        assert_eq!(pod_ipv6(12, 244).to_string(), "fd00:200:12::254");
        assert_eq!(pod_ipv4(12, 244).to_string(), "10.200.12.254");
        assert_eq!(lxc_name(7), "lxc07");
        assert_eq!(lxc_name(244), "lxc244");
    }

    #[test]
    fn plan_round_trips_through_json() {
        let plan = Plan::new(&LabConfig::default()).unwrap();
        let text = serde_json::to_string_pretty(&plan).unwrap();
        let back: Plan = serde_json::from_str(&text).unwrap();
        assert_eq!(back, plan);
    }
}
