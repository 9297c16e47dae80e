//! What the compiler hands to the datapath: per-endpoint policy entries, the ipcache, the labels
//! of every identity in use and the policies behind every rule set. The agent turns these into
//! BPF map entries (probes/include/weir/policy.h); nothing here depends on the kernel ABI.
//!
//! # How the datapath uses `PolicyEntry`s
//!
//! For a new connection at an endpoint, in one direction, with remote identity `R`, IP protocol
//! `P` and destination port `X` (the ICMP type for ICMP/ICMPv6):
//!
//! 1. `a` = the longest-prefix match among the entries with `identity == R`; the key is the bit
//!    string `protocol (8 bits) ++ port (16 bits)`: an entry with `protocol == 0` has prefix
//!    length 0 and matches every packet; otherwise its prefix is 8 + `port_prefix_len` bits.
//! 2. If there is no `a`: `b` = the same lookup among entries with `identity == 0` (any).
//! 3. The entry found decides: `deny` → dropped (reason POLICY_DENY 181); otherwise allowed.
//!    No entry: dropped with POLICY_DENIED (133) when the direction is `enforced`, else allowed.
//! 4. An allowed entry with `l7_rules != 0` allows the connection only for HTTP/1.x requests
//!    that one of the rules in `http_rule_sets[l7_rules]` matches (`http_tables[l7_rules]` are
//!    its DFAs and masks, `crate::http`). Such entries are only ever TCP entries for an exact
//!    port. `l7_rules` is 0 when any allow rule that applies to the key has no HTTP rules (a
//!    plain L4 allow, an L3-only rule, Kafka/DNS rules that are not enforced yet) or when
//!    `allow_localhost` allows the `host` identity: allow rules are unioned, so one rule
//!    without L7 rules lifts the restriction (as in Cilium).
//!
//! The compiler guarantees that this simple lookup gives exactly the verdict, the deciding
//! policies (`rule_set`) and the HTTP rules that the reference evaluator computes from the
//! rules.

use std::collections::BTreeMap;
use std::fmt;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::http::{HttpRuleSet, HttpTables, TableError, build_tables};

/// A numeric security identity.
pub type Identity = u32;

/// Reserved identities (the same numbers as Cilium's).
pub mod reserved {
    use super::Identity;
    pub const UNKNOWN: Identity = 0;
    pub const HOST: Identity = 1;
    pub const WORLD: Identity = 2;
    pub const UNMANAGED: Identity = 3;
    pub const HEALTH: Identity = 4;
    pub const INIT: Identity = 5;
    pub const REMOTE_NODE: Identity = 6;
    pub const KUBE_APISERVER: Identity = 7;
    pub const INGRESS: Identity = 8;
    /// First identity of a label set (endpoint identities are in `MIN_CLUSTER..=MAX_CLUSTER`).
    pub const MIN_CLUSTER: Identity = 256;
    pub const MAX_CLUSTER: Identity = 0x00ff_ffff;
    /// Node-local identities of CIDR prefixes have this bit set (as in Cilium).
    pub const LOCAL_SCOPE: Identity = 0x0100_0000;
}

/// Id of a set of policies (0 = none). Stable: derived from the set's contents.
pub type RuleSetId = u32;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Direction {
    Ingress,
    Egress,
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Direction::Ingress => "ingress",
            Direction::Egress => "egress",
        })
    }
}

/// Which part of the key matched (Hubble's `policy_match_type` numbering).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[repr(u8)]
pub enum MatchType {
    None = 0,
    L3Only = 1,
    L3L4 = 2,
    L4Only = 3,
    All = 4,
    L3Proto = 5,
    ProtoOnly = 6,
}

/// A policy that contributed to a decision (Hubble's `flow.Policy`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct PolicyRef {
    /// `CiliumNetworkPolicy`, `CiliumClusterwideNetworkPolicy` or `NetworkPolicy`.
    pub kind: String,
    /// Empty for cluster-wide policies.
    pub namespace: String,
    pub name: String,
}

/// One policy-map entry of one endpoint in one direction.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct PolicyEntry {
    /// Remote identity; 0 = any identity.
    pub identity: Identity,
    /// IP protocol number; 0 = any protocol and any port.
    pub protocol: u8,
    /// Destination port (ICMP type for ICMP), meaningful in its top `port_prefix_len` bits.
    pub port: u16,
    /// 0..=16; 16 = exactly `port`, 0 = any port of `protocol`.
    pub port_prefix_len: u8,
    pub deny: bool,
    /// Evaluate, report AUDIT, forward (policy audit mode; set by a later issue).
    pub audit: bool,
    /// The HTTP rules this allow is restricted to: a key of `CompiledPolicy::http_rule_sets`
    /// and `http_tables`; 0 = none (the connection is allowed at L4 with no L7 restriction,
    /// and always 0 on deny entries). See the module documentation.
    pub l7_rules: u32,
    pub match_type: MatchType,
    /// The policies that produced this entry's decision.
    pub rule_set: RuleSetId,
}

/// An endpoint's policy in one direction.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirectionPolicy {
    /// At least one policy selects the endpoint with default-deny in this direction.
    pub enforced: bool,
    /// The policies that select the endpoint in this direction (attribution of implicit denies).
    pub selecting: RuleSetId,
    pub entries: Vec<PolicyEntry>,
}

/// The compiled policy of one endpoint on this node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointPolicy {
    pub namespace: String,
    pub name: String,
    /// Host-side interface in the node's network namespace.
    pub interface: String,
    pub identity: Identity,
    pub ingress: DirectionPolicy,
    pub egress: DirectionPolicy,
}

/// An address range and the identity the datapath gives it (longest prefix wins).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct IpcacheEntry {
    pub prefix: IpNet,
    pub identity: Identity,
}

/// Something a policy asks for that weir parses but does not enforce yet.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Notice {
    pub policy: PolicyRef,
    /// Where in the policy, e.g. `spec.ingress[0].toPorts[0].rules.http`.
    pub location: String,
    /// What is and is not enforced, in a sentence.
    pub message: String,
}

/// The output of the compiler for one node.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompiledPolicy {
    /// Endpoints on the local node, sorted by (namespace, name).
    pub endpoints: Vec<EndpointPolicy>,
    /// Every prefix the datapath must resolve, sorted.
    pub ipcache: Vec<IpcacheEntry>,
    /// `source:key=value` labels of every identity in use (endpoints, reserved, CIDR).
    pub identities: BTreeMap<Identity, Vec<String>>,
    /// The policies behind every rule set referenced above.
    pub rule_sets: BTreeMap<RuleSetId, Vec<PolicyRef>>,
    pub notices: Vec<Notice>,
    /// The HTTP rule sets referenced by `PolicyEntry::l7_rules` (ids 1.., one per distinct
    /// merged set, in set order).
    #[serde(default)]
    pub http_rule_sets: BTreeMap<u32, HttpRuleSet>,
    /// The datapath tables of every HTTP rule set, under the same ids (not serialised:
    /// `rebuild_http_tables` recomputes them).
    #[serde(default, skip)]
    pub http_tables: BTreeMap<u32, HttpTables>,
    /// The flow headers the tables capture (`Options::http_flow_headers`).
    #[serde(default)]
    pub http_flow_headers: Vec<String>,
}

impl CompiledPolicy {
    /// Recomputes `http_tables` from `http_rule_sets` (e.g. after deserialising).
    pub fn rebuild_http_tables(&mut self) -> Result<(), TableError> {
        self.http_tables = self
            .http_rule_sets
            .iter()
            .map(|(id, set)| Ok((*id, build_tables(set, &self.http_flow_headers)?)))
            .collect::<Result<_, TableError>>()?;
        Ok(())
    }
}
