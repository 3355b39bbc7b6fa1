//! The cluster port: Raft, cluster administration and chunk transfer,
//! over mutually authenticated TLS.

use std::sync::Arc;

use crate::node::ClusterHandle;
use crate::pb;
use crate::service::{ClusterService, RaftService};

pub(crate) async fn serve(handle: Arc<ClusterHandle>, listener: tokio::net::TcpListener) {
    let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
    let mut builder =
        match tonic::transport::Server::builder().tls_config(handle.transport.server_config()) {
            Ok(b) => b,
            Err(e) => {
                tracing::error!("cannot configure TLS for the cluster port: {e}");
                return;
            }
        };
    let result = builder
        .add_service(
            pb::raft_server::RaftServer::new(RaftService {
                node: handle.clone(),
            })
            .max_decoding_message_size(64 * 1024 * 1024),
        )
        .add_service(pb::cluster_server::ClusterServer::new(ClusterService {
            node: handle.clone(),
        }))
        .add_service(
            pb::chunks_server::ChunksServer::new(crate::chunks::ChunkService { node: handle })
                .max_decoding_message_size(crate::chunks::MAX_CHUNK_MESSAGE)
                .max_encoding_message_size(crate::chunks::MAX_CHUNK_MESSAGE),
        )
        .serve_with_incoming(incoming)
        .await;
    if let Err(e) = result {
        tracing::error!("cluster gRPC server stopped: {e}");
    }
}
