//! The agent's gRPC API, served on a unix socket and on TCP: Hubble's `observer.Observer` and
//! `peer.Peer`, `grpc.health.v1.Health` (service `hubble.server.Observer`) and `weir.Agent`.

mod agent_api;
mod fieldmask;
mod observer;
mod peer;

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use tokio::net::{TcpListener, UnixListener};
use tokio_stream::wrappers::{TcpListenerStream, UnixListenerStream};
use tonic::transport::Server;
use tonic::transport::server::Router;
use weir_proto::observer::observer_server::ObserverServer;
use weir_proto::peer::peer_server::PeerServer;
use weir_proto::weir::agent_server::AgentServer;

pub use agent_api::{match_type_name, port_range, protocol_name};
pub use fieldmask::FieldMask;
pub use observer::{ObserverService, flow_of};
pub use peer::PeerService;

use crate::apply::PolicyStatus;
use crate::convert::Converter;
use crate::monitor::MonitorStats;
use crate::store::FlowStore;

/// The gRPC health service name Hubble clients check.
pub const HEALTH_SERVICE: &str = "hubble.server.Observer";

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot listen on unix socket {path}: {source}")]
    Unix {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot listen on {addr}: {source}")]
    Tcp {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("gRPC server failed: {0}")]
    Transport(#[from] tonic::transport::Error),
}

/// Everything the API reads.
#[derive(Clone)]
pub struct Api {
    pub store: Arc<FlowStore>,
    pub stats: Arc<MonitorStats>,
    pub status: Arc<RwLock<PolicyStatus>>,
    pub converter: Converter,
    pub node_name: Arc<str>,
    /// The node's address (for GetNodes and peer notifications).
    pub node_address: Arc<str>,
}

impl Api {
    async fn router(&self) -> Router {
        let (health, health_service) = tonic_health::server::health_reporter();
        health
            .set_service_status(HEALTH_SERVICE, tonic_health::ServingStatus::Serving)
            .await;
        health
            .set_service_status("", tonic_health::ServingStatus::Serving)
            .await;
        Server::builder()
            .add_service(health_service)
            .add_service(ObserverServer::new(ObserverService {
                store: self.store.clone(),
                stats: self.stats.clone(),
                converter: self.converter,
                node_name: self.node_name.clone(),
                node_address: self.node_address.clone(),
            }))
            .add_service(PeerServer::new(PeerService {
                node_name: self.node_name.clone(),
                address: self.node_address.clone(),
            }))
            .add_service(AgentServer::new(agent_api::AgentService {
                status: self.status.clone(),
                node_name: self.node_name.clone(),
            }))
    }

    /// Serves on a unix socket (replacing a stale socket file) until `shutdown` resolves.
    pub async fn serve_unix(
        &self,
        path: &Path,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), ServeError> {
        let err = |source| ServeError::Unix {
            path: path.to_path_buf(),
            source,
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(err)?;
        }
        match std::fs::remove_file(path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(err(e)),
        }
        let listener = UnixListener::bind(path).map_err(err)?;
        self.router()
            .await
            .serve_with_incoming_shutdown(UnixListenerStream::new(listener), shutdown)
            .await?;
        let _ = std::fs::remove_file(path);
        Ok(())
    }

    /// Serves on TCP until `shutdown` resolves.
    pub async fn serve_tcp(
        &self,
        addr: SocketAddr,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), ServeError> {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| ServeError::Tcp { addr, source })?;
        self.router()
            .await
            .serve_with_incoming_shutdown(TcpListenerStream::new(listener), shutdown)
            .await?;
        Ok(())
    }
}
