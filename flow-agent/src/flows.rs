//! Flows as the agent stores them: the decoded kernel event plus shared references to what it
//! knows about both ends and the deciding policies. Enrichment is a few hash lookups and
//! reference-count increments per event; the Hubble `flow.Flow` message is only built when a
//! client asks for the flow (`crate::convert`).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::{Arc, RwLock};

use weir_probes::abi::{self, FlowEvent};

use crate::l7::{HttpRecord, HttpSetMeta};

/// What the agent knows about one end of a flow: an endpoint, or just an identity.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PeerMeta {
    /// Local endpoint id (0 for endpoints of other nodes and for bare identities).
    pub ep_id: u32,
    pub identity: u32,
    pub cluster: String,
    pub namespace: String,
    pub pod_name: String,
    /// `source:key=value`, sorted.
    pub labels: Vec<String>,
    /// (name, kind)
    pub workloads: Vec<(String, String)>,
}

/// The node flows are seen on, as they report it (Hubble's `node_name`, `node_labels`): one
/// shared value per flow.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeMeta {
    pub name: String,
    /// `key=value`
    pub labels: Vec<String>,
}

/// A policy as flows report it (Hubble's `flow.Policy`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyMeta {
    pub kind: String,
    pub namespace: String,
    pub name: String,
    pub labels: Vec<String>,
    pub revision: u64,
}

/// The maps of the per-event path: foldhash instead of SipHash (keys are addresses and ids the
/// agent chose or the kernel reported, not attacker-chosen strings; SipHash was a sixth of the
/// monitor's time under HTTP load).
pub type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// Everything enrichment needs, swapped as a whole whenever policy or endpoints change.
#[derive(Debug, Default)]
pub struct Enrichment {
    pub node: Arc<NodeMeta>,
    pub by_ip: FastMap<IpAddr, Arc<PeerMeta>>,
    pub by_identity: FastMap<u32, Arc<PeerMeta>>,
    pub interfaces: FastMap<u32, Arc<str>>,
    pub rule_sets: FastMap<u32, Arc<[PolicyMeta]>>,
    /// HTTP rule sets of the enforced generation, by the id L7 events carry.
    pub http_sets: FastMap<u32, Arc<HttpSetMeta>>,
    /// The request headers whose values HTTP flows carry (lower-case; the datapath reports
    /// them by index in this list).
    pub http_flow_headers: Arc<[String]>,
}

/// The current enrichment, shared by the monitor (reader) and the apply loop (writer).
#[derive(Debug, Default)]
pub struct EnrichmentHandle(RwLock<Arc<Enrichment>>);

impl EnrichmentHandle {
    pub fn new(e: Enrichment) -> Self {
        EnrichmentHandle(RwLock::new(Arc::new(e)))
    }
    pub fn load(&self) -> Arc<Enrichment> {
        self.0.read().expect("enrichment lock poisoned").clone()
    }
    pub fn store(&self, e: Enrichment) {
        let old = std::mem::replace(
            &mut *self.0.write().expect("enrichment lock poisoned"),
            Arc::new(e),
        );
        // Freed after the lock is released: readers (the monitor, the L7 proxy) do not wait.
        drop(old);
    }
}

/// A flow in the agent's memory.
#[derive(Debug, Clone)]
pub struct StoredFlow {
    /// Position in the flow store (monotonic per agent run).
    pub seq: u64,
    /// Wall-clock time, nanoseconds since the Unix epoch.
    pub time_unix_ns: i64,
    pub event: FlowEvent,
    pub src: Option<Arc<PeerMeta>>,
    pub dst: Option<Arc<PeerMeta>>,
    pub interface: Option<Arc<str>>,
    pub policies: Option<Arc<[PolicyMeta]>>,
    pub node: Arc<NodeMeta>,
    /// Set for L7 flows (HTTP requests and responses). Held in place, not behind an `Arc`: an
    /// allocation per record, and freeing it when the store overwrites the flow, cost more
    /// than moving the larger flow (256 bytes instead of 176).
    pub l7: Option<HttpRecord>,
}

impl StoredFlow {
    pub fn source_ip(&self) -> IpAddr {
        event_addr(&self.event, &self.event.saddr)
    }
    pub fn destination_ip(&self) -> IpAddr {
        event_addr(&self.event, &self.event.daddr)
    }
}

pub fn event_addr(ev: &FlowEvent, bytes: &[u8; 16]) -> IpAddr {
    if ev.flags & abi::EVF_IPV6 != 0 {
        IpAddr::V6(Ipv6Addr::from(*bytes))
    } else {
        IpAddr::V4(Ipv4Addr::new(bytes[0], bytes[1], bytes[2], bytes[3]))
    }
}

impl Enrichment {
    fn peer(&self, ip: IpAddr, identity: u32) -> Option<Arc<PeerMeta>> {
        self.by_ip
            .get(&ip)
            .or_else(|| self.by_identity.get(&identity))
            .cloned()
    }

    /// Turns a decoded event into a stored flow (seq is set by the store).
    pub fn enrich(&self, event: FlowEvent, time_unix_ns: i64) -> StoredFlow {
        let src = self.peer(event_addr(&event, &event.saddr), event.src_identity);
        let dst = self.peer(event_addr(&event, &event.daddr), event.dst_identity);
        StoredFlow {
            seq: 0,
            time_unix_ns,
            src,
            dst,
            interface: self.interfaces.get(&event.ifindex).cloned(),
            policies: (event.rule_set != 0)
                .then(|| self.rule_sets.get(&event.rule_set).cloned())
                .flatten(),
            node: self.node.clone(),
            l7: None,
            event,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enrichment_prefers_the_endpoint_of_an_address_then_the_identity() {
        let users = Arc::new(PeerMeta {
            ep_id: 7,
            identity: 4242,
            namespace: "default".into(),
            pod_name: "users-0".into(),
            ..Default::default()
        });
        let world = Arc::new(PeerMeta {
            identity: 2,
            labels: vec!["reserved:world".into()],
            ..Default::default()
        });
        let policy: Arc<[PolicyMeta]> = vec![PolicyMeta {
            kind: "CiliumNetworkPolicy".into(),
            namespace: "default".into(),
            name: "p".into(),
            labels: vec![],
            revision: 3,
        }]
        .into();
        let e = Enrichment {
            node: Arc::new(NodeMeta {
                name: "n1".into(),
                labels: vec![],
            }),
            by_ip: [("10.200.1.11".parse().unwrap(), users.clone())]
                .into_iter()
                .collect(),
            by_identity: [(2, world.clone())].into_iter().collect(),
            interfaces: [(5, Arc::from("lxc01"))].into_iter().collect(),
            rule_sets: [(99, policy.clone())].into_iter().collect(),
            ..Default::default()
        };
        let mut ev = FlowEvent {
            src_identity: 2,
            dst_identity: 4242,
            ifindex: 5,
            rule_set: 99,
            ..Default::default()
        };
        ev.saddr[..4].copy_from_slice(&[198, 51, 100, 10]);
        ev.daddr[..4].copy_from_slice(&[10, 200, 1, 11]);
        let f = e.enrich(ev, 1);
        assert_eq!(f.src.as_deref(), Some(&*world));
        assert_eq!(f.dst.as_deref(), Some(&*users));
        assert_eq!(f.interface.as_deref(), Some("lxc01"));
        assert_eq!(f.policies.as_deref().map(|p| p[0].name.as_str()), Some("p"));
        assert_eq!(f.source_ip().to_string(), "198.51.100.10");
    }
}
