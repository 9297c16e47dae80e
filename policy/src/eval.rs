//! The reference evaluator: decides a connection directly from the rules, independently of
//! the compiler, with Cilium's semantics:
//!
//! - a direction of an endpoint is *enforced* (default deny) once a policy with default deny
//!   selects the endpoint and has rules in that direction; otherwise everything is allowed
//!   there unless a deny rule matches;
//! - any matching deny rule wins over any allow rule (drop reason POLICY_DENY, 181);
//! - otherwise a matching allow rule allows; with `allow_localhost`, traffic from the `host`
//!   identity to a local endpoint is allowed too;
//! - otherwise an enforced direction drops (POLICY_DENIED, 133) and an unenforced one allows.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::cluster::{ClusterState, EndpointSpec, NamedPort};
use crate::compiled::{Direction, Identity, PolicyRef, reserved};
use crate::http::{HttpRequest, HttpRuleEntry, HttpRuleSet};
use crate::identity::{IdentityTable, cidr_labels};
use crate::ipcache::{IpCache, PolicyPrefixes, policy_prefixes};
use crate::labels::{Label, LabelParseError, LabelSet, endpoint_labels, pod_labels, source};
use crate::matching::{peers_match, port_matches, ports_match, resolve_named};
use crate::model::Protocol;
use crate::set::PolicySet;

/// Evaluation (and compilation) options.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Options {
    /// The node whose endpoints are enforced. Empty: the evaluator enforces every endpoint on
    /// its own node (cluster-wide traces); the compiler needs a node.
    pub local_node: String,
    /// Cilium's `allow-localhost`: traffic from the `host` identity to a local endpoint is
    /// allowed unless a deny rule matches it.
    pub allow_localhost: bool,
    /// Request headers whose values the datapath captures for L7 flows (lower-case names, at
    /// most `http::MAX_FLOW_HEADERS`; the agent's `--http-flow-headers`).
    #[serde(default)]
    pub http_flow_headers: Vec<String>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            local_node: String::new(),
            allow_localhost: true,
            http_flow_headers: Vec::new(),
        }
    }
}

impl Options {
    /// The local node, `None` when empty.
    pub fn local_node(&self) -> Option<&str> {
        Some(self.local_node.as_str()).filter(|n| !n.is_empty())
    }

    pub fn for_node(node: &str) -> Self {
        Self {
            local_node: node.to_string(),
            ..Self::default()
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Verdict {
    Allowed,
    Denied,
}

/// ICMPv6 types that are always allowed: multicast listener discovery (130-132, 143) and
/// neighbour discovery (133-137).
pub fn is_icmpv6_control(icmp_type: u16) -> bool {
    (130..=137).contains(&icmp_type) || icmp_type == 143
}

/// Cilium's drop reasons for policy decisions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[repr(u8)]
pub enum DropReason {
    None = 0,
    /// Default deny: no rule allows the connection (POLICY_DENIED).
    PolicyDenied = 133,
    /// A deny rule matched (POLICY_DENY).
    PolicyDeny = 181,
}

impl DropReason {
    pub fn code(self) -> u8 {
        self as u8
    }
}

/// A packet, as the datapath sees it. For ICMP/ICMPv6, `dst_port` is the ICMP type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Packet {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub protocol: u8,
    pub src_port: u16,
    pub dst_port: u16,
}

/// The decision at one enforcement point.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    /// `namespace/name` of the endpoint enforcing.
    pub endpoint: String,
    pub direction: Direction,
    pub remote_identity: Identity,
    /// The direction is default-deny.
    pub enforced: bool,
    pub verdict: Verdict,
    pub reason: DropReason,
    /// Deny: every policy with a matching deny rule. Allow: every policy with a matching allow
    /// rule (empty when allowed by default or by `allow_localhost`). Default deny: the
    /// policies that put the endpoint into default deny in this direction.
    pub policies: Vec<PolicyRef>,
}

/// The decision for one HTTP request on a connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpDecision {
    /// The request passes (its connection is allowed and, where HTTP rules apply, one matches).
    pub allowed: bool,
    /// The HTTP rule that allowed the request at the deciding enforcement point: its policy
    /// and location (`spec.ingress[0].toPorts[0].rules.http[1]`). `None` when no HTTP rules
    /// apply there or the request is denied.
    pub rule: Option<(PolicyRef, String)>,
    /// The connection's decision at the deciding enforcement point.
    pub l4: Decision,
    /// The HTTP rules the connection is restricted to there (`None`: no L7 restriction).
    pub http_rules: Option<HttpRuleSet>,
}

/// One side of a traced connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Party {
    pub address: Option<IpAddr>,
    /// `namespace/name` when the party is an endpoint.
    pub endpoint: Option<String>,
    pub identity: Identity,
    pub labels: Vec<String>,
}

/// The result of evaluating one connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trace {
    pub src: Party,
    pub dst: Party,
    pub protocol: u8,
    pub dst_port: u16,
    /// At the source, when it is an enforced (local) endpoint.
    pub egress: Option<Decision>,
    /// At the destination, when it is an enforced (local) endpoint.
    pub ingress: Option<Decision>,
}

impl Trace {
    /// Denied when any enforcement point denies.
    pub fn verdict(&self) -> Verdict {
        if self
            .egress
            .iter()
            .chain(&self.ingress)
            .any(|d| d.verdict == Verdict::Denied)
        {
            Verdict::Denied
        } else {
            Verdict::Allowed
        }
    }
}

impl fmt::Display for Trace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let party = |p: &Party| {
            let who = p
                .endpoint
                .clone()
                .or_else(|| p.address.map(|a| a.to_string()))
                .unwrap_or_else(|| "(labels)".into());
            format!("{who} identity {} [{}]", p.identity, p.labels.join(" "))
        };
        writeln!(f, "from: {}", party(&self.src))?;
        writeln!(f, "to:   {}", party(&self.dst))?;
        writeln!(f, "protocol {} port {}", self.protocol, self.dst_port)?;
        for d in self.egress.iter().chain(&self.ingress) {
            let refs: Vec<String> = d
                .policies
                .iter()
                .map(|r| crate::model::display_name(kind_of(&r.kind), &r.namespace, &r.name))
                .collect();
            writeln!(
                f,
                "{} of {}: {:?}{} (enforced: {}) by [{}]",
                d.direction,
                d.endpoint,
                d.verdict,
                if d.reason == DropReason::None {
                    String::new()
                } else {
                    format!(" reason {} {:?}", d.reason.code(), d.reason)
                },
                d.enforced,
                refs.join(", ")
            )?;
        }
        write!(f, "verdict: {:?}", self.verdict())
    }
}

fn kind_of(kind: &str) -> crate::model::PolicyKind {
    use crate::model::PolicyKind;
    match kind {
        "CiliumClusterwideNetworkPolicy" => PolicyKind::CiliumClusterwideNetworkPolicy,
        "NetworkPolicy" => PolicyKind::NetworkPolicy,
        _ => PolicyKind::CiliumNetworkPolicy,
    }
}

/// Who a trace is about (`weir policy trace --src-endpoint/--src-ip/--src-labels`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TraceTarget {
    /// `namespace/name`, or `name` in namespace `default`.
    Endpoint(String),
    Ip(IpAddr),
    /// Labels (`k8s:app=web`, `app=web`, `reserved:host`, `cidr:1.2.3.0/24`). Pod labels get
    /// the namespace (default `default`), cluster and namespace labels an endpoint would have.
    Labels {
        labels: Vec<String>,
        namespace: Option<String>,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    #[error("no endpoint `{0}` in the state directory")]
    UnknownEndpoint(String),
    #[error("endpoint `{0}` has no address of the other side's family")]
    NoAddress(String),
    #[error(transparent)]
    Label(#[from] LabelParseError),
}

/// A policy subject: an endpoint or a label set standing for one.
struct Subject {
    name: String,
    labels: LabelSet,
    named_ports: BTreeMap<String, NamedPort>,
}

/// The evaluator, with identities and ipcaches computed once.
pub struct Evaluator<'a> {
    state: &'a ClusterState,
    set: &'a PolicySet,
    options: Options,
    table: IdentityTable,
    prefixes: PolicyPrefixes,
    ipcaches: BTreeMap<Option<String>, IpCache>,
}

impl<'a> Evaluator<'a> {
    pub fn new(state: &'a ClusterState, set: &'a PolicySet, options: &Options) -> Self {
        let prefixes = policy_prefixes(state, set);
        let mut table = IdentityTable::for_cluster(state);
        table.add_cidrs(prefixes.effective.iter().copied());
        let mut ipcaches = BTreeMap::new();
        let mut vantages: Vec<Option<String>> = vec![None];
        vantages.extend(state.cluster.nodes.iter().map(|n| Some(n.name.clone())));
        vantages.extend(state.endpoints.iter().map(|e| Some(e.node.clone())));
        vantages.push(options.local_node().map(str::to_string));
        for v in vantages {
            if let std::collections::btree_map::Entry::Vacant(slot) = ipcaches.entry(v) {
                let c = IpCache::build(state, &table, slot.key().as_deref(), &prefixes.effective);
                slot.insert(c);
            }
        }
        Self {
            state,
            set,
            options: options.clone(),
            table,
            prefixes,
            ipcaches,
        }
    }

    pub fn identities(&self) -> &IdentityTable {
        &self.table
    }

    pub fn prefixes(&self) -> &PolicyPrefixes {
        &self.prefixes
    }

    /// The identity of an address as seen from a node.
    pub fn identity_of(&self, ip: IpAddr, vantage: Option<&str>) -> Identity {
        let key = vantage.map(str::to_string);
        match self.ipcaches.get(&key) {
            Some(c) => c.lookup(ip),
            None => IpCache::build(self.state, &self.table, vantage, &self.prefixes.effective)
                .lookup(ip),
        }
    }

    fn labels_of(&self, id: Identity) -> LabelSet {
        self.table.labels(id).cloned().unwrap_or_default()
    }

    fn is_local(&self, ep: &EndpointSpec) -> bool {
        self.options.local_node().is_none_or(|n| n == ep.node)
    }

    fn subject(&self, ep: &EndpointSpec) -> Subject {
        Subject {
            name: ep.to_string(),
            labels: endpoint_labels(self.state, ep),
            named_ports: ep.named_ports.clone(),
        }
    }

    /// The decision for a connection at endpoint `ep` in `direction` with a remote identity.
    pub fn decide(
        &self,
        ep: &EndpointSpec,
        direction: Direction,
        remote: Identity,
        protocol: u8,
        port: u16,
    ) -> Decision {
        let remote_labels = self.labels_of(remote);
        self.decide_subject(
            &self.subject(ep),
            direction,
            remote,
            &remote_labels,
            protocol,
            port,
        )
    }

    fn decide_subject(
        &self,
        subject: &Subject,
        direction: Direction,
        remote: Identity,
        remote_labels: &LabelSet,
        protocol: u8,
        port: u16,
    ) -> Decision {
        self.decide_subject_l7(subject, direction, remote, remote_labels, protocol, port)
            .0
    }

    /// The decision and, for an allow restricted to HTTP rules, those rules: allow rules are
    /// unioned, so any matching allow rule without HTTP rules at this port (or
    /// `allow_localhost` for the host) lifts the restriction.
    fn decide_subject_l7(
        &self,
        subject: &Subject,
        direction: Direction,
        remote: Identity,
        remote_labels: &LabelSet,
        protocol: u8,
        port: u16,
    ) -> (Decision, Option<HttpRuleSet>) {
        let cluster = &self.state.cluster.name;
        let named = |name: &str, proto: Protocol| match direction {
            Direction::Ingress => resolve_named(name, proto, [&subject.named_ports]),
            Direction::Egress => resolve_named(
                name,
                proto,
                self.state.endpoints.iter().map(|e| &e.named_ports),
            ),
        };
        let mut deny = BTreeSet::new();
        let mut allow = BTreeSet::new();
        let mut selecting = BTreeSet::new();
        let mut plain = false;
        let mut http: Vec<HttpRuleEntry> = Vec::new();
        for policy in self.set.policies() {
            for spec in &policy.specs {
                let Some(subj) = &spec.subject else { continue };
                if !subj.matches(&subject.labels) {
                    continue;
                }
                let section = spec.section(direction);
                if section.enforces() {
                    selecting.insert(policy.reference());
                }
                for rule in &section.rules {
                    if peers_match(&rule.peers, remote_labels, cluster)
                        && ports_match(&rule.ports, protocol, port, &named)
                    {
                        if rule.deny {
                            deny.insert(policy.reference());
                        } else {
                            allow.insert(policy.reference());
                            let naming: Vec<_> = rule
                                .port_rules
                                .iter()
                                .filter(|pr| {
                                    pr.ports
                                        .iter()
                                        .any(|s| port_matches(s, protocol, port, &named))
                                })
                                .collect();
                            if naming.is_empty() || naming.iter().any(|pr| pr.http.is_none()) {
                                plain = true;
                            } else {
                                for r in naming.iter().flat_map(|pr| pr.http.iter().flatten()) {
                                    http.push(HttpRuleEntry {
                                        policy: policy.reference(),
                                        location: r.location.clone(),
                                        rule: r.rule.clone(),
                                    });
                                }
                            }
                        }
                    }
                }
            }
        }
        let enforced = !selecting.is_empty();
        let (verdict, reason, policies) = if protocol == 58 && is_icmpv6_control(port) {
            // Neighbour and multicast listener discovery: IPv6 cannot work without them; the
            // datapath always lets them through (as Cilium does).
            (Verdict::Allowed, DropReason::None, BTreeSet::new())
        } else if !deny.is_empty() {
            (Verdict::Denied, DropReason::PolicyDeny, deny)
        } else if !allow.is_empty() {
            (Verdict::Allowed, DropReason::None, allow)
        } else if direction == Direction::Ingress
            && remote == reserved::HOST
            && self.options.allow_localhost
        {
            (Verdict::Allowed, DropReason::None, BTreeSet::new())
        } else if enforced {
            (Verdict::Denied, DropReason::PolicyDenied, selecting)
        } else {
            (Verdict::Allowed, DropReason::None, BTreeSet::new())
        };
        let localhost = direction == Direction::Ingress
            && remote == reserved::HOST
            && self.options.allow_localhost;
        let restricted = verdict == Verdict::Allowed
            && reason == DropReason::None
            && !policies.is_empty()
            && !plain
            && !localhost
            && !http.is_empty();
        let decision = Decision {
            endpoint: subject.name.clone(),
            direction,
            remote_identity: remote,
            enforced,
            verdict,
            reason,
            policies: policies.into_iter().collect(),
        };
        (decision, restricted.then(|| HttpRuleSet::merged(http)))
    }

    /// The HTTP rules a connection at endpoint `ep` is restricted to (`None`: denied, or allowed
    /// with no L7 restriction).
    pub fn http_rules(
        &self,
        ep: &EndpointSpec,
        direction: Direction,
        remote: Identity,
        protocol: u8,
        port: u16,
    ) -> Option<HttpRuleSet> {
        let remote_labels = self.labels_of(remote);
        self.decide_subject_l7(
            &self.subject(ep),
            direction,
            remote,
            &remote_labels,
            protocol,
            port,
        )
        .1
    }

    /// The decision for an HTTP request on a connection at endpoint `ep` in `direction`: the
    /// connection's decision first, then the HTTP rules it is restricted to, if any.
    pub fn decide_http_at(
        &self,
        ep: &EndpointSpec,
        direction: Direction,
        remote: Identity,
        protocol: u8,
        port: u16,
        request: &HttpRequest,
    ) -> HttpDecision {
        let remote_labels = self.labels_of(remote);
        let (l4, rules) = self.decide_subject_l7(
            &self.subject(ep),
            direction,
            remote,
            &remote_labels,
            protocol,
            port,
        );
        http_decision(l4, rules, request)
    }

    /// The decision for an HTTP request sent on the connection of `packet` (its first packet):
    /// each enforcement point decides as in `evaluate`, then applies its HTTP rules. The
    /// request is allowed when every point allows it. The deciding point is the first that
    /// denies (egress before ingress), else the last one with HTTP rules, else the last one.
    /// When the packet passes no enforcement point, the request is allowed and `l4` is an
    /// unenforced decision (empty endpoint, ingress, the source's identity).
    pub fn decide_http(&self, packet: &Packet, request: &HttpRequest) -> HttpDecision {
        let trace = self.evaluate(packet);
        let mut points = Vec::new();
        for d in [trace.egress, trace.ingress].into_iter().flatten() {
            let Some(ep) = self
                .state
                .endpoints
                .iter()
                .find(|e| e.to_string() == d.endpoint)
            else {
                continue;
            };
            points.push(self.decide_http_at(
                ep,
                d.direction,
                d.remote_identity,
                packet.protocol,
                packet.dst_port,
                request,
            ));
        }
        if let Some(denied) = points.iter().find(|p| !p.allowed) {
            return denied.clone();
        }
        if let Some(restricted) = points.iter().rev().find(|p| p.http_rules.is_some()) {
            return restricted.clone();
        }
        points.pop().unwrap_or_else(|| HttpDecision {
            allowed: true,
            rule: None,
            l4: Decision {
                endpoint: String::new(),
                direction: Direction::Ingress,
                remote_identity: trace.src.identity,
                enforced: false,
                verdict: Verdict::Allowed,
                reason: DropReason::None,
                policies: Vec::new(),
            },
            http_rules: None,
        })
    }

    fn party_for_ip(&self, ip: IpAddr, vantage: Option<&str>) -> Party {
        let identity = self.identity_of(ip, vantage);
        Party {
            address: Some(ip),
            endpoint: self.state.endpoint_by_ip(ip).map(|e| e.to_string()),
            identity,
            labels: self.labels_of(identity).strings(),
        }
    }

    /// Evaluates a packet at every enforcement point it passes on the enforced node(s).
    pub fn evaluate(&self, packet: &Packet) -> Trace {
        let src_ep = self.state.endpoint_by_ip(packet.src);
        let dst_ep = self.state.endpoint_by_ip(packet.dst);
        let local = self.options.local_node();
        let src_vantage = local
            .or(dst_ep.map(|e| e.node.as_str()))
            .or(src_ep.map(|e| e.node.as_str()));
        let dst_vantage = local
            .or(src_ep.map(|e| e.node.as_str()))
            .or(dst_ep.map(|e| e.node.as_str()));
        let egress = src_ep.filter(|e| self.is_local(e)).map(|ep| {
            let remote = self.identity_of(packet.dst, Some(&ep.node));
            self.decide(
                ep,
                Direction::Egress,
                remote,
                packet.protocol,
                packet.dst_port,
            )
        });
        let ingress = dst_ep.filter(|e| self.is_local(e)).map(|ep| {
            let remote = self.identity_of(packet.src, Some(&ep.node));
            self.decide(
                ep,
                Direction::Ingress,
                remote,
                packet.protocol,
                packet.dst_port,
            )
        });
        Trace {
            src: self.party_for_ip(packet.src, src_vantage),
            dst: self.party_for_ip(packet.dst, dst_vantage),
            protocol: packet.protocol,
            dst_port: packet.dst_port,
            egress,
            ingress,
        }
    }

    fn find_endpoint(&self, name: &str) -> Result<&'a EndpointSpec, TraceError> {
        let (ns, n) = name.split_once('/').unwrap_or(("default", name));
        self.state
            .endpoint(ns, n)
            .ok_or_else(|| TraceError::UnknownEndpoint(name.to_string()))
    }

    /// `weir policy trace`: endpoints and addresses are evaluated as packets
    /// (`evaluate`); label sets stand for identities, and every side that is an endpoint or a
    /// pod label set is an enforcement point.
    pub fn trace(
        &self,
        src: &TraceTarget,
        dst: &TraceTarget,
        protocol: u8,
        dst_port: u16,
    ) -> Result<Trace, TraceError> {
        let labels_mode =
            matches!(src, TraceTarget::Labels { .. }) || matches!(dst, TraceTarget::Labels { .. });
        if !labels_mode {
            let (s, d) = self.addresses(src, dst)?;
            return Ok(self.evaluate(&Packet {
                src: s,
                dst: d,
                protocol,
                src_port: 0,
                dst_port,
            }));
        }
        let (sp, ss) = self.label_party(src)?;
        let (dp, ds) = self.label_party(dst)?;
        let egress = ss.as_ref().map(|s| {
            let labels = self
                .table
                .labels(dp.identity)
                .cloned()
                .unwrap_or_else(|| parse_all(&dp.labels));
            self.decide_subject(
                s,
                Direction::Egress,
                dp.identity,
                &labels,
                protocol,
                dst_port,
            )
        });
        let ingress = ds.as_ref().map(|s| {
            let labels = self
                .table
                .labels(sp.identity)
                .cloned()
                .unwrap_or_else(|| parse_all(&sp.labels));
            self.decide_subject(
                s,
                Direction::Ingress,
                sp.identity,
                &labels,
                protocol,
                dst_port,
            )
        });
        Ok(Trace {
            src: sp,
            dst: dp,
            protocol,
            dst_port,
            egress,
            ingress,
        })
    }

    fn addresses(
        &self,
        src: &TraceTarget,
        dst: &TraceTarget,
    ) -> Result<(IpAddr, IpAddr), TraceError> {
        let pick = |t: &TraceTarget, want_v4: Option<bool>| -> Result<IpAddr, TraceError> {
            match t {
                TraceTarget::Ip(ip) => Ok(*ip),
                TraceTarget::Endpoint(name) => {
                    let ep = self.find_endpoint(name)?;
                    ep.ips
                        .iter()
                        .find(|ip| want_v4.is_none_or(|v4| ip.is_ipv4() == v4))
                        .copied()
                        .ok_or_else(|| TraceError::NoAddress(name.clone()))
                }
                TraceTarget::Labels { .. } => unreachable_labels(),
            }
        };
        match (src, dst) {
            (TraceTarget::Ip(s), _) => Ok((*s, pick(dst, Some(s.is_ipv4()))?)),
            (_, TraceTarget::Ip(d)) => Ok((pick(src, Some(d.is_ipv4()))?, *d)),
            _ => {
                let s = pick(src, None)?;
                match pick(dst, Some(s.is_ipv4())) {
                    Ok(d) => Ok((s, d)),
                    Err(_) => {
                        let d = pick(dst, None)?;
                        Ok((pick(src, Some(d.is_ipv4()))?, d))
                    }
                }
            }
        }
    }

    fn label_party(&self, t: &TraceTarget) -> Result<(Party, Option<Subject>), TraceError> {
        match t {
            TraceTarget::Ip(ip) => {
                let party = self.party_for_ip(*ip, self.options.local_node());
                let subject = self.state.endpoint_by_ip(*ip).map(|e| self.subject(e));
                Ok((party, subject))
            }
            TraceTarget::Endpoint(name) => {
                let ep = self.find_endpoint(name)?;
                let subject = self.subject(ep);
                let identity = self.table.identity_for(&subject.labels);
                Ok((
                    Party {
                        address: ep.ips.first().copied(),
                        endpoint: Some(ep.to_string()),
                        identity,
                        labels: subject.labels.strings(),
                    },
                    Some(subject),
                ))
            }
            TraceTarget::Labels { labels, namespace } => {
                let parsed: Vec<Label> =
                    labels.iter().map(|l| l.parse()).collect::<Result<_, _>>()?;
                let special = parsed
                    .iter()
                    .any(|l| l.source == source::RESERVED || l.source == source::CIDR);
                if special {
                    let mut set: LabelSet = parsed.into_iter().collect();
                    if let Some(prefix) = set.cidr() {
                        set = cidr_labels(prefix);
                    }
                    let identity = self.table.get(&set).unwrap_or_else(|| {
                        if set.cidr().is_some() {
                            reserved::WORLD
                        } else {
                            self.table.identity_for(&set)
                        }
                    });
                    return Ok((
                        Party {
                            address: None,
                            endpoint: None,
                            identity,
                            labels: set.strings(),
                        },
                        None,
                    ));
                }
                let ns = namespace.clone().unwrap_or_else(|| "default".to_string());
                let pod: BTreeMap<String, String> = parsed
                    .iter()
                    .filter(|l| l.source == source::K8S)
                    .map(|l| (l.key.clone(), l.value.clone()))
                    .collect();
                let set = pod_labels(self.state, &ns, &pod, None);
                let identity = self.table.identity_for(&set);
                let named_ports = self
                    .state
                    .endpoints
                    .iter()
                    .find(|e| endpoint_labels(self.state, e) == set)
                    .map(|e| e.named_ports.clone())
                    .unwrap_or_default();
                let subject = Subject {
                    name: format!("{ns}/(labels)"),
                    labels: set.clone(),
                    named_ports,
                };
                Ok((
                    Party {
                        address: None,
                        endpoint: None,
                        identity,
                        labels: set.strings(),
                    },
                    Some(subject),
                ))
            }
        }
    }
}

fn http_decision(l4: Decision, rules: Option<HttpRuleSet>, request: &HttpRequest) -> HttpDecision {
    let (allowed, rule) = match (&rules, l4.verdict) {
        (_, Verdict::Denied) => (false, None),
        (None, Verdict::Allowed) => (true, None),
        (Some(set), Verdict::Allowed) => match set.matching_rule(request) {
            Some(i) => {
                let r = &set.rules[i];
                (true, Some((r.policy.clone(), r.location.clone())))
            }
            None => (false, None),
        },
    };
    HttpDecision {
        allowed,
        rule,
        l4,
        http_rules: rules,
    }
}

fn unreachable_labels() -> Result<IpAddr, TraceError> {
    Err(TraceError::UnknownEndpoint("(labels)".into()))
}

fn parse_all(labels: &[String]) -> LabelSet {
    labels
        .iter()
        .filter_map(|l| l.parse::<Label>().ok())
        .collect()
}

/// Evaluates one packet (see `Evaluator::evaluate`).
pub fn evaluate(
    state: &ClusterState,
    set: &PolicySet,
    options: &Options,
    packet: &Packet,
) -> Trace {
    Evaluator::new(state, set, options).evaluate(packet)
}

/// `weir policy trace` (see `Evaluator::trace`).
pub fn trace(
    state: &ClusterState,
    set: &PolicySet,
    options: &Options,
    src: &TraceTarget,
    dst: &TraceTarget,
    protocol: u8,
    dst_port: u16,
) -> Result<Trace, TraceError> {
    Evaluator::new(state, set, options).trace(src, dst, protocol, dst_port)
}
