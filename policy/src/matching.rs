//! What a rule's peers and ports match: shared by the evaluator and the compiler.

use std::collections::{BTreeMap, BTreeSet};

use crate::cluster::NamedPort;
use crate::labels::{LabelSet, POLICY_CLUSTER, source};
use crate::model::{
    Entity, IPPROTO_SCTP, IPPROTO_TCP, IPPROTO_UDP, Peer, Peers, PortMatch, PortSpec, Ports,
    Protocol,
};

/// Resolves a port name for a protocol to (protocol number, port) pairs.
pub(crate) type NamedResolver<'a> = dyn Fn(&str, Protocol) -> BTreeSet<(u8, u16)> + 'a;

fn reserved(labels: &LabelSet, name: &str) -> bool {
    labels.has(source::RESERVED, name)
}

/// Whether an identity with these labels belongs to the entity.
pub(crate) fn entity_matches(entity: Entity, labels: &LabelSet, cluster: &str) -> bool {
    match entity {
        Entity::All => true,
        Entity::None => false,
        Entity::World => reserved(labels, "world"),
        Entity::WorldIpv4 => {
            reserved(labels, "world") && labels.cidr().is_some_and(|c| c.addr().is_ipv4())
        }
        Entity::WorldIpv6 => {
            reserved(labels, "world") && labels.cidr().is_some_and(|c| c.addr().is_ipv6())
        }
        Entity::Host => reserved(labels, "host"),
        Entity::RemoteNode => reserved(labels, "remote-node"),
        Entity::KubeApiserver => reserved(labels, "kube-apiserver"),
        Entity::Init => reserved(labels, "init"),
        Entity::Health => reserved(labels, "health"),
        Entity::Unmanaged => reserved(labels, "unmanaged"),
        Entity::Ingress => reserved(labels, "ingress"),
        Entity::Cluster => {
            [
                "host",
                "remote-node",
                "init",
                "ingress",
                "health",
                "unmanaged",
                "kube-apiserver",
            ]
            .iter()
            .any(|n| reserved(labels, n))
                || labels.get(source::K8S, POLICY_CLUSTER) == Some(cluster)
        }
    }
}

pub(crate) fn peer_matches(peer: &Peer, labels: &LabelSet, cluster: &str) -> bool {
    match peer {
        Peer::Selector(s) => s.matches(labels),
        Peer::Entity(e) => entity_matches(*e, labels, cluster),
        Peer::Cidr { cidr, except } => {
            reserved(labels, "world")
                && labels
                    .cidr()
                    .is_some_and(|p| cidr.contains(&p) && !except.iter().any(|e| e.contains(&p)))
        }
        Peer::Nothing => false,
    }
}

pub(crate) fn peers_match(peers: &Peers, labels: &LabelSet, cluster: &str) -> bool {
    match peers {
        Peers::All => true,
        Peers::List(list) => list.iter().any(|p| peer_matches(p, labels, cluster)),
    }
}

/// Whether a peer list stands for every identity, known or not.
pub(crate) fn is_wildcard(peers: &Peers) -> bool {
    match peers {
        Peers::All => true,
        Peers::List(list) => list.iter().any(|p| matches!(p, Peer::Entity(Entity::All))),
    }
}

fn named_protocol(np: &NamedPort) -> Option<u8> {
    match np.protocol.to_ascii_uppercase().as_str() {
        "TCP" => Some(IPPROTO_TCP),
        "UDP" => Some(IPPROTO_UDP),
        "SCTP" => Some(IPPROTO_SCTP),
        _ => None,
    }
}

/// The (protocol, port) pairs a named port stands for, given the named ports of the
/// destination endpoint(s): the subject's own on ingress, every endpoint's on egress.
pub(crate) fn resolve_named<'a>(
    name: &str,
    protocol: Protocol,
    named_ports: impl IntoIterator<Item = &'a BTreeMap<String, NamedPort>>,
) -> BTreeSet<(u8, u16)> {
    let mut out = BTreeSet::new();
    for ports in named_ports {
        if let Some(np) = ports.get(name)
            && let Some(proto) = named_protocol(np)
            && protocol.numbers().contains(&proto)
        {
            out.insert((proto, np.port));
        }
    }
    out
}

/// Whether a port spec matches a packet; `named` resolves names to (protocol, port) pairs.
pub(crate) fn port_matches(
    spec: &PortSpec,
    proto: u8,
    port: u16,
    named: &NamedResolver<'_>,
) -> bool {
    match &spec.port {
        PortMatch::Named(n) => named(n, spec.protocol).contains(&(proto, port)),
        PortMatch::All => spec.protocol.numbers().contains(&proto),
        PortMatch::Range(a, b) => {
            spec.protocol.numbers().contains(&proto) && (*a..=*b).contains(&port)
        }
    }
}

pub(crate) fn ports_match(ports: &Ports, proto: u8, port: u16, named: &NamedResolver<'_>) -> bool {
    match ports {
        Ports::All => true,
        Ports::List(list) => list.iter().any(|s| port_matches(s, proto, port, named)),
    }
}
