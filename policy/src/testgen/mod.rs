//! Randomised differential testing of the compiler against the reference evaluator.
//!
//! `random_case(seed)` builds a cluster (nodes, namespaces, endpoints with label sets and
//! named ports), a policy set covering every supported feature (allow/deny, selectors with
//! expressions, entities, CIDRs with `except`, ports/ranges/protocols/named ports, ICMP,
//! namespaced and cluster-wide policies, NetworkPolicy) written as YAML, and packets biased
//! towards local endpoints, CIDR boundaries and the ports policies name. `check_case` runs every
//! packet through the evaluator and through `compile` + `lookup` (the datapath algorithm) and
//! reports the first mismatch in identity, verdict, drop reason or policy set, minimised.
//!
//! The same cases can drive the real datapath: load `Case::policy_yaml()` and `Case::state`,
//! send `Case::packets` and compare with `Case::expected()`.

mod check;
mod generate;
mod http;
mod rng;
mod stream_check;

#[cfg(test)]
mod tests;

pub use crate::lookup::{LookupResult, lookup, lookup_direction};
pub use check::{Mismatch, check_case};
pub use http::{encode_request, random_http_case};
pub use rng::Rng;
pub use stream_check::{MAX_CUTS, check_request_stream, request_stream_input};

use crate::cluster::ClusterState;
use crate::error::PolicyError;
use crate::eval::{Evaluator, Options, Packet, Trace};
use crate::set::PolicySet;

/// One generated test case.
#[derive(Debug, Clone)]
pub struct Case {
    pub seed: u64,
    pub state: ClusterState,
    /// Evaluation and compilation options (the local node is always set).
    pub options: Options,
    /// The policies, one YAML document each.
    pub documents: Vec<String>,
    pub policies: PolicySet,
    pub packets: Vec<Packet>,
}

impl Case {
    /// All policy documents as one multi-document YAML text.
    pub fn policy_yaml(&self) -> String {
        self.documents.join("---\n")
    }

    pub fn local_node(&self) -> &str {
        &self.options.local_node
    }

    /// The evaluator's trace of every packet.
    pub fn expected(&self) -> Vec<Trace> {
        let ev = Evaluator::new(&self.state, &self.policies, &self.options);
        self.packets.iter().map(|p| ev.evaluate(p)).collect()
    }

    /// A copy with other policy documents (re-parsed).
    pub fn with_documents(&self, documents: Vec<String>) -> Result<Case, PolicyError> {
        let policies = PolicySet::parse_str("generated.yaml", &documents.join("---\n"))?;
        Ok(Case {
            documents,
            policies,
            ..self.clone()
        })
    }
}

/// Packets per generated case.
pub const PACKETS_PER_CASE: usize = 40;

/// The case for a seed (deterministic).
pub fn random_case(seed: u64) -> Case {
    let mut rng = Rng::new(seed);
    let state = generate::cluster(&mut rng);
    let local = format!("n{}", rng.range(1, state.cluster.nodes.len() as u64));
    let options = Options {
        local_node: local.clone(),
        allow_localhost: rng.chance(70),
        http_flow_headers: Vec::new(),
    };
    let documents = generate::policies(&mut rng);
    let policies =
        PolicySet::parse_str("generated.yaml", &documents.join("---\n")).unwrap_or_else(|e| {
            panic!(
                "seed {seed}: generated policies do not parse:\n{e}\n{}",
                documents.join("---\n")
            )
        });
    let packets = generate::packets(&mut rng, &state, &local, PACKETS_PER_CASE);
    Case {
        seed,
        state,
        options,
        documents,
        policies,
        packets,
    }
}
