//! The compiler: (cluster state, policies, node) → `CompiledPolicy` (see `compiled` for how
//! the datapath reads it).
//!
//! Per local endpoint and direction, every rule that applies becomes a set of key prefixes
//! (`protocol ++ port`, longest-prefix matched) and a set of remote identities (or the
//! wildcard identity 0 when it selects every identity). Then, for each identity `R` with
//! rules of its own:
//!
//! - its prefixes are those of its own rules plus every wildcard prefix that lies inside one of
//!   them (otherwise its own, shorter entry would hide a narrower wildcard rule);
//! - each entry's decision is computed from *all* rules (its own and the wildcard ones) whose
//!   prefixes contain the entry's prefix: any deny → deny with every such deny policy, else
//!   allow with every such allow policy. Because all rule prefixes containing a key form a
//!   chain, the longest entry containing a key always sees exactly the rules matching the key.
//! - keys outside all of `R`'s prefixes fall back to the identity-0 entries, which are computed
//!   from the wildcard rules alone — exactly the rules that can match there.
//!
//! An allow entry is restricted to HTTP rules (`l7_rules`) when every contributing allow
//! rule has HTTP rules at the entry's prefix (which is then an exact TCP port); their union,
//! ordered by policy and location, becomes one `HttpRuleSet` with an id shared by equal sets
//! and its `HttpTables`. One contributing rule without HTTP rules (or `allow_localhost` for
//! the host) lifts the restriction, as Cilium unions allow rules.
//!
//! An entry whose decision (verdict, policies, HTTP rules) equals that of its nearest kept
//! ancestor of the same identity is dropped. With `allow_localhost`, identity `host` gets an ingress entry for every key (rule
//! set 0), which explicit denies and allows refine like any other rule.
//!
//! Bound: per endpoint and direction, entries ≤ (1 + I) · K (+ 1), where I is the number of
//! identities selected by non-wildcard rules and K the number of distinct key prefixes of the
//! rules that apply (a port range contributes at most 30 prefixes per protocol, `ANY` three
//! protocols, a named port one per distinct resolution).

use std::collections::{BTreeMap, BTreeSet};

use crate::cluster::{ClusterState, EndpointSpec};
use crate::compiled::{
    CompiledPolicy, Direction, DirectionPolicy, EndpointPolicy, Identity, MatchType, Notice,
    PolicyEntry, PolicyRef, RuleSetId, reserved,
};
use crate::eval::Options;
use crate::http::{HttpRuleEntry, HttpRuleSet, HttpTables, TableError, build_tables, is_grpc_path};
use crate::identity::IdentityTable;
use crate::ipcache::{IpCache, policy_prefixes};
use crate::labels::{LabelSet, endpoint_labels};
use crate::matching::{is_wildcard, peers_match, resolve_named};
use crate::model::{Peer, Peers, PortMatch, Ports, Protocol};
use crate::set::PolicySet;

#[derive(Debug, thiserror::Error)]
pub enum CompileError {
    #[error("no local node given: the compiler needs the node whose endpoints it compiles")]
    NoLocalNode,
    #[error("node `{0}` is not listed in cluster.yaml")]
    UnknownNode(String),
    /// A merged set of HTTP rules does not fit the datapath's tables.
    #[error("HTTP rules do not fit the datapath: {0}")]
    Http(#[from] TableError),
}

/// A key prefix: `protocol (8 bits) ++ port (16 bits)`; protocol 0 is the empty prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
struct KeyPrefix {
    proto: u8,
    port: u16,
    plen: u8,
}

const ROOT: KeyPrefix = KeyPrefix {
    proto: 0,
    port: 0,
    plen: 0,
};

fn port_mask(plen: u8) -> u16 {
    if plen == 0 {
        0
    } else {
        u16::MAX << (16 - plen)
    }
}

impl KeyPrefix {
    fn bits(self) -> u8 {
        if self.proto == 0 { 0 } else { 8 + self.plen }
    }

    /// Whether `self` contains `other`.
    fn contains(self, other: KeyPrefix) -> bool {
        if self.proto == 0 {
            return true;
        }
        self.proto == other.proto
            && other.plen >= self.plen
            && (other.port & port_mask(self.plen)) == self.port
    }
}

/// Prefix-aligned blocks covering `first..=last`.
fn range_prefixes(first: u16, last: u16) -> Vec<(u16, u8)> {
    let mut out = Vec::new();
    let mut cur = u32::from(first);
    let last = u32::from(last);
    while cur <= last {
        let mut k = if cur == 0 {
            16
        } else {
            cur.trailing_zeros().min(16)
        };
        while cur + (1u32 << k) - 1 > last {
            k -= 1;
        }
        out.push((cur as u16, 16 - k as u8));
        cur += 1u32 << k;
    }
    out
}

/// A rule that applies to one endpoint in one direction.
struct CRule {
    deny: bool,
    policy: PolicyRef,
    wildcard: bool,
    identities: BTreeSet<Identity>,
    prefixes: Vec<KeyPrefix>,
    /// The prefixes where the rule allows only the requests of these HTTP rules (every
    /// `toPorts` entry that produced the prefix has HTTP rules); at its other prefixes the rule
    /// allows at L4.
    http: BTreeMap<KeyPrefix, Vec<HttpRuleEntry>>,
}

type Refs = BTreeSet<PolicyRef>;

#[derive(Debug, Clone, PartialEq, Eq)]
struct Verdict {
    deny: bool,
    refs: Refs,
    /// An allow restricted to these HTTP rules.
    http: Option<HttpRuleSet>,
}

struct Pending {
    entry: PolicyEntry,
    refs: Refs,
    http: Option<HttpRuleSet>,
}

/// Compiles the policy of every endpoint on `options.local_node`.
pub fn compile(
    state: &ClusterState,
    set: &PolicySet,
    options: &Options,
) -> Result<CompiledPolicy, CompileError> {
    let node = options.local_node().ok_or(CompileError::NoLocalNode)?;
    if !state.cluster.nodes.is_empty() && state.node(node).is_none() {
        return Err(CompileError::UnknownNode(node.to_string()));
    }
    let prefixes = policy_prefixes(state, set);
    let mut table = IdentityTable::for_cluster(state);
    table.add_cidrs(prefixes.effective.iter().copied());
    let ipcache = IpCache::build(state, &table, Some(node), &prefixes.effective);

    let mut locals: Vec<&EndpointSpec> =
        state.endpoints.iter().filter(|e| e.node == node).collect();
    locals.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));

    let mut pending: Vec<(usize, Direction, Vec<Pending>, Refs)> = Vec::new();
    for (i, ep) in locals.iter().enumerate() {
        for dir in [Direction::Ingress, Direction::Egress] {
            let (entries, selecting) = compile_direction(state, set, options, &table, ep, dir);
            pending.push((i, dir, entries, selecting));
        }
    }

    // Rule sets: stable ids from the sorted refs, collisions resolved in set order.
    let mut all_sets: BTreeSet<Vec<PolicyRef>> = BTreeSet::new();
    for (_, _, entries, selecting) in &pending {
        for p in entries {
            if !p.refs.is_empty() {
                all_sets.insert(p.refs.iter().cloned().collect());
            }
        }
        if !selecting.is_empty() {
            all_sets.insert(selecting.iter().cloned().collect());
        }
    }
    let mut rule_sets: BTreeMap<RuleSetId, Vec<PolicyRef>> = BTreeMap::new();
    let mut ids: BTreeMap<Vec<PolicyRef>, RuleSetId> = BTreeMap::new();
    for refs in all_sets {
        let mut id = rule_set_hash(&refs);
        while id == 0 || rule_sets.contains_key(&id) {
            id = id.wrapping_add(1);
        }
        rule_sets.insert(id, refs.clone());
        ids.insert(refs, id);
    }
    let id_of = |refs: &Refs| -> RuleSetId {
        if refs.is_empty() {
            0
        } else {
            ids[&refs.iter().cloned().collect::<Vec<_>>()]
        }
    };

    // HTTP rule sets: ids 1.. in set order, one per distinct merged set, with their tables.
    let distinct: BTreeSet<&HttpRuleSet> = pending
        .iter()
        .flat_map(|(_, _, entries, _)| entries.iter().filter_map(|p| p.http.as_ref()))
        .collect();
    let mut http_rule_sets: BTreeMap<u32, HttpRuleSet> = BTreeMap::new();
    let mut http_tables: BTreeMap<u32, HttpTables> = BTreeMap::new();
    let mut http_ids: BTreeMap<&HttpRuleSet, u32> = BTreeMap::new();
    for (i, set) in distinct.into_iter().enumerate() {
        let id = i as u32 + 1;
        http_tables.insert(id, build_tables(set, &options.http_flow_headers)?);
        http_rule_sets.insert(id, set.clone());
        http_ids.insert(set, id);
    }

    let mut endpoints: Vec<EndpointPolicy> = locals
        .iter()
        .map(|ep| EndpointPolicy {
            namespace: ep.namespace.clone(),
            name: ep.name.clone(),
            interface: ep.interface.clone(),
            identity: table
                .get(&endpoint_labels(state, ep))
                .expect("identity table covers every endpoint"),
            ingress: DirectionPolicy::default(),
            egress: DirectionPolicy::default(),
        })
        .collect();
    for (i, dir, entries, selecting) in &pending {
        let (i, dir) = (*i, *dir);
        let mut list: Vec<PolicyEntry> = entries
            .iter()
            .map(|p| PolicyEntry {
                rule_set: id_of(&p.refs),
                l7_rules: p.http.as_ref().map_or(0, |h| http_ids[h]),
                ..p.entry.clone()
            })
            .collect();
        list.sort();
        let dp = DirectionPolicy {
            enforced: !selecting.is_empty(),
            selecting: id_of(selecting),
            entries: list,
        };
        match dir {
            Direction::Ingress => endpoints[i].ingress = dp,
            Direction::Egress => endpoints[i].egress = dp,
        }
    }

    let mut used: BTreeSet<Identity> = ipcache.entries().iter().map(|e| e.identity).collect();
    for ep in &endpoints {
        used.insert(ep.identity);
        for e in ep.ingress.entries.iter().chain(&ep.egress.entries) {
            if e.identity != 0 {
                used.insert(e.identity);
            }
        }
    }
    let identities = used
        .into_iter()
        .filter_map(|id| table.labels(id).map(|l| (id, l.strings())))
        .collect();

    let mut notices = set.notices();
    for p in set.policies() {
        for spec in &p.specs {
            for rule in spec.ingress.rules.iter().chain(&spec.egress.rules) {
                let Peers::List(peers) = &rule.peers else {
                    continue;
                };
                for peer in peers {
                    if let Peer::Cidr { cidr, .. } = peer
                        && let Some(reason) = prefixes.skipped.get(cidr)
                    {
                        notices.push(Notice {
                            policy: p.reference(),
                            location: rule.path.clone(),
                            message: format!("`{cidr}` selects no address: {reason}"),
                        });
                    }
                }
            }
        }
    }
    // gRPC rules that share a port's rule set with other HTTP rules stay in the kernel, where
    // HTTP/2 is refused: say so, at each gRPC rule.
    for set in http_rule_sets.values().filter(|s| !s.is_grpc()) {
        for r in &set.rules {
            if r.rule.path.as_deref().is_some_and(is_grpc_path) {
                notices.push(Notice {
                    policy: r.policy.clone(),
                    location: r.location.clone(),
                    message: "a gRPC path, but other HTTP rules apply with it on the same port: \
                              the port is enforced in the kernel as HTTP/1.x, where gRPC \
                              (HTTP/2) connections are refused; give gRPC its own port or only \
                              gRPC rules"
                        .to_string(),
                });
            }
        }
    }
    // Flow headers that did not fit a port's name DFA next to its rules' names.
    for (id, tables) in &http_tables {
        if options.http_flow_headers.is_empty() || tables.flow_headers {
            continue;
        }
        if let Some(r) = http_rule_sets[id].rules.first() {
            notices.push(Notice {
                policy: r.policy.clone(),
                location: r.location.clone(),
                message: format!(
                    "the header names of --http-flow-headers ({}) do not fit this port's \
                     header-name DFA next to its HTTP rules' names: its request flows carry \
                     no header values",
                    options.http_flow_headers.join(", ")
                ),
            });
        }
    }
    notices.sort();
    notices.dedup();

    Ok(CompiledPolicy {
        endpoints,
        ipcache: ipcache.into_entries(),
        identities,
        rule_sets,
        notices,
        http_rule_sets,
        http_tables,
        http_flow_headers: options.http_flow_headers.clone(),
    })
}

/// FNV-1a (32 bits) of `kind/namespace/name\n` for each policy.
fn rule_set_hash(refs: &[PolicyRef]) -> RuleSetId {
    let mut h: u32 = 0x811c_9dc5;
    for r in refs {
        for b in format!("{}/{}/{}\n", r.kind, r.namespace, r.name).bytes() {
            h ^= u32::from(b);
            h = h.wrapping_mul(0x0100_0193);
        }
    }
    h
}

fn key_prefixes(
    ports: &Ports,
    dir: Direction,
    state: &ClusterState,
    ep: &EndpointSpec,
) -> BTreeSet<KeyPrefix> {
    let mut out = BTreeSet::new();
    let list = match ports {
        Ports::All => {
            out.insert(ROOT);
            return out;
        }
        Ports::List(list) => list,
    };
    for spec in list {
        match &spec.port {
            PortMatch::All => {
                for proto in spec.protocol.numbers() {
                    out.insert(KeyPrefix {
                        proto: *proto,
                        port: 0,
                        plen: 0,
                    });
                }
            }
            PortMatch::Range(a, b) => {
                for proto in spec.protocol.numbers() {
                    for (port, plen) in range_prefixes(*a, *b) {
                        out.insert(KeyPrefix {
                            proto: *proto,
                            port,
                            plen,
                        });
                    }
                }
            }
            PortMatch::Named(name) => {
                let resolved = named(name, spec.protocol, dir, state, ep);
                for (proto, port) in resolved {
                    out.insert(KeyPrefix {
                        proto,
                        port,
                        plen: 16,
                    });
                }
            }
        }
    }
    out
}

fn named(
    name: &str,
    protocol: Protocol,
    dir: Direction,
    state: &ClusterState,
    ep: &EndpointSpec,
) -> BTreeSet<(u8, u16)> {
    match dir {
        Direction::Ingress => resolve_named(name, protocol, [&ep.named_ports]),
        Direction::Egress => resolve_named(
            name,
            protocol,
            state.endpoints.iter().map(|e| &e.named_ports),
        ),
    }
}

fn compile_direction(
    state: &ClusterState,
    set: &PolicySet,
    options: &Options,
    table: &IdentityTable,
    ep: &EndpointSpec,
    dir: Direction,
) -> (Vec<Pending>, Refs) {
    let labels = endpoint_labels(state, ep);
    let cluster = &state.cluster.name;
    let universe: Vec<(Identity, &LabelSet)> = table.iter().collect();
    let mut rules: Vec<CRule> = Vec::new();
    let mut selecting = Refs::new();
    for policy in set.policies() {
        for spec in &policy.specs {
            let Some(subject) = &spec.subject else {
                continue;
            };
            if !subject.matches(&labels) {
                continue;
            }
            let section = spec.section(dir);
            if section.enforces() {
                selecting.insert(policy.reference());
            }
            for rule in &section.rules {
                let prefixes = key_prefixes(&rule.ports, dir, state, ep);
                if prefixes.is_empty() {
                    continue;
                }
                let mut plain: BTreeSet<KeyPrefix> = BTreeSet::new();
                let mut http: BTreeMap<KeyPrefix, Vec<HttpRuleEntry>> = BTreeMap::new();
                for pr in &rule.port_rules {
                    let these = key_prefixes(&Ports::List(pr.ports.clone()), dir, state, ep);
                    match &pr.http {
                        None => plain.extend(these),
                        Some(rules) => {
                            for p in these {
                                http.entry(p).or_default().extend(rules.iter().map(|r| {
                                    HttpRuleEntry {
                                        policy: policy.reference(),
                                        location: r.location.clone(),
                                        rule: r.rule.clone(),
                                    }
                                }));
                            }
                        }
                    }
                }
                http.retain(|p, _| !plain.contains(p));
                let wildcard = is_wildcard(&rule.peers);
                let identities: BTreeSet<Identity> = if wildcard {
                    BTreeSet::new()
                } else {
                    universe
                        .iter()
                        .filter(|(_, l)| peers_match(&rule.peers, l, cluster))
                        .map(|(id, _)| *id)
                        .collect()
                };
                if !wildcard && identities.is_empty() {
                    continue;
                }
                rules.push(CRule {
                    deny: rule.deny,
                    policy: policy.reference(),
                    wildcard,
                    identities,
                    prefixes: prefixes.into_iter().collect(),
                    http,
                });
            }
        }
    }

    let localhost = options.allow_localhost && dir == Direction::Ingress;
    let wild: Vec<&CRule> = rules.iter().filter(|r| r.wildcard).collect();
    let wild_prefixes: BTreeSet<KeyPrefix> = wild
        .iter()
        .flat_map(|r| r.prefixes.iter().copied())
        .collect();

    let mut out = Vec::new();
    // Identity 0: the wildcard rules alone.
    emit(0, &wild_prefixes, &wild, false, &mut out);

    let mut specific: BTreeSet<Identity> = rules
        .iter()
        .flat_map(|r| r.identities.iter().copied())
        .collect();
    if localhost {
        specific.insert(reserved::HOST);
    }
    for id in specific {
        let own: Vec<&CRule> = rules
            .iter()
            .filter(|r| r.identities.contains(&id))
            .collect();
        let mut prefixes: BTreeSet<KeyPrefix> = own
            .iter()
            .flat_map(|r| r.prefixes.iter().copied())
            .collect();
        let host_default = localhost && id == reserved::HOST;
        if host_default {
            prefixes.insert(ROOT);
        }
        let inner: Vec<KeyPrefix> = wild_prefixes
            .iter()
            .copied()
            .filter(|w| prefixes.iter().any(|p| p.contains(*w)))
            .collect();
        prefixes.extend(inner);
        let relevant: Vec<&CRule> = own.into_iter().chain(wild.iter().copied()).collect();
        emit(id, &prefixes, &relevant, host_default, &mut out);
    }
    (out, selecting)
}

/// Entries of one identity: one per prefix, minus those that repeat their nearest ancestor.
fn emit(
    identity: Identity,
    prefixes: &BTreeSet<KeyPrefix>,
    rules: &[&CRule],
    host_default: bool,
    out: &mut Vec<Pending>,
) {
    let mut sorted: Vec<KeyPrefix> = prefixes.iter().copied().collect();
    sorted.sort_by_key(|p| (p.bits(), *p));
    let mut kept: Vec<(KeyPrefix, Verdict)> = Vec::new();
    for p in sorted {
        let mut deny = Refs::new();
        let mut allow = Refs::new();
        // Allowed at L4 by some rule (or by `allow_localhost`), else the union of the HTTP rules.
        let mut plain = host_default;
        let mut http: Vec<HttpRuleEntry> = Vec::new();
        for r in rules {
            let containing: Vec<&KeyPrefix> =
                r.prefixes.iter().filter(|rp| rp.contains(p)).collect();
            if containing.is_empty() {
                continue;
            }
            if r.deny {
                deny.insert(r.policy.clone());
                continue;
            }
            allow.insert(r.policy.clone());
            if containing.iter().all(|rp| r.http.contains_key(rp)) {
                for rp in containing {
                    http.extend(r.http[rp].iter().cloned());
                }
            } else {
                plain = true;
            }
        }
        let verdict = if !deny.is_empty() {
            Verdict {
                deny: true,
                refs: deny,
                http: None,
            }
        } else if !allow.is_empty() || host_default {
            Verdict {
                deny: false,
                refs: allow,
                http: (!plain && !http.is_empty()).then(|| HttpRuleSet::merged(http)),
            }
        } else {
            continue;
        };
        let parent = kept
            .iter()
            .filter(|(k, _)| k.contains(p))
            .max_by_key(|(k, _)| k.bits())
            .map(|(_, v)| v);
        if parent == Some(&verdict) {
            continue;
        }
        kept.push((p, verdict));
    }
    for (p, v) in kept {
        let match_type = match (identity != 0, p.proto != 0, p.plen > 0) {
            (true, false, _) => MatchType::L3Only,
            (true, true, true) => MatchType::L3L4,
            (true, true, false) => MatchType::L3Proto,
            (false, false, _) => MatchType::All,
            (false, true, true) => MatchType::L4Only,
            (false, true, false) => MatchType::ProtoOnly,
        };
        out.push(Pending {
            entry: PolicyEntry {
                identity,
                protocol: p.proto,
                port: p.port,
                port_prefix_len: if p.proto == 0 { 0 } else { p.plen },
                deny: v.deny,
                audit: false,
                l7_rules: 0,
                match_type,
                rule_set: 0,
            },
            refs: v.refs,
            http: v.http,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_become_aligned_blocks() {
        assert_eq!(range_prefixes(80, 80), vec![(80, 16)]);
        assert_eq!(range_prefixes(8000, 8003), vec![(8000, 14)]);
        assert_eq!(range_prefixes(1, 4), vec![(1, 16), (2, 15), (4, 16)]);
        assert_eq!(range_prefixes(0, 65535), vec![(0, 0)]);
        assert_eq!(range_prefixes(65535, 65535), vec![(65535, 16)]);
        let blocks = range_prefixes(1, 65535);
        assert_eq!(blocks.len(), 16);
        let covered: u32 = blocks.iter().map(|(_, l)| 1u32 << (16 - l)).sum();
        assert_eq!(covered, 65535);
    }

    #[test]
    fn prefix_containment() {
        let tcp = KeyPrefix {
            proto: 6,
            port: 0,
            plen: 0,
        };
        let p80 = KeyPrefix {
            proto: 6,
            port: 80,
            plen: 16,
        };
        let udp80 = KeyPrefix {
            proto: 17,
            port: 80,
            plen: 16,
        };
        assert!(ROOT.contains(p80));
        assert!(tcp.contains(p80));
        assert!(!p80.contains(tcp));
        assert!(!tcp.contains(udp80));
        let block = KeyPrefix {
            proto: 6,
            port: 8000,
            plen: 14,
        };
        assert!(block.contains(KeyPrefix {
            proto: 6,
            port: 8003,
            plen: 16
        }));
        assert!(!block.contains(KeyPrefix {
            proto: 6,
            port: 8004,
            plen: 16
        }));
    }
}
