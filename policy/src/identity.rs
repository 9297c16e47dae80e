//! Security identities: reserved ones with Cilium's numbers, one per distinct endpoint label
//! set (derived from a hash of the canonical label text, so every node computes the same
//! numbers), and node-local CIDR identities for the prefixes policies name.

use std::collections::BTreeMap;

use ipnet::IpNet;

use crate::cluster::ClusterState;
use crate::compiled::{Identity, reserved};
use crate::labels::{Label, LabelSet, endpoint_labels, source};

/// Reserved identities and their label (`reserved:<name>`).
pub const RESERVED: [(Identity, &str); 8] = [
    (reserved::HOST, "host"),
    (reserved::WORLD, "world"),
    (reserved::UNMANAGED, "unmanaged"),
    (reserved::HEALTH, "health"),
    (reserved::INIT, "init"),
    (reserved::REMOTE_NODE, "remote-node"),
    (reserved::KUBE_APISERVER, "kube-apiserver"),
    (reserved::INGRESS, "ingress"),
];

/// The labels of a reserved identity.
pub fn reserved_labels(id: Identity) -> Option<LabelSet> {
    RESERVED
        .iter()
        .find(|(i, _)| *i == id)
        .map(|(_, name)| std::iter::once(Label::reserved(name)).collect())
}

/// The labels of a CIDR identity: `cidr:<prefix>` and `reserved:world`.
pub fn cidr_labels(prefix: IpNet) -> LabelSet {
    [
        Label::new(source::CIDR, &prefix.to_string(), ""),
        Label::reserved("world"),
    ]
    .into_iter()
    .collect()
}

/// 64-bit FNV-1a.
pub(crate) fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// Every identity in use and its labels.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IdentityTable {
    labels: BTreeMap<Identity, LabelSet>,
    by_labels: BTreeMap<LabelSet, Identity>,
}

impl IdentityTable {
    /// Reserved identities plus one identity per distinct endpoint label set of the cluster
    /// (all nodes). Label sets are numbered in the order of their canonical text: the first
    /// takes its hash slot, a later one that collides takes the next free number.
    pub fn for_cluster(state: &ClusterState) -> Self {
        let mut table = IdentityTable::default();
        for (id, name) in RESERVED {
            table.insert(id, std::iter::once(Label::reserved(name)).collect());
        }
        let mut sets: Vec<(String, LabelSet)> = state
            .endpoints
            .iter()
            .map(|ep| {
                let l = endpoint_labels(state, ep);
                (l.canonical(), l)
            })
            .collect();
        sets.sort();
        sets.dedup();
        for (_, set) in sets {
            if table.by_labels.contains_key(&set) {
                continue;
            }
            let id = table.free_cluster_identity(&set);
            table.insert(id, set);
        }
        table
    }

    /// Adds a node-local identity (with `LOCAL_SCOPE`) for each prefix.
    pub fn add_cidrs(&mut self, prefixes: impl IntoIterator<Item = IpNet>) {
        let mut list: Vec<IpNet> = prefixes.into_iter().collect();
        list.sort();
        list.dedup();
        for prefix in list {
            let set = cidr_labels(prefix);
            if self.by_labels.contains_key(&set) {
                continue;
            }
            let span = u64::from(reserved::MAX_CLUSTER);
            let mut slot = (fnv1a64(set.canonical().as_bytes()) % span) as Identity + 1;
            while self.labels.contains_key(&(reserved::LOCAL_SCOPE | slot)) {
                slot = slot % reserved::MAX_CLUSTER + 1;
            }
            self.insert(reserved::LOCAL_SCOPE | slot, set);
        }
    }

    /// The identity a label set has or would get (without adding it).
    pub fn identity_for(&self, labels: &LabelSet) -> Identity {
        if let Some(id) = self.by_labels.get(labels) {
            return *id;
        }
        self.free_cluster_identity(labels)
    }

    fn free_cluster_identity(&self, labels: &LabelSet) -> Identity {
        let span = u64::from(reserved::MAX_CLUSTER - reserved::MIN_CLUSTER + 1);
        let offset = (fnv1a64(labels.canonical().as_bytes()) % span) as Identity;
        let mut id = reserved::MIN_CLUSTER + offset;
        while self.labels.contains_key(&id) {
            id = if id == reserved::MAX_CLUSTER {
                reserved::MIN_CLUSTER
            } else {
                id + 1
            };
        }
        id
    }

    fn insert(&mut self, id: Identity, labels: LabelSet) {
        self.by_labels.insert(labels.clone(), id);
        self.labels.insert(id, labels);
    }

    pub fn get(&self, labels: &LabelSet) -> Option<Identity> {
        self.by_labels.get(labels).copied()
    }

    pub fn labels(&self, id: Identity) -> Option<&LabelSet> {
        self.labels.get(&id)
    }

    /// Every identity, ascending.
    pub fn iter(&self) -> impl Iterator<Item = (Identity, &LabelSet)> {
        self.labels.iter().map(|(id, l)| (*id, l))
    }

    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::EndpointSpec;
    use std::collections::BTreeMap;

    fn ep(name: &str, app: &str) -> EndpointSpec {
        EndpointSpec {
            name: name.into(),
            namespace: "default".into(),
            node: "n1".into(),
            labels: BTreeMap::from([("app".to_string(), app.to_string())]),
            service_account: None,
            ips: vec![],
            interface: "lxc".into(),
            netns: None,
            named_ports: BTreeMap::new(),
            workload: None,
        }
    }

    #[test]
    fn deterministic_and_shared_by_equal_label_sets() {
        let state = ClusterState {
            endpoints: vec![ep("a-0", "a"), ep("a-1", "a"), ep("b-0", "b")],
            ..Default::default()
        };
        let t1 = IdentityTable::for_cluster(&state);
        let mut reversed = state.clone();
        reversed.endpoints.reverse();
        let t2 = IdentityTable::for_cluster(&reversed);
        assert_eq!(t1, t2);
        assert_eq!(t1.len(), 8 + 2);
        let a = t1
            .get(&endpoint_labels(&state, &state.endpoints[0]))
            .unwrap();
        assert!((reserved::MIN_CLUSTER..=reserved::MAX_CLUSTER).contains(&a));
        assert_eq!(
            t1.get(&endpoint_labels(&state, &state.endpoints[1])),
            Some(a)
        );
        assert_eq!(
            t1.labels(reserved::HOST).unwrap().canonical(),
            "reserved:host"
        );
    }

    #[test]
    fn cidr_identities_are_local() {
        let mut t = IdentityTable::default();
        let p: IpNet = "10.0.0.0/8".parse().unwrap();
        t.add_cidrs([p]);
        let id = t.get(&cidr_labels(p)).unwrap();
        assert_eq!(id & reserved::LOCAL_SCOPE, reserved::LOCAL_SCOPE);
        assert_eq!(
            t.labels(id).unwrap().canonical(),
            "cidr:10.0.0.0/8;reserved:world"
        );
    }
}
