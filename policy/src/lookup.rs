//! The datapath's policy lookup, in plain Rust (the algorithm documented in `compiled`): the
//! agent's L7 proxy decides with it, and the tests compare the kernel against it.

use crate::compiled::{
    CompiledPolicy, Direction, DirectionPolicy, Identity, PolicyEntry, PolicyRef, RuleSetId,
};
use crate::eval::{DropReason, Verdict};

/// What the datapath decides for one new connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LookupResult {
    pub verdict: Verdict,
    pub reason: DropReason,
    /// The entry that decided (none: the direction's default).
    pub entry: Option<PolicyEntry>,
    /// The entry's rule set, or the direction's `selecting` set for a default deny, or 0.
    pub rule_set: RuleSetId,
}

impl LookupResult {
    /// The policies behind the decision.
    pub fn policies(&self, compiled: &CompiledPolicy) -> Vec<PolicyRef> {
        compiled
            .rule_sets
            .get(&self.rule_set)
            .cloned()
            .unwrap_or_default()
    }
}

fn mask(len: u8) -> u16 {
    if len == 0 {
        0
    } else {
        u16::MAX << (16 - len.min(16))
    }
}

fn matches(e: &PolicyEntry, protocol: u8, port: u16) -> bool {
    e.protocol == 0
        || (e.protocol == protocol
            && (port & mask(e.port_prefix_len)) == (e.port & mask(e.port_prefix_len)))
}

fn prefix_bits(e: &PolicyEntry) -> u8 {
    if e.protocol == 0 {
        0
    } else {
        8 + e.port_prefix_len
    }
}

fn longest(
    entries: &[PolicyEntry],
    identity: Identity,
    protocol: u8,
    port: u16,
) -> Option<&PolicyEntry> {
    entries
        .iter()
        .filter(|e| e.identity == identity && matches(e, protocol, port))
        .max_by_key(|e| prefix_bits(e))
}

/// Looks up one direction's entries: the remote identity's longest match, else the
/// identity-0 longest match, else the direction's default.
pub fn lookup_direction(
    policy: &DirectionPolicy,
    remote_identity: Identity,
    protocol: u8,
    port: u16,
) -> LookupResult {
    let found = longest(&policy.entries, remote_identity, protocol, port)
        .or_else(|| longest(&policy.entries, 0, protocol, port));
    match found {
        Some(e) if e.deny => LookupResult {
            verdict: Verdict::Denied,
            reason: DropReason::PolicyDeny,
            entry: Some(e.clone()),
            rule_set: e.rule_set,
        },
        Some(e) => LookupResult {
            verdict: Verdict::Allowed,
            reason: DropReason::None,
            entry: Some(e.clone()),
            rule_set: e.rule_set,
        },
        None if policy.enforced => LookupResult {
            verdict: Verdict::Denied,
            reason: DropReason::PolicyDenied,
            entry: None,
            rule_set: policy.selecting,
        },
        None => LookupResult {
            verdict: Verdict::Allowed,
            reason: DropReason::None,
            entry: None,
            rule_set: 0,
        },
    }
}

/// Looks up the policy of endpoint `namespace/name`; `None` when it is not a local endpoint.
pub fn lookup(
    compiled: &CompiledPolicy,
    endpoint: &str,
    direction: Direction,
    remote_identity: Identity,
    protocol: u8,
    port: u16,
) -> Option<LookupResult> {
    let ep = compiled
        .endpoints
        .iter()
        .find(|e| format!("{}/{}", e.namespace, e.name) == endpoint)?;
    let policy = match direction {
        Direction::Ingress => &ep.ingress,
        Direction::Egress => &ep.egress,
    };
    Some(lookup_direction(policy, remote_identity, protocol, port))
}
