//! weir's internal rule model: CiliumNetworkPolicy, CiliumClusterwideNetworkPolicy and
//! Kubernetes NetworkPolicy all translate into these types; the evaluator and the compiler read
//! only these.

use std::collections::BTreeMap;
use std::fmt;

use ipnet::IpNet;

use crate::compiled::PolicyRef;
use crate::selector::Selector;

/// The three policy kinds weir reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PolicyKind {
    CiliumNetworkPolicy,
    CiliumClusterwideNetworkPolicy,
    NetworkPolicy,
}

impl PolicyKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PolicyKind::CiliumNetworkPolicy => "CiliumNetworkPolicy",
            PolicyKind::CiliumClusterwideNetworkPolicy => "CiliumClusterwideNetworkPolicy",
            PolicyKind::NetworkPolicy => "NetworkPolicy",
        }
    }

    pub fn is_namespaced(self) -> bool {
        self != PolicyKind::CiliumClusterwideNetworkPolicy
    }
}

impl fmt::Display for PolicyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a policy was read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// The file (or the name given to `PolicySet::parse_str`).
    pub file: String,
    /// 1-based number of the YAML document in the file.
    pub document: usize,
}

/// Something a policy asks for that weir parses but does not enforce (yet).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ParseNotice {
    /// Field path, e.g. `spec.ingress[0].toPorts[0].rules.http`.
    pub location: String,
    pub message: String,
}

/// One policy, translated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub kind: PolicyKind,
    /// Empty for cluster-wide policies.
    pub namespace: String,
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub origin: Origin,
    /// One per `spec` / `specs[i]` (a NetworkPolicy has one).
    pub specs: Vec<Spec>,
    pub notices: Vec<ParseNotice>,
}

impl Policy {
    pub fn reference(&self) -> PolicyRef {
        PolicyRef {
            kind: self.kind.as_str().to_string(),
            namespace: self.namespace.clone(),
            name: self.name.clone(),
        }
    }

    /// `Kind namespace/name` (`Kind name` for cluster-wide policies).
    pub fn display_name(&self) -> String {
        display_name(self.kind, &self.namespace, &self.name)
    }
}

pub(crate) fn display_name(kind: PolicyKind, namespace: &str, name: &str) -> String {
    if namespace.is_empty() {
        format!("{kind} {name}")
    } else {
        format!("{kind} {namespace}/{name}")
    }
}

/// One rule block: a subject selector and its ingress and egress sections.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spec {
    /// `spec` or `specs[i]`.
    pub path: String,
    pub description: Option<String>,
    /// The endpoints the rules apply to; `None` selects no endpoint (e.g. host policies).
    pub subject: Option<Selector>,
    pub ingress: Section,
    pub egress: Section,
}

impl Spec {
    pub fn section(&self, direction: crate::compiled::Direction) -> &Section {
        match direction {
            crate::compiled::Direction::Ingress => &self.ingress,
            crate::compiled::Direction::Egress => &self.egress,
        }
    }
}

/// The rules of one direction.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Section {
    /// The spec has rules in this direction (allow or deny, even empty ones): it selects its
    /// endpoints in this direction.
    pub present: bool,
    /// Selecting an endpoint puts it into default deny in this direction
    /// (`enableDefaultDeny`, true unless disabled).
    pub default_deny: bool,
    pub rules: Vec<Rule>,
}

impl Section {
    /// Whether this section makes its endpoints default-deny.
    pub fn enforces(&self) -> bool {
        self.present && self.default_deny
    }
}

/// One allow or deny rule: remote peers × ports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// e.g. `spec.ingress[0]`.
    pub path: String,
    pub deny: bool,
    pub peers: Peers,
    /// Every port the rule names (all its `toPorts` entries and `icmps`).
    pub ports: Ports,
    /// The rule's `toPorts` entries with their HTTP rules. At a port, an allow rule restricts
    /// requests only when every entry naming that port has HTTP rules (their union applies);
    /// a port named by an entry without HTTP rules, or by none (`icmps`, no `toPorts`), is
    /// allowed at L4.
    pub port_rules: Vec<PortRule>,
}

/// One `toPorts` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortRule {
    pub ports: Vec<PortSpec>,
    /// `rules.http` (non-empty); `None`: no HTTP rules (L4 only, or rules weir does not
    /// enforce yet such as Kafka or DNS).
    pub http: Option<Vec<HttpRule>>,
}

/// One entry of `rules.http`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpRule {
    /// e.g. `spec.ingress[0].toPorts[0].rules.http[1]`.
    pub location: String,
    pub rule: crate::http::HttpMatch,
}

/// The remote side of a rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Peers {
    /// Every identity (no L3 restriction).
    All,
    /// Any of these; an empty list selects nothing.
    List(Vec<Peer>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Peer {
    /// Identities whose labels match (after namespace scoping).
    Selector(Selector),
    Entity(Entity),
    /// Addresses outside the cluster in `cidr` but in none of `except`.
    Cidr {
        cidr: IpNet,
        except: Vec<IpNet>,
    },
    /// A peer weir cannot resolve yet (toFQDNs, toServices, toGroups, ...): selects nothing.
    Nothing,
}

/// Cilium's entities.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Entity {
    All,
    World,
    WorldIpv4,
    WorldIpv6,
    Cluster,
    Host,
    RemoteNode,
    KubeApiserver,
    Init,
    Health,
    Unmanaged,
    Ingress,
    None,
}

impl Entity {
    pub const NAMES: [(&'static str, Entity); 13] = [
        ("all", Entity::All),
        ("world", Entity::World),
        ("world-ipv4", Entity::WorldIpv4),
        ("world-ipv6", Entity::WorldIpv6),
        ("cluster", Entity::Cluster),
        ("host", Entity::Host),
        ("remote-node", Entity::RemoteNode),
        ("kube-apiserver", Entity::KubeApiserver),
        ("init", Entity::Init),
        ("health", Entity::Health),
        ("unmanaged", Entity::Unmanaged),
        ("ingress", Entity::Ingress),
        ("none", Entity::None),
    ];

    pub fn parse(name: &str) -> Option<Entity> {
        Self::NAMES
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, e)| *e)
    }

    pub fn name(self) -> &'static str {
        Self::NAMES
            .iter()
            .find(|(_, e)| *e == self)
            .map(|(n, _)| *n)
            .unwrap_or("none")
    }
}

/// The L4 side of a rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ports {
    /// Every protocol and port (an L3-only rule).
    All,
    /// Any of these.
    List(Vec<PortSpec>),
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct PortSpec {
    pub protocol: Protocol,
    pub port: PortMatch,
}

/// A protocol in a port rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Protocol {
    Tcp,
    Udp,
    Sctp,
    /// TCP, UDP and SCTP.
    Any,
    /// ICMP (IPv4); the port is the ICMP type.
    Icmp,
    /// ICMPv6; the port is the ICMP type.
    Icmpv6,
}

pub const IPPROTO_ICMP: u8 = 1;
pub const IPPROTO_TCP: u8 = 6;
pub const IPPROTO_UDP: u8 = 17;
pub const IPPROTO_ICMPV6: u8 = 58;
pub const IPPROTO_SCTP: u8 = 132;

impl Protocol {
    /// The IP protocol numbers this protocol stands for.
    pub fn numbers(self) -> &'static [u8] {
        match self {
            Protocol::Tcp => &[IPPROTO_TCP],
            Protocol::Udp => &[IPPROTO_UDP],
            Protocol::Sctp => &[IPPROTO_SCTP],
            Protocol::Any => &[IPPROTO_TCP, IPPROTO_UDP, IPPROTO_SCTP],
            Protocol::Icmp => &[IPPROTO_ICMP],
            Protocol::Icmpv6 => &[IPPROTO_ICMPV6],
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Protocol::Tcp => "TCP",
            Protocol::Udp => "UDP",
            Protocol::Sctp => "SCTP",
            Protocol::Any => "ANY",
            Protocol::Icmp => "ICMP",
            Protocol::Icmpv6 => "ICMPv6",
        }
    }

    /// `TCP`, `UDP`, `SCTP` or `ANY`, case-insensitively.
    pub fn parse_l4(text: &str) -> Option<Protocol> {
        match text.to_ascii_uppercase().as_str() {
            "TCP" => Some(Protocol::Tcp),
            "UDP" => Some(Protocol::Udp),
            "SCTP" => Some(Protocol::Sctp),
            "ANY" => Some(Protocol::Any),
            _ => None,
        }
    }
}

/// Which ports of a protocol.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum PortMatch {
    All,
    /// `first..=last`.
    Range(u16, u16),
    /// A container port name, resolved against endpoints' `namedPorts`.
    Named(String),
}

impl fmt::Display for PortSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.port {
            PortMatch::All => write!(f, "all/{}", self.protocol.name()),
            PortMatch::Range(a, b) if a == b => write!(f, "{a}/{}", self.protocol.name()),
            PortMatch::Range(a, b) => write!(f, "{a}-{b}/{}", self.protocol.name()),
            PortMatch::Named(n) => write!(f, "{n}/{}", self.protocol.name()),
        }
    }
}
