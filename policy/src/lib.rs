//! weir's policy engine: CiliumNetworkPolicy, CiliumClusterwideNetworkPolicy and Kubernetes
//! NetworkPolicy parsing and validation, security identities, a reference evaluator, and the
//! compiler from (policies, endpoints) to the entries the datapath enforces.
#![forbid(unsafe_code)]

pub mod cluster;
pub mod compiled;

pub use cluster::{ClusterSpec, ClusterState, EndpointSpec, NamespaceSpec, NodeSpec, StateError};
