//! weir's policy engine: CiliumNetworkPolicy, CiliumClusterwideNetworkPolicy and Kubernetes
//! NetworkPolicy parsing and validation, security identities, a reference evaluator, and the
//! compiler from (policies, endpoints) to the entries the datapath enforces.
//!
//! ```text
//! PolicySet::load_dir ─► model (one rule model for all kinds)
//!                           ├─► eval::Evaluator (reference decisions, `weir policy trace`)
//!                           └─► compile() ─► CompiledPolicy (datapath contract, `compiled`)
//!                                              └─ HTTP rule sets ─► http::HttpTables (DFAs)
//! ```
#![forbid(unsafe_code)]

pub mod cluster;
pub mod compile;
pub mod compiled;
pub mod error;
pub mod eval;
pub mod http;
pub mod identity;
pub mod ipcache;
pub mod labels;
pub mod lookup;
pub mod model;
pub mod selector;
pub mod set;

mod knp;
mod l7;
mod matching;
// The YAML schema: every field is parsed (so unknown ones are errors), not all are read yet.
#[allow(dead_code)]
mod schema;
mod translate;
mod yaml;

#[cfg(any(test, feature = "testgen"))]
pub mod testgen;

pub use cluster::{ClusterSpec, ClusterState, EndpointSpec, NamespaceSpec, NodeSpec, StateError};
pub use compile::{CompileError, compile};
pub use compiled::CompiledPolicy;
pub use error::{Diagnostic, PolicyError};
pub use eval::{
    Decision, DropReason, Evaluator, HttpDecision, Options, Packet, Trace, TraceError, TraceTarget,
    Verdict, evaluate, trace,
};
pub use identity::IdentityTable;
pub use ipcache::IpCache;
pub use labels::{Label, LabelSet};
pub use model::{Policy, PolicyKind};
pub use selector::Selector;
pub use set::PolicySet;
