//! openraft's network side: one lazily connected gRPC channel per peer,
//! shared by every client openraft asks for. openraft makes a new client for
//! each leadership check (every read-index), so without sharing each login
//! on a cluster paid a TCP connect and a mutual-TLS handshake per follower.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use tonic::transport::Channel;
use wharf_store::{ClusterNode, NodeId, TypeConfig};

use crate::convert;
use crate::pb::raft_client::RaftClient;
use crate::transport::Transport;

/// Creates connections to peers as openraft asks for them, each
/// authenticated both ways with cluster-CA certificates.
#[derive(Clone)]
pub struct PeerNetwork {
    transport: Transport,
    channels: SharedChannels,
}

/// Connected channels by peer address (HTTP/2: one carries many calls).
type SharedChannels = Arc<Mutex<HashMap<String, RaftClient<Channel>>>>;

impl PeerNetwork {
    pub fn new(transport: Transport) -> Self {
        Self {
            transport,
            channels: SharedChannels::default(),
        }
    }
}

impl RaftNetworkFactory<TypeConfig> for PeerNetwork {
    type Network = PeerConnection;

    async fn new_client(&mut self, target: NodeId, node: &ClusterNode) -> PeerConnection {
        PeerConnection {
            target,
            node: node.clone(),
            transport: self.transport.clone(),
            channels: self.channels.clone(),
            client: None,
        }
    }
}

pub struct PeerConnection {
    target: NodeId,
    node: ClusterNode,
    transport: Transport,
    channels: SharedChannels,
    client: Option<RaftClient<Channel>>,
}

type RpcError<E = openraft::error::Infallible> =
    RPCError<NodeId, ClusterNode, RaftError<NodeId, E>>;

impl PeerConnection {
    async fn client<E: std::error::Error>(&mut self) -> Result<RaftClient<Channel>, RpcError<E>> {
        if let Some(c) = &self.client {
            return Ok(c.clone());
        }
        let addr = &self.node.cluster_addr;
        let shared = self.shared().get(addr).cloned();
        if let Some(shared) = shared {
            self.client = Some(shared.clone());
            return Ok(shared);
        }
        let endpoint = self
            .transport
            .endpoint(&self.node.cluster_addr)
            .map_err(|e| RPCError::Unreachable(Unreachable::new(&e)))?;
        let channel = endpoint
            .connect()
            .await
            .map_err(|e| RPCError::Unreachable(Unreachable::new(&e)))?;
        let client = RaftClient::new(channel).max_decoding_message_size(64 * 1024 * 1024);
        self.shared().insert(addr.clone(), client.clone());
        self.client = Some(client.clone());
        Ok(client)
    }

    fn shared(&self) -> std::sync::MutexGuard<'_, HashMap<String, RaftClient<Channel>>> {
        self.channels.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A failed call drops the channel (here and for every other client of
    /// this peer) so the next call reconnects.
    fn failed<E: std::error::Error>(&mut self, status: tonic::Status) -> RpcError<E> {
        self.client = None;
        self.shared().remove(&self.node.cluster_addr);
        RPCError::Network(NetworkError::new(&status))
    }
}

impl RaftNetwork<TypeConfig> for PeerConnection {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RpcError> {
        let request =
            convert::append_to_pb(&rpc).map_err(|s| RPCError::Network(NetworkError::new(&s)))?;
        let mut client = self.client().await?;
        let mut req = tonic::Request::new(request);
        req.set_timeout(option.hard_ttl());
        match client.append_entries(req).await {
            Ok(resp) => convert::append_response_from_pb(resp.get_ref())
                .map_err(|s| RPCError::Network(NetworkError::new(&s))),
            Err(status) => Err(self.failed(status)),
        }
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<InstallSnapshotResponse<NodeId>, RpcError<InstallSnapshotError>> {
        let mut client = self.client().await?;
        let mut req = tonic::Request::new(convert::snapshot_to_pb(&rpc));
        req.set_timeout(option.hard_ttl());
        match client.install_snapshot(req).await {
            Ok(resp) => convert::snapshot_response_from_pb(resp.get_ref())
                .map_err(|s| RPCError::Network(NetworkError::new(&s))),
            Err(status) => match convert::snapshot_mismatch_from_status(&status) {
                Some(mismatch) => Err(RPCError::RemoteError(RemoteError::new_with_node(
                    self.target,
                    self.node.clone(),
                    RaftError::APIError(InstallSnapshotError::SnapshotMismatch(mismatch)),
                ))),
                None => Err(self.failed(status)),
            },
        }
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RpcError> {
        let mut client = self.client().await?;
        let mut req = tonic::Request::new(convert::vote_request_to_pb(&rpc));
        req.set_timeout(option.hard_ttl());
        match client.request_vote(req).await {
            Ok(resp) => convert::vote_response_from_pb(resp.get_ref())
                .map_err(|s| RPCError::Network(NetworkError::new(&s))),
            Err(status) => Err(self.failed(status)),
        }
    }
}
