//! weir-lab: a small cluster made of network namespaces on one Linux host, with real servers
//! and traffic helpers, for the demo (`weir lab up|down`) and the privileged end-to-end tests.
//!
//! ```text
//!  <prefix>-world ── eth0 ═══ ext0 ── <prefix>-node1 ── lxc01 ═══ eth0 ── <prefix>-default-frontend-0
//!  198.51.100.10          198.51.100.1   cluster0        lxc02 ═══ eth0 ── <prefix>-default-users-0
//!                                        10.200.0.1      …
//! ```
//!
//! Nothing is ever created in the host's network namespace: veths are created inside lab
//! namespaces with their peer placed straight into another lab namespace. See `docs/lab.md`.
//!
//! ```no_run
//! use std::time::Duration;
//! use weir_lab::{Lab, LabConfig};
//!
//! let lab = Lab::up(LabConfig::with_prefix("wdoc")).unwrap();
//! let users = lab.endpoint("users-0").unwrap();
//! let url = format!("http://{}/api/v1/users", users.ipv4);
//! let response = lab.http_request("frontend-0", "GET", &url, Duration::from_secs(5)).unwrap();
//! assert_eq!(response.status, 200);
//! // Dropping `lab` removes it.
//! ```
#![forbid(unsafe_code)]

mod agent;
mod cmd;
mod config;
mod error;
mod gate;
mod http;
mod lab;
mod netns;
mod plan;
mod servers;
mod state;
mod topology;
mod traffic;

pub use agent::{AGENT_READY_TIMEOUT, AgentProcess};
pub use config::{
    DEFAULT_BPFFS_ROOT, DEFAULT_PREFIX, DEFAULT_RUN_ROOT, EndpointDef, LabConfig,
    MAX_ENDPOINTS_PER_NODE, NodeDef, Protocol, ServerDef, ServerKind, default_endpoints,
};
pub use error::{LabError, Stage, TrafficError};
pub use gate::{missing_requirements, privileged};
pub use http::{HttpRequest, HttpResponse};
pub use lab::{Lab, down, down_all, down_all_at, down_at};
pub use nix::sys::signal::Signal;
pub use plan::{
    Endpoint, GATEWAY_V4, GATEWAY_V6, Node, WORLD_GATEWAY_V4, WORLD_GATEWAY_V6, WORLD_V4, WORLD_V6,
    World, pod_cidrs,
};
pub use servers::{CatalogCall, GrpcCallRecord, RequestRecord};
