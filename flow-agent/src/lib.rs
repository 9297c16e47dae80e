//! weir's per-node agent: loads the datapath ([`datapath`]), applies policies from the state and
//! policy directories ([`apply`]), turns ring-buffer events into flows ([`monitor`], [`flows`], [`l7`],
//! [`store`], [`convert`]), serves them over Hubble's Observer API ([`server`]) and enforces gRPC
//! rules in its L7 proxy ([`proxy`]).
#![forbid(unsafe_code)]

mod agent;
pub mod apply;
pub mod config;
pub mod convert;
pub mod datapath;
pub mod flows;
pub mod l7;
pub mod monitor;
pub mod proxy;
pub mod server;
pub mod store;
pub mod testrun;

pub use agent::{AgentError, run};

/// Logs to stderr as text or JSON, filtered by `RUST_LOG` (default `info`).
pub fn init_tracing(format: &str) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}
