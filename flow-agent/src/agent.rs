//! Wiring: datapath, apply loop, monitor and gRPC servers, and an orderly shutdown that leaves
//! the datapath enforcing.

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use weir_policy::ClusterState;

use crate::apply::{Applier, ApplierConfig, PolicyStatus};
use crate::config::AgentConfig;
use crate::convert::Converter;
use crate::datapath::{Datapath, DatapathError, DatapathOptions, Timing};
use crate::flows::EnrichmentHandle;
use crate::monitor::{self, MonitorStats};
use crate::server::{Api, ServeError};
use crate::store::FlowStore;

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error(transparent)]
    Datapath(#[from] DatapathError),
    #[error(transparent)]
    Serve(#[from] ServeError),
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error("cannot start a thread: {0}")]
    Thread(#[source] std::io::Error),
}

/// The node's address for peers: its first IPv4 address in the state directory, else its
/// first address, else empty.
fn node_address(cfg: &AgentConfig) -> String {
    let Ok(state) = ClusterState::load_dir(&cfg.state_dir) else {
        return String::new();
    };
    let ips: Vec<IpAddr> = state
        .node(&cfg.node_name)
        .map(|n| n.ips.clone())
        .unwrap_or_default();
    ips.iter()
        .find(|ip| ip.is_ipv4())
        .or(ips.first())
        .map(ToString::to_string)
        .unwrap_or_default()
}

/// Raises the soft limit on open files to the hard limit (allowed without privileges): each
/// connection through the L7 proxy holds two descriptors.
fn raise_nofile_limit() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, hard)) if soft < hard => {
            if let Err(e) = setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
                tracing::warn!(error = %e, soft, hard, "cannot raise the open-files limit");
            }
        }
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "cannot read the open-files limit"),
    }
}

/// Runs the agent until SIGTERM or SIGINT.
pub async fn run(cfg: AgentConfig) -> Result<(), AgentError> {
    raise_nofile_limit();
    let tcp = cfg.tcp_address().map_err(AgentError::Config)?;
    let opts = DatapathOptions {
        pin_dir: Some(cfg.bpffs_dir()),
        timing: Timing {
            trace_interval: cfg.trace_interval,
            drop_interval: cfg.drop_interval,
            policy_verdict_events: cfg.policy_verdict_events,
            ..Timing::default()
        },
        events_ring_bytes: cfg.events_ring_bytes,
        ct_max_entries: cfg.ct_max_entries,
        ..DatapathOptions::default()
    };
    let mut datapath = Datapath::load(&opts)?;
    let writer = datapath.take_writer()?;
    let ring = datapath.take_events()?;
    let lost = datapath.take_lost()?;
    let proxy_listener = datapath.take_proxy_listener()?;
    tracing::info!(node = %cfg.node_name, bpffs = %cfg.bpffs_dir().display(), "datapath loaded");

    let enrichment = Arc::new(EnrichmentHandle::default());
    let store = Arc::new(FlowStore::new(cfg.max_flows));
    let stats = Arc::new(MonitorStats::default());
    let status = Arc::new(RwLock::new(PolicyStatus::default()));
    let proxy_policy = Arc::new(crate::proxy::ProxyPolicyHandle::default());
    let stop = Arc::new(AtomicBool::new(false));

    let mut applier = Applier::new(
        ApplierConfig {
            node_name: cfg.node_name.clone(),
            state_dir: cfg.state_dir.clone(),
            policy_dir: cfg.policy_dir.clone(),
            runtime_dir: cfg.runtime_dir(),
            options: weir_policy::Options {
                local_node: cfg.node_name.clone(),
                allow_localhost: cfg.allow_localhost,
                http_flow_headers: cfg.http_flow_headers.clone(),
            },
            gc_interval: cfg.ct_gc_interval,
            devices: cfg.devices.clone(),
        },
        datapath,
        writer,
        enrichment.clone(),
        status.clone(),
        proxy_policy.clone(),
    );
    // Apply (and adopt the previous agent's links) before reading events, so flows are
    // enriched with the current endpoints.
    applier.poll();

    let monitor = monitor::spawn(
        ring,
        enrichment.clone(),
        store.clone(),
        stats.clone(),
        Box::new(move || lost.total().ok()),
        stop.clone(),
    )
    .map_err(AgentError::Thread)?;
    let apply_stop = stop.clone();
    let interval = cfg.poll_interval;
    let apply_thread = std::thread::Builder::new()
        .name("weir-apply".into())
        .spawn(move || {
            while !apply_stop.load(Ordering::Relaxed) {
                std::thread::sleep(interval);
                applier.poll();
            }
        })
        .map_err(AgentError::Thread)?;

    // The L7 proxy for gRPC rules. Without it, connections to ports with gRPC rules are
    // refused by the datapath (fail closed); everything else keeps working.
    let _proxy = match crate::proxy::start(
        proxy_listener,
        Arc::new(crate::proxy::ProxyContext {
            policy: proxy_policy,
            enrichment: enrichment.clone(),
            store: store.clone(),
        }),
    ) {
        Ok(p) => {
            tracing::info!(listeners = ?p.addresses, "L7 proxy serving");
            Some(p)
        }
        Err(e) => {
            tracing::error!(error = %e, "L7 proxy not started: connections to ports with gRPC rules will be refused");
            None
        }
    };

    let api = Api {
        store: store.clone(),
        stats,
        status,
        converter: Converter::new(),
        node_name: cfg.node_name.as_str().into(),
        node_address: node_address(&cfg).into(),
    };
    let (shutdown_tx, shutdown_rx) = tokio::sync::watch::channel(false);
    let wait = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };
    let unix = {
        let api = api.clone();
        let path = cfg.socket.clone();
        let rx = shutdown_rx.clone();
        tokio::spawn(async move { api.serve_unix(&path, wait(rx)).await })
    };
    let tcp = tcp.map(|addr| {
        let api = api.clone();
        let rx = shutdown_rx.clone();
        tokio::spawn(async move { api.serve_tcp(addr, wait(rx)).await })
    });
    tracing::info!(socket = %cfg.socket.display(), tcp = ?tcp.as_ref().map(|_| cfg.listen_address.clone()), "serving the Observer API");

    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(AgentError::Thread)?;
    let result: Result<(), AgentError> = tokio::select! {
        _ = tokio::signal::ctrl_c() => Ok(()),
        _ = term.recv() => Ok(()),
        r = unix => r.map_err(|e| AgentError::Config(e.to_string())).and_then(|r| r.map_err(Into::into)),
    };
    tracing::info!("shutting down; the datapath keeps enforcing the last applied policy");
    let _ = shutdown_tx.send(true);
    stop.store(true, Ordering::Relaxed);
    store.wake_all();
    if let Some(tcp) = tcp {
        let _ = tcp.await;
    }
    let _ = tokio::task::spawn_blocking(move || {
        let _ = monitor.join();
        let _ = apply_thread.join();
    })
    .await;
    result
}
