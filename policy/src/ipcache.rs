//! The ipcache: which identity an address has, seen from one node (longest prefix wins).
//!
//! Endpoint addresses → the endpoint's identity; node addresses → `host` on that node and
//! `remote-node` elsewhere; pod CIDRs → `unmanaged`; prefixes named by policies → their CIDR
//! identity; `0.0.0.0/0` and `::/0` → `world` (unless a policy names them). For the same prefix
//! the first of that list wins, and policy prefixes inside a pod CIDR or equal to an endpoint
//! or node address are not added: CIDR rules only select addresses outside the cluster.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use ipnet::IpNet;

use crate::cluster::ClusterState;
use crate::compiled::{Identity, IpcacheEntry, reserved};
use crate::identity::{IdentityTable, cidr_labels};
use crate::labels::endpoint_labels;
use crate::model::{Entity, Peer, Peers};
use crate::set::PolicySet;

/// The prefixes policies name, split into those the ipcache gets and those it does not.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PolicyPrefixes {
    pub effective: BTreeSet<IpNet>,
    /// Prefixes left out, with the reason.
    pub skipped: BTreeMap<IpNet, String>,
}

/// Every `cidr` and `except` prefix of the policies (plus `0.0.0.0/0` / `::/0` for the
/// `world-ipv4` / `world-ipv6` entities).
pub fn policy_prefixes(state: &ClusterState, set: &PolicySet) -> PolicyPrefixes {
    let mut named = BTreeSet::new();
    for p in set.policies() {
        for spec in &p.specs {
            for rule in spec.ingress.rules.iter().chain(&spec.egress.rules) {
                let Peers::List(peers) = &rule.peers else {
                    continue;
                };
                for peer in peers {
                    match peer {
                        Peer::Cidr { cidr, except } => {
                            named.insert(*cidr);
                            named.extend(except.iter().copied());
                        }
                        Peer::Entity(Entity::WorldIpv4) => {
                            named.insert("0.0.0.0/0".parse().expect("valid prefix"));
                        }
                        Peer::Entity(Entity::WorldIpv6) => {
                            named.insert("::/0".parse().expect("valid prefix"));
                        }
                        _ => {}
                    }
                }
            }
        }
    }
    let hosts: BTreeSet<IpNet> = state
        .endpoints
        .iter()
        .flat_map(|e| e.ips.iter())
        .chain(state.cluster.nodes.iter().flat_map(|n| n.ips.iter()))
        .map(|ip| IpNet::from(*ip))
        .collect();
    let mut out = PolicyPrefixes::default();
    for prefix in named {
        if let Some(pod) = state.cluster.pod_cidrs.iter().find(|c| c.contains(&prefix)) {
            out.skipped.insert(
                prefix,
                format!("it lies inside the pod CIDR {pod}, whose addresses keep the identity `unmanaged`"),
            );
        } else if hosts.contains(&prefix) {
            out.skipped.insert(
                prefix,
                "it is the address of an endpoint or node, which keeps its own identity"
                    .to_string(),
            );
        } else {
            out.effective.insert(prefix);
        }
    }
    out
}

/// Address → identity, as seen from one node.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IpCache {
    entries: Vec<IpcacheEntry>,
}

impl IpCache {
    /// The ipcache seen from node `vantage` (`None`: every node address is `remote-node`).
    /// `table` must hold the identities of the endpoints and of `prefixes`.
    pub fn build(
        state: &ClusterState,
        table: &IdentityTable,
        vantage: Option<&str>,
        prefixes: &BTreeSet<IpNet>,
    ) -> Self {
        // prefix → (rank, identity); a lower rank wins for the same prefix.
        let mut map: BTreeMap<IpNet, (u8, Identity)> = BTreeMap::new();
        let mut put = |prefix: IpNet, rank: u8, id: Identity| {
            let e = map.entry(prefix).or_insert((rank, id));
            if rank < e.0 {
                *e = (rank, id);
            }
        };
        for ep in &state.endpoints {
            let id = table
                .get(&endpoint_labels(state, ep))
                .expect("identity table covers every endpoint");
            for ip in &ep.ips {
                put(IpNet::from(*ip), 0, id);
            }
        }
        for node in &state.cluster.nodes {
            let id = if Some(node.name.as_str()) == vantage {
                reserved::HOST
            } else {
                reserved::REMOTE_NODE
            };
            for ip in &node.ips {
                put(IpNet::from(*ip), 1, id);
            }
        }
        for c in &state.cluster.pod_cidrs {
            put(c.trunc(), 2, reserved::UNMANAGED);
        }
        for p in prefixes {
            if let Some(id) = table.get(&cidr_labels(*p)) {
                put(*p, 3, id);
            }
        }
        put("0.0.0.0/0".parse().expect("valid"), 4, reserved::WORLD);
        put("::/0".parse().expect("valid"), 4, reserved::WORLD);
        Self {
            entries: map
                .into_iter()
                .map(|(prefix, (_, identity))| IpcacheEntry { prefix, identity })
                .collect(),
        }
    }

    /// The identity of an address (longest prefix).
    pub fn lookup(&self, ip: IpAddr) -> Identity {
        lookup_entries(&self.entries, ip)
    }

    pub fn entries(&self) -> &[IpcacheEntry] {
        &self.entries
    }

    pub fn into_entries(self) -> Vec<IpcacheEntry> {
        self.entries
    }
}

/// Longest-prefix match over ipcache entries; `world` when nothing matches.
pub fn lookup_entries(entries: &[IpcacheEntry], ip: IpAddr) -> Identity {
    entries
        .iter()
        .filter(|e| e.prefix.contains(&ip))
        .max_by_key(|e| e.prefix.prefix_len())
        .map(|e| e.identity)
        .unwrap_or(reserved::WORLD)
}
