//! `peer.Peer/Notify`: this agent announces its own node, so a relay can discover it.

use std::pin::Pin;
use std::sync::Arc;

use futures_util::Stream;
use tonic::{Request, Response, Status};
use weir_proto::peer::{self, ChangeNotificationType, peer_server::Peer};

#[derive(Clone)]
pub struct PeerService {
    pub(crate) node_name: Arc<str>,
    /// Node address (IPv4 preferred) or the unix socket path when the node has none.
    pub(crate) address: Arc<str>,
}

type NotifyStream = Pin<Box<dyn Stream<Item = Result<peer::ChangeNotification, Status>> + Send>>;

#[tonic::async_trait]
impl Peer for PeerService {
    type NotifyStream = NotifyStream;

    async fn notify(
        &self,
        _: Request<peer::NotifyRequest>,
    ) -> Result<Response<NotifyStream>, Status> {
        let added = peer::ChangeNotification {
            name: self.node_name.to_string(),
            address: self.address.to_string(),
            r#type: ChangeNotificationType::PeerAdded as i32,
            tls: None,
        };
        // The node list of a standalone agent never changes: announce it, then keep the
        // stream open (a relay treats a closed stream as the peer service going away).
        let stream =
            tokio_stream::StreamExt::chain(tokio_stream::once(Ok(added)), tokio_stream::pending());
        Ok(Response::new(Box::pin(stream)))
    }
}
